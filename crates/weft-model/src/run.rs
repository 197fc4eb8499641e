//! One modelling run: which sessions changed, their tables re-derived whole,
//! and each derived table replaced where they were, in one Delta commit per table.
//!
//! A run models the events loaded up to the newest `load_tstamp` it sees (the
//! high mark). Each table's commit carries that mark as the version of the
//! application transaction [`MODEL_APP_ID`]; the next run takes the lowest mark
//! of the tables and treats every event loaded after it as new. The sessions
//! those events touch are re-derived from all of their events (the earliest
//! date any of them has is read from the tables themselves), so a session that
//! spans two loads, a late ping or a rerun ends exactly as a full rebuild would.
//!
//! Stitching: when a cookie's latest user id changes, the sessions, page views
//! and conversions it had before are restitched (their rows rewritten with the
//! new id) in the same commits. `user_mapping` is written last: what changed in
//! it is how a rerun after a crash finds the sessions still to restitch.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use deltalake::arrow::array::{
    Array, ArrayRef, Date32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{Field, Schema, SchemaRef};
use deltalake::datafusion::common::{JoinType, ScalarValue};
use deltalake::datafusion::datasource::{MemTable, provider_as_source};
use deltalake::datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use deltalake::datafusion::physical_plan::display::DisplayableExecutionPlan;
use deltalake::datafusion::prelude::{DataFrame, Expr, SessionContext, col, lit};
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};
use futures::{StreamExt, TryStreamExt};
use tracing::info;
use weft_core::config::ModelConfig;
use weft_lake::Lake;

use crate::deletion;
use crate::dialect::Dialect;
use crate::spill::{Spill, Taken};
use crate::sql::ModelSql;
use crate::{ModelError, Result};

/// The application id of the model's Delta transactions.
pub const MODEL_APP_ID: &str = "weft-model";

/// The derived tables, in the order a run writes them.
pub const DERIVED_TABLES: [&str; 5] = [
    "page_views",
    "sessions",
    "conversions",
    "users",
    "user_mapping",
];

/// About how many events a full build keeps in memory at once. Smaller
/// buckets reuse the memory the one before freed rather than touch new pages,
/// which a 1.5 M-event bucket spent most of its read on (`weft bench model`).
const FULL_BUILD_BUCKET_EVENTS: u64 = 500_000;

/// What a full build holds of the events when `model.memory_mb` is unset:
/// half the machine's memory (4 GiB where it cannot be read).
fn half_the_memory() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|line| line.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<usize>().ok()
        })
        .map_or(4 << 30, |total_kb| total_kb.saturating_mul(1024) / 2)
}

/// The tables keyed by session, partitioned by the date it started.
const SESSION_TABLES: [&str; 3] = ["page_views", "sessions", "conversions"];
const SESSION_DATE: &str = "session_date";

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ModelReport {
    /// Whether every table was rebuilt from all events.
    pub full: bool,
    /// Events loaded since the last run (every event on a full build).
    pub new_events: u64,
    /// Sessions re-derived from their events.
    pub sessions: usize,
    /// Older sessions whose rows were restitched to a new user id.
    pub restitched_sessions: usize,
    pub page_views: usize,
    pub conversions: usize,
    pub users: usize,
    /// Cookies whose user mapping was added or changed.
    pub mapped_cookies: usize,
    /// The `load_tstamp` (µs since the epoch) the tables are modelled up to.
    pub up_to: Option<i64>,
}

/// Keeps the derived tables of a lake up to date.
#[derive(Debug, Clone)]
pub struct Modeller {
    lake: Lake,
    config: ModelConfig,
    bucket_events: u64,
}

impl Modeller {
    pub fn new(lake: Lake, config: ModelConfig) -> Self {
        Self {
            lake,
            config,
            bucket_events: FULL_BUILD_BUCKET_EVENTS,
        }
    }

    /// About how many events a full build keeps in memory at once (sessions
    /// are derived a bucket of them at a time).
    pub fn with_bucket_events(mut self, events: u64) -> Self {
        self.bucket_events = events.max(1);
        self
    }

    /// Brings the derived tables up to date: only what new events changed, or
    /// a full build when a table is missing.
    pub async fn run(&self) -> Result<ModelReport> {
        self.run_with(false).await
    }

    /// Rebuilds every derived table from all events.
    pub async fn rebuild(&self) -> Result<ModelReport> {
        self.run_with(true).await
    }

    async fn run_with(&self, rebuild: bool) -> Result<ModelReport> {
        let ctx = weft_lake::sql::session(&self.lake).await?;
        if !ctx.table_exist("atomic.events")? {
            return Ok(ModelReport::default());
        }
        let columns: HashSet<String> = ctx
            .table("atomic.events")
            .await?
            .schema()
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect();
        let sql = ModelSql::new(&self.config, Dialect::DataFusion, Some(&columns))?;
        let Some(high) = newest_load(&ctx).await? else {
            return Ok(ModelReport::default());
        };
        // opened once: an incremental run replaces rows of these very snapshots
        let opening = DERIVED_TABLES.map(|table| async move {
            let delta = self.table(table).await?;
            let mark = mark(&delta, table).await?;
            Ok::<_, ModelError>((table, delta, mark))
        });
        let mut tables = HashMap::new();
        let mut marks = Vec::new();
        for (table, delta, mark) in futures::future::try_join_all(opening).await? {
            marks.push(mark);
            tables.insert(table, delta);
        }
        let mark = marks
            .into_iter()
            .collect::<Option<Vec<i64>>>()
            .and_then(|marks| marks.into_iter().min())
            .filter(|mark| !rebuild && *mark <= high);
        if mark == Some(high) {
            return Ok(ModelReport {
                up_to: Some(high),
                ..ModelReport::default()
            });
        }
        let events = ctx
            .sql(&sql.events_this_run()?)
            .await?
            .filter(col("load_tstamp").lt_eq(timestamp(high)))?;
        let mut report = match mark {
            None => self.full(&ctx, &sql, events, high).await?,
            Some(mark) => {
                self.incremental(&ctx, &sql, events, tables, mark, high)
                    .await?
            }
        };
        report.up_to = Some(high);
        info!(?report, "modelled");
        Ok(report)
    }

    /// Every table from every event, sessions a bucket at a time: the events
    /// are read once and split by session into bucket files, then a bucket's
    /// events are kept in memory while its page views, sessions and
    /// conversions are derived, so memory stays bounded however many events
    /// there are. The user mapping (from every event's user id) comes first,
    /// the users (from every session) last.
    async fn full(
        &self,
        ctx: &SessionContext,
        sql: &ModelSql,
        events: DataFrame,
        high: i64,
    ) -> Result<ModelReport> {
        ctx.register_table("all_events", events.into_view())?;
        // an upper bound (answered from file statistics) is enough to size the buckets
        let stored = count(ctx, "SELECT count(*) FROM atomic.events").await?;
        let buckets = stored.div_ceil(self.bucket_events.max(1)).clamp(1, 64) as usize;
        let statements: std::collections::HashMap<&str, String> =
            sql.statements()?.into_iter().collect();
        let statement = |name: &str| {
            statements
                .get(name)
                .ok_or_else(|| ModelError::Sql(format!("the model has no {name}")))
        };
        register_sql(ctx, "events_this_run", "SELECT * FROM all_events").await?;
        materialize(ctx, "user_ids", statement("user_ids")?).await?;
        let mut results = std::collections::HashMap::new();
        results.insert(
            "user_mapping",
            materialize(ctx, "user_mapping", statement("user_mapping")?).await?,
        );
        ctx.deregister_table("events_this_run")?;
        // one bucket: the events stay in memory; more: read once and split
        let mut spill = if buckets == 1 {
            None
        } else {
            let dir = self.spill_dir();
            let memory = self.config.memory_mb.map_or_else(half_the_memory, |mb| {
                usize::try_from(mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
            });
            let events = ctx.table("all_events").await?;
            Some(Spill::write(events, dir, buckets, memory).await?)
        };
        let mut report = ModelReport {
            full: true,
            new_events: spill.as_ref().map_or(0, Spill::rows),
            ..ModelReport::default()
        };
        let per_bucket: Arc<Vec<(&'static str, String)>> = Arc::new(
            PER_SESSION
                .iter()
                .map(|&name| Ok((name, statement(name)?.clone())))
                .collect::<Result<_>>()?,
        );
        let derived: Vec<Vec<(&str, Rows)>> = match &mut spill {
            None => {
                let events = ctx.table("all_events").await?;
                let rows = materialize_frame(ctx, "events_this_run", events).await?;
                report.new_events = rows.rows() as u64;
                register_sql(ctx, "page_view_events", statement("page_view_events")?).await?;
                vec![derive(ctx.clone(), per_bucket).await?]
            }
            Some(spill) => {
                // buckets side by side, one a core, each query on one thread:
                // its rows never cross between partitions
                let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
                let mapping = results
                    .get("user_mapping")
                    .expect("derived above")
                    .mem_table()?;
                let spawned = futures::stream::iter(0..buckets).map(|bucket| {
                    let taken = spill.take(bucket);
                    let (mapping, statements) = (Arc::clone(&mapping), Arc::clone(&per_bucket));
                    async move {
                        let deriving = async move {
                            derive(bucket_context(taken, mapping)?, statements).await
                        };
                        tokio::spawn(deriving).await.map_err(|error| {
                            ModelError::Sql(format!("deriving a bucket: {error}"))
                        })?
                    }
                });
                spawned.buffered(cores).try_collect().await?
            }
        };
        let mut per_session: std::collections::HashMap<&str, Rows> =
            std::collections::HashMap::new();
        for (name, rows) in derived.into_iter().flatten() {
            let rows = match per_session.remove(name) {
                Some(before) => before.union(rows.batches)?,
                None => rows,
            };
            per_session.insert(name, rows);
        }
        drop(spill);
        ctx.deregister_table("events_this_run")?;
        ctx.deregister_table("page_view_events")?;
        for (name, rows) in per_session {
            ctx.deregister_table(name)?;
            ctx.register_table(name, rows.mem_table()?)?;
            results.insert(name, rows);
        }
        register_sql(ctx, "user_sessions", statement("user_sessions")?).await?;
        results.insert(
            "users_this_run",
            materialize(ctx, "users_this_run", statement("users_this_run")?).await?,
        );
        let mut take = |name: &str| {
            results
                .remove(name)
                .ok_or_else(|| ModelError::Sql(format!("the model has no {name}")))
        };
        let (mapping, page_views, sessions, conversions, users) = (
            take("user_mapping")?,
            take("page_views_this_run")?,
            take("sessions_this_run")?,
            take("conversions_this_run")?,
            take("users_this_run")?,
        );
        report.sessions = sessions.rows();
        report.page_views = page_views.rows();
        report.conversions = conversions.rows();
        report.users = users.rows();
        report.mapped_cookies = mapping.rows();
        // the tables side by side, each table's rows split over the cores:
        // Parquet encoding is most of a write
        let started = std::time::Instant::now();
        let writes = [
            ("page_views", page_views),
            ("sessions", sessions),
            ("conversions", conversions),
            ("users", users),
            ("user_mapping", mapping),
        ]
        .map(|(table, rows)| async move {
            let partition = SESSION_TABLES.contains(&table).then_some(SESSION_DATE);
            let delta = self.table(table).await?;
            let write = delta
                .write(Vec::new())
                .with_input_plan(rows.plan()?)
                .with_save_mode(SaveMode::Overwrite)
                .with_schema_mode(SchemaMode::Overwrite)
                .with_partition_columns(partition)
                // incremental runs mark replaced rows deleted rather than rewrite files
                .with_configuration([(deletion::ENABLE, Some("true"))])
                .with_commit_properties(commit(high));
            let started = std::time::Instant::now();
            write.await.map_err(|source| delta_error(table, source))?;
            tracing::debug!(table, elapsed = ?started.elapsed(), "table written");
            Ok::<_, ModelError>(())
        });
        futures::future::try_join_all(writes).await?;
        tracing::debug!(elapsed = ?started.elapsed(), "tables written");
        Ok(report)
    }

    /// Only the sessions new events touched, and the cookies whose user id changed.
    async fn incremental(
        &self,
        ctx: &SessionContext,
        sql: &ModelSql,
        events: DataFrame,
        mut tables: HashMap<&'static str, DeltaTable>,
        mark: i64,
        high: i64,
    ) -> Result<ModelReport> {
        // every scan below keeps a few sessions' or cookies' rows of a table:
        // the join's filter on those ids, checked while decoding, skips
        // decoding the other columns of every other row
        ctx.state_ref()
            .write()
            .config_mut()
            .options_mut()
            .execution
            .parquet
            .pushdown_filters = true;
        let mut report = ModelReport::default();
        let new_events = events
            .clone()
            .filter(col("load_tstamp").gt(timestamp(mark)))?;
        // few, and read by several queries below: read once
        materialize_frame(ctx, "new_events", new_events).await?;

        // the sessions new events touched, and the earliest date of each
        let touched = materialize(
            ctx,
            "touched_sessions",
            "SELECT domain_sessionid, min(event_date) AS first_date, count(*) AS events \
             FROM new_events GROUP BY domain_sessionid",
        )
        .await?;
        report.new_events = touched
            .batches
            .iter()
            .map(|batch| sum_i64(batch.column(2)))
            .sum::<i64>()
            .try_into()
            .unwrap_or(0);

        // cookies seen with a user id: their mapping as it now stands
        register_sql(
            ctx,
            "user_ids",
            "SELECT domain_userid, user_id, derived_tstamp FROM new_events \
             WHERE user_id IS NOT NULL AND domain_userid IS NOT NULL \
             UNION ALL \
             SELECT m.domain_userid, m.user_id, m.last_seen_tstamp FROM derived.user_mapping m \
             WHERE m.domain_userid IN (SELECT domain_userid FROM new_events WHERE user_id IS NOT NULL)",
        )
        .await?;
        materialize(ctx, "mapping_candidates", &sql.user_mapping()?).await?;
        let updates = materialize(
            ctx,
            "mapping_updates",
            "SELECT c.domain_userid, c.user_id, c.last_seen_tstamp FROM mapping_candidates c \
             LEFT JOIN derived.user_mapping m ON m.domain_userid = c.domain_userid \
             WHERE m.domain_userid IS NULL OR m.user_id <> c.user_id \
             OR m.last_seen_tstamp <> c.last_seen_tstamp",
        )
        .await?;
        report.mapped_cookies = updates.rows();
        register_sql(
            ctx,
            "user_mapping",
            "SELECT domain_userid, user_id, last_seen_tstamp FROM mapping_updates \
             UNION ALL \
             SELECT domain_userid, user_id, last_seen_tstamp FROM derived.user_mapping \
             WHERE domain_userid NOT IN (SELECT domain_userid FROM mapping_updates)",
        )
        .await?;
        // cookies now stitched to another user id: their older sessions are restitched
        let restitched = materialize(
            ctx,
            "restitched",
            "SELECT u.domain_userid, u.user_id FROM mapping_updates u \
             LEFT JOIN derived.user_mapping m ON m.domain_userid = u.domain_userid \
             WHERE m.domain_userid IS NULL OR m.user_id <> u.user_id",
        )
        .await?;
        let patched = materialize(
            ctx,
            "patched_sessions",
            "SELECT s.domain_sessionid FROM derived.sessions s \
             JOIN restitched r ON r.domain_userid = s.domain_userid \
             WHERE s.domain_sessionid NOT IN (SELECT domain_sessionid FROM touched_sessions)",
        )
        .await?;
        report.restitched_sessions = patched.rows();
        register_sql(
            ctx,
            "affected_sessions",
            "SELECT domain_sessionid FROM touched_sessions \
             UNION ALL SELECT domain_sessionid FROM patched_sessions",
        )
        .await?;

        // where those sessions' rows lie in each table, found in one read of
        // the key column: the files' dates (those of the re-derived sessions,
        // with their new events' dates, bound the events read again), the
        // rows restitched and the rows their replacement deletes
        let touched_keys: HashSet<String> = touched.strings(0)?.into_iter().collect();
        let patched_keys: HashSet<String> = patched.strings(0)?.into_iter().collect();
        let affected: HashSet<String> = touched_keys.union(&patched_keys).cloned().collect();
        let mut located = Vec::new();
        let mut touched_dates: BTreeSet<i32> = touched.dates(1)?.into_iter().collect();
        for table in SESSION_TABLES {
            let delta = opened(&mut tables, table)?;
            let started = std::time::Instant::now();
            let found = deletion::locate(&delta, "domain_sessionid", &affected)
                .await
                .map_err(|source| delta_error(table, source))?;
            tracing::debug!(table, files = found.files.len(), elapsed = ?started.elapsed(), "rows located");
            for file in &found.files {
                if file.rows.iter().any(|(_, key)| touched_keys.contains(key)) {
                    touched_dates.extend(session_date(file));
                }
            }
            located.push((table, delta, found));
        }
        // the older rows of restitched sessions, read while the touched ones are derived
        let mut older_rows = Vec::new();
        for (table, delta, found) in &located {
            let read = deletion::read_rows(delta, found, |key| patched_keys.contains(key))
                .map_err(|source| delta_error(table, source))?;
            older_rows.push(tokio::spawn(read));
        }

        // every event of the touched sessions: from the earliest date any of them has
        let mut scoped = events;
        if let Some(first) = touched_dates.first() {
            scoped =
                scoped.filter(col("event_date").gt_eq(lit(ScalarValue::Date32(Some(*first)))))?;
        }
        let touched_ids = ctx
            .table("touched_sessions")
            .await?
            .select_columns(&["domain_sessionid"])?;
        let scoped = scoped.join(
            touched_ids,
            JoinType::LeftSemi,
            &["domain_sessionid"],
            &["domain_sessionid"],
            None,
        )?;
        // few events: read once and kept in memory for every model that reads them
        materialize_frame(ctx, "events_this_run", scoped).await?;
        register_sql(ctx, "page_view_events", &sql.page_view_events()).await?;

        materialize(ctx, "page_view_facts", &sql.page_view_facts()?).await?;
        let page_views = materialize(ctx, "page_views_this_run", &sql.page_views()?).await?;
        let sessions = materialize(ctx, "sessions_this_run", &sql.sessions()?).await?;
        let conversions = materialize(ctx, "conversions_this_run", &sql.conversions()?).await?;
        report.sessions = sessions.rows();

        // older rows of restitched cookies, with their new stitched id
        let stitched_ids = stitched_ids(&restitched)?;
        let mut rows = Vec::new();
        for ((table, _, _), (this_run, older)) in located.iter().zip(
            [page_views, sessions, conversions]
                .into_iter()
                .zip(older_rows),
        ) {
            let older = older
                .await
                .map_err(|error| delta_error(table, DeltaTableError::Generic(error.to_string())))?
                .map_err(|source| delta_error(table, source))?;
            let restitched = restitch(older, &stitched_ids)?;
            let rows_now = this_run.union(restitched)?;
            if *table == "sessions" {
                ctx.register_table("sessions_now", rows_now.mem_table()?)?;
            }
            rows.push(rows_now);
        }
        report.page_views = rows[0].rows();
        report.conversions = rows[2].rows();

        // users: every cookie with a re-derived or restitched session, from all its sessions
        let users_touched = materialize(
            ctx,
            "touched_users",
            "SELECT DISTINCT domain_userid FROM sessions_now WHERE domain_userid IS NOT NULL \
             UNION SELECT domain_userid FROM restitched",
        )
        .await?;
        // read by the users model several times: read once
        materialize(
            ctx,
            "user_sessions",
            "SELECT * FROM sessions_now \
             UNION ALL \
             SELECT * FROM derived.sessions \
             WHERE domain_userid IN (SELECT domain_userid FROM touched_users) \
             AND domain_sessionid NOT IN (SELECT domain_sessionid FROM affected_sessions)",
        )
        .await?;
        let users = materialize(ctx, "users_this_run", &sql.users()?).await?;
        report.users = users.rows();

        // replace, table by table, each in one commit
        let affected: Vec<String> = affected.into_iter().collect();
        for ((table, delta, found), rows) in located.into_iter().zip(rows) {
            let mut dates: BTreeSet<i32> = found.files.iter().filter_map(session_date).collect();
            dates.extend(rows.dates_of(SESSION_DATE)?);
            let keys = Keys {
                column: "domain_sessionid",
                all: &affected,
                found,
                dates: Some(&dates),
            };
            self.replace(table, delta, rows, keys, high).await?;
        }
        let mapped = updates.strings(0)?;
        for (table, rows, ids) in [
            ("users", users, users_touched.strings(0)?),
            ("user_mapping", updates, mapped),
        ] {
            let delta = opened(&mut tables, table)?;
            let wanted: HashSet<String> = ids.iter().cloned().collect();
            let found = deletion::locate(&delta, "domain_userid", &wanted)
                .await
                .map_err(|source| delta_error(table, source))?;
            let keys = Keys {
                column: "domain_userid",
                all: &ids,
                found,
                dates: None,
            };
            self.replace(table, delta, rows, keys, high).await?;
        }
        Ok(report)
    }

    /// Replaces the rows found of `keys` (in the partitions `keys.dates`,
    /// for the tables partitioned by session date) with `rows`, in one
    /// commit: marked deleted in deletion vectors where the table takes them,
    /// else by rewriting their files. Only records progress when nothing
    /// matches and there are no rows.
    async fn replace(
        &self,
        table: &str,
        delta: DeltaTable,
        rows: Rows,
        keys: Keys<'_>,
        high: i64,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        let written = rows.rows();
        if deletion::supported(&delta) {
            deletion::replace(&delta, rows.batches()?, keys.found, commit(high))
                .await
                .map_err(|source| delta_error(table, source))?;
            tracing::debug!(table, rows = written, elapsed = ?started.elapsed(), "replaced (deletion vectors)");
            return Ok(());
        }
        // no keys or no dates: the table has no rows of these, before or after
        let matches_nothing = keys.all.is_empty() || keys.dates.is_some_and(BTreeSet::is_empty);
        let mut predicate = in_strings(keys.column, keys.all);
        if let Some(dates) = keys.dates {
            predicate = in_dates(SESSION_DATE, dates).and(predicate);
        }
        let write = if matches_nothing && written == 0 {
            delta
                .write(rows.batches()?)
                .with_save_mode(SaveMode::Append)
        } else {
            delta
                .write(rows.batches()?)
                .with_save_mode(SaveMode::Overwrite)
                .with_replace_where(predicate)
        };
        write
            .with_schema_mode(SchemaMode::Merge)
            .with_commit_properties(commit(high))
            .await
            .map_err(|source| delta_error(table, source))?;
        tracing::debug!(table, rows = written, elapsed = ?started.elapsed(), "replaced");
        Ok(())
    }

    /// A folder of its own for a full build's spilled events, in the data directory.
    fn spill_dir(&self) -> std::path::PathBuf {
        let root = self.lake.root();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        root.parent()
            .unwrap_or(root)
            .join("tmp")
            .join(format!("model-{}-{nanos}", std::process::id()))
    }

    async fn table(&self, table: &str) -> Result<DeltaTable> {
        Ok(self.lake.table("derived", table).await?)
    }
}

/// What a full build derives a bucket of sessions by, in order, each reading
/// those before it; the first is kept only while its bucket is derived.
const PER_SESSION: [&str; 4] = [
    "page_view_facts",
    "page_views_this_run",
    "sessions_this_run",
    "conversions_this_run",
];

/// The page views, sessions and conversions of the events `ctx` holds.
async fn derive(
    ctx: SessionContext,
    statements: Arc<Vec<(&'static str, String)>>,
) -> Result<Vec<(&'static str, Rows)>> {
    let mut out = Vec::with_capacity(statements.len());
    for (name, sql) in statements.iter() {
        ctx.deregister_table(*name)?;
        let rows = materialize(&ctx, name, sql).await?;
        if *name != PER_SESSION[0] {
            out.push((*name, rows));
        }
    }
    Ok(out)
}

/// A session of one thread holding one bucket's events and the user mapping.
fn bucket_context(taken: Taken, mapping: Arc<MemTable>) -> Result<SessionContext> {
    let read = taken.read()?;
    let config = weft_lake::sql::session_config()?.with_target_partitions(1);
    let mut ctx = SessionContext::new_with_config(config);
    weft_lake::sql::register_functions(&mut ctx)?;
    ctx.register_table("user_mapping", mapping)?;
    let events = MemTable::try_new(read.events_schema, vec![read.events])?;
    ctx.register_table("events_this_run", Arc::new(events))?;
    let page_views = MemTable::try_new(read.page_views_schema, vec![read.page_view_events])?;
    ctx.register_table("page_view_events", Arc::new(page_views))?;
    Ok(ctx)
}

/// The `load_tstamp` a table is modelled up to; `None` if it does not exist.
async fn mark(delta: &DeltaTable, table: &str) -> Result<Option<i64>> {
    let Ok(snapshot) = delta.snapshot() else {
        return Ok(None);
    };
    snapshot
        .transaction_version(delta.log_store().as_ref(), MODEL_APP_ID)
        .await
        .map_err(|source| delta_error(table, source))
}

/// A table opened at the start of the run, taken for its replacement.
fn opened(tables: &mut HashMap<&str, DeltaTable>, table: &str) -> Result<DeltaTable> {
    tables
        .remove(table)
        .ok_or_else(|| delta_error(table, DeltaTableError::Generic("not opened".into())))
}

/// Which rows a replacement removes: those found of the keys `all` in
/// `column`, in the partitions `dates` for a table partitioned by session date.
struct Keys<'a> {
    column: &'a str,
    all: &'a [String],
    found: deletion::Located,
    dates: Option<&'a BTreeSet<i32>>,
}

/// The rows of a table this run writes, in memory.
struct Rows {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl Rows {
    fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// The batches with every column nullable, as the tables declare them;
    /// at least one, so an empty result still has its columns.
    fn batches(&self) -> Result<Vec<RecordBatch>> {
        let schema = nullable(&self.schema);
        let mut out = Vec::with_capacity(self.batches.len().max(1));
        for batch in &self.batches {
            out.push(conform(batch, &schema)?);
        }
        if out.is_empty() {
            out.push(RecordBatch::new_empty(schema));
        }
        Ok(out)
    }

    /// These rows followed by others of the same columns (cast to these types).
    fn union(mut self, other: Vec<RecordBatch>) -> Result<Rows> {
        for batch in &other {
            self.batches.push(conform(batch, &self.schema)?);
        }
        Ok(self)
    }

    /// The rows (as `batches` gives them) to scan, spread over as many
    /// partitions as there are cores, so a write encodes them side by side.
    fn plan(&self) -> Result<LogicalPlan> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let batches = self.batches()?;
        let mut partitions = vec![Vec::new(); cores.min(batches.len())];
        for (index, batch) in batches.into_iter().enumerate() {
            let at = index % partitions.len();
            partitions[at].push(batch);
        }
        let table = MemTable::try_new(nullable(&self.schema), partitions)?;
        Ok(LogicalPlanBuilder::scan("rows", provider_as_source(Arc::new(table)), None)?.build()?)
    }

    fn mem_table(&self) -> Result<Arc<MemTable>> {
        Ok(Arc::new(MemTable::try_new(
            Arc::clone(&self.schema),
            vec![self.batches.clone()],
        )?))
    }

    /// The non-null strings of column `index`.
    fn strings(&self, index: usize) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for batch in &self.batches {
            let column = cast(
                batch.column(index),
                &deltalake::arrow::datatypes::DataType::Utf8,
            )?;
            let strings = column
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("cast to Utf8 gives strings");
            out.extend(strings.iter().flatten().map(str::to_owned));
        }
        Ok(out)
    }

    /// The non-null dates of column `index`.
    fn dates(&self, index: usize) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        for batch in &self.batches {
            out.extend(date_column(batch, index)?.iter().flatten());
        }
        Ok(out)
    }

    fn dates_of(&self, name: &str) -> Result<Vec<i32>> {
        let index = self.schema.index_of(name)?;
        self.dates(index)
    }
}

/// Column `index` of `batch` as dates.
fn date_column(batch: &RecordBatch, index: usize) -> Result<Date32Array> {
    use deltalake::arrow::array::AsArray;
    let column = cast(
        batch.column(index),
        &deltalake::arrow::datatypes::DataType::Date32,
    )?;
    Ok(column
        .as_primitive::<deltalake::arrow::datatypes::Date32Type>()
        .clone())
}

/// Runs a query and keeps its result as the table `name` of the session.
async fn materialize(ctx: &SessionContext, name: &str, sql: &str) -> Result<Rows> {
    let frame = ctx
        .sql(sql)
        .await
        .map_err(|error| ModelError::Sql(format!("{name}: {error}")))?;
    materialize_frame(ctx, name, frame).await
}

async fn materialize_frame(ctx: &SessionContext, name: &str, frame: DataFrame) -> Result<Rows> {
    let started = std::time::Instant::now();
    let schema = nullable(frame.schema().as_arrow());
    let task = frame.task_ctx();
    let plan = frame.create_physical_plan().await?;
    let batches =
        deltalake::datafusion::physical_plan::collect(Arc::clone(&plan), Arc::new(task)).await?;
    if tracing::enabled!(tracing::Level::TRACE) {
        // what each operator of the step did, for working out where its time goes
        let metrics = DisplayableExecutionPlan::with_metrics(plan.as_ref()).indent(true);
        tracing::trace!(name, plan = %metrics, "materialised plan");
    }
    let batches = batches
        .iter()
        .map(|batch| conform(batch, &schema).map(|batch| compact(&batch)))
        .collect::<Result<_>>()?;
    let rows = Rows { schema, batches };
    ctx.register_table(name, rows.mem_table()?)?;
    tracing::debug!(name, rows = rows.rows(), elapsed = ?started.elapsed(), "materialised");
    Ok(rows)
}

/// Registers a query as the view `name`.
async fn register_sql(ctx: &SessionContext, name: &str, sql: &str) -> Result<()> {
    let frame = ctx
        .sql(sql)
        .await
        .map_err(|error| ModelError::Sql(format!("{name}: {error}")))?;
    ctx.register_table(name, frame.into_view())?;
    Ok(())
}

/// Each restitched cookie's new user id.
fn stitched_ids(restitched: &Rows) -> Result<HashMap<String, String>> {
    let cookies = restitched.strings(0)?;
    let users = restitched.strings(1)?;
    Ok(cookies.into_iter().zip(users).collect())
}

/// Older rows of restitched cookies with their new stitched user id (the
/// rows of cookies without one left out).
fn restitch(older: Vec<RecordBatch>, ids: &HashMap<String, String>) -> Result<Vec<RecordBatch>> {
    use deltalake::arrow::array::AsArray;
    use deltalake::arrow::compute::{filter, filter_record_batch, is_not_null};
    use deltalake::arrow::datatypes::DataType;
    let mut out = Vec::with_capacity(older.len());
    for batch in older {
        let schema = batch.schema();
        let cookies = cast(
            batch.column(schema.index_of("domain_userid")?),
            &DataType::Utf8,
        )?;
        let stitched: StringArray = cookies
            .as_string::<i32>()
            .iter()
            .map(|cookie| cookie.and_then(|cookie| ids.get(cookie)))
            .collect();
        let keep = is_not_null(&stitched)?;
        let at = schema.index_of("stitched_user_id")?;
        let mut columns = filter_record_batch(&batch, &keep)?.columns().to_vec();
        columns[at] = cast(&filter(&stitched, &keep)?, schema.field(at).data_type())?;
        out.push(RecordBatch::try_new(schema, columns)?);
    }
    Ok(out)
}

/// A file's session date (its partition value).
fn session_date(file: &deletion::Found) -> Option<i32> {
    let value = file.partition(SESSION_DATE)?;
    match ScalarValue::try_from_string(value, &deltalake::arrow::datatypes::DataType::Date32) {
        Ok(ScalarValue::Date32(day)) => day,
        _ => None,
    }
}

async fn newest_load(ctx: &SessionContext) -> Result<Option<i64>> {
    let batches = ctx
        .sql("SELECT max(load_tstamp) FROM atomic.events")
        .await?
        .collect()
        .await?;
    Ok(batches.first().and_then(|batch| {
        let column = batch.column(0);
        let values = column
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()?;
        (!values.is_empty() && values.is_valid(0)).then(|| values.value(0))
    }))
}

async fn count(ctx: &SessionContext, sql: &str) -> Result<u64> {
    let batches = ctx.sql(sql).await?.collect().await?;
    Ok(batches
        .iter()
        .map(|batch| sum_i64(batch.column(0)))
        .sum::<i64>()
        .try_into()
        .unwrap_or(0))
}

fn sum_i64(column: &ArrayRef) -> i64 {
    column
        .as_any()
        .downcast_ref::<Int64Array>()
        .map_or(0, |values| values.iter().flatten().sum())
}

fn timestamp(micros: i64) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(micros),
        Some("UTC".into()),
    ))
}

fn in_strings(column: &str, values: &[String]) -> Expr {
    col(column).in_list(values.iter().map(|v| lit(v.as_str())).collect(), false)
}

fn in_dates(column: &str, days: &BTreeSet<i32>) -> Expr {
    col(column).in_list(
        days.iter()
            .map(|day| lit(ScalarValue::Date32(Some(*day))))
            .collect(),
        false,
    )
}

fn commit(high: i64) -> CommitProperties {
    CommitProperties::default().with_application_transaction(Transaction::new(MODEL_APP_ID, high))
}

pub(crate) fn nullable(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|field| Field::new(field.name(), field.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// The batch's columns, by name, cast to the schema's types.
pub(crate) fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let column = batch.column_by_name(field.name()).ok_or_else(|| {
                ModelError::Sql(format!("rows without the column {}", field.name()))
            })?;
            Ok(cast(column, field.data_type())?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// The batch with its string views copied out of the buffers they point
/// into: a filtered or joined view column keeps its input's whole buffers
/// alive, so a kept result would otherwise pin every event it was made from.
pub(crate) fn compact(batch: &RecordBatch) -> RecordBatch {
    use deltalake::arrow::array::AsArray;
    use deltalake::arrow::datatypes::DataType;
    let columns = batch
        .columns()
        .iter()
        .map(|column| -> ArrayRef {
            match column.data_type() {
                DataType::Utf8View => Arc::new(column.as_string_view().gc()),
                DataType::BinaryView => Arc::new(column.as_binary_view().gc()),
                _ => Arc::clone(column),
            }
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns).expect("the same columns, compacted")
}

fn delta_error(table: &str, source: deltalake::DeltaTableError) -> ModelError {
    ModelError::Delta {
        table: table.to_owned(),
        source: Box::new(source),
    }
}
