//! Customer records from the configured sources: CSV and Parquet files,
//! tables of the lake and PostgreSQL tables, each column mapped to an
//! identity field.

use std::path::Path;

use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::DataType;
use deltalake::datafusion::prelude::{ParquetReadOptions, SessionContext};
use weft_core::config::IdentitySourceConfig;
use weft_identity::{Field, RawRecord};

use crate::{ProfilesError, Result};

/// A record and what survivorship weighs it by.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub raw: RawRecord,
    /// When the record was last true, in microseconds since the epoch.
    pub updated_at: Option<i64>,
    pub consent: Option<bool>,
    /// The source's rank: 0 is the most trusted.
    pub trust: usize,
}

/// A source's rows as text, by column.
struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
}

/// Every record of one source; `trust` is its place in the config.
pub async fn read(
    context: &SessionContext,
    source: &IdentitySourceConfig,
    trust: usize,
) -> Result<Vec<SourceRecord>> {
    let failure = |message: String| ProfilesError::Source {
        source_name: source.name.clone(),
        message,
    };
    let rows = match (&source.path, &source.table) {
        (Some(path), None) => match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => read_csv(path).map_err(failure)?,
            Some(e) if e.eq_ignore_ascii_case("parquet") => {
                let context = SessionContext::new();
                let path_text = path.to_string_lossy();
                let frame = context
                    .read_parquet(path_text.as_ref(), ParquetReadOptions::default())
                    .await
                    .map_err(|e| failure(format!("{}: {e}", path.display())))?;
                text_rows(&frame.collect().await?)?
            }
            _ => {
                return Err(failure(format!(
                    "{}: a path must end in .csv or .parquet",
                    path.display()
                )));
            }
        },
        (None, Some(table)) if let Some(url) = &source.postgres => {
            read_postgres(url, table, &columns(source))
                .await
                .map_err(failure)?
        }
        (None, Some(table)) => {
            if !is_table_name(table) {
                return Err(failure(format!("{table:?} is not schema.table")));
            }
            let batches = crate::query(context, &format!("SELECT * FROM {table}"))
                .await
                .map_err(|e| failure(format!("{table}: {e}")))?;
            text_rows(&batches)?
        }
        _ => return Err(failure("give exactly one of path and table".to_owned())),
    };
    records(source, trust, &rows).map_err(failure)
}

/// The columns a source's mapping reads: the id, the mapped ones, and the
/// survivorship and consent columns, each once.
fn columns(source: &IdentitySourceConfig) -> Vec<&str> {
    let mut columns = vec![source.id_column.as_str()];
    columns.extend(source.map.keys().map(String::as_str));
    columns.extend(source.updated_at.as_deref());
    columns.extend(source.consent.as_deref());
    let mut seen = std::collections::HashSet::new();
    columns.retain(|c| seen.insert(*c));
    columns
}

/// `columns` of a PostgreSQL table, every value as PostgreSQL writes it as
/// text. The names are quoted as identifiers; the url (which may hold a
/// password) never reaches a message.
async fn read_postgres(
    url: &str,
    table: &str,
    columns: &[&str],
) -> std::result::Result<Rows, String> {
    let parts: Vec<&str> = table.split('.').collect();
    if parts.is_empty() || parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(format!("{table:?} is not table or schema.table"));
    }
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let sql = format!(
        "SELECT {} FROM {}",
        columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", "),
        parts.iter().map(|p| quote(p)).collect::<Vec<_>>().join(".")
    );
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("postgres: not a connection url ({e})"))?;
    config.connect_timeout(std::time::Duration::from_secs(10));
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("postgres: cannot connect: {e}"))?;
    let connection = tokio::spawn(connection);
    let messages = client.simple_query(&sql).await.map_err(|e| {
        let reason = e
            .as_db_error()
            .map_or_else(|| e.to_string(), |db| db.message().to_owned());
        format!("postgres table {table}: {reason}")
    });
    drop(client); // the connection then says goodbye and ends
    connection.await.ok();
    let mut rows = Vec::new();
    for message in messages? {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            rows.push(
                (0..columns.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            );
        }
    }
    Ok(Rows {
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        rows,
    })
}

fn is_table_name(name: &str) -> bool {
    name.split('.').count() == 2
        && name.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

fn read_csv(path: &Path) -> std::result::Result<Rows, String> {
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let columns = reader
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut rows = Vec::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.map_err(|e| format!("{} row {}: {e}", path.display(), line + 2))?;
        rows.push(row.iter().map(|v| Some(v.to_owned())).collect());
    }
    Ok(Rows { columns, rows })
}

/// Each row's values as text (`None` for null).
pub(crate) fn text_cells(batches: &[RecordBatch]) -> Result<Vec<Vec<Option<String>>>> {
    let mut rows = Vec::new();
    for batch in batches {
        let texts = batch
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Utf8))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(
                texts
                    .iter()
                    .map(|c| {
                        let c = c.as_string::<i32>();
                        (!c.is_null(row)).then(|| c.value(row).to_owned())
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}

/// Any table's rows with every value as text.
fn text_rows(batches: &[RecordBatch]) -> Result<Rows> {
    let columns = batches.first().map_or_else(Vec::new, |b| {
        b.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    });
    let rows = text_cells(batches)?;
    Ok(Rows { columns, rows })
}

fn records(
    source: &IdentitySourceConfig,
    trust: usize,
    rows: &Rows,
) -> std::result::Result<Vec<SourceRecord>, String> {
    let position = |column: &str, key: &str| {
        rows.columns
            .iter()
            .position(|c| c == column)
            .ok_or_else(|| {
                format!(
                    "{key}: no column {column:?} (it has {})",
                    rows.columns.join(", ")
                )
            })
    };
    let id = position(&source.id_column, "id_column")?;
    let mut mapped = Vec::new();
    for (column, field) in &source.map {
        let field: Field = field.parse().map_err(|e| format!("map.{column}: {e}"))?;
        mapped.push((position(column, &format!("map.{column}"))?, field));
    }
    let updated_at = source
        .updated_at
        .as_deref()
        .map(|c| position(c, "updated_at"))
        .transpose()?;
    let consent = source
        .consent
        .as_deref()
        .map(|c| position(c, "consent"))
        .transpose()?;
    let value =
        |row: &[Option<String>], i: usize| row[i].as_deref().unwrap_or("").trim().to_owned();
    let mut out = Vec::with_capacity(rows.rows.len());
    for row in &rows.rows {
        let id = value(row, id);
        if id.is_empty() {
            continue; // a record without an id cannot be kept stable; nothing to map it by
        }
        out.push(SourceRecord {
            raw: RawRecord {
                source: source.name.clone(),
                id,
                values: mapped.iter().map(|&(i, f)| (f, value(row, i))).collect(),
            },
            updated_at: updated_at.and_then(|i| parse_time(&value(row, i))),
            consent: consent.and_then(|i| parse_bool(&value(row, i))),
            trust,
        });
    }
    Ok(out)
}

/// RFC 3339, `YYYY-MM-DD HH:MM:SS` or a date, as microseconds since the epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    // PostgreSQL's text for timestamptz: 2025-01-02 03:04:05.123+00
    if let Ok(t) = chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Some(t.timestamp_micros());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .map(|d| {
            d.and_time(chrono::NaiveTime::MIN)
                .and_utc()
                .timestamp_micros()
        })
}

pub fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" | "opted_in" | "subscribed" => Some(true),
        "false" | "f" | "no" | "n" | "0" | "opted_out" | "unsubscribed" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_consents_read_as_sources_write_them() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(parse_time("1970-01-01 00:00:01.5"), Some(1_500_000));
        assert_eq!(parse_time("1970-01-02"), Some(86_400_000_000));
        assert_eq!(parse_time("1970-01-01 01:00:01+01"), Some(1_000_000));
        assert_eq!(parse_time("1970-01-01 00:00:01.25+00:00"), Some(1_250_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_bool("Yes"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool(""), None);
    }

    #[test]
    fn a_mapping_to_a_missing_column_names_the_key_and_the_columns() {
        let rows = Rows {
            columns: vec!["id".into(), "mail".into()],
            rows: vec![vec![Some("1".into()), Some("a@b.com".into())]],
        };
        let source = IdentitySourceConfig {
            name: "crm".into(),
            id_column: "id".into(),
            map: [("email".to_owned(), "email".to_owned())].into(),
            ..IdentitySourceConfig::default()
        };
        let error = records(&source, 0, &rows).unwrap_err();
        assert!(
            error.contains("map.email") && error.contains("id, mail"),
            "{error}"
        );
        let source = IdentitySourceConfig {
            map: [("mail".to_owned(), "e-mail".to_owned())].into(),
            ..source
        };
        assert!(records(&source, 0, &rows).unwrap_err().contains("map.mail"));
        let source = IdentitySourceConfig {
            map: [("mail".to_owned(), "email".to_owned())].into(),
            ..source
        };
        let read = records(&source, 2, &rows).unwrap();
        assert_eq!(read[0].raw.get(Field::Email), "a@b.com");
        assert_eq!(read[0].trust, 2);
    }
}
