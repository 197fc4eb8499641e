//! Against the simulator's ground truth: every customer record of a simulated
//! shop, linked with the default rules, clusters as the people behind them.

use std::collections::HashMap;

use weft_identity::{Field, LinkOptions, RawRecord, evaluate, link};
use weft_sim::records::{IDENTITY_COLUMNS, SOURCES};
use weft_sim::{Person, SimOptions};

/// The records of `visitors` simulated people, and whose each one is.
pub fn simulated_records(visitors: u64, seed: u64) -> (Vec<RawRecord>, Vec<u64>) {
    let options = SimOptions {
        visitors,
        seed,
        ..SimOptions::default()
    };
    let mut records = Vec::new();
    let mut owners = Vec::new();
    weft_sim::generate(
        &options,
        500,
        2,
        |people: Vec<Person>| people,
        |people| {
            for person in people {
                for record in &person.records {
                    let (source, columns) = SOURCES[record.source];
                    let values = columns
                        .iter()
                        .zip(&record.fields)
                        .filter_map(|(column, value)| {
                            let (_, field) = IDENTITY_COLUMNS.iter().find(|(c, _)| c == column)?;
                            Some((field.parse::<Field>().unwrap(), value.clone()))
                        })
                        .collect();
                    records.push(RawRecord {
                        source: source.to_owned(),
                        id: record.id().to_owned(),
                        values,
                    });
                    owners.push(person.index);
                }
            }
            Ok(())
        },
    )
    .unwrap();
    (records, owners)
}

pub fn mapped() -> Vec<Field> {
    let mut fields: Vec<Field> = IDENTITY_COLUMNS
        .iter()
        .map(|(_, f)| f.parse().unwrap())
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

#[test]
fn simulated_records_cluster_as_their_people() {
    let visitors = std::env::var("VISITORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6000);
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let (records, owners) = simulated_records(visitors, seed);
    let mut options = LinkOptions::default();
    if let Some(threshold) = std::env::var("THRESHOLD").ok().and_then(|v| v.parse().ok()) {
        options.threshold = threshold;
    }
    let linkage = link(&records, &mapped(), &options);
    let e = evaluate(&linkage.clusters, &owners);
    eprintln!(
        "{} records, {} pairs compared, {} links; pairwise P {:.4} R {:.4} F1 {:.4}; B-cubed P {:.4} R {:.4}",
        records.len(),
        linkage.pairs_compared,
        linkage.links.len(),
        e.pairwise.precision,
        e.pairwise.recall,
        e.pairwise.f1,
        e.b_cubed.precision,
        e.b_cubed.recall
    );
    eprintln!(
        "prior {:.6} (among candidates {:.4}) after {} EM iterations",
        linkage.model.prior, linkage.model.candidate_prior, linkage.model.em_iterations
    );
    for (c, comparison) in linkage.model.comparisons.iter().enumerate() {
        eprintln!(
            "  {:<12} m {:?}\n               u {:?}",
            comparison.name(),
            linkage.model.m[c]
                .iter()
                .map(|v| format!("{v:.4}"))
                .collect::<Vec<_>>(),
            linkage.model.u[c]
                .iter()
                .map(|v| format!("{v:.5}"))
                .collect::<Vec<_>>()
        );
    }
    // the pairs we got wrong, by kind, for the reader
    let link_of: HashMap<(usize, usize), &weft_identity::Link> = linkage
        .links
        .iter()
        .map(|l| ((l.a as usize, l.b as usize), l))
        .collect();
    let mut wrong: HashMap<(String, String), usize> = HashMap::new();
    for (i, a) in linkage.records.iter().enumerate() {
        for (j, b) in linkage.records.iter().enumerate().skip(i + 1) {
            let together = linkage.clusters[i] == linkage.clusters[j];
            if together != (owners[i] == owners[j]) {
                let kind = if together {
                    "merged".to_owned()
                } else {
                    match link_of.get(&(i, j)) {
                        Some(l) => format!("missed, {}", l.refused.map_or("linked", |r| r.name())),
                        None => "missed, no link".to_owned(),
                    }
                };
                let sources = format!(
                    "{}-{}",
                    linkage.sources[a.source as usize], linkage.sources[b.source as usize]
                );
                *wrong.entry((kind, sources)).or_default() += 1;
            }
        }
    }
    let mut wrong: Vec<_> = wrong.into_iter().collect();
    wrong.sort_by_key(|b| std::cmp::Reverse(b.1));
    eprintln!("{wrong:?}");
    let reachable = weft_identity::eval::reachable_recall(&linkage.records, &owners);
    eprintln!("pairs an identifier can reach: {reachable:.4} of the true pairs");
    assert!(
        e.pairwise.precision >= 0.99,
        "pairwise precision {:.4}",
        e.pairwise.precision
    );
    assert!(
        e.b_cubed.precision >= 0.995,
        "B-cubed precision {:.4}",
        e.b_cubed.precision
    );
    // the rest share nothing but a name with their person's other records
    assert!(
        e.pairwise.recall >= 0.97 * reachable,
        "pairwise recall {:.4} of a reachable {reachable:.4}",
        e.pairwise.recall
    );
    assert!(
        e.b_cubed.recall >= 0.95,
        "B-cubed recall {:.4}",
        e.b_cubed.recall
    );
}
