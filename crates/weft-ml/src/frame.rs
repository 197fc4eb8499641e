//! Tabular data as the trainers see it: named numeric and categorical
//! columns, an optional id column and an optional 0/1 label.

use std::collections::HashMap;
use std::path::Path;

use crate::{MlError, Result};

/// A categorical value that is missing.
pub const MISSING_CODE: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Numbers; NaN is missing.
    Numeric(Vec<f64>),
    /// Codes into `levels`; [`MISSING_CODE`] is missing.
    Categorical {
        levels: Vec<String>,
        codes: Vec<u32>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Values,
}

impl Column {
    pub fn numeric(name: impl Into<String>, values: Vec<f64>) -> Self {
        Self {
            name: name.into(),
            values: Values::Numeric(values),
        }
    }

    /// A categorical column from its values (`None` missing), levels in order of first sight.
    pub fn categorical<S: AsRef<str>>(name: impl Into<String>, values: &[Option<S>]) -> Self {
        let mut index: HashMap<&str, u32> = HashMap::new();
        let mut levels = Vec::new();
        let codes = values
            .iter()
            .map(|value| match value {
                None => MISSING_CODE,
                Some(value) => *index.entry(value.as_ref()).or_insert_with(|| {
                    levels.push(value.as_ref().to_owned());
                    levels.len() as u32 - 1
                }),
            })
            .collect();
        Self {
            name: name.into(),
            values: Values::Categorical { levels, codes },
        }
    }

    pub fn len(&self) -> usize {
        match &self.values {
            Values::Numeric(values) => values.len(),
            Values::Categorical { codes, .. } => codes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A row's value as a CSV would hold it; `None` when missing.
    pub fn text(&self, row: usize) -> Option<String> {
        match &self.values {
            Values::Numeric(v) => (!v[row].is_nan()).then(|| v[row].to_string()),
            Values::Categorical { levels, codes } => {
                (codes[row] != MISSING_CODE).then(|| levels[codes[row] as usize].clone())
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    pub ids: Option<Vec<String>>,
    pub columns: Vec<Column>,
    pub label: Option<Vec<bool>>,
}

/// Which columns of a CSV file are what.
#[derive(Debug, Clone, Default)]
pub struct CsvRoles {
    pub label: Option<String>,
    pub id: Option<String>,
    pub exclude: Vec<String>,
}

impl Frame {
    pub fn rows(&self) -> usize {
        self.columns
            .first()
            .map(Column::len)
            .or_else(|| self.label.as_ref().map(Vec::len))
            .or_else(|| self.ids.as_ref().map(Vec::len))
            .unwrap_or(0)
    }

    pub fn positives(&self) -> usize {
        self.label
            .as_ref()
            .map_or(0, |label| label.iter().filter(|y| **y).count())
    }

    /// The rows at `indices`, in that order.
    pub fn take(&self, indices: &[usize]) -> Frame {
        let columns = self
            .columns
            .iter()
            .map(|column| Column {
                name: column.name.clone(),
                values: match &column.values {
                    Values::Numeric(values) => {
                        Values::Numeric(indices.iter().map(|&i| values[i]).collect())
                    }
                    Values::Categorical { levels, codes } => Values::Categorical {
                        levels: levels.clone(),
                        codes: indices.iter().map(|&i| codes[i]).collect(),
                    },
                },
            })
            .collect();
        Frame {
            ids: self
                .ids
                .as_ref()
                .map(|ids| indices.iter().map(|&i| ids[i].clone()).collect()),
            columns,
            label: self
                .label
                .as_ref()
                .map(|label| indices.iter().map(|&i| label[i]).collect()),
        }
    }

    /// The rows of several frames with the same columns, one after another
    /// (categorical levels merged; a column numeric in one and text in
    /// another becomes text).
    pub fn concat(frames: &[Frame]) -> Result<Frame> {
        let Some(first) = frames.first() else {
            return Ok(Frame::default());
        };
        let names: Vec<&str> = first.columns.iter().map(|c| c.name.as_str()).collect();
        for frame in frames {
            let theirs: Vec<&str> = frame.columns.iter().map(|c| c.name.as_str()).collect();
            if theirs != names {
                return Err(MlError::Input(format!(
                    "frames with different columns cannot be stacked: {names:?} and {theirs:?}"
                )));
            }
        }
        let columns = (0..names.len())
            .map(|j| {
                let all_numeric = frames
                    .iter()
                    .all(|f| matches!(f.columns[j].values, Values::Numeric(_)));
                if all_numeric {
                    let values = frames
                        .iter()
                        .flat_map(|f| match &f.columns[j].values {
                            Values::Numeric(v) => v.clone(),
                            Values::Categorical { .. } => unreachable!("checked numeric"),
                        })
                        .collect();
                    Column::numeric(names[j], values)
                } else {
                    let values: Vec<Option<String>> = frames
                        .iter()
                        .flat_map(|f| (0..f.rows()).map(|row| f.columns[j].text(row)))
                        .collect();
                    Column::categorical(names[j], &values)
                }
            })
            .collect();
        let ids = frames
            .iter()
            .map(|f| f.ids.clone())
            .collect::<Option<Vec<_>>>()
            .map(|parts| parts.concat());
        let label = frames
            .iter()
            .map(|f| f.label.clone())
            .collect::<Option<Vec<_>>>()
            .map(|parts| parts.concat());
        Ok(Frame {
            ids,
            columns,
            label,
        })
    }

    /// Reads a CSV file with a header. A column whose every non-empty value
    /// is a number (or true/false) is numeric, any other is categorical;
    /// empty cells are missing. The label must be 0/1, true/false or yes/no.
    pub fn read_csv(path: &Path, roles: &CsvRoles) -> Result<Frame> {
        let file = std::fs::File::open(path)
            .map_err(|e| MlError::Input(format!("cannot open {}: {e}", path.display())))?;
        Self::from_csv_reader(file, roles)
            .map_err(|e| MlError::Input(format!("{}: {e}", path.display())))
    }

    pub fn from_csv_reader(reader: impl std::io::Read, roles: &CsvRoles) -> Result<Frame, String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(reader);
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| format!("cannot read the header: {e}"))?
            .iter()
            .map(|h| h.trim().to_owned())
            .collect();
        let find = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| format!("no column {name:?} (columns: {})", header.join(", ")))
        };
        let label_at = roles.label.as_deref().map(find).transpose()?;
        let id_at = roles.id.as_deref().map(find).transpose()?;
        for name in &roles.exclude {
            find(name)?;
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(duplicate) = header.iter().find(|h| !seen.insert(h.as_str())) {
            return Err(format!("the column {duplicate:?} appears twice"));
        }
        let mut cells: Vec<Vec<String>> = vec![Vec::new(); header.len()];
        for (line, record) in reader.records().enumerate() {
            let record = record.map_err(|e| format!("row {}: {e}", line + 2))?;
            if record.len() != header.len() {
                return Err(format!(
                    "row {} has {} fields, the header {}",
                    line + 2,
                    record.len(),
                    header.len()
                ));
            }
            for (column, value) in cells.iter_mut().zip(record.iter()) {
                column.push(value.trim().to_owned());
            }
        }
        let label = label_at
            .map(|at| {
                cells[at]
                    .iter()
                    .enumerate()
                    .map(|(row, value)| {
                        parse_label(value).ok_or_else(|| {
                            format!(
                                "row {}: the label {:?} is {value:?}, not 0/1, true/false or yes/no",
                                row + 2,
                                header[at]
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let ids = id_at.map(|at| std::mem::take(&mut cells[at]));
        let columns = header
            .iter()
            .zip(cells)
            .enumerate()
            .filter(|(i, (name, _))| {
                Some(*i) != label_at && Some(*i) != id_at && !roles.exclude.contains(name)
            })
            .map(|(_, (name, values))| infer(name, values))
            .collect();
        Ok(Frame {
            ids,
            columns,
            label,
        })
    }
}

fn parse_label(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "1.0" | "true" | "yes" | "t" | "y" => Some(true),
        "0" | "0.0" | "false" | "no" | "f" | "n" => Some(false),
        _ => None,
    }
}

fn parse_number(value: &str) -> Option<f64> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Some(1.0),
        "false" => Some(0.0),
        _ => value.parse::<f64>().ok().filter(|v| v.is_finite()),
    }
}

fn infer(name: &str, values: Vec<String>) -> Column {
    let numeric = values
        .iter()
        .all(|value| value.is_empty() || parse_number(value).is_some());
    if numeric {
        Column::numeric(
            name,
            values
                .iter()
                .map(|value| parse_number(value).unwrap_or(f64::NAN))
                .collect(),
        )
    } else {
        let values: Vec<Option<&str>> = values
            .iter()
            .map(|value| (!value.is_empty()).then_some(value.as_str()))
            .collect();
        Column::categorical(name, &values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(label: &str) -> CsvRoles {
        CsvRoles {
            label: Some(label.into()),
            id: Some("id".into()),
            exclude: vec!["note".into()],
        }
    }

    #[test]
    fn types_are_inferred_and_roles_taken_out() {
        let csv =
            "id,age,country,flag,note,y\na,31,GB,true,x,1\nb,,FR,false,y,0\nc,4.5,,true,z,yes\n";
        let frame = Frame::from_csv_reader(csv.as_bytes(), &roles("y")).unwrap();
        assert_eq!(frame.ids.as_deref().unwrap(), ["a", "b", "c"]);
        assert_eq!(frame.label.as_deref().unwrap(), [true, false, true]);
        let names: Vec<_> = frame.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["age", "country", "flag"]);
        let Values::Numeric(age) = &frame.columns[0].values else {
            panic!("age is numeric")
        };
        assert_eq!(age[0], 31.0);
        assert!(age[1].is_nan());
        assert_eq!(
            frame.columns[1].values,
            Values::Categorical {
                levels: vec!["GB".into(), "FR".into()],
                codes: vec![0, 1, MISSING_CODE]
            }
        );
        assert_eq!(
            frame.columns[2].values,
            Values::Numeric(vec![1.0, 0.0, 1.0])
        );
    }

    #[test]
    fn frames_stack_with_their_levels_merged() {
        let a = Frame {
            ids: Some(vec!["a".into()]),
            columns: vec![
                Column::numeric("x", vec![1.0]),
                Column::categorical("c", &[Some("red")]),
            ],
            label: Some(vec![true]),
        };
        let b = Frame {
            ids: Some(vec!["b".into(), "c".into()]),
            columns: vec![
                Column::numeric("x", vec![2.0, 3.0]),
                Column::categorical("c", &[Some("blue"), Some("red")]),
            ],
            label: Some(vec![false, true]),
        };
        let both = Frame::concat(&[a, b.clone()]).unwrap();
        assert_eq!(both.rows(), 3);
        assert_eq!(both.label.as_deref().unwrap(), [true, false, true]);
        assert_eq!(
            both.columns[1].values,
            Values::Categorical {
                levels: vec!["red".into(), "blue".into()],
                codes: vec![0, 1, 0]
            }
        );
        let other = Frame {
            columns: vec![Column::numeric("y", vec![1.0])],
            ..Frame::default()
        };
        assert!(Frame::concat(&[b, other]).is_err());
    }

    #[test]
    fn bad_files_say_where() {
        let roles = |label: &str| CsvRoles {
            label: Some(label.into()),
            ..CsvRoles::default()
        };
        let error = Frame::from_csv_reader("id,y\na,maybe\n".as_bytes(), &roles("y"))
            .map(|_| ())
            .unwrap_err();
        assert!(
            error.contains("row 2") && error.contains("maybe"),
            "{error}"
        );
        let error = Frame::from_csv_reader("id,x\na,1\n".as_bytes(), &roles("y"))
            .map(|_| ())
            .unwrap_err();
        assert!(error.contains("no column \"y\""), "{error}");
        let error = Frame::from_csv_reader("id,y,z\na,1\n".as_bytes(), &roles("y"))
            .map(|_| ())
            .unwrap_err();
        assert!(error.contains("2 fields"), "{error}");
        let error = Frame::from_csv_reader("id,y,y\n".as_bytes(), &roles("y"))
            .map(|_| ())
            .unwrap_err();
        assert!(error.contains("twice"), "{error}");
    }
}
