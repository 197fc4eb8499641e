//! `weft ml`: train and score on any CSV file, and the model registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use weft_core::Config;
use weft_ml::card::{Card, TargetCard};
use weft_ml::metrics::{self, propensity_label};
use weft_ml::registry::{self, ModelFile, Registry};
use weft_ml::train::holdout_split;
use weft_ml::{CsvRoles, Frame, Learners, TrainOptions};

use crate::UsageError;

#[derive(Subcommand)]
pub enum MlCommand {
    /// Train the propensity model from the lake now (and score with the
    /// production version); or, with --csv, a model of a 0/1 column of any CSV
    /// file (types inferred, text as categories) on a random split, written
    /// with its model card to --out.
    Train(TrainArgs),
    /// Score a CSV file with a model directory (or a registered model's production version).
    Score(ScoreArgs),
    /// Write the feature spec's rows at a cut-off (default: the latest one whose
    /// window is complete) with their labels, as CSV.
    Features(FeaturesArgs),
    /// Make a registered version the production one that scoring uses.
    Promote(PromoteArgs),
    /// The registered models and their versions.
    List,
}

#[derive(Args)]
pub struct TrainArgs {
    #[arg(long, value_name = "FILE", requires_all = ["label", "out"])]
    pub csv: Option<PathBuf>,
    /// The outcome column (0/1, true/false, yes/no).
    #[arg(long, value_name = "COLUMN", requires = "csv")]
    pub label: Option<String>,
    /// A column that names the row and is not a feature.
    #[arg(long, value_name = "COLUMN")]
    pub id: Option<String>,
    /// A column to leave out of the features.
    #[arg(long, value_name = "COLUMN")]
    pub exclude: Vec<String>,
    /// Where to write model.json, card.json and card.md.
    #[arg(long, value_name = "DIR", requires = "csv")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub training: TrainingArgs,
    /// Share of rows held out for early stopping, choosing and calibrating.
    #[arg(long, default_value_t = 0.2)]
    pub valid_share: f64,
    /// Share of rows held out for the reported metrics.
    #[arg(long, default_value_t = 0.2)]
    pub test_share: f64,
}

#[derive(Args, Clone)]
pub struct TrainingArgs {
    /// Which learners to try: both, gbdt or logistic.
    #[arg(long, default_value = "both")]
    pub learners: Learners,
    /// Seconds for trying settings beyond each learner's first.
    #[arg(long, default_value_t = 60)]
    pub time_budget: u64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl TrainingArgs {
    pub fn options(&self) -> TrainOptions {
        TrainOptions {
            learners: self.learners,
            time_budget: Duration::from_secs(self.time_budget),
            seed: self.seed,
            ..TrainOptions::default()
        }
    }
}

#[derive(Args)]
pub struct ScoreArgs {
    /// A model directory (from `weft ml train --out`), or the name of a
    /// registered model, whose production version is used.
    #[arg(long, value_name = "DIR|NAME")]
    pub model: String,
    #[arg(long, value_name = "FILE")]
    pub csv: PathBuf,
    /// A column copied to the output to name each row (default: the row number).
    #[arg(long, value_name = "COLUMN")]
    pub id: Option<String>,
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct FeaturesArgs {
    /// The cut-off, a date (YYYY-MM-DD, midnight UTC).
    #[arg(long)]
    pub cutoff: Option<chrono::NaiveDate>,
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct PromoteArgs {
    pub name: String,
    pub version: u32,
}

pub fn registry(config: &Config) -> Registry {
    weft_propensity::registry(&config.data_dir)
}

pub async fn run(config: Config, command: MlCommand) -> Result<()> {
    match command {
        MlCommand::Train(args) if args.csv.is_none() => {
            let _lock = crate::data_dir::lock(&config.data_dir)?;
            let report = crate::run::run_ml(&config, true).await?;
            crate::run::print_ml(&report);
            Ok(())
        }
        MlCommand::Train(args) => tokio::task::spawn_blocking(move || train(args)).await?,
        MlCommand::Score(args) => tokio::task::spawn_blocking(move || score(&config, args)).await?,
        MlCommand::Promote(args) => {
            registry(&config)
                .promote(&args.name, args.version)
                .map_err(usage)?;
            println!(
                "{} v{} is now the production version",
                args.name, args.version
            );
            Ok(())
        }
        MlCommand::List => list(&config),
        MlCommand::Features(args) => features(&config, args).await,
    }
}

fn usage(error: weft_ml::MlError) -> anyhow::Error {
    match error {
        weft_ml::MlError::Input(message) => UsageError(message).into(),
        other => other.into(),
    }
}

fn train(args: TrainArgs) -> Result<()> {
    let (Some(csv), Some(label), Some(out)) =
        (args.csv.clone(), args.label.clone(), args.out.clone())
    else {
        return Err(UsageError("--csv needs --label and --out".into()).into());
    };
    let shares = args.valid_share + args.test_share;
    if !(args.valid_share > 0.0 && args.test_share >= 0.0 && shares < 0.9) {
        return Err(UsageError(
            "--valid-share must be above 0 and the two shares together below 0.9".into(),
        )
        .into());
    }
    let started = Instant::now();
    let roles = CsvRoles {
        label: Some(label.clone()),
        id: args.id.clone(),
        exclude: args.exclude.clone(),
    };
    let frame = Frame::read_csv(&csv, &roles).map_err(usage)?;
    let (train_rows, valid_rows, test_rows) = holdout_split(
        &frame,
        args.valid_share,
        args.test_share,
        args.training.seed,
    );
    let (train, valid, test) = (
        frame.take(&train_rows),
        frame.take(&valid_rows),
        frame.take(&test_rows),
    );
    let read = started.elapsed();
    let fitted = weft_ml::fit(&train, &valid, &args.training.options()).map_err(usage)?;
    let test_evaluation = if test.rows() > 0 {
        let matrix = fitted.model.schema.matrix(&test).map_err(usage)?;
        let probabilities = fitted.model.probabilities(&matrix, 2);
        Some(metrics::evaluate(
            &probabilities,
            test.label.as_deref().unwrap_or(&[]),
        ))
    } else {
        None
    };
    let target = TargetCard::new(
        &label,
        &fitted,
        train.label.as_deref().unwrap_or(&[]),
        valid.label.as_deref().unwrap_or(&[]),
        test_evaluation.map(|e| (test.label.as_deref().unwrap_or(&[]), e)),
    );
    let card = Card {
        name: model_name(&out),
        version: None,
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        data: serde_json::json!({
            "source": csv.display().to_string(),
            "label": label,
            "id": args.id,
            "excluded": args.exclude,
            "split": format!(
                "random, stratified, seed {}: {:.0}% train, {:.0}% validation, {:.0}% test",
                args.training.seed,
                (1.0 - shares) * 100.0,
                args.valid_share * 100.0,
                args.test_share * 100.0
            ),
        }),
        features: fitted.model.schema.names().map(str::to_owned).collect(),
        targets: vec![target],
    };
    let file = ModelFile::new(
        &card.name,
        &label,
        BTreeMap::from([(label.clone(), fitted.model.clone())]),
    );
    registry::save_dir(&out, &file, &card, &[])?;
    print_summary(&card.targets[0], frame.rows(), started.elapsed(), read);
    println!("wrote {}", out.join("model.json").display());
    Ok(())
}

fn model_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

pub fn print_summary(target: &TargetCard, rows: usize, total: Duration, read: Duration) {
    let e = target.held_out();
    let chosen = target
        .tried
        .iter()
        .find(|t| t.learner == target.learner && t.params == target.params);
    println!(
        "{rows} rows ({} train, {} validation{}), {:.1}% positive; read in {:.1} s, trained in {:.1} s",
        target.train.rows,
        target.valid.rows,
        target
            .test
            .as_ref()
            .map(|t| format!(", {} test", t.rows))
            .unwrap_or_default(),
        target.train.rate() * 100.0,
        read.as_secs_f64(),
        (total - read).as_secs_f64(),
    );
    for t in &target.tried {
        println!(
            "  tried {:<8} validation AUC {} in {:.2} s{}",
            t.learner,
            t.valid_auc.map_or("n/a".into(), |v| format!("{v:.4}")),
            t.seconds,
            t.rounds
                .map(|r| format!(" ({r} rounds)"))
                .unwrap_or_default()
        );
    }
    let which = if target.test_evaluation.is_some() {
        "test"
    } else {
        "validation"
    };
    println!(
        "kept {} ({}): {which} ROC AUC {}, PR AUC {}, log loss {:.4}, Brier {:.4}",
        target.learner,
        chosen
            .map(|t| format!("validation AUC {:.4}", t.valid_auc.unwrap_or(0.5)))
            .unwrap_or_default(),
        e.roc_auc.map_or("n/a".into(), |v| format!("{v:.4}")),
        e.pr_auc.map_or("n/a".into(), |v| format!("{v:.4}")),
        e.log_loss,
        e.brier
    );
    if let Some(top) = e.deciles.first() {
        println!(
            "top decile: {:.1}% positive vs {:.1}% overall (lift {:.2}), {:.0}% of positives",
            top.conversion_rate * 100.0,
            e.positives as f64 / e.rows.max(1) as f64 * 100.0,
            top.lift,
            top.cumulative_gain * 100.0
        );
    }
}

/// A directory path, or a registered name's production version.
pub fn resolve_model(config: &Config, model: &str) -> Result<ModelFile> {
    let dir = Path::new(model);
    if dir.join("model.json").exists() {
        return registry::load_dir(dir).map_err(usage);
    }
    match registry(config).production(model).map_err(usage)? {
        Some((_, file)) => Ok(file),
        None => Err(UsageError(format!(
            "{model} is neither a model directory nor a registered model with a production version \
             (`weft ml list`, `weft ml promote NAME VERSION`)"
        ))
        .into()),
    }
}

fn score(config: &Config, args: ScoreArgs) -> Result<()> {
    let started = Instant::now();
    let file = resolve_model(config, &args.model)?;
    let roles = CsvRoles {
        id: args.id.clone(),
        ..CsvRoles::default()
    };
    let frame = Frame::read_csv(&args.csv, &roles).map_err(usage)?;
    let read = started.elapsed();
    let scored_at = Instant::now();
    let mut columns: Vec<(String, Vec<f64>)> = Vec::new();
    for (target, model) in &file.targets {
        let matrix = model.schema.matrix(&frame).map_err(usage)?;
        columns.push((target.clone(), model.probabilities(&matrix, 2)));
    }
    let scoring = scored_at.elapsed();
    let primary = columns
        .iter()
        .position(|(t, _)| *t == file.primary)
        .context("the primary target is scored")?;
    let deciles = metrics::deciles_of(&columns[primary].1);
    let mut out = csv::Writer::from_path(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut header = vec![
        args.id.clone().unwrap_or_else(|| "row".into()),
        "score".into(),
        "decile".into(),
        "propensity".into(),
    ];
    header.extend(
        columns
            .iter()
            .filter(|(t, _)| *t != file.primary)
            .map(|(t, _)| format!("score_{t}")),
    );
    out.write_record(&header)?;
    for row in 0..frame.rows() {
        let p = columns[primary].1[row];
        let mut record = vec![
            frame
                .ids
                .as_ref()
                .map_or_else(|| (row + 1).to_string(), |ids| ids[row].clone()),
            format!("{p:.6}"),
            deciles[row].to_string(),
            propensity_label(p).to_owned(),
        ];
        record.extend(
            columns
                .iter()
                .filter(|(t, _)| *t != file.primary)
                .map(|(_, scores)| format!("{:.6}", scores[row])),
        );
        out.write_record(&record)?;
    }
    out.flush()?;
    println!(
        "scored {} rows with {}{} in {:.3} s ({:.0} rows/s; reading took {:.2} s) → {}",
        frame.rows(),
        file.name,
        file.version.map(|v| format!(" v{v}")).unwrap_or_default(),
        scoring.as_secs_f64(),
        frame.rows() as f64 / scoring.as_secs_f64().max(1e-9),
        read.as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

async fn features(config: &Config, args: FeaturesArgs) -> Result<()> {
    let lake = weft_lake::Lake::new(&config.data_dir);
    let cutoff = args
        .cutoff
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    let (frame, labels, cutoff) =
        weft_propensity::run::features_at(&lake, &config.ml, config.model.heartbeat_secs, cutoff)
            .await
            .map_err(|e| match e {
                weft_propensity::PropensityError::Missing(why)
                | weft_propensity::PropensityError::Config(why) => UsageError(why).into(),
                other => anyhow::Error::from(other),
            })?;
    let mut out = csv::Writer::from_path(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut header = vec!["customer_id".to_owned()];
    header.extend(frame.columns.iter().map(|c| c.name.clone()));
    header.extend(labels.keys().cloned());
    out.write_record(&header)?;
    let ids = frame.ids.clone().unwrap_or_default();
    for (row, id) in ids.iter().enumerate() {
        let mut record = vec![id.clone()];
        for column in &frame.columns {
            record.push(column.text(row).unwrap_or_default());
        }
        record.extend(labels.values().map(|l| u8::from(l[row]).to_string()));
        out.write_record(&record)?;
    }
    out.flush()?;
    println!(
        "{} customers' features as of {}{} → {}",
        ids.len(),
        cutoff.format("%Y-%m-%d"),
        if labels.is_empty() {
            " (no labels: the window after the cut-off is not over)".to_owned()
        } else {
            format!(", with {} labels", labels.len())
        },
        args.out.display()
    );
    Ok(())
}

fn list(config: &Config) -> Result<()> {
    let registry = registry(config);
    let names = registry.names()?;
    if names.is_empty() {
        println!("no registered models");
    }
    for name in names {
        println!("{name}");
        for v in registry.versions(&name)? {
            println!(
                "  v{:<4} {:<10} {:<8} AUC {}  {}",
                v.version,
                v.stage.to_string(),
                v.learner,
                v.roc_auc.map_or("n/a".into(), |a| format!("{a:.4}")),
                v.created_at
            );
        }
    }
    Ok(())
}

/// The propensity settings for the simulated shop: its product events name a
/// category, its sign-up and newsletter events carry marketing consent.
pub fn simulated_config() -> weft_core::config::MlConfig {
    let mut config = weft_core::config::MlConfig {
        time_budget_secs: 10,
        ..Default::default()
    };
    for (name, path) in [
        (
            "product_views",
            "unstruct_event_com_acme_product_view_1.category",
        ),
        (
            "cart_adds",
            "unstruct_event_com_acme_add_to_cart_1.category",
        ),
    ] {
        config.category_events.insert(name.into(), path.into());
    }
    for (name, path) in [
        (
            "consent_marketing",
            "unstruct_event_com_acme_sign_up_1.consent_marketing",
        ),
        (
            "newsletter",
            "unstruct_event_com_acme_newsletter_signup_1.consent_marketing",
        ),
    ] {
        config.flags.insert(name.into(), path.into());
    }
    config
}

/// The model beside the simulator's truth on the same test customers: the
/// AUC the true probabilities reach on them (the best any model could).
pub struct SimulatedEvaluation {
    pub model_auc: Option<f64>,
    pub oracle_auc: Option<f64>,
    /// Test customers whose person the truth names.
    pub matched: usize,
}

pub async fn evaluate_simulated(
    lake: &weft_lake::Lake,
    data_dir: &Path,
    trained: &weft_propensity::TrainReport,
) -> Result<SimulatedEvaluation> {
    use std::collections::HashMap;
    let truth = data_dir.join("truth");
    let mut person_of: HashMap<String, String> = HashMap::new();
    let mut reader = csv::Reader::from_path(truth.join("identifiers.csv"))?;
    for row in reader.records() {
        let row = row?;
        if &row[0] == "domain_userid" {
            person_of.insert(row[1].to_owned(), row[2].to_owned());
        }
    }
    let mut p_convert: HashMap<String, f64> = HashMap::new();
    let mut reader = csv::Reader::from_path(truth.join("people.csv"))?;
    let header = reader.headers()?.clone();
    let at = header
        .iter()
        .position(|h| h == "p_convert")
        .context("people.csv has p_convert")?;
    for row in reader.records() {
        let row = row?;
        p_convert.insert(row[0].to_owned(), row[at].parse().unwrap_or(0.0));
    }
    // a customer's person: that of its first cookie the truth knows (each
    // cookie is a record of the `web` source in the person map)
    let mut cookies: HashMap<String, Vec<String>> = HashMap::new();
    let context = weft_lake::sql::session(lake).await?;
    let mut web: Vec<(String, String)> = weft_profiles::person_map::previous(&context)
        .await?
        .into_iter()
        .filter(|((source, _), _)| source == weft_profiles::web::WEB_SOURCE)
        .map(|((_, cookie), customer)| (customer, cookie))
        .collect();
    web.sort();
    for (customer, cookie) in web {
        cookies.entry(customer).or_default().push(cookie);
    }
    let (mut model, mut oracle, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for (id, score, label) in &trained.test_scores {
        let person = cookies
            .get(id)
            .into_iter()
            .flatten()
            .chain(std::iter::once(id))
            .find_map(|cookie| person_of.get(cookie));
        if let Some(p) = person.and_then(|person| p_convert.get(person)) {
            model.push(*score);
            oracle.push(*p);
            labels.push(*label);
        }
    }
    Ok(SimulatedEvaluation {
        model_auc: metrics::roc_auc(&model, &labels),
        oracle_auc: metrics::roc_auc(&oracle, &labels),
        matched: labels.len(),
    })
}
