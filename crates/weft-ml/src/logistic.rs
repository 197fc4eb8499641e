//! L2-regularised logistic regression, the linear baseline.
//!
//! Numbers are standardised (a missing value is the mean, with an indicator
//! when training saw any), categorical levels one-hot (the most frequent
//! ones; the rest share none), and the weights minimise
//! `½‖w‖² + C · Σ log loss` by L-BFGS, as scikit-learn's LogisticRegression
//! does, so its `C` means the same here.

use serde::{Deserialize, Serialize};

use crate::gbdt::sigmoid;
use crate::schema::{FeatureKind, FeatureSchema, Matrix};

/// Most one-hot columns per categorical feature.
const MAX_LEVELS: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogisticParams {
    pub c: f64,
    pub max_iterations: usize,
    /// Stop when the gradient's largest component is below this.
    pub tolerance: f64,
    pub pos_weight: f64,
}

impl Default for LogisticParams {
    fn default() -> Self {
        Self {
            c: 1.0,
            max_iterations: 200,
            tolerance: 1e-5,
            pos_weight: 1.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Encoder {
    Numeric {
        /// Counts, durations and amounts (never negative in training) are
        /// taken as ln(1 + x): their long tails otherwise swamp a linear model.
        #[serde(default)]
        log: bool,
        mean: f64,
        scale: f64,
        missing_indicator: bool,
    },
    OneHot {
        levels: Vec<u32>,
    },
}

impl Encoder {
    fn width(&self) -> usize {
        match self {
            Encoder::Numeric {
                missing_indicator, ..
            } => 1 + usize::from(*missing_indicator),
            Encoder::OneHot { levels } => levels.len(),
        }
    }

    fn encode(&self, value: f32, out: &mut [f64]) {
        match self {
            Encoder::Numeric {
                log,
                mean,
                scale,
                missing_indicator,
            } => {
                if value.is_nan() {
                    out[0] = 0.0;
                    if *missing_indicator {
                        out[1] = 1.0;
                    }
                } else {
                    let v = f64::from(value);
                    let v = if *log { v.max(0.0).ln_1p() } else { v };
                    out[0] = (v - mean) / scale;
                    if *missing_indicator {
                        out[1] = 0.0;
                    }
                }
            }
            Encoder::OneHot { levels } => {
                out.fill(0.0);
                if !value.is_nan()
                    && let Some(i) = levels.iter().position(|l| *l == value as u32)
                {
                    out[i] = 1.0;
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    pub encoders: Vec<Encoder>,
    pub weights: Vec<f64>,
    pub bias: f64,
    pub iterations: usize,
}

impl Logistic {
    fn width(&self) -> usize {
        self.encoders.iter().map(Encoder::width).sum()
    }

    fn design(encoders: &[Encoder], matrix: &Matrix) -> (Vec<f64>, usize) {
        let width: usize = encoders.iter().map(Encoder::width).sum();
        let mut x = vec![0.0; matrix.rows * width];
        for i in 0..matrix.rows {
            let row = matrix.row(i);
            let mut at = i * width;
            for (j, encoder) in encoders.iter().enumerate() {
                let w = encoder.width();
                encoder.encode(row[j], &mut x[at..at + w]);
                at += w;
            }
        }
        (x, width)
    }

    pub fn predict_margin(&self, matrix: &Matrix) -> Vec<f64> {
        let width = self.width();
        let mut encoded = vec![0.0; width];
        (0..matrix.rows)
            .map(|i| {
                let row = matrix.row(i);
                let mut at = 0;
                for (j, encoder) in self.encoders.iter().enumerate() {
                    let w = encoder.width();
                    encoder.encode(row[j], &mut encoded[at..at + w]);
                    at += w;
                }
                self.bias + dot(&self.weights, &encoded)
            })
            .collect()
    }

    /// Importance of each feature: the summed |weight| of its columns (inputs are standardised).
    pub fn importance(&self) -> Vec<f64> {
        let mut at = 0;
        self.encoders
            .iter()
            .map(|encoder| {
                let w = encoder.width();
                let sum = self.weights[at..at + w].iter().map(|v| v.abs()).sum();
                at += w;
                sum
            })
            .collect()
    }
}

fn encoders(schema: &FeatureSchema, matrix: &Matrix) -> Vec<Encoder> {
    schema
        .features
        .iter()
        .enumerate()
        .map(|(j, feature)| {
            let column = (0..matrix.rows).map(|i| matrix.get(i, j));
            match &feature.kind {
                FeatureKind::Numeric => {
                    let values: Vec<f32> = column.collect();
                    let present = || values.iter().filter(|v| !v.is_nan());
                    let log = present().all(|v| *v >= 0.0) && present().any(|v| *v > 1.0);
                    let (mut n, mut sum, mut sq) = (0.0, 0.0, 0.0);
                    let missing = values.iter().any(|v| v.is_nan());
                    for v in present() {
                        let v = f64::from(*v);
                        let v = if log { v.ln_1p() } else { v };
                        n += 1.0;
                        sum += v;
                        sq += v * v;
                    }
                    let mean = if n > 0.0 { sum / n } else { 0.0 };
                    let var = if n > 0.0 { sq / n - mean * mean } else { 0.0 };
                    Encoder::Numeric {
                        log,
                        mean,
                        scale: if var > 1e-12 { var.sqrt() } else { 1.0 },
                        missing_indicator: missing,
                    }
                }
                FeatureKind::Categorical { levels } => {
                    let mut counts = vec![0usize; levels.len()];
                    for v in column.filter(|v| !v.is_nan()) {
                        counts[v as usize] += 1;
                    }
                    let mut seen: Vec<u32> = (0..levels.len() as u32)
                        .filter(|l| counts[*l as usize] > 0)
                        .collect();
                    seen.sort_by_key(|l| (std::cmp::Reverse(counts[*l as usize]), *l));
                    seen.truncate(MAX_LEVELS);
                    Encoder::OneHot { levels: seen }
                }
            }
        })
        .collect()
}

pub fn train(
    schema: &FeatureSchema,
    matrix: &Matrix,
    labels: &[bool],
    params: &LogisticParams,
) -> Logistic {
    let encoders = encoders(schema, matrix);
    let (x, width) = Logistic::design(&encoders, matrix);
    let n = matrix.rows;
    let y: Vec<f64> = labels.iter().map(|y| f64::from(u8::from(*y))).collect();
    let sample_weight: Vec<f64> = labels
        .iter()
        .map(|y| if *y { params.pos_weight } else { 1.0 })
        .collect();
    let c = params.c;
    // parameters: the weights, then the bias (not penalised)
    let objective = |theta: &[f64], grad: &mut [f64]| -> f64 {
        let (w, b) = (&theta[..width], theta[width]);
        grad.fill(0.0);
        let mut loss = 0.0;
        for i in 0..n {
            let row = &x[i * width..(i + 1) * width];
            let m = b + dot(w, row);
            let z = if y[i] > 0.5 { -m } else { m };
            loss += sample_weight[i] * (z.max(0.0) + (-z.abs()).exp().ln_1p());
            let residual = sample_weight[i] * (sigmoid(m) - y[i]);
            for (g, v) in grad[..width].iter_mut().zip(row) {
                *g += residual * v;
            }
            grad[width] += residual;
        }
        for g in grad.iter_mut() {
            *g *= c;
        }
        let mut penalty = 0.0;
        for (g, w) in grad[..width].iter_mut().zip(w) {
            *g += w;
            penalty += w * w;
        }
        0.5 * penalty + c * loss
    };
    let (theta, iterations) = lbfgs(
        objective,
        vec![0.0; width + 1],
        params.max_iterations,
        params.tolerance * c * n as f64,
    );
    Logistic {
        encoders,
        weights: theta[..width].to_vec(),
        bias: theta[width],
        iterations,
    }
}

/// Limited-memory BFGS with a backtracking (Armijo) line search; returns the
/// point and the iterations taken.
fn lbfgs(
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
    mut x: Vec<f64>,
    max_iterations: usize,
    tolerance: f64,
) -> (Vec<f64>, usize) {
    const MEMORY: usize = 10;
    let d = x.len();
    let mut grad = vec![0.0; d];
    let mut value = f(&x, &mut grad);
    let mut history: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = Default::default();
    let mut next_grad = vec![0.0; d];
    for iteration in 0..max_iterations {
        if grad.iter().fold(0.0f64, |m, g| m.max(g.abs())) < tolerance {
            return (x, iteration);
        }
        // two-loop recursion: direction = −H·grad
        let mut q = grad.clone();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, y, rho) in history.iter().rev() {
            let alpha = rho * dot(s, &q);
            for (qi, yi) in q.iter_mut().zip(y) {
                *qi -= alpha * yi;
            }
            alphas.push(alpha);
        }
        let gamma = history
            .back()
            .map_or(1.0 / (1.0 + dot(&grad, &grad).sqrt()), |(s, y, _)| {
                dot(s, y) / dot(y, y)
            });
        for qi in q.iter_mut() {
            *qi *= gamma;
        }
        for ((s, y, rho), alpha) in history.iter().zip(alphas.iter().rev()) {
            let beta = rho * dot(y, &q);
            for (qi, si) in q.iter_mut().zip(s) {
                *qi += (alpha - beta) * si;
            }
        }
        let direction: Vec<f64> = q.iter().map(|v| -v).collect();
        let slope = dot(&grad, &direction);
        if slope >= 0.0 {
            history.clear();
            continue;
        }
        let mut step = 1.0;
        let mut candidate = vec![0.0; d];
        let mut candidate_value;
        loop {
            for ((c, xi), di) in candidate.iter_mut().zip(&x).zip(&direction) {
                *c = xi + step * di;
            }
            candidate_value = f(&candidate, &mut next_grad);
            if candidate_value <= value + 1e-4 * step * slope || step < 1e-10 {
                break;
            }
            step *= 0.5;
        }
        let s: Vec<f64> = candidate.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = next_grad.iter().zip(&grad).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 {
            if history.len() == MEMORY {
                history.pop_front();
            }
            history.push_back((s, y, 1.0 / sy));
        }
        let improvement = value - candidate_value;
        x = candidate;
        value = candidate_value;
        std::mem::swap(&mut grad, &mut next_grad);
        if improvement.abs() <= 1e-12 * value.abs().max(1.0) {
            return (x, iteration + 1);
        }
    }
    (x, max_iterations)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Column, Frame};

    #[test]
    fn weights_match_the_known_optimum() {
        // one standardised feature, no penalty to speak of: the fit must
        // recover the logit that generated perfectly balanced counts
        let mut x = Vec::new();
        let mut y = Vec::new();
        for (value, positives, total) in [(-1.0, 27, 100), (1.0, 73, 100)] {
            for k in 0..total {
                x.push(value);
                y.push(k < positives);
            }
        }
        let frame = Frame {
            columns: vec![Column::numeric("x", x)],
            label: Some(y.clone()),
            ids: None,
        };
        let schema = FeatureSchema::of(&frame);
        let matrix = schema.matrix(&frame).unwrap();
        let params = LogisticParams {
            c: 1e6,
            ..LogisticParams::default()
        };
        let model = train(&schema, &matrix, &y, &params);
        // p(−1) = 0.27, p(1) = 0.73: bias 0, weight logit(0.73)
        let expected = (0.73f64 / 0.27).ln();
        assert!(model.bias.abs() < 1e-3, "{}", model.bias);
        assert!(
            (model.weights[0] - expected).abs() < 1e-3,
            "{:?}",
            model.weights
        );
        let margins = model.predict_margin(&matrix);
        assert!((sigmoid(margins[0]) - 0.27).abs() < 1e-3);
    }

    #[test]
    fn a_stronger_penalty_shrinks_the_weights_and_levels_are_one_hot() {
        let n = 400;
        let colour: Vec<Option<&str>> = (0..n)
            .map(|i| Some(if i % 2 == 0 { "red" } else { "blue" }))
            .collect();
        let y: Vec<bool> = (0..n).map(|i| i % 2 == 0 && i % 3 != 0).collect();
        let frame = Frame {
            columns: vec![Column::categorical("colour", &colour)],
            label: Some(y.clone()),
            ids: None,
        };
        let schema = FeatureSchema::of(&frame);
        let matrix = schema.matrix(&frame).unwrap();
        let loose = train(&schema, &matrix, &y, &LogisticParams::default());
        let tight = train(
            &schema,
            &matrix,
            &y,
            &LogisticParams {
                c: 0.001,
                ..LogisticParams::default()
            },
        );
        assert_eq!(loose.weights.len(), 2);
        let spread = |m: &Logistic| (m.weights[0] - m.weights[1]).abs();
        assert!(spread(&tight) < spread(&loose) / 2.0);
        let margins = loose.predict_margin(&matrix);
        assert!(margins[0] > 0.0 && margins[1] < 0.0);
    }
}
