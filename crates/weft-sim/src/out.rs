//! What `weft simulate` writes to a folder: customer records as CSV per source
//! (`records/`), the ground truth (`truth/`), the shop's schemas (`iglu/`),
//! and, for a backfill, the traffic itself as a raw log (`raw/`) that the
//! loader ingests as if the collector had received it at the simulated times.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use serde::Serialize;
use weft_collect::raw_log::{BulkWriter, FileLogOptions, encode_frame};

use crate::catalog::CATEGORIES;
use crate::records::SOURCES;
use crate::truth::{CategoryOutcomes, Outcomes, Scores};
use crate::{Person, SCHEMAS, SimOptions, iso_time};

pub type Result<T> = std::result::Result<T, String>;

/// The host a backfill's requests are recorded as sent to.
pub const BACKFILL_HOST: &str = "collector.shop.example.com";

/// Writers of records and truth, fed one person at a time, in index order.
pub struct Outputs {
    dir: PathBuf,
    records: Vec<csv::Writer<BufWriter<File>>>,
    people: csv::Writer<BufWriter<File>>,
    identifiers: csv::Writer<BufWriter<File>>,
    record_owners: csv::Writer<BufWriter<File>>,
    scores: Scores,
    counts: Counts,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Counts {
    pub people: u64,
    pub registered: u64,
    pub requests: u64,
    pub events: u64,
    pub cookies: u64,
    pub records: BTreeMap<&'static str, u64>,
}

/// What the truth says about the whole site; also written as `truth/summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub visitors: u64,
    pub start: String,
    pub cutoff: String,
    pub end: String,
    pub prediction_days: u32,
    #[serde(flatten)]
    pub counts: Counts,
    /// Converting in the prediction window, over every person.
    pub conversion: Outcomes,
    pub categories: Vec<CategoryOutcomes>,
}

fn create_csv(path: &Path, header: &[&str]) -> Result<csv::Writer<BufWriter<File>>> {
    let file = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut writer = csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, file));
    writer.write_record(header).map_err(|e| e.to_string())?;
    Ok(writer)
}

impl Outputs {
    pub fn create(dir: &Path) -> Result<Self> {
        for sub in ["records", "truth"] {
            fs::create_dir_all(dir.join(sub))
                .map_err(|e| format!("cannot create {}: {e}", dir.join(sub).display()))?;
        }
        install_schemas(dir)?;
        let records = SOURCES
            .iter()
            .map(|(name, columns)| {
                create_csv(&dir.join("records").join(format!("{name}.csv")), columns)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut people_header: Vec<String> = [
            "person_id",
            "household_id",
            "country",
            "registered",
            "user_id",
            "email",
            "devices",
            "visits",
            "events",
            "preferred_channel",
            "consent_marketing",
            "emailable",
            "intent",
            "price_sensitivity",
            "orders_before_cutoff",
            "p_convert",
            "converted",
        ]
        .map(String::from)
        .to_vec();
        for category in CATEGORIES {
            people_header.push(format!("p_{}", category.slug));
        }
        for category in CATEGORIES {
            people_header.push(format!("converted_{}", category.slug));
        }
        let truth = dir.join("truth");
        let people_header: Vec<&str> = people_header.iter().map(String::as_str).collect();
        Ok(Self {
            dir: dir.to_owned(),
            records,
            people: create_csv(&truth.join("people.csv"), &people_header)?,
            identifiers: create_csv(
                &truth.join("identifiers.csv"),
                &["identifier_type", "identifier", "person_id"],
            )?,
            record_owners: create_csv(
                &truth.join("records.csv"),
                &["source", "record_id", "person_id"],
            )?,
            scores: Scores::default(),
            counts: Counts::default(),
        })
    }

    pub fn add(&mut self, person: &Person) -> Result<()> {
        let error = |e: csv::Error| e.to_string();
        let truth = &person.run.truth;
        let identity = &person.run.identity;
        let id = &truth.person_id;
        let traits = &truth.traits;
        let mut row: Vec<String> = vec![
            id.clone(),
            identity
                .household
                .map(|h| format!("H{h:07}"))
                .unwrap_or_default(),
            identity.country().code.to_owned(),
            truth.registered.to_string(),
            if truth.registered {
                identity.user_id.clone()
            } else {
                String::new()
            },
            identity.email.clone(),
            truth.devices.to_string(),
            truth.visits.to_string(),
            truth.events.to_string(),
            traits.preferred_channel.as_str().to_owned(),
            traits.consent_marketing.to_string(),
            truth.emailable.to_string(),
            format!("{:.4}", traits.intent),
            format!("{:.4}", traits.price_sensitivity),
            truth.orders_before_cutoff.to_string(),
            format!("{:.6}", truth.p_convert),
            truth.converted.to_string(),
        ];
        row.extend(truth.p_category.iter().map(|p| format!("{p:.6}")));
        row.extend(truth.converted_category.iter().map(bool::to_string));
        self.people.write_record(&row).map_err(error)?;
        for (duid, nuid) in &person.run.cookies {
            self.identifiers
                .write_record(["domain_userid", duid, id])
                .map_err(error)?;
            self.identifiers
                .write_record(["network_userid", nuid, id])
                .map_err(error)?;
        }
        if truth.registered {
            self.identifiers
                .write_record(["user_id", &identity.user_id, id])
                .map_err(error)?;
        }
        if truth.registered || person.run.newsletter_at_ms.is_some() {
            self.identifiers
                .write_record(["email", &identity.email, id])
                .map_err(error)?;
        }
        for record in &person.records {
            self.records[record.source]
                .write_record(&record.fields)
                .map_err(error)?;
            self.record_owners
                .write_record([record.source_name(), record.id(), id])
                .map_err(error)?;
            *self.counts.records.entry(record.source_name()).or_default() += 1;
        }
        self.scores.add(truth);
        self.counts.people += 1;
        self.counts.registered += u64::from(truth.registered);
        self.counts.requests += person.run.requests.len() as u64;
        self.counts.events += truth.events as u64;
        self.counts.cookies += person.run.cookies.len() as u64;
        Ok(())
    }

    pub fn finish(mut self, options: &SimOptions) -> Result<Summary> {
        for writer in self.records.iter_mut().chain([
            &mut self.people,
            &mut self.identifiers,
            &mut self.record_owners,
        ]) {
            writer.flush().map_err(|e| e.to_string())?;
        }
        let (conversion, categories) = self.scores.summarise();
        let summary = Summary {
            seed: options.seed,
            visitors: options.visitors,
            start: iso_time(options.start_ms()),
            cutoff: iso_time(options.cutoff_ms()),
            end: iso_time(options.end_ms),
            prediction_days: options.prediction_days,
            counts: self.counts,
            conversion,
            categories,
        };
        let path = self.dir.join("truth").join("summary.json");
        let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
        fs::write(&path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(summary)
    }
}

/// The shop's schemas, in `dir/iglu` laid out as an Iglu registry.
pub fn install_schemas(dir: &Path) -> Result<()> {
    for (uri, schema) in SCHEMAS {
        let path = uri
            .strip_prefix("iglu:")
            .map(|rest| dir.join("iglu").join(rest))
            .ok_or_else(|| format!("not an Iglu URI: {uri}"))?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        fs::write(&path, schema).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Writes the whole simulation into `dir`: traffic as a raw log in `dir/raw`
/// (collector times are the simulated send times), records and truth.
/// `progress` is told how many people are done.
pub fn write_backfill(
    options: &SimOptions,
    dir: &Path,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(Summary, u64)> {
    options.validate()?;
    let mut outputs = Outputs::create(dir)?;
    let raw = dir.join("raw");
    let mut log = BulkWriter::open(&raw, FileLogOptions::default())
        .map_err(|e| format!("cannot open the raw log in {}: {e}", raw.display()))?;
    let collector = format!("weft-sim-{}", env!("CARGO_PKG_VERSION"));
    let chunk = 256;
    crate::generate(
        options,
        chunk,
        threads,
        |people| {
            let frames: Vec<Vec<u8>> = people
                .iter()
                .flat_map(|person| &person.run.requests)
                .map(|request| encode_frame(&request.to_payload(BACKFILL_HOST, &collector)))
                .collect();
            (people, frames)
        },
        |(people, frames)| {
            log.append(&frames)
                .map_err(|e| format!("cannot write the raw log: {e}"))?;
            for person in &people {
                outputs.add(person)?;
            }
            progress(outputs.counts.people);
            Ok(())
        },
    )?;
    let bytes = log.bytes_written();
    Ok((outputs.finish(options)?, bytes))
}
