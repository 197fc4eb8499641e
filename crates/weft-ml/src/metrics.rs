//! How good a probability is: ranking (ROC AUC, PR AUC), calibration (log
//! loss, Brier score, a reliability table), what a marketer gets from the
//! top of the list (lift and cumulative gain by decile) and the view of a
//! threshold (precision, recall, F2, the Low / Medium / High label).

use serde::{Deserialize, Serialize};

/// The propensity label marketers use: below 0.33 Low, from 0.66 High.
pub fn propensity_label(probability: f64) -> &'static str {
    if probability >= 0.66 {
        "High"
    } else if probability >= 0.33 {
        "Medium"
    } else {
        "Low"
    }
}

/// Rows sorted by score, highest first (ties by index, so results repeat).
fn descending(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
    order
}

/// ROC AUC (Mann–Whitney, ties counted half); None without both classes.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let positives = labels.iter().filter(|y| **y).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        let mean_rank = (i + j + 1) as f64 / 2.0;
        rank_sum += mean_rank * order[i..j].iter().filter(|k| labels[**k]).count() as f64;
        i = j;
    }
    Some((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// Average precision (scikit-learn's PR AUC): Σ (recallₖ − recallₖ₋₁) · precisionₖ
/// over the distinct thresholds.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let positives = labels.iter().filter(|y| **y).count() as f64;
    if positives == 0.0 {
        return None;
    }
    let order = descending(scores);
    let (mut tp, mut seen, mut ap, mut last_recall) = (0.0, 0.0, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            tp += f64::from(u8::from(labels[order[j]]));
            seen += 1.0;
            j += 1;
        }
        let recall = tp / positives;
        ap += (recall - last_recall) * tp / seen;
        last_recall = recall;
        i = j;
    }
    Some(ap)
}

pub fn log_loss(probabilities: &[f64], labels: &[bool]) -> f64 {
    let eps = 1e-15;
    let total: f64 = probabilities
        .iter()
        .zip(labels)
        .map(|(p, y)| {
            let p = p.clamp(eps, 1.0 - eps);
            if *y { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    total / probabilities.len().max(1) as f64
}

pub fn brier(probabilities: &[f64], labels: &[bool]) -> f64 {
    let total: f64 = probabilities
        .iter()
        .zip(labels)
        .map(|(p, y)| (p - f64::from(u8::from(*y))).powi(2))
        .sum();
    total / probabilities.len().max(1) as f64
}

/// One bin of predicted probability: how many rows, what they were
/// predicted, how often they were positive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub from: f64,
    pub to: f64,
    pub rows: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

/// Ten equal-width bins of predicted probability (empty bins left out).
pub fn reliability(probabilities: &[f64], labels: &[bool]) -> Vec<ReliabilityBin> {
    let mut sums = [(0usize, 0.0, 0usize); 10];
    for (p, y) in probabilities.iter().zip(labels) {
        let bin = ((p * 10.0) as usize).min(9);
        sums[bin].0 += 1;
        sums[bin].1 += p;
        sums[bin].2 += usize::from(*y);
    }
    sums.iter()
        .enumerate()
        .filter(|(_, s)| s.0 > 0)
        .map(|(b, (rows, p, positives))| ReliabilityBin {
            from: b as f64 / 10.0,
            to: (b + 1) as f64 / 10.0,
            rows: *rows,
            mean_predicted: p / *rows as f64,
            observed_rate: *positives as f64 / *rows as f64,
        })
        .collect()
}

/// One tenth of the rows by score, highest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decile {
    pub decile: usize,
    pub rows: usize,
    pub positives: usize,
    pub conversion_rate: f64,
    /// This decile's rate over the overall rate.
    pub lift: f64,
    /// Share of every positive found in this decile and those above it.
    pub cumulative_gain: f64,
}

/// The decile (1 = highest scores) of each row.
pub fn deciles_of(scores: &[f64]) -> Vec<u8> {
    let n = scores.len();
    let mut out = vec![0u8; n];
    for (rank, row) in descending(scores).into_iter().enumerate() {
        out[row] = (rank * 10 / n.max(1) + 1) as u8;
    }
    out
}

pub fn deciles(scores: &[f64], labels: &[bool]) -> Vec<Decile> {
    let total_positives = labels.iter().filter(|y| **y).count();
    let rate = total_positives as f64 / labels.len().max(1) as f64;
    let mut counts = [(0usize, 0usize); 10];
    for (decile, y) in deciles_of(scores).iter().zip(labels) {
        let c = &mut counts[*decile as usize - 1];
        c.0 += 1;
        c.1 += usize::from(*y);
    }
    let mut found = 0;
    counts
        .iter()
        .enumerate()
        .filter(|(_, c)| c.0 > 0)
        .map(|(d, (rows, positives))| {
            found += positives;
            let conversion_rate = *positives as f64 / *rows as f64;
            Decile {
                decile: d + 1,
                rows: *rows,
                positives: *positives,
                conversion_rate,
                lift: if rate > 0.0 {
                    conversion_rate / rate
                } else {
                    0.0
                },
                cumulative_gain: if total_positives > 0 {
                    found as f64 / total_positives as f64
                } else {
                    0.0
                },
            }
        })
        .collect()
}

/// The view of one threshold: a row at or above it is predicted positive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtThreshold {
    pub threshold: f64,
    pub precision: f64,
    pub recall: f64,
    pub f2: f64,
    pub predicted_positive: usize,
}

pub fn at_threshold(probabilities: &[f64], labels: &[bool], threshold: f64) -> AtThreshold {
    let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
    for (p, y) in probabilities.iter().zip(labels) {
        match (*p >= threshold, *y) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fn_ += 1.0,
            (false, false) => {}
        }
    }
    let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
    let recall = if tp + fn_ > 0.0 { tp / (tp + fn_) } else { 0.0 };
    let f2 = if precision + recall > 0.0 {
        5.0 * precision * recall / (4.0 * precision + recall)
    } else {
        0.0
    };
    AtThreshold {
        threshold,
        precision,
        recall,
        f2,
        predicted_positive: (tp + fp) as usize,
    }
}

/// The threshold with the best F2 (recall weighs twice precision).
pub fn best_f2(probabilities: &[f64], labels: &[bool]) -> AtThreshold {
    let mut candidates: Vec<f64> = probabilities.to_vec();
    candidates.sort_by(|a, b| b.total_cmp(a));
    candidates.dedup();
    // at most a few hundred thresholds: quantiles of the scores
    let step = (candidates.len() / 400).max(1);
    candidates
        .iter()
        .step_by(step)
        .map(|t| at_threshold(probabilities, labels, *t))
        .max_by(|a, b| a.f2.total_cmp(&b.f2))
        .unwrap_or_else(|| at_threshold(probabilities, labels, 0.5))
}

/// Every metric of a set of predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub rows: usize,
    pub positives: usize,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub log_loss: f64,
    pub brier: f64,
    pub reliability: Vec<ReliabilityBin>,
    pub deciles: Vec<Decile>,
    /// The F2-best threshold, and the view at the High label's 0.66.
    pub best_f2: AtThreshold,
    pub at_high: AtThreshold,
    /// Rows per Low / Medium / High label.
    pub labels: [usize; 3],
}

pub fn evaluate(probabilities: &[f64], labels: &[bool]) -> Evaluation {
    let mut counts = [0usize; 3];
    for p in probabilities {
        counts[match propensity_label(*p) {
            "Low" => 0,
            "Medium" => 1,
            _ => 2,
        }] += 1;
    }
    Evaluation {
        rows: labels.len(),
        positives: labels.iter().filter(|y| **y).count(),
        roc_auc: roc_auc(probabilities, labels),
        pr_auc: average_precision(probabilities, labels),
        log_loss: log_loss(probabilities, labels),
        brier: brier(probabilities, labels),
        reliability: reliability(probabilities, labels),
        deciles: deciles(probabilities, labels),
        best_f2: best_f2(probabilities, labels),
        at_high: at_threshold(probabilities, labels, 0.66),
        labels: counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // values checked with scikit-learn 1.9: roc_auc_score, average_precision_score,
    // log_loss, brier_score_loss on the same arrays
    const SCORES: [f64; 8] = [0.1, 0.4, 0.35, 0.8, 0.65, 0.2, 0.9, 0.4];
    const LABELS: [bool; 8] = [false, false, true, true, false, false, true, true];

    #[test]
    fn ranking_metrics_match_scikit_learn() {
        assert!((roc_auc(&SCORES, &LABELS).unwrap() - 0.78125).abs() < 1e-12);
        assert!((average_precision(&SCORES, &LABELS).unwrap() - 0.8166666666666667).abs() < 1e-12);
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
        // all tied: chance
        assert_eq!(roc_auc(&[0.5; 4], &[true, false, true, false]), Some(0.5));
    }

    #[test]
    fn probability_metrics_match_scikit_learn() {
        assert!((log_loss(&SCORES, &LABELS) - 0.5229710923226967).abs() < 1e-12);
        assert!((brier(&SCORES, &LABELS) - 0.183125).abs() < 1e-12);
    }

    #[test]
    fn deciles_and_thresholds() {
        let scores: Vec<f64> = (0..100).map(|i| f64::from(i) / 100.0).collect();
        // positives are the top 10 and one at the bottom
        let labels: Vec<bool> = (0..100).map(|i| i >= 90 || i == 0).collect();
        let d = deciles(&scores, &labels);
        assert_eq!(d.len(), 10);
        assert_eq!((d[0].rows, d[0].positives), (10, 10));
        assert!((d[0].lift - 10.0 / 11.0 * 10.0).abs() < 1e-9);
        assert!((d[0].cumulative_gain - 10.0 / 11.0).abs() < 1e-9);
        assert!((d[9].cumulative_gain - 1.0).abs() < 1e-9);
        let t = at_threshold(&scores, &labels, 0.9);
        assert_eq!(t.predicted_positive, 10);
        assert!((t.precision - 1.0).abs() < 1e-12 && (t.recall - 10.0 / 11.0).abs() < 1e-12);
        assert!((t.f2 - 5.0 * t.recall / (4.0 + t.recall)).abs() < 1e-12);
        assert_eq!(propensity_label(0.329), "Low");
        assert_eq!(propensity_label(0.33), "Medium");
        assert_eq!(propensity_label(0.66), "High");
    }

    #[test]
    fn reliability_bins_hold_their_rows() {
        let bins = reliability(&SCORES, &LABELS);
        assert_eq!(bins.iter().map(|b| b.rows).sum::<usize>(), 8);
        let four = bins.iter().find(|b| b.from == 0.4).unwrap();
        assert_eq!(four.rows, 2);
        assert!((four.observed_rate - 0.5).abs() < 1e-12);
    }
}
