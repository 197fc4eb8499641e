//! Customer ids that survive reruns.
//!
//! A run's clusters are numbered afresh; customers must not be. Each earlier
//! customer id goes home to the new cluster that holds most of its records. A
//! cluster that is home to no earlier id is a new customer; one that is home
//! to several is a merge (the id with most records survives, the others are
//! recorded as merged into it); records that left their id's home split off
//! into a customer of their own.

use std::collections::{BTreeMap, HashMap, HashSet};

/// A record's key across runs: its source and its id there.
pub type RecordKey = (String, String);

/// What happened to a customer id in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A customer first seen in this run.
    New { customer_id: String },
    /// `customer_id`'s records joined `into`, which keeps its id.
    Merged { customer_id: String, into: String },
    /// Some of `from`'s records are now the customer `customer_id`.
    Split { customer_id: String, from: String },
    /// None of the customer's records are in this run's input.
    Gone { customer_id: String },
}

impl Change {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::New { .. } => "new",
            Self::Merged { .. } => "merged",
            Self::Split { .. } => "split",
            Self::Gone { .. } => "gone",
        }
    }

    pub fn customer_id(&self) -> &str {
        match self {
            Self::New { customer_id }
            | Self::Merged { customer_id, .. }
            | Self::Split { customer_id, .. }
            | Self::Gone { customer_id } => customer_id,
        }
    }

    /// The other customer of a merge or split.
    pub fn other(&self) -> Option<&str> {
        match self {
            Self::Merged { into, .. } => Some(into),
            Self::Split { from, .. } => Some(from),
            Self::New { .. } | Self::Gone { .. } => None,
        }
    }
}

/// Customer ids for this run's records (`keys[i]` is in cluster `clusters[i]`),
/// keeping those of `previous` (record → customer id) wherever the records
/// still belong together. Returns one id per record and the changes.
pub fn assign(
    keys: &[RecordKey],
    clusters: &[u32],
    previous: &HashMap<RecordKey, String>,
) -> (Vec<String>, Vec<Change>) {
    assert_eq!(keys.len(), clusters.len(), "one cluster per record");
    let count = clusters.iter().max().map_or(0, |c| *c as usize + 1);
    // per cluster: how many of its records each earlier id holds (ordered, so ties break alike every run)
    let mut held: Vec<BTreeMap<&str, usize>> = vec![BTreeMap::new(); count];
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (i, key) in keys.iter().enumerate() {
        let cluster = clusters[i] as usize;
        members[cluster].push(i);
        if let Some(id) = previous.get(key) {
            *held[cluster].entry(id.as_str()).or_default() += 1;
        }
    }
    // each earlier id's home: the cluster with most of its records, then the lowest cluster
    let mut home: HashMap<&str, (usize, usize)> = HashMap::new();
    for (cluster, ids) in held.iter().enumerate() {
        for (&id, &n) in ids {
            let entry = home.entry(id).or_insert((cluster, n));
            if n > entry.1 {
                *entry = (cluster, n);
            }
        }
    }

    let mut taken: HashSet<String> = previous.values().cloned().collect();
    let mut ids = vec![String::new(); keys.len()];
    let mut changes = Vec::new();
    for cluster in 0..count {
        let mut homed: Vec<(&str, usize)> = held[cluster]
            .iter()
            .filter(|(id, _)| home[**id].0 == cluster)
            .map(|(&id, &n)| (id, n))
            .collect();
        // the survivor holds most records; ties go to the smaller id
        homed.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let id = match homed.first() {
            Some((survivor, _)) => {
                for (merged, _) in &homed[1..] {
                    changes.push(Change::Merged {
                        customer_id: (*merged).to_owned(),
                        into: (*survivor).to_owned(),
                    });
                }
                (*survivor).to_owned()
            }
            None => {
                let seed = members[cluster]
                    .iter()
                    .map(|&i| &keys[i])
                    .min()
                    .expect("a cluster has a record");
                let id = mint(seed, &taken);
                if held[cluster].is_empty() {
                    changes.push(Change::New {
                        customer_id: id.clone(),
                    });
                }
                id
            }
        };
        // records that left another customer's home for this one
        for &from in held[cluster].keys() {
            if home[from].0 != cluster {
                changes.push(Change::Split {
                    customer_id: id.clone(),
                    from: from.to_owned(),
                });
            }
        }
        taken.insert(id.clone());
        for &i in &members[cluster] {
            ids[i].clone_from(&id);
        }
    }
    let mut gone: Vec<&String> = previous
        .values()
        .filter(|id| !home.contains_key(id.as_str()))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    gone.sort();
    changes.extend(gone.into_iter().map(|id| Change::Gone {
        customer_id: id.clone(),
    }));
    (ids, changes)
}

/// A new customer id, from the cluster's first record so that a rebuild from
/// nothing gives the same ids; `cus_` and 16 hex digits.
fn mint(seed: &RecordKey, taken: &HashSet<String>) -> String {
    let mut salt = 0u64;
    loop {
        let id = format!("cus_{:016x}", fnv1a(&[&seed.0, "\u{1f}", &seed.1], salt));
        if !taken.contains(&id) {
            return id;
        }
        salt += 1;
    }
}

/// FNV-1a, 64 bits: stable across builds and platforms, unlike std's hasher.
pub fn fnv1a(parts: &[&str], salt: u64) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64 ^ salt;
    for byte in parts.iter().flat_map(|p| p.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ids: &[&str]) -> Vec<RecordKey> {
        ids.iter()
            .map(|i| ("crm".to_owned(), (*i).to_owned()))
            .collect()
    }

    fn map(keys: &[RecordKey], ids: &[String]) -> HashMap<RecordKey, String> {
        keys.iter().cloned().zip(ids.iter().cloned()).collect()
    }

    #[test]
    fn a_first_run_mints_one_id_per_cluster_the_same_way_every_time() {
        let k = keys(&["a", "b", "c"]);
        let (ids, changes) = assign(&k, &[0, 0, 1], &HashMap::new());
        assert_eq!(ids[0], ids[1]);
        assert_ne!(ids[0], ids[2]);
        assert!(ids[0].starts_with("cus_") && ids[0].len() == 20);
        assert_eq!(changes.len(), 2);
        assert!(changes.iter().all(|c| c.kind() == "new"));
        // the same clusters, numbered otherwise, records in another order: the same ids
        let reordered = keys(&["c", "b", "a"]);
        let (again, _) = assign(&reordered, &[0, 1, 1], &HashMap::new());
        assert_eq!(again, vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]);
    }

    #[test]
    fn new_records_join_existing_customers_without_renaming_them() {
        let k = keys(&["a", "b"]);
        let (first, _) = assign(&k, &[0, 1], &HashMap::new());
        let previous = map(&k, &first);
        let k2 = keys(&["z", "a", "b", "c"]);
        let (ids, changes) = assign(&k2, &[0, 0, 1, 2], &previous);
        assert_eq!(ids[1], first[0]);
        assert_eq!(ids[0], first[0], "z joined a's customer");
        assert_eq!(ids[2], first[1]);
        assert_eq!(
            changes,
            vec![Change::New {
                customer_id: ids[3].clone()
            }]
        );
    }

    #[test]
    fn a_merge_keeps_the_larger_customer_and_records_the_other() {
        let k = keys(&["a", "b", "c"]);
        let (first, _) = assign(&k, &[0, 0, 1], &HashMap::new());
        let (ids, changes) = assign(&k, &[0, 0, 0], &map(&k, &first));
        assert!(ids.iter().all(|id| *id == first[0]));
        assert_eq!(
            changes,
            vec![Change::Merged {
                customer_id: first[2].clone(),
                into: first[0].clone()
            }]
        );
    }

    #[test]
    fn a_split_keeps_the_id_where_most_records_stay() {
        let k = keys(&["a", "b", "c"]);
        let (first, _) = assign(&k, &[0, 0, 0], &HashMap::new());
        let (ids, changes) = assign(&k, &[0, 1, 0], &map(&k, &first));
        assert_eq!(ids[0], first[0]);
        assert_eq!(ids[2], first[0]);
        assert_ne!(ids[1], first[0]);
        assert_eq!(
            changes,
            vec![Change::Split {
                customer_id: ids[1].clone(),
                from: first[0].clone()
            }]
        );
    }

    #[test]
    fn a_record_that_moves_to_another_customer_is_recorded_as_split_from_its_old_one() {
        let k = keys(&["a", "b", "c"]);
        let (first, _) = assign(&k, &[0, 0, 1], &HashMap::new());
        let (ids, changes) = assign(&k, &[0, 1, 1], &map(&k, &first));
        assert_eq!(
            ids,
            vec![first[0].clone(), first[2].clone(), first[2].clone()]
        );
        assert_eq!(
            changes,
            vec![Change::Split {
                customer_id: first[2].clone(),
                from: first[0].clone()
            }]
        );
    }

    #[test]
    fn customers_whose_records_left_are_gone_and_their_ids_are_not_reused() {
        let k = keys(&["a", "b"]);
        let (first, _) = assign(&k, &[0, 1], &HashMap::new());
        let previous = map(&k, &first);
        let (ids, changes) = assign(&keys(&["b"]), &[0], &previous);
        assert_eq!(ids, vec![first[1].clone()]);
        assert_eq!(
            changes,
            vec![Change::Gone {
                customer_id: first[0].clone()
            }]
        );
        // "a" comes back alone: its old id is still taken, so it gets another
        let (back, _) = assign(
            &keys(&["a"]),
            &[0],
            &HashMap::from([
                (k[1].clone(), first[1].clone()),
                (("x".into(), "y".into()), first[0].clone()),
            ]),
        );
        assert_ne!(back[0], first[0]);
    }
}
