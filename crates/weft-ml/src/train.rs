//! Choosing a model: boosted trees and the logistic baseline, each over a
//! few settings within a time budget, kept by validation ROC AUC (the
//! simpler model on a tie), then calibrated on the validation rows.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bins::Binner;
use crate::frame::Frame;
use crate::gbdt::{self, GbdtParams};
use crate::logistic::{self, LogisticParams};
use crate::metrics::{self, Evaluation};
use crate::model::{Calibration, Learner, Model};
use crate::schema::FeatureSchema;
use crate::{MlError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Learners {
    #[default]
    Both,
    Gbdt,
    Logistic,
}

impl std::str::FromStr for Learners {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "both" => Ok(Self::Both),
            "gbdt" => Ok(Self::Gbdt),
            "logistic" => Ok(Self::Logistic),
            other => Err(format!("{other:?} is not a learner (both, gbdt, logistic)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub learners: Learners,
    /// Settings beyond each learner's first are tried only while time remains.
    pub time_budget: Duration,
    pub seed: u64,
    pub threads: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            learners: Learners::Both,
            time_budget: Duration::from_secs(60),
            seed: 42,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// One setting tried, and how it did on the validation rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tried {
    pub learner: String,
    pub params: serde_json::Value,
    pub valid_auc: Option<f64>,
    pub valid_log_loss: f64,
    pub seconds: f64,
    /// Boosting rounds kept (trees only).
    pub rounds: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Fitted {
    pub model: Model,
    pub tried: Vec<Tried>,
    pub chosen: usize,
    /// The calibrated model on the validation rows.
    pub valid: Evaluation,
}

/// The settings tried, the first of each being the usual defaults.
pub fn gbdt_grid(seed: u64, threads: usize, imbalance: f64) -> Vec<GbdtParams> {
    let base = GbdtParams {
        seed,
        threads,
        ..GbdtParams::default()
    };
    vec![
        base.clone(),
        GbdtParams {
            learning_rate: 0.05,
            num_leaves: 15,
            min_data_in_leaf: 50,
            lambda_l2: 1.0,
            ..base.clone()
        },
        GbdtParams {
            learning_rate: 0.05,
            num_leaves: 7,
            min_data_in_leaf: 100,
            lambda_l2: 1.0,
            pos_weight: imbalance.sqrt().max(1.0),
            ..base.clone()
        },
        GbdtParams {
            learning_rate: 0.05,
            num_leaves: 63,
            min_data_in_leaf: 100,
            lambda_l2: 1.0,
            feature_fraction: 0.8,
            ..base
        },
    ]
}

pub fn logistic_grid() -> Vec<LogisticParams> {
    [1.0, 0.1, 0.01, 10.0]
        .into_iter()
        .map(|c| LogisticParams {
            c,
            ..LogisticParams::default()
        })
        .collect()
}

pub fn fit(train: &Frame, valid: &Frame, options: &TrainOptions) -> Result<Fitted> {
    let started = Instant::now();
    let train_labels = train
        .label
        .as_deref()
        .ok_or_else(|| MlError::Input("the training rows have no label".into()))?;
    let valid_labels = valid
        .label
        .as_deref()
        .ok_or_else(|| MlError::Input("the validation rows have no label".into()))?;
    let positives = train.positives();
    if positives == 0 || positives == train.rows() {
        return Err(MlError::Input(format!(
            "the training rows need both outcomes: {positives} positive of {}",
            train.rows()
        )));
    }
    if train.columns.is_empty() {
        return Err(MlError::Input("there are no feature columns".into()));
    }
    let schema = FeatureSchema::of(train);
    let train_matrix = schema.matrix(train)?;
    let valid_matrix = schema.matrix(valid)?;
    let imbalance = (train.rows() - positives) as f64 / positives as f64;

    let gbdt_grid = match options.learners {
        Learners::Logistic => Vec::new(),
        _ => gbdt_grid(options.seed, options.threads, imbalance),
    };
    let logistic_grid = match options.learners {
        Learners::Gbdt => Vec::new(),
        _ => logistic_grid(),
    };
    // bins are learned once, for every tree setting
    let binned = (!gbdt_grid.is_empty()).then(|| {
        let binner = Binner::fit(&schema, &train_matrix, 255);
        let train_binned = binner.bin(&train_matrix);
        let valid_binned = binner.bin(&valid_matrix);
        (binner, train_binned, valid_binned)
    });
    let mut tried = Vec::new();
    let mut learners: Vec<Learner> = Vec::new();
    let steps = gbdt_grid.len().max(logistic_grid.len());
    for step in 0..steps {
        if step > 0 && started.elapsed() > options.time_budget {
            break;
        }
        if let (Some(params), Some((binner, train_binned, valid_binned))) =
            (gbdt_grid.get(step), binned.as_ref())
        {
            let at = Instant::now();
            let model = gbdt::train(
                binner,
                (train_binned, train_labels),
                Some((valid_binned, valid_labels)),
                params,
            );
            let rounds = model.trees.len();
            let learner = Learner::Gbdt(model);
            let defaults = GbdtParams::default();
            tried.push(report(
                &learner,
                (params, &defaults),
                &valid_matrix,
                valid_labels,
                at,
                Some(rounds),
            ));
            learners.push(learner);
        }
        if let Some(params) = logistic_grid.get(step) {
            let at = Instant::now();
            let learner = Learner::Logistic(logistic::train(
                &schema,
                &train_matrix,
                train_labels,
                params,
            ));
            let defaults = LogisticParams::default();
            tried.push(report(
                &learner,
                (params, &defaults),
                &valid_matrix,
                valid_labels,
                at,
                None,
            ));
            learners.push(learner);
        }
    }
    // the best validation AUC; on a tie (within 0.0005) the linear model
    let auc = |t: &Tried| t.valid_auc.unwrap_or(0.5);
    let best = tried.iter().map(auc).fold(f64::MIN, f64::max);
    let chosen = tried
        .iter()
        .position(|t| t.learner == "logistic" && auc(t) >= best - 0.0005)
        .or_else(|| tried.iter().position(|t| auc(t) == best))
        .unwrap_or(0);
    let learner = learners.swap_remove(chosen);
    let margins = learner.margins(&valid_matrix, options.threads);
    let calibration = Calibration::fit(&margins, valid_labels);
    let model = Model {
        schema,
        learner,
        calibration,
    };
    let probabilities: Vec<f64> = margins.iter().map(|m| calibration.apply(*m)).collect();
    let valid = metrics::evaluate(&probabilities, valid_labels);
    Ok(Fitted {
        model,
        tried,
        chosen,
        valid,
    })
}

fn report<P: Serialize>(
    learner: &Learner,
    (params, defaults): (&P, &P),
    valid: &crate::schema::Matrix,
    labels: &[bool],
    started: Instant,
    rounds: Option<usize>,
) -> Tried {
    let seconds = started.elapsed().as_secs_f64();
    let margins = learner.margins(valid, 1);
    let probabilities: Vec<f64> = margins.iter().map(|m| crate::gbdt::sigmoid(*m)).collect();
    // the settings that differ from the learner's defaults
    let mut params = serde_json::to_value(params).unwrap_or_default();
    let defaults = serde_json::to_value(defaults).unwrap_or_default();
    if let (Some(map), Some(defaults)) = (params.as_object_mut(), defaults.as_object()) {
        map.retain(|key, value| key != "threads" && defaults.get(key) != Some(value));
    }
    Tried {
        learner: learner.name().to_owned(),
        params,
        valid_auc: metrics::roc_auc(&margins, labels),
        valid_log_loss: metrics::log_loss(&probabilities, labels),
        seconds,
        rounds,
    }
}

/// Rows split at random (seeded) into train, validation and test, each
/// outcome in the same shares, so a small positive class is in every part.
pub fn holdout_split(
    frame: &Frame,
    valid_share: f64,
    test_share: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let label = frame.label.as_deref().unwrap_or(&[]);
    let (mut train, mut valid, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for class in [true, false] {
        let mut rows: Vec<usize> = (0..frame.rows())
            .filter(|i| label.get(*i).copied().unwrap_or(false) == class)
            .collect();
        // Fisher–Yates with a seeded xorshift
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for i in (1..rows.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            rows.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let n_valid = (rows.len() as f64 * valid_share).round() as usize;
        let n_test = (rows.len() as f64 * test_share).round() as usize;
        valid.extend_from_slice(&rows[..n_valid]);
        test.extend_from_slice(&rows[n_valid..n_valid + n_test]);
        train.extend_from_slice(&rows[n_valid + n_test..]);
    }
    for part in [&mut train, &mut valid, &mut test] {
        part.sort_unstable();
    }
    (train, valid, test)
}
