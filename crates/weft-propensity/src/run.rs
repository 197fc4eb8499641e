//! One propensity run: train when due, then score with the production model.
//!
//! Time is the lake's own: "now" is the day after the latest event (so a
//! rerun over the same data repeats itself). The validation cut-off is a
//! prediction window before now, so its labels are complete; training rows
//! come from earlier cut-offs whose windows end by the validation cut-off,
//! so no training label comes from a time validation has not reached.
//! Validation customers are split in two by a hash of their id: one half
//! stops boosting early, chooses and calibrates the model, the other is the
//! held-out test the card reports.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, DurationRound, Utc};
use deltalake::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use deltalake::datafusion::prelude::SessionContext;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use tracing::info;
use weft_core::config::MlConfig;
use weft_lake::Lake;
use weft_ml::card::{Card, TargetCard};
use weft_ml::metrics::{self, propensity_label};
use weft_ml::registry::{ModelFile, Registry, VersionEntry};
use weft_ml::{Frame, TrainOptions};

use crate::dataset::{self, OVERALL};
use crate::spec::{self, FeatureSpec};
use crate::{PropensityError, Result};

/// How one target did on the held-out test customers.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetReport {
    pub target: String,
    pub learner: String,
    pub test_auc: Option<f64>,
    pub test_rows: usize,
    pub test_positives: usize,
    /// Conversion rate of the top decile and of everyone, on the test customers.
    pub top_decile_rate: f64,
    pub rate: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    pub version: u32,
    pub promoted: bool,
    pub valid_cutoff: DateTime<Utc>,
    pub train_cutoffs: Vec<DateTime<Utc>>,
    pub train_rows: usize,
    pub valid_rows: usize,
    pub test_rows: usize,
    pub targets: Vec<TargetReport>,
    /// The test customers' ids, scores and labels of the overall target, for
    /// comparisons (the quickstart sets them beside the simulator's truth).
    pub test_scores: Vec<(String, f64, bool)>,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScoreReport {
    pub version: u32,
    pub rows: usize,
    pub as_of: DateTime<Utc>,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MlReport {
    pub trained: Option<TrainReport>,
    pub scored: Option<ScoreReport>,
    /// Why a step did not happen (no production version, nothing due, …).
    pub notes: Vec<String>,
}

/// Where models are registered for a data directory.
pub fn registry(data_dir: &Path) -> Registry {
    Registry::new(data_dir.join("ml").join("models"))
}

/// Trains when due (or `force_train`), then scores with the production version.
pub async fn run(
    lake: &Lake,
    registry: &Registry,
    config: &MlConfig,
    heartbeat_secs: u32,
    force_train: bool,
) -> Result<MlReport> {
    let options = train_options(config)?;
    let context = weft_lake::sql::session(lake).await?;
    spec::register_customers(&context).await?;
    let (first, as_of) = event_span(&context).await?;
    let mut report = MlReport::default();
    let versions = registry.versions(&config.name)?;
    let due = force_train || training_due(registry, &config.name, &versions, as_of, config)?;
    if due {
        let spec = FeatureSpec::from_config(config, heartbeat_secs)?;
        let trained = train(
            lake,
            &context,
            registry,
            config,
            spec,
            (first, as_of),
            options,
        )
        .await?;
        report.trained = Some(trained);
    } else {
        report
            .notes
            .push(format!("{} is not due for training", config.name));
    }
    match registry.production(&config.name)? {
        Some((entry, file)) => {
            let spec_path = registry.dir(&config.name, entry.version).join("spec.json");
            let spec: FeatureSpec =
                serde_json::from_str(&std::fs::read_to_string(&spec_path).map_err(|e| {
                    PropensityError::Config(format!("{}: {e}", spec_path.display()))
                })?)
                .map_err(|e| PropensityError::Config(format!("{}: {e}", spec_path.display())))?;
            report.scored = Some(score(lake, &context, &entry, &file, &spec, as_of).await?);
        }
        None => report.notes.push(format!(
            "{} has no production version: `weft ml promote {} VERSION` (`weft ml list`)",
            config.name, config.name
        )),
    }
    Ok(report)
}

fn train_options(config: &MlConfig) -> Result<TrainOptions> {
    let learners = config
        .learners
        .parse()
        .map_err(|e| PropensityError::Config(format!("ml.learners: {e}")))?;
    if !["never", "first", "better"].contains(&config.promote.as_str()) {
        return Err(PropensityError::Config(format!(
            "ml.promote: {:?} is not never, first or better",
            config.promote
        )));
    }
    if config.prediction_days == 0 || config.training_cutoffs == 0 || config.step_days == 0 {
        return Err(PropensityError::Config(
            "ml.prediction_days, ml.training_cutoffs and ml.step_days must be at least 1".into(),
        ));
    }
    Ok(TrainOptions {
        learners,
        time_budget: std::time::Duration::from_secs(config.time_budget_secs),
        seed: config.seed,
        ..TrainOptions::default()
    })
}

/// When the lake's events begin, and "now": the day after the latest event, at midnight UTC.
async fn event_span(context: &SessionContext) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    if !weft_lake::sql::has_table(context, "atomic.events") {
        return Err(PropensityError::Missing(
            "atomic.events does not exist yet: load events first (weft run)".into(),
        ));
    }
    let batches = context
        .sql(
            "SELECT CAST(min(derived_tstamp) AS BIGINT), CAST(max(derived_tstamp) AS BIGINT) \
             FROM atomic.events",
        )
        .await?
        .collect()
        .await?;
    let micros = |i: usize| {
        batches.first().and_then(|b| {
            let column = b.column(i).as_any().downcast_ref::<Int64Array>()?;
            (!deltalake::arrow::array::Array::is_null(column, 0)).then(|| column.value(0))
        })
    };
    let (Some(first), Some(latest)) = (micros(0), micros(1)) else {
        return Err(PropensityError::Missing(
            "atomic.events holds no events yet".into(),
        ));
    };
    let first = DateTime::from_timestamp_micros(first).unwrap_or_default();
    let latest = DateTime::from_timestamp_micros(latest).unwrap_or_default();
    let day = latest.duration_trunc(Duration::days(1)).unwrap_or(latest);
    Ok((first, day + Duration::days(1)))
}

fn training_due(
    registry: &Registry,
    name: &str,
    versions: &[VersionEntry],
    as_of: DateTime<Utc>,
    config: &MlConfig,
) -> Result<bool> {
    let Some(latest) = versions.iter().max_by_key(|v| v.version) else {
        return Ok(true);
    };
    let card = weft_ml::registry::load_card(&registry.dir(name, latest.version))?;
    let trained_as_of = card.data["as_of"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc));
    Ok(trained_as_of.is_none_or(|t| as_of - t >= Duration::days(i64::from(config.retrain_days))))
}

/// Which half of the validation customers a customer is in: test when true
/// (a hash stable across runs and builds).
fn is_test(customer: &str) -> bool {
    weft_identity::stable::fnv1a(&[customer], 0) % 2 == 1
}

async fn train(
    lake: &Lake,
    context: &SessionContext,
    registry: &Registry,
    config: &MlConfig,
    mut spec: FeatureSpec,
    (first, as_of): (DateTime<Utc>, DateTime<Utc>),
    options: TrainOptions,
) -> Result<TrainReport> {
    let started = Instant::now();
    let window = Duration::days(i64::from(config.prediction_days));
    let valid_cutoff = as_of - window;
    let train_cutoffs: Vec<DateTime<Utc>> = (0..config.training_cutoffs)
        .map(|k| valid_cutoff - window - Duration::days(i64::from(k * config.step_days)))
        .filter(|c| *c > first + Duration::days(1))
        .collect();
    if train_cutoffs.is_empty() {
        return Err(PropensityError::Missing(format!(
            "training needs events over more than {} days (two prediction windows and a day); \
             the lake's run from {} to {}",
            2 * config.prediction_days + 1,
            first.format("%Y-%m-%d"),
            as_of.format("%Y-%m-%d")
        )));
    }
    // the categories: configured, or those bought in the training windows
    let mut converted_at = Vec::new();
    for cutoff in &train_cutoffs {
        converted_at
            .push(dataset::conversions_after(context, *cutoff, config.prediction_days).await?);
    }
    spec.categories = if config.categories.is_empty() {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for converted in &converted_at {
            seen.extend(converted.values().flatten().cloned());
        }
        seen.into_iter().take(50).collect()
    } else {
        config.categories.clone()
    };
    let mut parts = Vec::new();
    let mut part_labels: Vec<BTreeMap<String, Vec<bool>>> = Vec::new();
    for (cutoff, converted) in train_cutoffs.iter().zip(&converted_at) {
        let frame = dataset::features(context, &spec, *cutoff).await?;
        part_labels.push(dataset::labels(&frame, converted, &spec.categories));
        parts.push(frame);
    }
    let train_frame = Frame::concat(&parts)?;
    let valid_all = dataset::features(context, &spec, valid_cutoff).await?;
    let valid_converted =
        dataset::conversions_after(context, valid_cutoff, config.prediction_days).await?;
    let valid_labels_all = dataset::labels(&valid_all, &valid_converted, &spec.categories);
    let ids = valid_all.ids.clone().unwrap_or_default();
    let (test_rows, valid_rows): (Vec<usize>, Vec<usize>) =
        (0..ids.len()).partition(|i| is_test(&ids[*i]));
    let valid_frame = valid_all.take(&valid_rows);
    let test_frame = valid_all.take(&test_rows);
    let pick = |labels: &[bool], rows: &[usize]| -> Vec<bool> {
        rows.iter().map(|i| labels[*i]).collect()
    };

    let mut targets = vec![OVERALL.to_owned()];
    for category in &spec.categories {
        let target = dataset::category_target(category);
        let positives: usize = part_labels
            .iter()
            .map(|l| l[&target].iter().filter(|y| **y).count())
            .sum();
        if positives >= config.min_category_positives {
            targets.push(target);
        }
    }
    let mut models = BTreeMap::new();
    let mut cards = Vec::new();
    let mut reports = Vec::new();
    let mut test_scores = Vec::new();
    for target in &targets {
        let train_labels: Vec<bool> = part_labels.iter().flat_map(|l| l[target].clone()).collect();
        let valid_labels = pick(&valid_labels_all[target], &valid_rows);
        let test_labels = pick(&valid_labels_all[target], &test_rows);
        let train = Frame {
            label: Some(train_labels.clone()),
            ..train_frame.clone()
        };
        let valid = Frame {
            label: Some(valid_labels.clone()),
            ..valid_frame.clone()
        };
        let fit_options = options.clone();
        let fitted =
            tokio::task::spawn_blocking(move || weft_ml::fit(&train, &valid, &fit_options))
                .await
                .map_err(|e| PropensityError::Config(format!("training stopped: {e}")))??;
        let matrix = fitted.model.schema.matrix(&test_frame)?;
        let probabilities = fitted.model.probabilities(&matrix, options.threads);
        let evaluation = metrics::evaluate(&probabilities, &test_labels);
        let rate = evaluation.positives as f64 / evaluation.rows.max(1) as f64;
        reports.push(TargetReport {
            target: target.clone(),
            learner: fitted.model.learner.name().to_owned(),
            test_auc: evaluation.roc_auc,
            test_rows: evaluation.rows,
            test_positives: evaluation.positives,
            top_decile_rate: evaluation
                .deciles
                .first()
                .map_or(0.0, |d| d.conversion_rate),
            rate,
        });
        if target == OVERALL {
            let test_ids = test_frame.ids.clone().unwrap_or_default();
            test_scores = test_ids
                .into_iter()
                .zip(probabilities.iter().copied())
                .zip(test_labels.iter().copied())
                .map(|((id, p), y)| (id, p, y))
                .collect();
        }
        cards.push(TargetCard::new(
            target,
            &fitted,
            &part_labels
                .iter()
                .flat_map(|l| l[target].clone())
                .collect::<Vec<_>>(),
            &valid_labels,
            Some((&test_labels, evaluation)),
        ));
        models.insert(target.clone(), fitted.model);
        info!(target, seconds = started.elapsed().as_secs_f64(), "trained");
    }
    let day = |d: &DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let card = Card {
        name: config.name.clone(),
        version: None,
        created_at: day(&Utc::now()),
        data: serde_json::json!({
            "as_of": day(&as_of),
            "prediction_days": config.prediction_days,
            "training_cutoffs": train_cutoffs.iter().map(day).collect::<Vec<_>>(),
            "validation_cutoff": day(&valid_cutoff),
            "validation_and_test": "the validation cut-off's customers, halved by a hash of their id: \
                validation (early stopping, choice, calibration) and test (the metrics reported)",
            "table_versions": table_versions(lake).await,
            "feature_spec": config.features.as_ref().map_or("built-in".to_owned(), |p| p.display().to_string()),
            "categories": spec.categories,
        }),
        features: models[OVERALL].schema.names().map(str::to_owned).collect(),
        targets: cards,
    };
    let file = ModelFile::new(&config.name, OVERALL, models);
    let spec_json = serde_json::to_string_pretty(&spec).expect("the spec serialises");
    let entry = registry.register(
        file,
        card,
        &[("features.sql", &spec.sql), ("spec.json", &spec_json)],
    )?;
    let production = registry.production(&config.name)?;
    let promote = match config.promote.as_str() {
        "first" => production.is_none(),
        "better" => production
            .as_ref()
            .is_none_or(|(p, _)| entry.roc_auc.unwrap_or(0.0) > p.roc_auc.unwrap_or(0.0)),
        _ => false,
    };
    if promote {
        registry.promote(&config.name, entry.version)?;
    }
    Ok(TrainReport {
        version: entry.version,
        promoted: promote,
        valid_cutoff,
        train_cutoffs,
        train_rows: train_frame.rows(),
        valid_rows: valid_frame.rows(),
        test_rows: test_frame.rows(),
        targets: reports,
        test_scores,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The Delta version of each table the features read, for the model card.
async fn table_versions(lake: &Lake) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (schema, name) in [
        ("atomic", "events"),
        ("derived", "sessions"),
        ("derived", "page_views"),
        ("derived", "conversions"),
        ("derived", "users"),
        ("identity", "person_map"),
    ] {
        if let Ok(table) = lake.table(schema, name).await
            && let Some(version) = table.version()
        {
            out.insert(format!("{schema}.{name}"), version.into());
        }
    }
    serde_json::Value::Object(out)
}

async fn score(
    lake: &Lake,
    context: &SessionContext,
    entry: &VersionEntry,
    file: &ModelFile,
    spec: &FeatureSpec,
    as_of: DateTime<Utc>,
) -> Result<ScoreReport> {
    let started = Instant::now();
    let frame = dataset::features(context, spec, as_of).await?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut scores: Vec<(String, Vec<f64>)> = Vec::new();
    for (target, model) in &file.targets {
        let matrix = model.schema.matrix(&frame)?;
        scores.push((target.clone(), model.probabilities(&matrix, threads)));
    }
    let primary = scores
        .iter()
        .position(|(t, _)| *t == file.primary)
        .unwrap_or(0);
    let deciles = metrics::deciles_of(&scores[primary].1);
    let identified = identified(context).await?;
    let ids = frame.ids.clone().unwrap_or_default();
    let rows = ids.len();
    let micros = |d: DateTime<Utc>| d.timestamp_micros();
    let timestamp = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let mut fields = vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("identified", DataType::Boolean, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("score", DataType::Float64, false),
        Field::new("decile", DataType::Int32, false),
        Field::new("propensity", DataType::Utf8, false),
    ];
    let p = &scores[primary].1;
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids.clone())),
        Arc::new(BooleanArray::from(
            ids.iter()
                .map(|id| identified.get(id).copied().unwrap_or(false))
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(vec![file.name.clone(); rows])),
        Arc::new(Int64Array::from(vec![i64::from(entry.version); rows])),
        Arc::new(Float64Array::from(p.clone())),
        Arc::new(Int32Array::from(
            deciles.iter().map(|d| i32::from(*d)).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            p.iter().map(|p| propensity_label(*p)).collect::<Vec<_>>(),
        )),
    ];
    for (target, values) in &scores {
        if *target == file.primary {
            continue;
        }
        let name = format!("score_{}", target.trim_start_matches("converted_"));
        fields.push(Field::new(&name, DataType::Float64, false));
        columns.push(Arc::new(Float64Array::from(values.clone())));
    }
    fields.push(Field::new("as_of", timestamp(), false));
    fields.push(Field::new("scored_at", timestamp(), false));
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(vec![micros(as_of); rows]).with_timezone("UTC"),
    ));
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(vec![micros(Utc::now()); rows]).with_timezone("UTC"),
    ));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let table = lake.table("ml", "scores").await?;
    table
        .write(vec![batch])
        .with_save_mode(SaveMode::Overwrite)
        .with_schema_mode(SchemaMode::Overwrite)
        .await
        .map_err(|source| PropensityError::Delta {
            table: "ml.scores".into(),
            source: Box::new(source),
        })?;
    Ok(ScoreReport {
        version: entry.version,
        rows,
        as_of,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Whether each customer is a resolved one (not an anonymous cookie).
async fn identified(context: &SessionContext) -> Result<HashMap<String, bool>> {
    let batches = context
        .sql("SELECT customer_id, bool_or(identified) FROM cookie_customers GROUP BY customer_id")
        .await?
        .collect()
        .await?;
    let mut out = HashMap::new();
    for batch in batches {
        let ids = deltalake::arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        let ids = deltalake::arrow::array::AsArray::as_string::<i32>(&ids);
        let flags = deltalake::arrow::array::AsArray::as_boolean(batch.column(1).as_ref());
        for row in 0..batch.num_rows() {
            out.insert(ids.value(row).to_owned(), flags.value(row));
        }
    }
    Ok(out)
}

/// The spec's features at `cutoff` (default: the validation cut-off, a
/// window before now) with each target's label when the window after it is
/// complete, for a look at the data or training elsewhere.
pub async fn features_at(
    lake: &Lake,
    config: &MlConfig,
    heartbeat_secs: u32,
    cutoff: Option<DateTime<Utc>>,
) -> Result<(Frame, BTreeMap<String, Vec<bool>>, DateTime<Utc>)> {
    let context = weft_lake::sql::session(lake).await?;
    spec::register_customers(&context).await?;
    let (_, as_of) = event_span(&context).await?;
    let window = Duration::days(i64::from(config.prediction_days));
    let cutoff = cutoff.unwrap_or(as_of - window);
    let mut spec = FeatureSpec::from_config(config, heartbeat_secs)?;
    let converted = dataset::conversions_after(&context, cutoff, config.prediction_days).await?;
    // the categories known by the cut-off: a list from after it would leak
    spec.categories = if config.categories.is_empty() {
        dataset::categories_before(&context, cutoff).await?
    } else {
        config.categories.clone()
    };
    let frame = dataset::features(&context, &spec, cutoff).await?;
    let labels = if cutoff + window <= as_of {
        dataset::labels(&frame, &converted, &spec.categories)
    } else {
        BTreeMap::new()
    };
    Ok((frame, labels, cutoff))
}
