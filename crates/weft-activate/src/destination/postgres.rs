//! PostgreSQL (and anything that speaks its protocol): rows kept in a table
//! keyed by the sync's key, one transaction per batch. The table is created
//! (and missing columns added) on first use: the key column, one typed
//! column per field, `synced_at`. Upserts are `INSERT … ON CONFLICT DO
//! UPDATE`, inserts `ON CONFLICT DO NOTHING`, so a batch sent twice leaves
//! the table as sending it once would.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::{Batch, Common, Destination, RowResults, Secret, SendError};
use crate::diff::Op;
use crate::rows::{Field, FieldKind};
use crate::spec::Mode;

fn default_key_column() -> String {
    "key".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `postgres://user:password@host:port/database` (a secret: it may hold the password).
    pub url: Secret,
    /// `table` or `schema.table`.
    pub table: String,
    #[serde(default = "default_key_column")]
    pub key_column: String,
}

pub struct Postgres {
    settings: Settings,
    connect_timeout: std::time::Duration,
    client: Mutex<Option<Client>>,
    /// The fields the table was last made ready for.
    ready: Mutex<Option<Vec<Field>>>,
}

impl Postgres {
    pub fn new(settings: Settings, common: &Common) -> Self {
        Self {
            settings,
            connect_timeout: common.timeout,
            client: Mutex::new(None),
            ready: Mutex::new(None),
        }
    }

    fn table(&self) -> String {
        self.settings
            .table
            .split('.')
            .map(quote)
            .collect::<Vec<_>>()
            .join(".")
    }

    async fn connect(&self) -> Result<Client, SendError> {
        let mut config: tokio_postgres::Config = self
            .settings
            .url
            .expose()
            .parse()
            .map_err(|e| SendError::Fatal(format!("url: {e}")))?;
        config.connect_timeout(self.connect_timeout);
        let (client, connection) = config.connect(NoTls).await.map_err(classify)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "postgres connection closed");
            }
        });
        Ok(client)
    }

    /// Runs `work` on the open connection (opened first if need be); a
    /// connection that failed is dropped so the retry opens a new one.
    async fn with_client<T>(
        &self,
        work: impl AsyncFnOnce(&mut Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, SendError> {
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            *slot = Some(self.connect().await?);
        }
        let client = slot.as_mut().expect("connected above");
        match work(client).await {
            Ok(value) => Ok(value),
            Err(error) => {
                if client.is_closed() || error.code().is_none() {
                    *slot = None;
                }
                Err(classify(error))
            }
        }
    }

    async fn ensure_table(&self, fields: &[Field]) -> Result<(), SendError> {
        let mut ready = self.ready.lock().await;
        if ready.as_deref() == Some(fields) {
            return Ok(());
        }
        if fields
            .iter()
            .any(|f| f.name == self.settings.key_column || f.name == "synced_at")
        {
            return Err(SendError::Fatal(format!(
                "a field is named like the key column {:?} or synced_at",
                self.settings.key_column
            )));
        }
        let table = self.table();
        let key = quote(&self.settings.key_column);
        let mut statements = vec![format!(
            "CREATE TABLE IF NOT EXISTS {table} ({key} text PRIMARY KEY, synced_at timestamptz NOT NULL DEFAULT now())"
        )];
        for field in fields {
            statements.push(format!(
                "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {} {}",
                quote(&field.name),
                sql_type(field.kind)
            ));
        }
        self.with_client(async |client| {
            for statement in &statements {
                client.batch_execute(statement).await?;
            }
            Ok(())
        })
        .await?;
        *ready = Some(fields.to_vec());
        Ok(())
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn sql_type(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Text => "text",
        FieldKind::Integer => "bigint",
        FieldKind::Float => "double precision",
        FieldKind::Boolean => "boolean",
        FieldKind::Date => "date",
        FieldKind::Timestamp => "timestamptz",
        FieldKind::TextList => "jsonb",
    }
}

/// Connection trouble, conflicts between transactions and a server short
/// of resources pass on a retry; bad credentials, a missing table or a
/// permission do not; bad data is the batch's (split it).
fn classify(error: tokio_postgres::Error) -> SendError {
    let reason = match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    };
    let Some(code) = error.code() else {
        return SendError::Retry {
            reason,
            after: None,
        };
    };
    let class = &code.code()[..2];
    if matches!(class, "08" | "40" | "53" | "57" | "58") || *code == SqlState::LOCK_NOT_AVAILABLE {
        SendError::Retry {
            reason,
            after: None,
        }
    } else if matches!(class, "22" | "23") {
        SendError::Reject(reason)
    } else {
        SendError::Fatal(reason)
    }
}

#[async_trait]
impl Destination for Postgres {
    fn max_batch(&self) -> usize {
        10_000
    }

    fn modes(&self) -> &'static [Mode] {
        &Mode::ALL
    }

    async fn check(&self) -> Result<(), SendError> {
        self.with_client(async |client| client.batch_execute("SELECT 1").await)
            .await
    }

    async fn send(&self, batch: &Batch<'_>) -> Result<RowResults, SendError> {
        self.ensure_table(batch.fields).await?;
        let table = self.table();
        let key = quote(&self.settings.key_column);
        let names: Vec<String> = batch.fields.iter().map(|f| quote(&f.name)).collect();
        let record_type: Vec<String> = std::iter::once(format!("{key} text"))
            .chain(
                batch
                    .fields
                    .iter()
                    .zip(&names)
                    .map(|(f, n)| format!("{n} {}", sql_type(f.kind))),
            )
            .collect();
        let source = format!(
            "jsonb_to_recordset($1::text::jsonb) AS x({})",
            record_type.join(", ")
        );
        let mut columns = vec![key.clone()];
        columns.extend(names.iter().cloned());
        let selected: Vec<String> = columns.iter().map(|c| format!("x.{c}")).collect();
        let assignments: Vec<String> = names
            .iter()
            .map(|n| format!("{n} = excluded.{n}"))
            .chain(["synced_at = now()".to_owned()])
            .collect();
        let insert = format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {source}",
            columns.join(", "),
            selected.join(", ")
        );
        let upsert = format!(
            "{insert} ON CONFLICT ({key}) DO UPDATE SET {}",
            assignments.join(", ")
        );
        let insert_new = format!("{insert} ON CONFLICT ({key}) DO NOTHING");
        let set_from_x: Vec<String> = names
            .iter()
            .map(|n| format!("{n} = x.{n}"))
            .chain(["synced_at = now()".to_owned()])
            .collect();
        let update = format!(
            "UPDATE {table} AS t SET {} FROM {source} WHERE t.{key} = x.{key} RETURNING t.{key}",
            set_from_x.join(", ")
        );
        let delete = format!("DELETE FROM {table} WHERE {key} = ANY($1::text[])");

        let records = |ops: &[Op]| -> Option<String> {
            let rows: Vec<Value> = batch
                .changes
                .iter()
                .filter(|c| ops.contains(&c.op))
                .map(|c| {
                    let mut object = Map::new();
                    object.insert(
                        self.settings.key_column.clone(),
                        Value::String(c.key.clone()),
                    );
                    for (field, value) in batch.fields.iter().zip(&c.values) {
                        object.insert(field.name.clone(), value.clone());
                    }
                    Value::Object(object)
                })
                .collect();
            (!rows.is_empty()).then(|| Value::Array(rows).to_string())
        };
        let upserts = records(&[Op::Upsert, Op::Enter]);
        let inserts = records(&[Op::Insert]);
        let updates = records(&[Op::Update]);
        let removals: Vec<String> = batch
            .changes
            .iter()
            .filter(|c| c.op.removes())
            .map(|c| c.key.clone())
            .collect();
        let updated = self
            .with_client(async |client| {
                let transaction = client.transaction().await?;
                if let Some(json) = &upserts {
                    transaction.execute(&upsert, &[json]).await?;
                }
                if let Some(json) = &inserts {
                    transaction.execute(&insert_new, &[json]).await?;
                }
                let mut updated = std::collections::HashSet::new();
                if let Some(json) = &updates {
                    for row in transaction.query(&update, &[json]).await? {
                        updated.insert(row.get::<_, String>(0));
                    }
                }
                if !removals.is_empty() {
                    transaction.execute(&delete, &[&removals]).await?;
                }
                transaction.commit().await?;
                Ok(updated)
            })
            .await?;
        Ok(batch
            .changes
            .iter()
            .map(|c| {
                (c.op == Op::Update && !updated.contains(&c.key))
                    .then(|| "no row with this key to update".to_owned())
            })
            .collect())
    }
}
