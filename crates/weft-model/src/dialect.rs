//! The few places where the model SQL differs between engines, by name.
//!
//! The SQL files are standard SQL plus `@name(args)` calls of the functions
//! below; [`Dialect::expand`] writes each call in the engine's own words.

use std::fmt;

use crate::ModelError;

/// An engine the model SQL can be written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// weft's embedded engine.
    DataFusion,
    /// Spark SQL, as Databricks runs it.
    Spark,
    DuckDb,
}

impl Dialect {
    pub const ALL: [Dialect; 3] = [Dialect::DataFusion, Dialect::Spark, Dialect::DuckDb];

    pub fn name(self) -> &'static str {
        match self {
            Self::DataFusion => "datafusion",
            Self::Spark => "spark",
            Self::DuckDb => "duckdb",
        }
    }

    /// Replaces every `@name(args)` with this dialect's form.
    pub fn expand(self, sql: &str) -> Result<String, ModelError> {
        let mut out = String::with_capacity(sql.len());
        let mut rest = sql;
        while let Some(at) = rest.find('@') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let name = &after[..name_len];
            let Some(args_text) = after[name_len..].strip_prefix('(') else {
                return Err(ModelError::Sql(format!("@{name} is not a call")));
            };
            let (args, tail) = split_call(args_text)
                .ok_or_else(|| ModelError::Sql(format!("@{name}( has no closing parenthesis")))?;
            let args: Vec<String> = args
                .iter()
                .map(|arg| self.expand(arg.trim()))
                .collect::<Result<_, _>>()?;
            out.push_str(&self.call(name, &args)?);
            rest = tail;
        }
        out.push_str(rest);
        Ok(out)
    }

    /// One function call written in this dialect.
    pub fn call(self, name: &str, args: &[String]) -> Result<String, ModelError> {
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(ModelError::Sql(format!("@{name} takes {n} arguments")))
            }
        };
        Ok(match name {
            // seconds since the epoch, with fractions
            "epoch_seconds" => {
                arity(1)?;
                let ts = &args[0];
                match self {
                    Self::DataFusion => format!("date_part('epoch', {ts})"),
                    Self::Spark => format!("(unix_micros({ts}) / 1000000.0)"),
                    Self::DuckDb => format!("epoch({ts})"),
                }
            }
            // the distinct non-null values of a group, sorted, as an array
            "sorted_set" => {
                arity(1)?;
                let value = &args[0];
                match self {
                    Self::DataFusion => format!("array_sort(array_agg(DISTINCT {value}))"),
                    Self::Spark => format!("array_sort(collect_set({value}))"),
                    Self::DuckDb => format!("list_sort(list(DISTINCT {value}))"),
                }
            }
            // a string inside a JSON text column: @json_str(column, 0, 'id') is column[0].id
            "json_str" => {
                let Some((column, path)) = args.split_first() else {
                    return Err(ModelError::Sql("@json_str needs a column".into()));
                };
                match self {
                    Self::DataFusion => format!("json_get_str({column}, {})", path.join(", ")),
                    Self::Spark => format!("get_json_object({column}, '{}')", json_path(path)?),
                    Self::DuckDb => {
                        format!("json_extract_string({column}, '{}')", json_path(path)?)
                    }
                }
            }
            _ => return Err(ModelError::Sql(format!("unknown SQL function @{name}"))),
        })
    }
}

impl Dialect {
    /// A string literal (Spark reads backslashes in literals as escapes).
    pub fn literal(self, value: &str) -> String {
        let mut out = String::with_capacity(value.len() + 2);
        out.push('\'');
        for c in value.chars() {
            match c {
                // Spark joins adjacent literals ('a''b' is "ab"): it needs \'
                '\'' if self == Self::Spark => out.push_str("\\'"),
                '\'' => out.push_str("''"),
                '\\' if self == Self::Spark => out.push_str("\\\\"),
                _ => out.push(c),
            }
        }
        out.push('\'');
        out
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Dialect {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, ModelError> {
        Self::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(s) || (s == "databricks" && *d == Self::Spark))
            .ok_or_else(|| {
                ModelError::Config(format!(
                    "unknown SQL dialect {s:?} (datafusion, spark, databricks or duckdb)"
                ))
            })
    }
}

/// The arguments of a call up to its closing parenthesis, split at top-level
/// commas (not inside parentheses or quotes), and what follows it.
fn split_call(text: &str) -> Option<(Vec<&str>, &str)> {
    let mut depth = 0usize;
    let mut quoted = false;
    let mut start = 0;
    let mut args = Vec::new();
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            _ if quoted => {}
            '(' => depth += 1,
            ')' if depth == 0 => {
                let last = text[start..i].trim();
                if !last.is_empty() || !args.is_empty() {
                    args.push(&text[start..i]);
                }
                return Some((args, &text[i + 1..]));
            }
            ')' => depth -= 1,
            ',' if depth == 0 => {
                args.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    None
}

/// `0, 'id'` as the JSONPath `$[0].id`.
fn json_path(path: &[String]) -> Result<String, ModelError> {
    let mut out = String::from("$");
    for step in path {
        if let Some(key) = step.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
            if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ModelError::Sql(format!(
                    "JSON key {key:?} is not a plain name"
                )));
            }
            out.push('.');
            out.push_str(key);
        } else if step.chars().all(|c| c.is_ascii_digit()) {
            out.push('[');
            out.push_str(step);
            out.push(']');
        } else {
            return Err(ModelError::Sql(format!(
                "JSON path step {step:?} is neither an index nor a 'key'"
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_written_per_dialect() {
        let sql = "SELECT floor(@epoch_seconds(t) / 10), @json_str(c, 0, 'id') FROM x";
        assert_eq!(
            Dialect::DataFusion.expand(sql).unwrap(),
            "SELECT floor(date_part('epoch', t) / 10), json_get_str(c, 0, 'id') FROM x"
        );
        assert_eq!(
            Dialect::Spark.expand(sql).unwrap(),
            "SELECT floor((unix_micros(t) / 1000000.0) / 10), get_json_object(c, '$[0].id') FROM x"
        );
        assert_eq!(
            Dialect::DuckDb.expand(sql).unwrap(),
            "SELECT floor(epoch(t) / 10), json_extract_string(c, '$[0].id') FROM x"
        );
    }

    #[test]
    fn nested_calls_and_bad_calls() {
        assert_eq!(
            Dialect::DuckDb
                .expand("@sorted_set(lower(@json_str(c, 'a')))")
                .unwrap(),
            "list_sort(list(DISTINCT lower(json_extract_string(c, '$.a'))))"
        );
        assert!(Dialect::Spark.expand("@nope(1)").is_err());
        assert!(Dialect::Spark.expand("@epoch_seconds(a, b)").is_err());
        assert!(Dialect::Spark.expand("@epoch_seconds(a").is_err());
        assert!(Dialect::Spark.expand("@json_str(c, 'a.b')").is_err());
    }
}
