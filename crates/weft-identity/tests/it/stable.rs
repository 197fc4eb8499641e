//! Customer ids across runs: add 10% new records and run again; no existing
//! customer's id changes unless its records truly merged with another's.

use std::collections::HashMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use weft_identity::{Change, LinkOptions, RecordKey, assign, link};

use crate::simulated::{mapped, simulated_records};

#[test]
fn adding_ten_percent_more_records_renames_no_customer_but_true_merges() {
    let (records, owners) = simulated_records(3000, 11);
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.shuffle(&mut rng);
    let held_back = records.len() / 11; // 10% of the first run's records arrive later
    let first: Vec<usize> = order[held_back..].to_vec();
    let key = |i: usize| -> RecordKey { (records[i].source.clone(), records[i].id.clone()) };

    let options = LinkOptions::default();
    let first_records: Vec<_> = first.iter().map(|&i| records[i].clone()).collect();
    let first_linkage = link(&first_records, &mapped(), &options);
    let first_keys: Vec<RecordKey> = first.iter().map(|&i| key(i)).collect();
    let (first_ids, _) = assign(&first_keys, &first_linkage.clusters, &HashMap::new());
    let previous: HashMap<RecordKey, String> = first_keys
        .iter()
        .cloned()
        .zip(first_ids.iter().cloned())
        .collect();

    // the second run sees every record, in another order
    let mut second: Vec<usize> = (0..records.len()).collect();
    second.shuffle(&mut rng);
    let second_records: Vec<_> = second.iter().map(|&i| records[i].clone()).collect();
    let second_linkage = link(&second_records, &mapped(), &options);
    let second_keys: Vec<RecordKey> = second.iter().map(|&i| key(i)).collect();
    let (second_ids, changes) = assign(&second_keys, &second_linkage.clusters, &previous);
    let now: HashMap<&RecordKey, &String> = second_keys.iter().zip(&second_ids).collect();

    // who each earlier customer mostly is
    let mut people_of: HashMap<&str, HashMap<u64, usize>> = HashMap::new();
    for (&i, id) in first.iter().zip(&first_ids) {
        *people_of
            .entry(id)
            .or_default()
            .entry(owners[i])
            .or_default() += 1;
    }
    let person = |id: &str| -> u64 {
        let counts = &people_of[id];
        *counts
            .iter()
            .max_by_key(|(p, n)| (**n, std::cmp::Reverse(**p)))
            .unwrap()
            .0
    };
    let merged: HashMap<&str, &str> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Merged { customer_id, into } => Some((customer_id.as_str(), into.as_str())),
            _ => None,
        })
        .collect();
    let (mut kept, mut true_merges, mut other_changes) = (0, 0, Vec::new());
    for (k, old) in first_keys.iter().zip(&first_ids) {
        let new = now[k];
        if new == old {
            kept += 1;
        } else if merged.get(old.as_str()) == Some(&new.as_str()) && person(old) == person(new) {
            true_merges += 1;
        } else {
            other_changes.push((k.clone(), old.clone(), new.clone()));
        }
    }
    let count = |kind: &str| changes.iter().filter(|c| c.kind() == kind).count();
    eprintln!(
        "{} records, then {} more: {kept} kept their customer id, {true_merges} moved by a true merge; changes: {} new, {} merged, {} split, {} gone",
        first.len(),
        held_back,
        count("new"),
        count("merged"),
        count("split"),
        count("gone"),
    );
    assert!(
        other_changes.is_empty(),
        "ids changed without a true merge: {other_changes:?}"
    );
    assert!(kept > first.len() * 9 / 10);
    assert_eq!(count("gone"), 0);
}
