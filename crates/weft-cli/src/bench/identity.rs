//! `weft bench identity`: linking a simulated shop's customer records, end to
//! end (CSV in, clusters out), beside Splink (DuckDB backend) with a
//! comparable model on the same records, both scored against the truth.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use weft_core::Config;
use weft_identity::{Evaluation, LinkOptions, Mapping, evaluate, read_csv};
use weft_sim::SimOptions;
use weft_sim::out::{Outputs, Rows};

#[derive(Args)]
pub struct IdentityArgs {
    /// About how many customer records to link.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Skip Splink (it needs `pip install splink`).
    #[arg(long)]
    pub no_splink: bool,
    /// Write the simulated records, their truth and the clusters here and keep them
    /// (default: a temporary folder).
    #[arg(long, value_name = "DIR")]
    pub keep: Option<std::path::PathBuf>,
}

/// Splink 5 on DuckDB: the same blocking rules and the same kinds of
/// comparison as weft's defaults, u from 10 million random pairs, m by EM, the
/// prior from the deterministic rules, links at p ≥ 0.9, clusters by
/// connected components. It reads weft's normalised records, so it is
/// timed on linking alone.
const SPLINK_SCRIPT: &str = r#"
import json, sys, time, logging
import duckdb
from splink import Linker, DuckDBAPI, SettingsCreator, block_on
import splink.comparison_library as cl
logging.getLogger("splink").setLevel(logging.ERROR)
records, out = sys.argv[1], sys.argv[2]
started = time.perf_counter()
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
con.execute(f"CREATE TABLE records AS SELECT * FROM read_csv('{records}', all_varchar = true)")
db = DuckDBAPI(con)
settings = SettingsCreator(
    link_type="dedupe_only",
    blocking_rules_to_generate_predictions=[
        block_on("email"),
        block_on("email_local"),
        block_on("phone"),
        block_on("user_id"),
        block_on("dob"),
        block_on("postcode", "street_number"),
        block_on("surname", "substr(first_name, 1, 1)", "postcode"),
        block_on("first_name", "surname", "city"),
    ],
    comparisons=[
        cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
        cl.NameComparison("surname").configure(term_frequency_adjustments=True),
        cl.DateOfBirthComparison("dob", input_is_string=True),
        cl.EmailComparison("email"),
        cl.ExactMatch("phone"),
        cl.ExactMatch("user_id"),
        cl.PostcodeComparison("postcode"),
        cl.LevenshteinAtThresholds("street", [1, 3]),
        cl.ExactMatch("city").configure(term_frequency_adjustments=True),
    ],
    retain_matching_columns=False,
    retain_intermediate_calculation_columns=False,
)
linker = Linker(db.register("records"), settings)
linker.training.estimate_probability_two_random_records_match(
    [block_on("email", "first_name"), block_on("phone", "first_name", "surname")], recall=0.7)
linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=1)
linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
linker.training.estimate_parameters_using_expectation_maximisation(block_on("email"))
predictions = linker.inference.predict(threshold_match_probability=0.9)
clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, 0.9)
con.execute(f"COPY (SELECT unique_id, cluster_id FROM {clusters.physical_name}) TO '{out}' (HEADER)")
pairs = con.execute(f"SELECT count(*) FROM {predictions.physical_name}").fetchone()[0]
import splink
print(json.dumps({"version": splink.__version__, "seconds": time.perf_counter() - started, "links": pairs}))
"#;

pub async fn run(_config: Config, args: IdentityArgs) -> Result<()> {
    if args.records == 0 {
        bail!("--records must be at least 1");
    }
    let scratch = tempfile::Builder::new()
        .prefix("bench-identity-")
        .tempdir()
        .context("creating a scratch folder")?;
    let dir = match &args.keep {
        Some(keep) => {
            std::fs::create_dir_all(keep)?;
            keep.as_path()
        }
        None => scratch.path(),
    };
    let visitors = simulate(dir, args.records, args.seed)?;

    // weft, end to end: read the four CSV files, link, write the clusters
    let mut mapping = Mapping::default();
    for (column, field) in weft_sim::records::IDENTITY_COLUMNS {
        mapping
            .add(&format!("{column}={field}"))
            .map_err(anyhow::Error::msg)?;
    }
    let started = Instant::now();
    let mut records = Vec::new();
    for (source, _) in weft_sim::records::SOURCES {
        records.extend(read_csv(
            &dir.join(format!("records/{source}.csv")),
            &mapping,
        )?);
    }
    let linkage = tokio::task::block_in_place(|| {
        weft_identity::link(&records, &mapping.fields(), &LinkOptions::default())
    });
    let clusters_path = dir.join("weft_clusters.csv");
    let mut out = csv::Writer::from_path(&clusters_path)?;
    out.write_record(["source", "record_id", "cluster_id"])?;
    for (record, cluster) in linkage.records.iter().zip(&linkage.clusters) {
        out.write_record([
            linkage.sources[record.source as usize].as_str(),
            &record.id,
            &cluster.to_string(),
        ])?;
    }
    out.flush()?;
    let weft_seconds = started.elapsed().as_secs_f64();

    let truth = truth(dir)?;
    let keys: Vec<(String, String)> = linkage
        .records
        .iter()
        .map(|r| (linkage.sources[r.source as usize].clone(), r.id.clone()))
        .collect();
    let owners: Vec<&str> = keys
        .iter()
        .map(|k| truth.get(k).map_or("", String::as_str))
        .collect();
    let ours = evaluate(&linkage.clusters, &owners);
    let t = &linkage.timings;
    println!(
        "weft bench identity: {} customer records of {visitors} simulated visitors ({} people), 4 sources",
        linkage.records.len(),
        owners
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
    );
    println!(
        "  weft        {weft_seconds:>7.1} s end to end ({:.0} records/s): normalise {:.1} s, block {:.1} s, compare {} pairs in {:.1} s ({:.2} M pairs/s), learn {:.1} s, score and cluster {:.1} s",
        linkage.records.len() as f64 / weft_seconds,
        t.normalise.as_secs_f64(),
        t.block.as_secs_f64(),
        linkage.pairs_compared,
        t.compare.as_secs_f64(),
        linkage.pairs_compared as f64 / t.compare.as_secs_f64().max(1e-9) / 1e6,
        t.train.as_secs_f64(),
        t.cluster.as_secs_f64()
    );
    print_scores("weft", &ours);
    println!(
        "  truth       {:.4} of the true pairs are reachable: joined through records of their person sharing an email, phone, birth date, user id or street line (the rest share only a name)",
        weft_identity::eval::reachable_recall(&linkage.records, &owners)
    );
    let mut sizes: HashMap<u32, usize> = HashMap::new();
    for cluster in &linkage.clusters {
        *sizes.entry(*cluster).or_default() += 1;
    }
    let mut sizes: Vec<usize> = sizes.into_values().collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    println!(
        "  weft        largest clusters: {:?} records; {} links refused by guards",
        &sizes[..sizes.len().min(5)],
        linkage.links.iter().filter(|l| l.refused.is_some()).count()
    );

    if args.no_splink {
        return Ok(());
    }
    // Splink gets weft's normalised values, one row per record
    let normalised = dir.join("normalised.csv");
    write_normalised(&normalised, &linkage)?;
    let splink_out = dir.join("splink_clusters.csv");
    let output = std::process::Command::new("python3")
        .args(["-c", SPLINK_SCRIPT])
        .arg(&normalised)
        .arg(&splink_out)
        .output()
        .context("python3 is needed to run Splink")?;
    if !output.status.success() {
        println!(
            "  splink      not run: pip install splink ({})",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return Ok(());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .context("Splink script output")?;
    let mut cluster_of: HashMap<String, String> = HashMap::new();
    let mut reader = csv::Reader::from_path(&splink_out)?;
    for row in reader.records() {
        let row = row?;
        cluster_of.insert(row[0].to_owned(), row[1].to_owned());
    }
    let theirs: Vec<&str> = (0..linkage.records.len())
        .map(|i| cluster_of.get(&i.to_string()).map_or("", String::as_str))
        .collect();
    let splink_seconds = result["seconds"].as_f64().unwrap_or(f64::NAN);
    println!(
        "  splink {:<5}{splink_seconds:>7.1} s linking alone on DuckDB {} ({} links at p >= 0.9); weft took {:.0}% of its time",
        result["version"].as_str().unwrap_or("?"),
        duckdb_version(),
        result["links"],
        100.0 * weft_seconds / splink_seconds
    );
    print_scores("splink", &evaluate(&theirs, &owners));
    Ok(())
}

fn print_scores(name: &str, e: &Evaluation) {
    println!(
        "  {name:<11} pairwise precision {:.4} recall {:.4} F1 {:.4}; B-cubed precision {:.4} recall {:.4} F1 {:.4}",
        e.pairwise.precision,
        e.pairwise.recall,
        e.pairwise.f1,
        e.b_cubed.precision,
        e.b_cubed.recall,
        e.b_cubed.f1
    );
}

fn duckdb_version() -> String {
    std::process::Command::new("python3")
        .args(["-c", "import duckdb; print(duckdb.__version__)"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Simulated visitors until about `records` customer records exist; returns the visitors.
fn simulate(dir: &Path, records: u64, seed: u64) -> Result<u64> {
    let mut options = SimOptions {
        seed,
        ..SimOptions::default()
    };
    let sample = 2000;
    options.visitors = sample;
    let per_visitor = (0..sample)
        .map(|i| weft_sim::Person::generate(&options, i).records.len() as u64)
        .sum::<u64>()
        .max(1) as f64
        / sample as f64;
    options.visitors = ((records as f64 / per_visitor).ceil() as u64).max(1);
    let progress = ProgressBar::new(options.visitors).with_style(
        ProgressStyle::with_template("simulating visitors {bar:30} {pos}/{len}")
            .expect("valid template"),
    );
    let mut outputs = Outputs::create(dir).map_err(anyhow::Error::msg)?;
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    weft_sim::generate(
        &options,
        1000,
        threads,
        |people| Rows::of(&people),
        |rows| {
            outputs.append(rows?)?;
            progress.set_position(outputs.people());
            Ok(())
        },
    )
    .map_err(anyhow::Error::msg)?;
    outputs.finish(&options).map_err(anyhow::Error::msg)?;
    progress.finish_and_clear();
    Ok(options.visitors)
}

fn truth(dir: &Path) -> Result<HashMap<(String, String), String>> {
    let mut truth = HashMap::new();
    let mut reader = csv::Reader::from_path(dir.join("truth/records.csv"))?;
    for row in reader.records() {
        let row = row?;
        truth.insert((row[0].to_owned(), row[1].to_owned()), row[2].to_owned());
    }
    Ok(truth)
}

/// One row per record, `unique_id` its index, in the columns the Splink model compares.
fn write_normalised(path: &Path, linkage: &weft_identity::Linkage) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut csv = csv::Writer::from_writer(&mut out);
    csv.write_record([
        "unique_id",
        "first_name",
        "surname",
        "dob",
        "email",
        "email_local",
        "phone",
        "user_id",
        "postcode",
        "street_number",
        "street",
        "city",
    ])?;
    for (i, r) in linkage.records.iter().enumerate() {
        let dob = r.dob.map(|d| d.to_string()).unwrap_or_default();
        let street = [&r.address.unit, &r.address.number, &r.address.street]
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        csv.write_record([
            i.to_string().as_str(),
            &r.first,
            &r.last,
            &dob,
            &r.email,
            r.email_local(),
            &r.phone,
            &r.user_id,
            &r.postcode,
            &r.address.number,
            &street,
            &r.city,
        ])?;
    }
    csv.flush()?;
    drop(csv);
    out.flush()?;
    Ok(())
}
