//! The features a model was trained on, and the dense matrix it scores.
//!
//! A model keeps its feature schema (names, kinds and the categorical levels
//! it knows), so any frame with those columns, in any order and with levels
//! it has never seen, becomes the same matrix at scoring time.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::frame::{Frame, MISSING_CODE, Values};
use crate::{MlError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureKind {
    Numeric,
    Categorical { levels: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    #[serde(flatten)]
    pub kind: FeatureKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSchema {
    pub features: Vec<Feature>,
}

/// Rows × features, row-major; a categorical cell holds its level's index
/// in the schema as a number; NaN is missing.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    pub fn row(&self, row: usize) -> &[f32] {
        &self.data[row * self.cols..(row + 1) * self.cols]
    }

    pub fn get(&self, row: usize, col: usize) -> f32 {
        self.data[row * self.cols + col]
    }
}

impl FeatureSchema {
    /// The schema of a training frame: every column, with the levels it holds.
    pub fn of(frame: &Frame) -> Self {
        let features = frame
            .columns
            .iter()
            .map(|column| Feature {
                name: column.name.clone(),
                kind: match &column.values {
                    Values::Numeric(_) => FeatureKind::Numeric,
                    Values::Categorical { levels, .. } => FeatureKind::Categorical {
                        levels: levels.clone(),
                    },
                },
            })
            .collect();
        Self { features }
    }

    pub fn len(&self) -> usize {
        self.features.len()
    }

    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.features.iter().map(|f| f.name.as_str())
    }

    /// The frame's columns as this schema's matrix. Every feature must be
    /// there with its kind (a numeric column may stand for a categorical one
    /// whose levels are numbers); levels the schema does not know are missing.
    pub fn matrix(&self, frame: &Frame) -> Result<Matrix> {
        let rows = frame.rows();
        let cols = self.features.len();
        let mut data = vec![f32::NAN; rows * cols];
        for (j, feature) in self.features.iter().enumerate() {
            let column = frame
                .columns
                .iter()
                .find(|c| c.name == feature.name)
                .ok_or_else(|| {
                    MlError::Input(format!("the model needs the column {:?}", feature.name))
                })?;
            match (&feature.kind, &column.values) {
                (FeatureKind::Numeric, Values::Numeric(values)) => {
                    for (i, v) in values.iter().enumerate() {
                        data[i * cols + j] = *v as f32;
                    }
                }
                (FeatureKind::Numeric, Values::Categorical { levels, codes }) => {
                    return Err(MlError::Input(format!(
                        "the column {:?} is numeric in the model but holds text such as {:?}",
                        feature.name,
                        codes
                            .iter()
                            .find(|c| **c != MISSING_CODE)
                            .map(|c| levels[*c as usize].as_str())
                            .unwrap_or_default()
                    )));
                }
                (FeatureKind::Categorical { levels: known }, values) => {
                    let index: HashMap<&str, usize> = known
                        .iter()
                        .enumerate()
                        .map(|(i, level)| (level.as_str(), i))
                        .collect();
                    let code_of = |level: &str| index.get(level).map_or(f32::NAN, |&i| i as f32);
                    match values {
                        Values::Categorical { levels, codes } => {
                            let mapped: Vec<f32> = levels.iter().map(|l| code_of(l)).collect();
                            for (i, code) in codes.iter().enumerate() {
                                if *code != MISSING_CODE {
                                    data[i * cols + j] = mapped[*code as usize];
                                }
                            }
                        }
                        Values::Numeric(values) => {
                            for (i, v) in values.iter().enumerate() {
                                if !v.is_nan() {
                                    data[i * cols + j] = code_of(&format_number(*v));
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(Matrix { rows, cols, data })
    }
}

/// A number as a CSV would have written it, to match a level made of digits.
fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Column;

    #[test]
    fn columns_are_found_by_name_and_unknown_levels_are_missing() {
        let train = Frame {
            columns: vec![
                Column::numeric("x", vec![1.0, 2.0]),
                Column::categorical("c", &[Some("a"), Some("b")]),
            ],
            ..Frame::default()
        };
        let schema = FeatureSchema::of(&train);
        let other = Frame {
            columns: vec![
                Column::categorical("c", &[Some("b"), Some("zzz"), None]),
                Column::numeric("x", vec![5.0, f64::NAN, 7.0]),
            ],
            ..Frame::default()
        };
        let m = schema.matrix(&other).unwrap();
        assert_eq!(m.row(0), [5.0, 1.0]);
        assert!(m.get(1, 0).is_nan() && m.get(1, 1).is_nan() && m.get(2, 1).is_nan());
        let missing = Frame {
            columns: vec![Column::numeric("x", vec![1.0])],
            ..Frame::default()
        };
        let error = schema.matrix(&missing).unwrap_err().to_string();
        assert!(error.contains("\"c\""), "{error}");
    }
}
