//! The model card: what a model was trained on and how well it does, as
//! JSON for machines and markdown for people.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::metrics::Evaluation;
use crate::train::{Fitted, Tried};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rows {
    pub rows: usize,
    pub positives: usize,
}

impl Rows {
    pub fn of(labels: &[bool]) -> Self {
        Self {
            rows: labels.len(),
            positives: labels.iter().filter(|y| **y).count(),
        }
    }

    pub fn rate(&self) -> f64 {
        self.positives as f64 / self.rows.max(1) as f64
    }
}

/// One predicted outcome of the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetCard {
    pub target: String,
    pub learner: String,
    pub params: serde_json::Value,
    pub calibration: crate::model::Calibration,
    pub train: Rows,
    pub valid: Rows,
    pub test: Option<Rows>,
    pub tried: Vec<Tried>,
    pub importance: Vec<(String, f64)>,
    pub validation: Evaluation,
    pub test_evaluation: Option<Evaluation>,
}

impl TargetCard {
    pub fn new(
        target: &str,
        fitted: &Fitted,
        train_labels: &[bool],
        valid_labels: &[bool],
        test: Option<(&[bool], Evaluation)>,
    ) -> Self {
        let chosen = &fitted.tried[fitted.chosen];
        Self {
            target: target.to_owned(),
            learner: chosen.learner.clone(),
            params: chosen.params.clone(),
            calibration: fitted.model.calibration,
            train: Rows::of(train_labels),
            valid: Rows::of(valid_labels),
            test: test.as_ref().map(|(labels, _)| Rows::of(labels)),
            tried: fitted.tried.clone(),
            importance: fitted.model.importance(),
            validation: fitted.valid.clone(),
            test_evaluation: test.map(|(_, evaluation)| evaluation),
        }
    }

    /// The evaluation that was not used to choose or calibrate the model when there is one.
    pub fn held_out(&self) -> &Evaluation {
        self.test_evaluation.as_ref().unwrap_or(&self.validation)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    pub name: String,
    pub version: Option<u32>,
    pub created_at: String,
    /// Where the rows came from: a file, or the lake's window, cut-offs and table versions.
    pub data: serde_json::Value,
    pub features: Vec<String>,
    pub targets: Vec<TargetCard>,
}

impl Card {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let version = self.version.map(|v| format!(" v{v}")).unwrap_or_default();
        let _ = writeln!(out, "# Model card: {}{version}\n", self.name);
        let _ = writeln!(out, "Created {}.\n", self.created_at);
        let _ = writeln!(out, "## Data\n");
        if let Some(map) = self.data.as_object() {
            for (key, value) in map {
                let value = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let _ = writeln!(out, "- {key}: {value}");
            }
        }
        let _ = writeln!(
            out,
            "- features ({}): {}\n",
            self.features.len(),
            self.features.join(", ")
        );
        for target in &self.targets {
            let _ = writeln!(out, "## {}\n", target.target);
            let _ = writeln!(
                out,
                "Learner: **{}** {}\n",
                target.learner,
                compact(&target.params)
            );
            let _ = writeln!(
                out,
                "| split | rows | positives | rate |\n|---|---:|---:|---:|"
            );
            let splits = [
                ("train", Some(&target.train)),
                ("validation", Some(&target.valid)),
            ];
            for (name, rows) in splits.into_iter().chain([("test", target.test.as_ref())]) {
                if let Some(rows) = rows {
                    let _ = writeln!(
                        out,
                        "| {name} | {} | {} | {:.4} |",
                        rows.rows,
                        rows.positives,
                        rows.rate()
                    );
                }
            }
            let e = target.held_out();
            let which = if target.test_evaluation.is_some() {
                "test"
            } else {
                "validation"
            };
            let _ = writeln!(out, "\n### Metrics ({which} rows)\n");
            let _ = writeln!(out, "| metric | value |\n|---|---:|");
            let auc = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.4}"));
            let _ = writeln!(out, "| ROC AUC | {} |", auc(e.roc_auc));
            let _ = writeln!(out, "| PR AUC | {} |", auc(e.pr_auc));
            let _ = writeln!(out, "| log loss | {:.4} |", e.log_loss);
            let _ = writeln!(out, "| Brier score | {:.4} |", e.brier);
            let t = &e.best_f2;
            let _ = writeln!(
                out,
                "| best F2 (threshold {:.3}) | {:.4} (precision {:.3}, recall {:.3}) |",
                t.threshold, t.f2, t.precision, t.recall
            );
            let h = &e.at_high;
            let _ = writeln!(
                out,
                "| at 0.66 (High) | precision {:.3}, recall {:.3}, F2 {:.3} |",
                h.precision, h.recall, h.f2
            );
            let _ = writeln!(
                out,
                "| Low / Medium / High | {} / {} / {} |",
                e.labels[0], e.labels[1], e.labels[2]
            );
            let _ = writeln!(out, "\n### Lift and gain by decile\n");
            let _ = writeln!(
                out,
                "| decile | rows | positives | rate | lift | cumulative gain |\n|---:|---:|---:|---:|---:|---:|"
            );
            for d in &e.deciles {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.4} | {:.2} | {:.3} |",
                    d.decile, d.rows, d.positives, d.conversion_rate, d.lift, d.cumulative_gain
                );
            }
            let _ = writeln!(out, "\n### Calibration\n");
            let _ = writeln!(
                out,
                "| predicted | rows | mean predicted | observed |\n|---|---:|---:|---:|"
            );
            for b in &e.reliability {
                let _ = writeln!(
                    out,
                    "| {:.1}–{:.1} | {} | {:.4} | {:.4} |",
                    b.from, b.to, b.rows, b.mean_predicted, b.observed_rate
                );
            }
            let _ = writeln!(out, "\n### Feature importance\n");
            for (name, share) in target.importance.iter().take(15) {
                let _ = writeln!(out, "- {name}: {:.1}%", share * 100.0);
            }
            let _ = writeln!(out, "\n### Settings tried\n");
            let _ = writeln!(
                out,
                "| learner | settings | validation AUC | log loss | seconds |\n|---|---|---:|---:|---:|"
            );
            for t in &target.tried {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.4} | {:.2} |",
                    t.learner,
                    compact(&t.params),
                    auc(t.valid_auc),
                    t.valid_log_loss,
                    t.seconds
                );
            }
            out.push('\n');
        }
        out
    }
}

/// Settings (those that differ from the learner's defaults) on one line.
fn compact(params: &serde_json::Value) -> String {
    params
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}
