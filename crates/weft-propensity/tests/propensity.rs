//! The propensity stage on the simulator's shop in a real lake: features
//! that cannot see past their cut-off, and a run that trains, registers,
//! promotes and scores, repeatably.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use std::sync::Arc;
use weft_core::Event;
use weft_core::config::{EnrichmentsConfig, MlConfig, ModelConfig};
use weft_enrich::{Enrichments, Resolver, process_payload_with};
use weft_lake::Lake;
use weft_lake::arrow_rows::{EVENT_PARTITION, events_batch};
use weft_ml::{Frame, Values};
use weft_sim::out::BACKFILL_HOST;
use weft_sim::{Person, SimOptions};

struct Shop {
    options: SimOptions,
    people: Vec<Person>,
    events: Vec<Event>,
}

fn simulate(visitors: u64) -> Shop {
    let options = SimOptions {
        visitors,
        days: 36,
        prediction_days: 7,
        seed: 11,
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
            events.extend(process_payload_with(&payload, &resolver, &enrichments, 0).events);
        }
    }
    Shop {
        options,
        people,
        events,
    }
}

async fn load(lake: &Lake, events: &[Event], load: i64) {
    let batch = events_batch(events, 1_800_000_000_000 + load).unwrap();
    lake.table("atomic", "events")
        .await
        .unwrap()
        .write(vec![batch])
        .with_partition_columns([EVENT_PARTITION])
        .with_schema_mode(deltalake::operations::write::SchemaMode::Merge)
        .await
        .unwrap();
    weft_model::Modeller::new(lake.clone(), ModelConfig::default())
        .run()
        .await
        .unwrap();
}

/// Identity as resolved: each cookie's customer is its person.
async fn person_map(lake: &Lake, people: &[Person]) {
    let mut rows: Vec<(String, String)> = Vec::new();
    for person in people {
        for (cookie, _) in &person.run.cookies {
            rows.push((person.run.truth.person_id.clone(), cookie.clone()));
        }
    }
    let text = |f: &dyn Fn(&(String, String)) -> String| {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let schema = Schema::new(
        ["customer_id", "kind", "value", "source"]
            .map(|n| Field::new(n, DataType::Utf8, false))
            .to_vec(),
    );
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            text(&|r| r.0.clone()),
            text(&|_| "domain_userid".into()),
            text(&|r| r.1.clone()),
            text(&|_| "web".into()),
        ],
    )
    .unwrap();
    lake.table("identity", "person_map")
        .await
        .unwrap()
        .write(vec![batch])
        .await
        .unwrap();
}

fn config() -> MlConfig {
    let mut config = MlConfig {
        prediction_days: 7,
        training_cutoffs: 2,
        step_days: 7,
        time_budget_secs: 5,
        min_category_positives: 5,
        ..MlConfig::default()
    };
    config.category_events.insert(
        "product_views".into(),
        "unstruct_event_com_acme_product_view_1.category".into(),
    );
    config.flags.insert(
        "consent_marketing".into(),
        "unstruct_event_com_acme_sign_up_1.consent_marketing".into(),
    );
    config
}

/// The frame's rows as sorted text, for comparing whole frames.
fn rows(frame: &Frame) -> Vec<String> {
    let ids = frame.ids.as_deref().unwrap();
    let mut out: Vec<String> = (0..frame.rows())
        .map(|i| {
            let mut row = ids[i].clone();
            for column in &frame.columns {
                row.push(',');
                row.push_str(&match &column.values {
                    // parallel sums may differ in the last bits from run to run
                    Values::Numeric(v) => format!("{:.9}", v[i]),
                    Values::Categorical { levels, codes } => {
                        levels.get(codes[i] as usize).cloned().unwrap_or_default()
                    }
                });
            }
            row
        })
        .collect();
    out.sort();
    out
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn features_do_not_see_past_their_cutoff_and_a_leaky_spec_is_caught() {
    let shop = simulate(300);
    let cutoff_ms = shop.options.cutoff_ms() - 3 * 86_400_000;
    let cutoff = at(cutoff_ms);
    let (before, after): (Vec<Event>, Vec<Event>) = shop
        .events
        .iter()
        .cloned()
        .partition(|e| e.derived_tstamp.is_some_and(|t| t < cutoff_ms));
    assert!(!before.is_empty() && !after.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path());
    person_map(&lake, &shop.people).await;
    // a spec that reads a whole table instead of the cut one
    let leaky_path = dir.path().join("leaky.sql");
    std::fs::write(
        &leaky_path,
        "SELECT k.customer_id, count(c.event_id) AS conversions_ever \
         FROM cookie_customers k LEFT JOIN derived.conversions c ON c.domain_userid = k.domain_userid \
         GROUP BY k.customer_id",
    )
    .unwrap();
    let leaky = MlConfig {
        features: Some(leaky_path),
        ..config()
    };
    let features = |config: MlConfig| {
        let lake = lake.clone();
        async move {
            weft_propensity::run::features_at(&lake, &config, 10, Some(cutoff))
                .await
                .unwrap()
                .0
        }
    };

    load(&lake, &before, 1).await;
    let sound_before = features(config()).await;
    let leaky_before = features(leaky.clone()).await;
    load(&lake, &after, 2).await;
    let sound_after = features(config()).await;
    let leaky_after = features(leaky).await;

    assert!(
        sound_before.rows() > 100,
        "{} customers",
        sound_before.rows()
    );
    assert!(sound_before.columns.len() > 20);
    let names: Vec<&str> = sound_before
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let (a, b) = (rows(&sound_before), rows(&sound_after));
    if let Some((x, y)) = a.iter().zip(&b).find(|(x, y)| x != y) {
        panic!("events after the cut-off changed features as of it:\n{names:?}\n{x}\n{y}");
    }
    assert_eq!(a.len(), b.len());
    assert_ne!(
        rows(&leaky_before),
        rows(&leaky_after),
        "the comparison must catch a spec that reads past the cut-off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_trains_registers_promotes_and_scores_repeatably() {
    let shop = simulate(800);
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(&dir.path().join("data"));
    person_map(&lake, &shop.people).await;
    load(&lake, &shop.events, 1).await;
    let registry = weft_propensity::registry(dir.path());
    let config = config();

    let first = weft_propensity::run(&lake, &registry, &config, 10, false)
        .await
        .unwrap();
    let trained = first.trained.as_ref().expect("the first run trains");
    assert_eq!((trained.version, trained.promoted), (1, true));
    assert_eq!(trained.train_cutoffs.len(), 2);
    let overall = &trained.targets[0];
    assert_eq!(overall.target, "converted");
    let auc = overall
        .test_auc
        .expect("both outcomes among test customers");
    assert!(auc > 0.6, "test AUC {auc}: the model learnt nothing");
    let scored = first.scored.as_ref().expect("the promoted version scores");
    let table = weft_lake::sql::query(
        &lake,
        "SELECT count(*), min(score) >= 0 AND max(score) <= 1, min(decile), max(decile), \
         count(DISTINCT version), sum(CASE WHEN propensity = 'High' AND score < 0.66 THEN 1 ELSE 0 END) \
         FROM ml.scores",
    )
    .await
    .unwrap();
    let mut text = Vec::new();
    weft_lake::sql::write_csv(&table, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    let values: Vec<&str> = text.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(values[0], scored.rows.to_string());
    assert_eq!(&values[1..], ["true", "1", "10", "1", "0"], "{text}");

    // nothing new: not due, the production version scores again
    let second = weft_propensity::run(&lake, &registry, &config, 10, false)
        .await
        .unwrap();
    assert!(second.trained.is_none(), "{:?}", second.notes);
    assert_eq!(second.scored.as_ref().unwrap().version, 1);

    // forced: a second version, a candidate only, the same model from the same data and seed
    let third = weft_propensity::run(&lake, &registry, &config, 10, true)
        .await
        .unwrap();
    let retrained = third.trained.unwrap();
    assert_eq!((retrained.version, retrained.promoted), (2, false));
    assert_eq!(third.scored.unwrap().version, 1);
    let v1 = weft_ml::registry::load_dir(&registry.dir("propensity", 1)).unwrap();
    let v2 = weft_ml::registry::load_dir(&registry.dir("propensity", 2)).unwrap();
    let targets = |f: &weft_ml::ModelFile| serde_json::to_string(&f.targets).unwrap();
    assert_eq!(targets(&v1), targets(&v2));
    assert!(
        v1.targets.len() > 1,
        "per-category models: {:?}",
        v1.targets.keys()
    );
    let card = std::fs::read_to_string(registry.dir("propensity", 1).join("card.md")).unwrap();
    for section in [
        "ROC AUC",
        "Lift and gain by decile",
        "Calibration",
        "Feature importance",
    ] {
        assert!(card.contains(section), "the card has {section}");
    }
    let versions: BTreeMap<u32, String> = registry
        .versions("propensity")
        .unwrap()
        .into_iter()
        .map(|v| (v.version, v.stage.to_string()))
        .collect();
    assert_eq!(versions[&1], "production");
    assert_eq!(versions[&2], "candidate");
    registry.promote("propensity", 2).unwrap();
    let fourth = weft_propensity::run(&lake, &registry, &config, 10, false)
        .await
        .unwrap();
    assert_eq!(fourth.scored.unwrap().version, 2);
    assert_eq!(
        registry.versions("propensity").unwrap()[0]
            .stage
            .to_string(),
        "archived"
    );
}
