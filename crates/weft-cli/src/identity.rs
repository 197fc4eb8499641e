//! `weft identity link`: record linkage over any CSV files.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use weft_core::Config;
use weft_core::config::{IdentityConfig, IdentitySourceConfig};
use weft_identity::{Change, LinkOptions, Linkage, Mapping, RecordKey, Rule, read_csv};

use crate::UsageError;

#[derive(Subcommand)]
pub enum IdentityCommand {
    /// Deduplicate one CSV file, or link and deduplicate several, into clusters of records
    /// that are one person.
    Link(LinkArgs),
    /// Why a customer's records are one customer: each link's rule or match weight per
    /// field, and the path from one record to every other.
    Explain(ExplainArgs),
}

#[derive(Args)]
pub struct ExplainArgs {
    /// A customer id, source:record_id, a record id, or an identifier (email, phone, user id, cookie).
    pub id: String,
    /// Print the explanation as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct LinkArgs {
    /// A CSV file with a header row; its name (without .csv) is its source.
    #[arg(long = "records", value_name = "FILE", required = true)]
    pub records: Vec<PathBuf>,
    /// The column holding each record's id (each file uses the first it has; default: its first column).
    #[arg(long = "id-column", value_name = "COLUMN")]
    pub id_columns: Vec<String>,
    /// COLUMN=FIELD: a column's identity field (first_name, last_name, full_name, email, phone,
    /// dob, street_number, address, city, postcode, state, country, national_id, user_id).
    #[arg(long = "map", value_name = "COLUMN=FIELD", required = true)]
    pub map: Vec<String>,
    /// Where to write source,record_id,cluster_id.
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// Pairs at or above this match probability are linked.
    #[arg(long, default_value_t = 0.9)]
    pub threshold: f64,
    /// Also write every link: its rule or match weight per field, and whether a guard refused it.
    #[arg(long, value_name = "FILE")]
    pub explain: Option<PathBuf>,
    /// A deterministic rule (fields joined by +, e.g. email+first_name), in order; replaces the defaults.
    #[arg(long = "rule", value_name = "FIELDS")]
    pub rules: Vec<String>,
    /// A blocking rule (fields joined by +); replaces the defaults.
    #[arg(long = "block", value_name = "FIELDS")]
    pub blocks: Vec<String>,
    /// Phones without a country code are read in this country (ISO 3166 alpha-2).
    #[arg(long, default_value = "GB")]
    pub region: String,
    /// Read 03/04/1990 as March 4th (default: 3 April).
    #[arg(long)]
    pub month_first: bool,
    /// Keep customer ids stable across runs: read the previous run's
    /// source,record_id,customer_id from FILE if it exists, write this run's there,
    /// and append merges, splits and new customers to FILE's `.changes.csv` beside it.
    #[arg(long, value_name = "FILE")]
    pub person_map: Option<PathBuf>,
}

pub async fn run(config: Config, command: IdentityCommand) -> Result<()> {
    match command {
        IdentityCommand::Link(args) => tokio::task::spawn_blocking(move || link(args)).await?,
        IdentityCommand::Explain(args) => explain(&config, &args).await,
    }
}

async fn explain(config: &Config, args: &ExplainArgs) -> Result<()> {
    let lake = weft_lake::Lake::new(&config.data_dir);
    let context = weft_lake::sql::session_of(&lake, &explain_tables(&[])).await?;
    let explanation = match weft_profiles::explain(&context, &args.id).await {
        Ok(Some(explanation)) => explanation,
        Ok(None) => {
            return Err(UsageError(format!(
                "no customer, record or identifier {:?} in identity.person_map (run `weft run identity` first)",
                args.id
            ))
            .into());
        }
        Err(weft_profiles::ProfilesError::Config(message)) => {
            return Err(UsageError(message).into());
        }
        Err(error) => return Err(error.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
        return Ok(());
    }
    print!("{}", explanation_text(&explanation));
    Ok(())
}

/// The tables `weft_profiles::explain` reads, and `more`, as `session_of` takes them.
pub(crate) fn explain_tables(more: &[(&str, &str)]) -> Vec<(String, String)> {
    weft_profiles::explain::TABLES
        .iter()
        .chain(more)
        .map(|(schema, table)| ((*schema).to_owned(), (*table).to_owned()))
        .collect()
}

/// The explanation as a person reads it.
pub(crate) fn explanation_text(e: &weft_profiles::Explanation) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "customer {}", e.customer_id);
    if let Some((retired, run)) = &e.merged_from {
        let _ = writeln!(
            out,
            "  ({retired} was merged into it in identity run {run})"
        );
    }
    let _ = writeln!(
        out,
        "  records ({}): {}",
        e.records.len(),
        e.records.join(", ")
    );
    if !e.identifiers.is_empty() {
        let identifiers: Vec<String> = e
            .identifiers
            .iter()
            .map(|(kind, value)| format!("{kind} {value}"))
            .collect();
        let _ = writeln!(out, "  identifiers: {}", identifiers.join(", "));
    }
    let describe = |link: &weft_profiles::explain::Evidence| match &link.rule {
        Some(rule) => format!("rule {rule}"),
        None => {
            let mut terms = vec![format!("prior {:+.2}", link.prior_weight)];
            terms.extend(link.terms.iter().map(|t| match &t.level {
                Some(level) => format!("{} {level} ({:+.2})", t.comparison, t.weight),
                None => format!("{} missing", t.comparison),
            }));
            format!(
                "probability {:.5}, weight {:.2} = {}",
                link.match_probability,
                link.match_weight,
                terms.join(", ")
            )
        }
    };
    if !e.links.is_empty() {
        let _ = writeln!(out, "links, strongest first:");
        for (i, link) in e.links.iter().enumerate() {
            let _ = writeln!(
                out,
                "  [{}] {} - {}: {}",
                i + 1,
                link.left,
                link.right,
                describe(link)
            );
        }
        let _ = writeln!(out, "paths from {}:", e.start);
        for (member, chain) in &e.paths {
            let mut at = e.start.as_str();
            let mut steps = vec![at.to_owned()];
            for &i in chain {
                let link = &e.links[i];
                at = if link.left == at {
                    &link.right
                } else {
                    &link.left
                };
                steps.push(format!("[{}] {at}", i + 1));
            }
            let _ = writeln!(out, "  {member}: {}", steps.join(" -> "));
        }
    }
    if !e.refused.is_empty() {
        let _ = writeln!(out, "refused by a guard (kept as separate customers):");
        for link in &e.refused {
            let _ = writeln!(
                out,
                "  {} - {}: {}; {}",
                link.left,
                link.right,
                link.refused.as_deref().unwrap_or(""),
                describe(link)
            );
        }
    }
    if !e.changes.is_empty() {
        let _ = writeln!(out, "history:");
        for (run, change) in &e.changes {
            let _ = writeln!(out, "  run {run}: {change}");
        }
    }
    out
}

fn link(args: LinkArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.threshold) {
        return Err(UsageError("--threshold must be between 0 and 1".to_owned()).into());
    }
    let mut mapping = Mapping {
        id_columns: args.id_columns.clone(),
        ..Mapping::default()
    };
    for map in &args.map {
        mapping
            .add(map)
            .map_err(|e| UsageError(format!("--map {map}: {e}")))?;
    }
    let parse_rules = |texts: &[String], flag: &str| -> Result<Option<Vec<Rule>>> {
        if texts.is_empty() {
            return Ok(None);
        }
        let rules = texts
            .iter()
            .map(|text| {
                text.parse::<Rule>()
                    .map_err(|e| UsageError(format!("{flag} {text}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(rules))
    };
    let options = LinkOptions {
        deterministic: parse_rules(&args.rules, "--rule")?,
        blocking: parse_rules(&args.blocks, "--block")?,
        threshold: args.threshold,
        normalise: weft_identity::NormaliseOptions {
            default_region: args.region.to_ascii_uppercase(),
            day_first: !args.month_first,
        },
        ..LinkOptions::default()
    };

    let started = Instant::now();
    let paths: Vec<&std::path::Path> = args.records.iter().map(PathBuf::as_path).collect();
    let unknown = weft_identity::source::unknown_columns(&paths, &mapping)
        .map_err(|e| UsageError(e.to_string()))?;
    if !unknown.is_empty() {
        return Err(UsageError(format!(
            "--map names columns no file has: {}",
            unknown.join(", ")
        ))
        .into());
    }
    let mut sources = std::collections::HashSet::new();
    let mut records = Vec::new();
    for path in &args.records {
        // the file's name is its source: two files of one name would mix their ids
        if !sources.insert(path.file_stem().unwrap_or_default().to_owned()) {
            return Err(UsageError(format!(
                "two files are named {:?}: sources need distinct file names",
                path.file_stem().unwrap_or_default()
            ))
            .into());
        }
        records.extend(read_csv(path, &mapping).map_err(|e| UsageError(e.to_string()))?);
    }
    let previous = match &args.person_map {
        Some(path) if path.exists() => read_person_map(path)?,
        _ => HashMap::new(),
    };
    let read_time = started.elapsed();
    let linkage = weft_identity::link(&records, &mapping.fields(), &options);
    let (customer_ids, changes) = customer_ids(&linkage, &previous);
    write_clusters(&args.output, &linkage, &customer_ids)?;
    if let Some(path) = &args.person_map {
        write_person_map(path, &linkage, &customer_ids, &changes)?;
    }
    if let Some(path) = &args.explain {
        write_explain(path, &linkage)?;
    }
    let elapsed = started.elapsed();
    let clusters = linkage.clusters.iter().max().map_or(0, |c| c + 1);
    let t = &linkage.timings;
    let compare_secs = t.compare.as_secs_f64().max(1e-9);
    println!(
        "linked {} records from {} source(s) into {clusters} clusters in {:.2} s ({:.0} records/s)",
        linkage.records.len(),
        linkage.sources.len(),
        elapsed.as_secs_f64(),
        linkage.records.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  blocking {} → {} candidate pairs compared ({:.0} pairs/s){}",
        listed(&linkage.blocking),
        linkage.pairs_compared,
        linkage.pairs_compared as f64 / compare_secs,
        if linkage.blocking_stats.oversized_blocks > 0 {
            format!(
                "; {} blocks over {} records left out",
                linkage.blocking_stats.oversized_blocks, options.max_block_size
            )
        } else {
            String::new()
        }
    );
    let refused = linkage.links.iter().filter(|l| l.refused.is_some()).count();
    println!(
        "  {} links at p >= {} ({} by rules: {}), {refused} refused by guards; prior {:.2e}, {} EM iterations",
        linkage.links.len(),
        args.threshold,
        linkage.links.iter().filter(|l| l.rule.is_some()).count(),
        listed(&linkage.deterministic),
        linkage.model.prior,
        linkage.model.em_iterations
    );
    println!(
        "  read {:.2} s, normalise {:.2} s, block {:.2} s, compare {:.2} s, learn {:.2} s, score and cluster {:.2} s",
        read_time.as_secs_f64(),
        t.normalise.as_secs_f64(),
        t.block.as_secs_f64(),
        t.compare.as_secs_f64(),
        t.train.as_secs_f64(),
        t.cluster.as_secs_f64()
    );
    if let Some(path) = &args.person_map {
        let count = |kind: &str| changes.iter().filter(|c| c.kind() == kind).count();
        println!(
            "  customer ids: {} kept from {}, {} new, {} merged into another, {} split off, {} gone",
            previous.values().collect::<HashSet<_>>().len() - count("merged") - count("gone"),
            path.display(),
            count("new"),
            count("merged"),
            count("split"),
            count("gone")
        );
    }
    println!("  clusters written to {}", args.output.display());
    Ok(())
}

/// Stable customer ids for a linkage, keeping `previous` ones (see `weft_identity::stable`).
pub fn customer_ids(
    linkage: &Linkage,
    previous: &HashMap<RecordKey, String>,
) -> (Vec<String>, Vec<Change>) {
    let keys: Vec<RecordKey> = linkage
        .records
        .iter()
        .map(|r| (linkage.sources[r.source as usize].clone(), r.id.clone()))
        .collect();
    weft_identity::assign(&keys, &linkage.clusters, previous)
}

fn read_person_map(path: &std::path::Path) -> Result<HashMap<RecordKey, String>> {
    let mut reader = csv::Reader::from_path(path)
        .with_context(|| format!("cannot read the person map {}", path.display()))?;
    if reader.headers()? != vec!["source", "record_id", "customer_id"] {
        return Err(UsageError(format!(
            "{} is not a person map: its header must be source,record_id,customer_id",
            path.display()
        ))
        .into());
    }
    let mut map = HashMap::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{} row {}", path.display(), line + 2))?;
        map.insert((row[0].to_owned(), row[1].to_owned()), row[2].to_owned());
    }
    Ok(map)
}

/// Writes the map beside itself and renames it into place, so a crash leaves the old one whole.
fn write_person_map(
    path: &std::path::Path,
    linkage: &Linkage,
    customer_ids: &[String],
    changes: &[Change],
) -> Result<()> {
    let changes_path = path.with_extension("changes.csv");
    let new_file = !changes_path.exists();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&changes_path)
        .with_context(|| format!("cannot write {}", changes_path.display()))?;
    let mut out = csv::Writer::from_writer(file);
    if new_file {
        out.write_record(["run_at", "change", "customer_id", "other_customer_id"])?;
    }
    let run_at = chrono_now();
    for change in changes {
        out.write_record([
            run_at.as_str(),
            change.kind(),
            change.customer_id(),
            change.other().unwrap_or(""),
        ])?;
    }
    out.flush()?;

    let temporary = path.with_extension("csv.tmp");
    let mut out = csv::Writer::from_writer(create(&temporary)?);
    out.write_record(["source", "record_id", "customer_id"])?;
    for (record, id) in linkage.records.iter().zip(customer_ids) {
        out.write_record([
            linkage.sources[record.source as usize].as_str(),
            record.id.as_str(),
            id,
        ])?;
    }
    out.into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", temporary.display()))?
        .into_inner()?
        .sync_all()?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

fn chrono_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    chrono::DateTime::from_timestamp_millis(now.as_millis() as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Rules as the user would write them, comma-separated.
fn listed(rules: &[Rule]) -> String {
    rules
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn create(path: &std::path::Path) -> Result<std::io::BufWriter<std::fs::File>> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(std::io::BufWriter::new(file))
}

fn write_clusters(
    path: &std::path::Path,
    linkage: &Linkage,
    customer_ids: &[String],
) -> Result<()> {
    let mut out = csv::Writer::from_writer(create(path)?);
    out.write_record(["source", "record_id", "cluster_id", "customer_id"])?;
    for ((record, cluster), id) in linkage
        .records
        .iter()
        .zip(&linkage.clusters)
        .zip(customer_ids)
    {
        out.write_record([
            linkage.sources[record.source as usize].as_str(),
            record.id.as_str(),
            &cluster.to_string(),
            id,
        ])?;
    }
    out.flush()?;
    Ok(())
}

/// Every link with its evidence: the rule, or each comparison's level and weight.
fn write_explain(path: &std::path::Path, linkage: &Linkage) -> Result<()> {
    let mut out = csv::Writer::from_writer(create(path)?);
    let mut header = vec![
        "cluster_id".to_owned(),
        "left".to_owned(),
        "right".to_owned(),
        "rule".to_owned(),
        "match_probability".to_owned(),
        "match_weight".to_owned(),
        "refused".to_owned(),
        "prior_weight".to_owned(),
    ];
    for comparison in &linkage.model.comparisons {
        header.push(comparison.name().to_owned());
    }
    out.write_record(&header)?;
    for link in &linkage.links {
        let mut row = vec![
            linkage.clusters[link.a as usize].to_string(),
            linkage.label(link.a),
            linkage.label(link.b),
            link.rule
                .map(|r| linkage.deterministic[r].to_string())
                .unwrap_or_default(),
            format!("{:.6}", link.probability),
            format!("{:.2}", link.weight),
            link.refused
                .map(|r| r.name().to_owned())
                .unwrap_or_default(),
            format!("{:.2}", linkage.model.prior_weight()),
        ];
        for term in linkage.terms(link) {
            row.push(match term.level {
                Some(level) => format!(
                    "{} ({:+.2})",
                    term.comparison.levels()[level as usize],
                    term.weight
                ),
                None => "missing".to_owned(),
            });
        }
        out.write_record(&row)?;
    }
    out.flush()?;
    Ok(())
}

/// The identity config of the simulated shop: its four systems, most trusted
/// first, and the email its site's user entity carries.
pub fn simulated_config(data_dir: &std::path::Path) -> IdentityConfig {
    let sources = weft_sim::records::SOURCES
        .iter()
        .map(|(name, columns)| {
            let (updated_at, consent) = match *name {
                "crm" => (Some("created_at"), Some("marketing_opt_in")),
                "orders" => (Some("ordered_at"), None),
                "support" => (Some("opened_at"), None),
                _ => (Some("subscribed_at"), Some("consent")),
            };
            IdentitySourceConfig {
                name: (*name).to_owned(),
                path: Some(data_dir.join("records").join(format!("{name}.csv"))),
                table: None,
                postgres: None,
                id_column: columns[0].to_owned(),
                map: weft_sim::records::IDENTITY_COLUMNS
                    .iter()
                    .filter(|(column, _)| columns.contains(column))
                    .map(|(column, field)| ((*column).to_owned(), (*field).to_owned()))
                    .collect(),
                updated_at: updated_at.map(str::to_owned),
                consent: consent.map(str::to_owned),
            }
        })
        .collect();
    let mut config = IdentityConfig {
        sources,
        ..IdentityConfig::default()
    };
    config.web.emails = vec!["contexts_com_acme_user_1.email".to_owned()];
    config
}

/// What the quickstart shows of identity resolution: the run, and its
/// customers scored against the simulator's truth.
pub struct SimulatedIdentity {
    pub report: weft_profiles::IdentityReport,
    pub people: usize,
    pub evaluation: weft_identity::Evaluation,
}

/// Compares `identity.person_map` with `data_dir/truth`: each customer record
/// and each identified cookie, and the person it really is.
pub async fn evaluate_simulated(
    lake: &weft_lake::Lake,
    data_dir: &std::path::Path,
    report: weft_profiles::IdentityReport,
) -> Result<SimulatedIdentity> {
    let mut truth = HashMap::new();
    let mut reader = csv::Reader::from_path(data_dir.join("truth/records.csv"))?;
    for row in reader.records() {
        let row = row?;
        truth.insert((row[0].to_owned(), row[1].to_owned()), row[2].to_owned());
    }
    let mut reader = csv::Reader::from_path(data_dir.join("truth/identifiers.csv"))?;
    for row in reader.records() {
        let row = row?;
        if &row[0] == "domain_userid" {
            truth.insert(
                (weft_profiles::web::WEB_SOURCE.to_owned(), row[1].to_owned()),
                row[2].to_owned(),
            );
        }
    }
    let context = weft_lake::sql::session(lake).await?;
    let customers = weft_profiles::person_map::previous(&context).await?;
    let (mut predicted, mut owners) = (Vec::new(), Vec::new());
    for (key, customer) in &customers {
        if let Some(person) = truth.get(key) {
            predicted.push(customer.as_str());
            owners.push(person.as_str());
        }
    }
    Ok(SimulatedIdentity {
        report,
        people: owners.iter().collect::<HashSet<_>>().len(),
        evaluation: weft_identity::evaluate(&predicted, &owners),
    })
}
