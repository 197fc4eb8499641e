//! Linkage quality against known truth: pairwise and B-cubed precision and recall.

use std::collections::HashMap;

use crate::record::Record;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Scores {
    fn of(precision: f64, recall: f64) -> Self {
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Self {
            precision,
            recall,
            f1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub pairwise: Scores,
    pub b_cubed: Scores,
    pub predicted_pairs: u64,
    pub true_pairs: u64,
}

/// Compares predicted clusters with true ones; both give one label per record.
pub fn evaluate<P: Eq + std::hash::Hash, T: Eq + std::hash::Hash>(
    predicted: &[P],
    truth: &[T],
) -> Evaluation {
    assert_eq!(
        predicted.len(),
        truth.len(),
        "one label per record on both sides"
    );
    let mut both: HashMap<(&P, &T), u64> = HashMap::new();
    let mut by_predicted: HashMap<&P, u64> = HashMap::new();
    let mut by_truth: HashMap<&T, u64> = HashMap::new();
    for (p, t) in predicted.iter().zip(truth) {
        *both.entry((p, t)).or_default() += 1;
        *by_predicted.entry(p).or_default() += 1;
        *by_truth.entry(t).or_default() += 1;
    }
    let pairs = |n: u64| n * n.saturating_sub(1) / 2;
    let together: u64 = both.values().map(|&n| pairs(n)).sum();
    let predicted_pairs: u64 = by_predicted.values().map(|&n| pairs(n)).sum();
    let true_pairs: u64 = by_truth.values().map(|&n| pairs(n)).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };

    // B-cubed: per record, the share of its predicted cluster that truly belongs with it, and back
    let n = predicted.len() as f64;
    let (mut precision, mut recall) = (0.0, 0.0);
    for ((p, t), &count) in &both {
        let count = count as f64;
        precision += count * count / by_predicted[p] as f64;
        recall += count * count / by_truth[t] as f64;
    }
    Evaluation {
        pairwise: Scores::of(
            ratio(together, predicted_pairs),
            ratio(together, true_pairs),
        ),
        b_cubed: Scores::of(precision / n.max(1.0), recall / n.max(1.0)),
        predicted_pairs,
        true_pairs,
    }
}

/// The share of true pairs that are connected through records of their
/// person sharing some identifier (email, phone, birth date, user id, street
/// line with postcode): what any linker could reach without guessing from names.
pub fn reachable_recall<T: Eq + std::hash::Hash + Clone>(records: &[Record], owners: &[T]) -> f64 {
    let mut parent: Vec<usize> = (0..records.len()).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut by_key: HashMap<(T, String), usize> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        let keys = [
            r.email.clone(),
            r.phone.clone(),
            r.dob.map(|d| d.to_string()).unwrap_or_default(),
            r.user_id.clone(),
            if r.address.number.is_empty() || r.postcode.is_empty() {
                String::new()
            } else {
                format!(
                    "{} {} {} {}",
                    r.address.unit, r.address.number, r.address.street, r.postcode
                )
            },
        ];
        for (k, key) in keys.into_iter().enumerate() {
            if key.is_empty() {
                continue;
            }
            match by_key.entry((owners[i].clone(), format!("{k}:{key}"))) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    let (a, b) = (find(&mut parent, *e.get()), find(&mut parent, i));
                    parent[a] = b;
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(i);
                }
            }
        }
    }
    let components: Vec<usize> = (0..records.len()).map(|i| find(&mut parent, i)).collect();
    evaluate(&components, owners).pairwise.recall
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_count_pairs_and_records() {
        // truth {0,1,2} {3}; predicted {0,1} {2,3}
        let e = evaluate(&[0, 0, 1, 1], &["a", "a", "a", "b"]);
        assert_eq!((e.true_pairs, e.predicted_pairs), (3, 2));
        assert!((e.pairwise.precision - 0.5).abs() < 1e-9);
        assert!((e.pairwise.recall - 1.0 / 3.0).abs() < 1e-9);
        let perfect = evaluate(&[7, 7, 9], &[1, 1, 2]);
        assert_eq!(perfect.pairwise.f1, 1.0);
        assert_eq!(perfect.b_cubed.f1, 1.0);
    }
}
