//! A trained model as it is stored and scored: its feature schema, its
//! learner, and the calibration that turns its margin into a probability.

use serde::{Deserialize, Serialize};

use crate::gbdt::{Gbdt, sigmoid};
use crate::logistic::Logistic;
use crate::schema::{FeatureSchema, Matrix};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "learner", rename_all = "snake_case")]
pub enum Learner {
    Gbdt(Gbdt),
    Logistic(Logistic),
}

impl Learner {
    pub fn name(&self) -> &'static str {
        match self {
            Learner::Gbdt(_) => "gbdt",
            Learner::Logistic(_) => "logistic",
        }
    }

    pub fn margins(&self, matrix: &Matrix, threads: usize) -> Vec<f64> {
        match self {
            Learner::Gbdt(gbdt) => gbdt.predict_margin(matrix, threads),
            Learner::Logistic(logistic) => logistic.predict_margin(matrix),
        }
    }
}

/// `p = σ(a · margin + b)`, fitted on held-out rows (Platt scaling): boosted
/// trees and class weights skew raw probabilities; this puts them back on
/// the scale of observed rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub a: f64,
    pub b: f64,
}

impl Default for Calibration {
    fn default() -> Self {
        Self { a: 1.0, b: 0.0 }
    }
}

impl Calibration {
    pub fn apply(&self, margin: f64) -> f64 {
        sigmoid(self.a * margin + self.b)
    }

    /// Newton's method on the log loss of (a, b), halving steps that do not lower it.
    pub fn fit(margins: &[f64], labels: &[bool]) -> Self {
        let loss = |a: f64, b: f64| -> f64 {
            margins
                .iter()
                .zip(labels)
                .map(|(m, y)| {
                    let z = a * m + b;
                    let z = if *y { -z } else { z };
                    z.max(0.0) + (-z.abs()).exp().ln_1p()
                })
                .sum()
        };
        let (mut a, mut b) = (1.0, 0.0);
        let mut current = loss(a, b);
        for _ in 0..100 {
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
            for (m, y) in margins.iter().zip(labels) {
                let p = sigmoid(a * m + b);
                let r = p - f64::from(u8::from(*y));
                let w = p * (1.0 - p);
                ga += r * m;
                gb += r;
                haa += w * m * m;
                hab += w * m;
                hbb += w;
            }
            let det = haa * hbb - hab * hab;
            if det.abs() < 1e-18 {
                break;
            }
            let da = (hbb * ga - hab * gb) / det;
            let db = (haa * gb - hab * ga) / det;
            let mut step = 1.0;
            while step > 1e-6 {
                let next = loss(a - step * da, b - step * db);
                if next <= current {
                    a -= step * da;
                    b -= step * db;
                    current = next;
                    break;
                }
                step /= 2.0;
            }
            if step <= 1e-6 || (da.abs() < 1e-9 && db.abs() < 1e-9) {
                break;
            }
        }
        if a.is_finite() && b.is_finite() {
            Self { a, b }
        } else {
            Self::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub schema: FeatureSchema,
    #[serde(flatten)]
    pub learner: Learner,
    pub calibration: Calibration,
}

impl Model {
    /// Calibrated probabilities of the matrix's rows.
    pub fn probabilities(&self, matrix: &Matrix, threads: usize) -> Vec<f64> {
        let mut out = self.learner.margins(matrix, threads);
        for m in out.iter_mut() {
            *m = self.calibration.apply(*m);
        }
        out
    }

    /// Each feature's share of the model's importance (split gain for trees,
    /// |weight| on standardised inputs for the linear model), largest first.
    pub fn importance(&self) -> Vec<(String, f64)> {
        let raw = match &self.learner {
            Learner::Gbdt(gbdt) => gbdt.importance.clone(),
            Learner::Logistic(logistic) => logistic.importance(),
        };
        let total: f64 = raw.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let mut out: Vec<(String, f64)> = self
            .schema
            .names()
            .zip(raw)
            .map(|(name, v)| (name.to_owned(), v / total))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_recovers_a_known_scaling() {
        // outcomes drawn so that the true probability is σ(0.5 · m − 1)
        let mut margins = Vec::new();
        let mut labels = Vec::new();
        for step in 0..200 {
            let m = f64::from(step) / 20.0 - 5.0;
            let p = sigmoid(0.5 * m - 1.0);
            let positives = (p * 1000.0).round() as usize;
            for k in 0..1000 {
                margins.push(m);
                labels.push(k < positives);
            }
        }
        let c = Calibration::fit(&margins, &labels);
        assert!(
            (c.a - 0.5).abs() < 0.01 && (c.b + 1.0).abs() < 0.01,
            "{c:?}"
        );
    }
}
