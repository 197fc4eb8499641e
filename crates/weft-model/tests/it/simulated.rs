//! The simulator's shop, loaded in ten random chunks with a model run after
//! each, gives the tables a one-shot rebuild gives, and matches what was simulated.

use std::collections::HashMap;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::Value;
use weft_core::Event;
use weft_core::config::EnrichmentsConfig;
use weft_enrich::{Enrichments, Resolver, process_payload_with};
use weft_sim::out::BACKFILL_HOST;
use weft_sim::{Person, SimOptions};

use crate::{Setup, assert_same_as_rebuild};

pub struct Simulated {
    pub events: Vec<Event>,
    pub people: Vec<Person>,
}

/// A simulated shop's events, as the loader makes them (validated and enriched).
pub fn simulate(visitors: u64) -> Simulated {
    let options = SimOptions {
        visitors,
        days: 20,
        prediction_days: 5,
        ..SimOptions::default()
    };
    let schemas = tempfile::tempdir().unwrap();
    weft_sim::out::install_schemas(schemas.path()).unwrap();
    let resolver = Resolver::new(vec![schemas.path().join("iglu")]);
    let enrichments = Enrichments::from_config(&EnrichmentsConfig::default()).unwrap();
    let people: Vec<Person> = (0..visitors)
        .map(|i| Person::generate(&options, i))
        .collect();
    let mut events = Vec::new();
    for person in &people {
        for request in &person.run.requests {
            let payload = request.clone().into_payload(BACKFILL_HOST, "weft-test");
            let processed = process_payload_with(&payload, &resolver, &enrichments, 0);
            assert!(processed.bad_rows.is_empty(), "{:?}", processed.bad_rows);
            events.extend(processed.events);
        }
    }
    Simulated { events, people }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_random_chunks_model_as_one_rebuild_and_match_the_truth() {
    // enough visitors that some cookies are seen before they log in (restitching)
    let Simulated { mut events, people } = simulate(60);
    events.shuffle(&mut StdRng::seed_from_u64(7));
    let mut setup = Setup::new();
    let chunk = events.len().div_ceil(10);
    let mut restitched = 0;
    for (index, part) in events.chunks(chunk).enumerate() {
        setup.load(part).await;
        let report = setup.model().await;
        assert_eq!(report.new_events as usize + skipped(part), part.len());
        restitched += report.restitched_sessions;
        if index == 4 {
            // half-way, maintenance compacts files that carry deletion vectors and
            // removes what no commit needs: later runs mark rows in the compacted files
            let options = weft_lake::MaintenanceOptions {
                vacuum_retention_hours: 0,
                ..Default::default()
            };
            let done = weft_lake::maintain(&setup.lake, &options).await.unwrap();
            assert!(done.iter().any(|table| table.files_compacted > 0));
        }
    }
    assert!(
        restitched > 0,
        "no cookie was stitched after its first session"
    );
    assert_same_as_rebuild(&setup).await;

    // sessions: one per simulated visit of a person (crawlers, if any, are left out)
    let visits: usize = people
        .iter()
        .filter(|p| !p.run.truth.crawler)
        .map(|p| p.run.truth.visits)
        .sum();
    let sessions = setup
        .rows("SELECT count(*) AS n FROM derived.sessions")
        .await;
    assert_eq!(sessions[0]["n"], Value::from(visits));

    // stitched users: every cookie mapped to a user id is that person's
    let owner: HashMap<&str, &Person> = people
        .iter()
        .flat_map(|p| {
            p.run
                .cookies
                .iter()
                .map(move |(duid, _)| (duid.as_str(), p))
        })
        .collect();
    let users = setup
        .rows("SELECT domain_userid, user_id, stitched_user_id FROM derived.users")
        .await;
    let mut stitched = 0;
    for user in &users {
        let duid = user["domain_userid"].as_str().unwrap();
        let person = owner[duid];
        match user["user_id"].as_str() {
            Some(id) => {
                assert_eq!(id, person.run.identity.user_id, "cookie {duid}");
                assert_eq!(user["stitched_user_id"], user["user_id"]);
                stitched += 1;
            }
            None => assert_eq!(user["stitched_user_id"].as_str(), Some(duid)),
        }
    }
    let registered = people.iter().filter(|p| p.run.truth.registered).count();
    assert!(
        stitched >= registered.min(1),
        "{stitched} stitched cookies, {registered} registered people"
    );
    // one user row per cookie that was modelled
    let cookies: std::collections::HashSet<&str> = events
        .iter()
        .filter(|e| e.dvce_type.as_deref() != Some("bot"))
        .filter_map(|e| e.domain_userid.as_deref())
        .collect();
    assert_eq!(users.len(), cookies.len());
}

/// Events a run does not model: bots'.
fn skipped(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| e.dvce_type.as_deref() == Some("bot"))
        .count()
}
