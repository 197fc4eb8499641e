//! Ground truth: who each cookie, user id and record belongs to, each
//! person's true conversion probabilities and outcome, and what they imply
//! (the best ROC AUC any model could reach on this data).

use serde::Serialize;

use crate::catalog::CATEGORIES;

/// Probabilities and outcomes gathered over every person.
#[derive(Default)]
pub struct Scores {
    overall: Vec<(f32, bool)>,
    by_category: Vec<Vec<(f32, bool)>>,
}

impl Scores {
    /// Adds a person's truth; crawlers are not customers and are left out.
    pub fn add(&mut self, truth: &crate::PersonTruth) {
        if truth.crawler {
            return;
        }
        self.overall.push((truth.p_convert as f32, truth.converted));
        if self.by_category.is_empty() {
            self.by_category = vec![Vec::new(); CATEGORIES.len()];
        }
        for (c, scores) in self.by_category.iter_mut().enumerate() {
            scores.push((truth.p_category[c] as f32, truth.converted_category[c]));
        }
    }

    pub fn extend(&mut self, other: Scores) {
        self.overall.extend(other.overall);
        if self.by_category.is_empty() {
            self.by_category = vec![Vec::new(); CATEGORIES.len()];
        }
        for (mine, theirs) in self.by_category.iter_mut().zip(other.by_category) {
            mine.extend(theirs);
        }
    }

    pub fn summarise(&mut self) -> (Outcomes, Vec<CategoryOutcomes>) {
        let overall = Outcomes::of(&mut self.overall);
        let categories = CATEGORIES
            .iter()
            .zip(self.by_category.iter_mut())
            .map(|(category, scores)| CategoryOutcomes {
                category: category.slug,
                outcomes: Outcomes::of(scores),
            })
            .collect();
        (overall, categories)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcomes {
    pub converted: u64,
    pub conversion_rate: f64,
    /// Mean true probability: the conversion rate expected before outcomes are drawn.
    pub expected_conversion_rate: f64,
    /// ROC AUC of the true probabilities against the drawn outcomes.
    pub best_auc: Option<f64>,
    /// The same in expectation over the outcomes (less noisy on small sites).
    pub best_auc_expected: Option<f64>,
}

impl Outcomes {
    fn of(scores: &mut [(f32, bool)]) -> Self {
        let n = scores.len().max(1) as f64;
        let converted = scores.iter().filter(|(_, y)| *y).count() as u64;
        let expected = scores.iter().map(|(p, _)| f64::from(*p)).sum::<f64>() / n;
        scores.sort_by(|a, b| a.0.total_cmp(&b.0));
        Self {
            converted,
            conversion_rate: converted as f64 / n,
            expected_conversion_rate: expected,
            best_auc: auc(scores),
            best_auc_expected: expected_auc(scores),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CategoryOutcomes {
    pub category: &'static str,
    #[serde(flatten)]
    pub outcomes: Outcomes,
}

/// ROC AUC of scores sorted ascending, ties counted half (Mann–Whitney).
pub fn auc(sorted: &[(f32, bool)]) -> Option<f64> {
    let positives = sorted.iter().filter(|(_, y)| *y).count() as f64;
    let negatives = sorted.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        let mean_rank = (i + j + 1) as f64 / 2.0;
        rank_sum += mean_rank * sorted[i..j].iter().filter(|(_, y)| *y).count() as f64;
        i = j;
    }
    Some((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// The AUC the true probabilities reach on average over outcomes drawn from
/// them: Σ p_i (1 − p_j) over pairs ranked i above j, over all pairs' weight.
pub fn expected_auc(sorted: &[(f32, bool)]) -> Option<f64> {
    let mut below = 0.0; // Σ (1 − p_j) of strictly lower scores
    let mut concordant = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        let (mut group_p, mut group_q, mut group_pq) = (0.0, 0.0, 0.0);
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            let p = f64::from(sorted[j].0);
            group_p += p;
            group_q += 1.0 - p;
            group_pq += p * (1.0 - p);
            j += 1;
        }
        concordant += group_p * below + 0.5 * (group_p * group_q - group_pq);
        below += group_q;
        i = j;
    }
    let total_p: f64 = sorted.iter().map(|(p, _)| f64::from(*p)).sum();
    let total_q = sorted.len() as f64 - total_p;
    let self_pairs: f64 = sorted
        .iter()
        .map(|(p, _)| f64::from(*p) * (1.0 - f64::from(*p)))
        .sum();
    let pairs = total_p * total_q - self_pairs;
    (pairs > 0.0).then(|| concordant / pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ordered_pairs_and_ties() {
        let sorted = [(0.1, false), (0.2, true), (0.3, false), (0.4, true)];
        // pairs (pos, neg) ranked right: (0.2>0.1), (0.4>0.1), (0.4>0.3) of 4
        assert_eq!(auc(&sorted), Some(0.75));
        assert_eq!(auc(&[(0.5, true), (0.5, false)]), Some(0.5));
        assert_eq!(auc(&[(0.5, true)]), None);
    }

    #[test]
    fn expected_auc_is_the_mean_of_drawn_aucs() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut probabilities: Vec<f32> = (0..400).map(|_| rng.random::<f32>().powi(3)).collect();
        probabilities.sort_by(f32::total_cmp);
        let expected = expected_auc(
            &probabilities
                .iter()
                .map(|p| (*p, false))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let draws = 300;
        let mean: f64 = (0..draws)
            .filter_map(|_| {
                let drawn: Vec<(f32, bool)> = probabilities
                    .iter()
                    .map(|p| (*p, rng.random_bool(f64::from(*p))))
                    .collect();
                auc(&drawn)
            })
            .sum::<f64>()
            / f64::from(draws);
        assert!((mean - expected).abs() < 0.01, "{mean} vs {expected}");
    }
}
