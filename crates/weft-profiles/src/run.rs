//! One identity run: read, link, keep customer ids, roll up, write.
//!
//! Each run is numbered; its commits to `identity.customer_changes`,
//! `profiles.customers`, `identity.links` and, last, `identity.person_map`
//! carry that number as the Delta application transaction
//! [`IDENTITY_APP_ID`]. The person map is the commit point: a run cut off
//! before it leaves the previous map, and the rerun (same inputs, same map,
//! so the same result) skips the tables the cut-off run had already written,
//! so no change is recorded twice.

use std::time::Instant;

use deltalake::arrow::array::RecordBatch;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use tracing::info;
use weft_core::config::IdentityConfig;
use weft_identity::{Field, LinkOptions, NormaliseOptions};
use weft_lake::Lake;

use crate::customers::{self, ATTRIBUTES};
use crate::sources::{self, SourceRecord};
use crate::web::{self, WEB_SOURCE};
use crate::{ProfilesError, Result};

/// The application id of the identity stage's Delta transactions.
pub const IDENTITY_APP_ID: &str = "weft-identity";

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdentityReport {
    pub run: i64,
    /// Records read per source, in config order, then `web`.
    pub sources: Vec<(String, usize)>,
    pub records: usize,
    pub customers: usize,
    pub pairs_compared: usize,
    pub links: usize,
    /// Earlier customers whose id this run kept.
    pub kept: usize,
    pub new: usize,
    pub merged: usize,
    pub split: usize,
    pub gone: usize,
    /// Customers whose profile got a new version.
    pub profiles_changed: usize,
    pub seconds: f64,
}

/// Every `identity.*` key checked, so a bad one is one line naming it.
pub fn check_config(config: &IdentityConfig) -> Result<(), String> {
    if !(0.0..=1.0).contains(&config.threshold) {
        return Err("invalid config key identity.threshold: must be between 0 and 1".to_owned());
    }
    if config.default_region.len() != 2 {
        return Err(format!(
            "invalid config key identity.default_region: {:?} is not an ISO 3166 alpha-2 code",
            config.default_region
        ));
    }
    let mut names = std::collections::HashSet::new();
    for (i, source) in config.sources.iter().enumerate() {
        let key = format!("identity.sources[{i}]");
        if source.name.is_empty() || source.name == WEB_SOURCE || !names.insert(&source.name) {
            return Err(format!(
                "invalid config key {key}.name: {:?} must be set, unique and not {WEB_SOURCE:?}",
                source.name
            ));
        }
        if source.path.is_some() == source.table.is_some() {
            return Err(format!(
                "invalid config key {key}: give exactly one of path and table"
            ));
        }
        if let Some(url) = &source.postgres {
            if source.table.is_none() {
                return Err(format!(
                    "invalid config key {key}.postgres: name the database's table with table"
                ));
            }
            // the url may hold a password: the message names the key, not the value
            url.parse::<tokio_postgres::Config>()
                .map_err(|e| format!("invalid config key {key}.postgres: {e}"))?;
        }
        if source.map.is_empty() {
            return Err(format!(
                "invalid config key {key}.map: map at least one column"
            ));
        }
        for (column, field) in &source.map {
            field
                .parse::<Field>()
                .map_err(|e| format!("invalid config key {key}.map.{column}: {e}"))?;
        }
    }
    for (key, paths) in [
        ("emails", &config.web.emails),
        ("phones", &config.web.phones),
    ] {
        for (i, path) in paths.iter().enumerate() {
            weft_lake::sql::self_describing_path(path)
                .map_err(|e| format!("invalid config key identity.web.{key}[{i}]: {e}"))?;
        }
    }
    for (attribute, rule) in &config.survivorship {
        if !ATTRIBUTES.contains(&attribute.as_str()) {
            return Err(format!(
                "invalid config key identity.survivorship.{attribute}: not an attribute ({})",
                ATTRIBUTES.join(", ")
            ));
        }
        rule.parse::<customers::Survivorship>()
            .map_err(|e| format!("invalid config key identity.survivorship.{attribute}: {e}"))?;
    }
    Ok(())
}

/// Links every source and web identity into customers and writes the
/// identity and profile tables.
pub async fn resolve(lake: &Lake, config: &IdentityConfig) -> Result<IdentityReport> {
    check_config(config).map_err(ProfilesError::Config)?;
    let started = Instant::now();
    let run = transaction_version(lake, "identity", "person_map")
        .await?
        .unwrap_or(0)
        + 1;
    let mut records: Vec<SourceRecord> = Vec::new();
    let mut report = IdentityReport {
        run,
        ..IdentityReport::default()
    };
    // every read of the run goes through one session, opened before any write
    let context = weft_lake::sql::session(lake).await?;
    let mut mapped: Vec<Field> = Vec::new();
    for (trust, source) in config.sources.iter().enumerate() {
        let read = sources::read(&context, source, trust).await?;
        report.sources.push((source.name.clone(), read.len()));
        records.extend(read);
        mapped.extend(source.map.values().filter_map(|f| f.parse::<Field>().ok()));
    }
    let web = web::records(&context, &config.web, config.sources.len()).await?;
    report.sources.push((WEB_SOURCE.to_owned(), web.len()));
    if !web.is_empty() {
        mapped.extend([Field::UserId, Field::Email]);
        if !config.web.phones.is_empty() {
            mapped.push(Field::Phone);
        }
    }
    records.extend(web);
    mapped.sort();
    mapped.dedup();
    report.records = records.len();
    if records.is_empty() {
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }

    let options = LinkOptions {
        threshold: config.threshold,
        normalise: NormaliseOptions {
            default_region: config.default_region.to_ascii_uppercase(),
            day_first: !config.month_first,
        },
        ..LinkOptions::default()
    };
    let raw: Vec<_> = records.iter().map(|r| r.raw.clone()).collect();
    // seconds of work on every core: off the runtime's threads, which serve requests meanwhile
    let linkage = tokio::task::spawn_blocking(move || weft_identity::link(&raw, &mapped, &options))
        .await
        .map_err(|e| ProfilesError::Config(format!("identity linking stopped: {e}")))?;
    report.pairs_compared = linkage.pairs_compared;
    report.links = linkage.links.iter().filter(|l| l.refused.is_none()).count();

    let previous = crate::person_map::previous(&context).await?;
    let keys: Vec<_> = linkage
        .records
        .iter()
        .map(|r| (linkage.sources[r.source as usize].clone(), r.id.clone()))
        .collect();
    let (customer_ids, changes) = weft_identity::assign(&keys, &linkage.clusters, &previous);
    let count = |kind: &str| changes.iter().filter(|c| c.kind() == kind).count();
    report.new = count("new");
    report.merged = count("merged");
    report.split = count("split");
    report.gone = count("gone");
    report.kept = previous
        .values()
        .collect::<std::collections::HashSet<_>>()
        .len()
        .saturating_sub(report.merged + report.gone);

    // link() keeps the input order: records[i] is linkage.records[i]
    let cookie_customers: Vec<(String, String)> = records
        .iter()
        .zip(&customer_ids)
        .filter(|(r, _)| r.raw.source == WEB_SOURCE)
        .map(|(r, c)| (r.raw.id.clone(), c.clone()))
        .collect();
    let rollups = customers::web_rollups(&context, &cookie_customers).await?;
    let profiles = customers::profiles(
        &records,
        &linkage.records,
        &customer_ids,
        &config.survivorship,
        &rollups,
    )?;
    report.customers = profiles.len();
    let now = chrono::Utc::now().timestamp_micros();
    let (profile_batches, changed) = customers::next_version(&context, &profiles, now).await?;
    report.profiles_changed = changed;

    let change_rows = crate::person_map::changes(run, now, &changes);
    write(
        lake,
        ("identity", "customer_changes"),
        vec![change_rows],
        SaveMode::Append,
        run,
    )
    .await?;
    write(
        lake,
        ("profiles", "customers"),
        profile_batches,
        SaveMode::Overwrite,
        run,
    )
    .await?;
    write(
        lake,
        ("identity", "links"),
        vec![crate::explain::rows(run, &linkage, &customer_ids)],
        SaveMode::Overwrite,
        run,
    )
    .await?;
    let map = crate::person_map::rows(&linkage.records, &linkage.sources, &customer_ids);
    write(
        lake,
        ("identity", "person_map"),
        vec![map],
        SaveMode::Overwrite,
        run,
    )
    .await?;
    report.seconds = started.elapsed().as_secs_f64();
    info!(
        run,
        records = report.records,
        customers = report.customers,
        "identity resolved"
    );
    Ok(report)
}

async fn transaction_version(lake: &Lake, schema: &str, table: &str) -> Result<Option<i64>> {
    let delta = lake.table(schema, table).await?;
    let Ok(snapshot) = delta.snapshot() else {
        return Ok(None);
    };
    snapshot
        .transaction_version(delta.log_store().as_ref(), IDENTITY_APP_ID)
        .await
        .map_err(|source| delta_error(schema, table, source))
}

/// One commit of `batches`, marked with the run; skipped when the table already has this run's.
async fn write(
    lake: &Lake,
    (schema, table): (&str, &str),
    batches: Vec<RecordBatch>,
    mode: SaveMode,
    run: i64,
) -> Result<()> {
    if transaction_version(lake, schema, table)
        .await?
        .is_some_and(|v| v >= run)
    {
        return Ok(());
    }
    let delta = lake.table(schema, table).await?;
    let mut write = delta
        .write(batches)
        .with_save_mode(mode)
        .with_commit_properties(
            CommitProperties::default()
                .with_application_transaction(Transaction::new(IDENTITY_APP_ID, run)),
        );
    if mode == SaveMode::Overwrite {
        write = write.with_schema_mode(SchemaMode::Overwrite);
    }
    write
        .await
        .map_err(|source| delta_error(schema, table, source))?;
    Ok(())
}

fn delta_error(schema: &str, table: &str, source: deltalake::DeltaTableError) -> ProfilesError {
    ProfilesError::Delta {
        table: format!("{schema}.{table}"),
        source: Box::new(source),
    }
}
