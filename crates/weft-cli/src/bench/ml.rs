//! `weft bench ml`: weft's trainers beside LightGBM and scikit-learn's
//! LogisticRegression, on the same rows and the same split, in one run:
//! held-out ROC AUC, training time and scoring rows per second.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_core::Config;
use weft_ml::bins::Binner;
use weft_ml::gbdt::{self, GbdtParams};
use weft_ml::logistic::{self, LogisticParams};
use weft_ml::metrics::roc_auc;
use weft_ml::model::{Calibration, Learner, Model};
use weft_ml::train::holdout_split;
use weft_ml::{CsvRoles, FeatureSchema, Frame, Matrix};

#[derive(Args)]
pub struct MlArgs {
    /// Rows of the generated data set (a known non-linear logit with
    /// categorical effects and missing values), when no --csv is given.
    #[arg(long, default_value_t = 500_000)]
    pub rows: usize,
    /// Benchmark on this CSV file instead (with --label).
    #[arg(long, value_name = "FILE", requires = "label")]
    pub csv: Option<PathBuf>,
    #[arg(long, value_name = "COLUMN")]
    pub label: Option<String>,
    #[arg(long, value_name = "COLUMN")]
    pub id: Option<String>,
    /// Rows scored to measure scoring speed.
    #[arg(long, default_value_t = 1_000_000)]
    pub score_rows: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

const PEER_SCRIPT: &str = r#"
import json, sys, time
import numpy as np, pandas as pd
import lightgbm as lgb
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.impute import SimpleImputer
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import make_pipeline

dir, label, id_col, score_rows, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
def read(name):
    frame = pd.read_csv(f"{dir}/{name}.csv")
    y = frame.pop(label).astype(int).values
    if id_col:
        frame = frame.drop(columns=[id_col])
    return frame, y
train, y_train = read("train"); valid, y_valid = read("valid"); test, y_test = read("test")
categorical = [c for c in train.columns if not pd.api.types.is_numeric_dtype(train[c])]
for c in categorical:
    kinds = pd.CategoricalDtype(sorted(train[c].dropna().unique()))
    for f in (train, valid, test):
        f[c] = f[c].astype(kinds)
big = pd.concat([test] * (score_rows // len(test) + 1), ignore_index=True).iloc[:score_rows]
out = {"lightgbm": lgb.__version__}
params = dict(objective="binary", learning_rate=0.1, num_leaves=31, min_data_in_leaf=20,
              lambda_l2=0.0, max_bin=255, num_threads=threads, verbose=-1, seed=42)
start = time.perf_counter()
d_train = lgb.Dataset(train, y_train, categorical_feature=categorical or "auto")
d_valid = lgb.Dataset(valid, y_valid, reference=d_train)
booster = lgb.train(params, d_train, num_boost_round=1000, valid_sets=[d_valid],
                    callbacks=[lgb.early_stopping(30, verbose=False)])
out["lightgbm_train_s"] = time.perf_counter() - start
out["lightgbm_rounds"] = booster.best_iteration
out["lightgbm_auc"] = roc_auc_score(y_test, booster.predict(test, num_iteration=booster.best_iteration))
start = time.perf_counter()
booster.predict(big, num_iteration=booster.best_iteration)
out["lightgbm_score_rows_s"] = len(big) / (time.perf_counter() - start)

numeric = [c for c in train.columns if c not in categorical]
prep = ColumnTransformer([
    ("num", make_pipeline(SimpleImputer(add_indicator=True), StandardScaler()), numeric),
    ("cat", OneHotEncoder(handle_unknown="ignore", max_categories=100), categorical),
])
start = time.perf_counter()
lr = make_pipeline(prep, LogisticRegression(C=1.0, max_iter=200))
lr.fit(train, y_train)
out["sklearn_lr_train_s"] = time.perf_counter() - start
out["sklearn_lr_auc"] = roc_auc_score(y_test, lr.predict_proba(test)[:, 1])
start = time.perf_counter()
lr.predict_proba(big)
out["sklearn_lr_score_rows_s"] = len(big) / (time.perf_counter() - start)
print(json.dumps(out))
"#;

pub async fn run(_config: Config, args: MlArgs) -> Result<()> {
    tokio::task::spawn_blocking(move || bench(args)).await?
}

fn bench(args: MlArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (frame, label, truth) = match &args.csv {
        Some(path) => {
            let label = args.label.clone().context("--label")?;
            let roles = CsvRoles {
                label: Some(label.clone()),
                id: args.id.clone(),
                exclude: Vec::new(),
            };
            (Frame::read_csv(path, &roles)?, label, None)
        }
        None => {
            let (frame, p) = generate(args.rows, args.seed);
            (frame, "y".to_owned(), Some(p))
        }
    };
    let (train_rows, valid_rows, test_rows) = holdout_split(&frame, 0.2, 0.2, args.seed);
    let best = truth.and_then(|p| {
        let labels = frame.label.as_deref().unwrap_or(&[]);
        let p: Vec<f64> = test_rows.iter().map(|i| p[*i]).collect();
        let y: Vec<bool> = test_rows.iter().map(|i| labels[*i]).collect();
        roc_auc(&p, &y)
    });
    let parts = [
        ("train", frame.take(&train_rows)),
        ("valid", frame.take(&valid_rows)),
        ("test", frame.take(&test_rows)),
    ];
    for (name, part) in &parts {
        write_csv(&dir.path().join(format!("{name}.csv")), part, &label)?;
    }
    let [(_, train), (_, valid), (_, test)] = &parts;
    println!(
        "weft bench ml: {} rows ({} features, {:.1}% positive), {threads} threads; train/validation/test {}/{}/{}",
        frame.rows(),
        frame.columns.len(),
        frame.positives() as f64 / frame.rows().max(1) as f64 * 100.0,
        train.rows(),
        valid.rows(),
        test.rows()
    );
    if let Some(best) = best {
        println!("  best possible test AUC (the true probabilities): {best:.4}");
    }
    let y = |f: &Frame| f.label.clone().unwrap_or_default();
    let (y_train, y_valid, y_test) = (y(train), y(valid), y(test));

    // weft's trees: matrix, bins and boosting, as LightGBM's time includes its Dataset
    let started = Instant::now();
    let schema = FeatureSchema::of(train);
    let train_matrix = schema.matrix(train)?;
    let valid_matrix = schema.matrix(valid)?;
    let binner = Binner::fit(&schema, &train_matrix, 255);
    let params = GbdtParams {
        threads,
        ..GbdtParams::default()
    };
    let model = gbdt::train(
        &binner,
        (&binner.bin(&train_matrix), &y_train),
        Some((&binner.bin(&valid_matrix), &y_valid)),
        &params,
    );
    let gbdt_seconds = started.elapsed().as_secs_f64();
    let rounds = model.trees.len();
    let gbdt_model = Model {
        schema: schema.clone(),
        learner: Learner::Gbdt(model),
        calibration: Calibration::default(),
    };
    let started = Instant::now();
    let lr = logistic::train(&schema, &train_matrix, &y_train, &LogisticParams::default());
    let lr_seconds = started.elapsed().as_secs_f64();
    let lr_model = Model {
        schema: schema.clone(),
        learner: Learner::Logistic(lr),
        calibration: Calibration::default(),
    };
    let test_matrix = schema.matrix(test)?;
    let big = repeat(&test_matrix, args.score_rows);
    let mut weft = Vec::new();
    for (name, model, seconds) in [
        ("weft gbdt", &gbdt_model, gbdt_seconds),
        ("weft logistic", &lr_model, lr_seconds),
    ] {
        let auc = roc_auc(&model.probabilities(&test_matrix, threads), &y_test);
        let started = Instant::now();
        let scored = model.probabilities(&big, threads);
        let rate = scored.len() as f64 / started.elapsed().as_secs_f64();
        weft.push((name, auc, seconds, rate));
    }

    let output = std::process::Command::new("python3")
        .args(["-c", PEER_SCRIPT])
        .arg(dir.path())
        .arg(&label)
        .arg(args.id.as_deref().unwrap_or(""))
        .arg(args.score_rows.to_string())
        .arg(threads.to_string())
        .output()
        .context("python3 is needed to run LightGBM and scikit-learn")?;
    let peers: Option<serde_json::Value> = if output.status.success() {
        serde_json::from_str(
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .last()
                .unwrap_or(""),
        )
        .ok()
    } else {
        println!(
            "  peers not run: pip install lightgbm scikit-learn pandas ({})",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        None
    };
    println!(
        "  {:<22} {:>9} {:>10} {:>16}",
        "learner", "test AUC", "train s", "score rows/s"
    );
    let line = |name: &str, auc: Option<f64>, seconds: f64, rate: f64, extra: String| {
        println!(
            "  {name:<22} {:>9} {seconds:>10.2} {rate:>16.0}{extra}",
            auc.map_or("n/a".into(), |a| format!("{a:.4}"))
        );
    };
    let (name, auc, seconds, rate) = weft[0];
    line(name, auc, seconds, rate, format!("  ({rounds} rounds)"));
    if let Some(p) = &peers {
        line(
            &format!("lightgbm {}", p["lightgbm"].as_str().unwrap_or("")),
            p["lightgbm_auc"].as_f64(),
            p["lightgbm_train_s"].as_f64().unwrap_or(f64::NAN),
            p["lightgbm_score_rows_s"].as_f64().unwrap_or(f64::NAN),
            format!("  ({} rounds)", p["lightgbm_rounds"]),
        );
    }
    let (name, auc, seconds, rate) = weft[1];
    line(name, auc, seconds, rate, String::new());
    if let Some(p) = &peers {
        line(
            "sklearn LogisticRegr.",
            p["sklearn_lr_auc"].as_f64(),
            p["sklearn_lr_train_s"].as_f64().unwrap_or(f64::NAN),
            p["sklearn_lr_score_rows_s"].as_f64().unwrap_or(f64::NAN),
            String::new(),
        );
        if let (Some(ours), Some(theirs)) = (weft[0].1, p["lightgbm_auc"].as_f64()) {
            println!(
                "  weft gbdt − lightgbm: AUC {:+.4}, training time {:.0}% of lightgbm's",
                ours - theirs,
                weft[0].2 / p["lightgbm_train_s"].as_f64().unwrap_or(f64::NAN) * 100.0
            );
        }
    }
    if weft[0].1.is_none() {
        bail!("the test rows hold one outcome only");
    }
    Ok(())
}

/// The matrix's rows over and over until there are `rows`.
fn repeat(matrix: &Matrix, rows: usize) -> Matrix {
    let mut data = Vec::with_capacity(rows * matrix.cols);
    while data.len() < rows * matrix.cols {
        let take = (rows * matrix.cols - data.len()).min(matrix.data.len());
        data.extend_from_slice(&matrix.data[..take]);
    }
    Matrix {
        rows,
        cols: matrix.cols,
        data,
    }
}

fn write_csv(path: &Path, frame: &Frame, label: &str) -> Result<()> {
    let file = std::fs::File::create(path)?;
    let mut out = std::io::BufWriter::new(file);
    let mut header: Vec<String> = frame.columns.iter().map(|c| c.name.clone()).collect();
    header.push(label.to_owned());
    writeln!(out, "{}", header.join(","))?;
    let labels = frame.label.as_deref().unwrap_or(&[]);
    let mut line = String::new();
    for (row, positive) in labels.iter().enumerate() {
        line.clear();
        for column in &frame.columns {
            if let Some(text) = column.text(row) {
                line.push_str(&text);
            }
            line.push(',');
        }
        line.push(if *positive { '1' } else { '0' });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// Rows whose outcome follows a known non-linear logit: interactions, a
/// periodic effect, counts, missing values that mean something, and two
/// categorical features; also each row's true probability.
fn generate(rows: usize, seed: u64) -> (Frame, Vec<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let countries: Vec<String> = (0..20).map(|i| format!("C{i:02}")).collect();
    let channels = [
        "direct",
        "organic",
        "paid_search",
        "paid_social",
        "email",
        "referral",
        "display",
        "affiliate",
    ];
    let country_effect: Vec<f64> = (0..20).map(|_| rng.random_range(-0.6..0.6)).collect();
    let channel_effect: Vec<f64> = (0..8).map(|_| rng.random_range(-0.8..0.8)).collect();
    let mut numeric: Vec<Vec<f64>> = (0..10).map(|_| Vec::with_capacity(rows)).collect();
    let mut country = Vec::with_capacity(rows);
    let mut channel = Vec::with_capacity(rows);
    let mut label = Vec::with_capacity(rows);
    let mut truth = Vec::with_capacity(rows);
    let normal = |rng: &mut StdRng| {
        let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    };
    for _ in 0..rows {
        let x1 = normal(&mut rng);
        let x2: f64 = rng.random();
        let x3 = (1.5 * normal(&mut rng)).exp().floor();
        let x4 = if rng.random_bool(0.2) {
            f64::NAN
        } else {
            normal(&mut rng)
        };
        let c = (rng.random::<f64>().powi(2) * 20.0) as usize;
        let h = rng.random_range(0..8);
        let logit = -2.6
            + 0.8 * x1
            + 1.2 * (3.0 * x2).sin()
            + 0.5 * x3.ln_1p()
            + if x4.is_nan() { 0.4 } else { 0.6 * x4.max(0.0) }
            + 0.5 * x1 * x2
            + country_effect[c]
            + channel_effect[h];
        let p = 1.0 / (1.0 + (-logit).exp());
        numeric[0].push(x1);
        numeric[1].push(x2);
        numeric[2].push(x3);
        numeric[3].push(x4);
        for column in numeric.iter_mut().skip(4) {
            column.push(normal(&mut rng));
        }
        country.push(Some(countries[c].as_str()));
        channel.push(Some(channels[h]));
        label.push(rng.random_bool(p));
        truth.push(p);
    }
    let mut columns: Vec<weft_ml::Column> = numeric
        .into_iter()
        .enumerate()
        .map(|(i, values)| weft_ml::Column::numeric(format!("x{}", i + 1), values))
        .collect();
    columns.push(weft_ml::Column::categorical("country", &country));
    columns.push(weft_ml::Column::categorical("channel", &channel));
    (
        Frame {
            ids: None,
            columns,
            label: Some(label),
        },
        truth,
    )
}
