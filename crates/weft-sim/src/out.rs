//! What `weft simulate` writes to a folder: customer records as CSV per source
//! (`records/`), the ground truth (`truth/`), the shop's schemas (`iglu/`),
//! and, for a backfill, the traffic itself as a raw log (`raw/`) that the
//! loader ingests as if the collector had received it at the simulated times.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
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

/// The record and truth files of a folder, appended to chunk by chunk in
/// index order. Rows are rendered on worker threads ([`Rows`]); here they are
/// only written.
pub struct Outputs {
    dir: PathBuf,
    /// The records per source, then people, identifiers and record owners.
    files: Vec<BufWriter<File>>,
    scores: Scores,
    counts: Counts,
}

/// One chunk of people's records and truth as CSV rows (no headers).
pub struct Rows {
    records: Vec<csv::Writer<Vec<u8>>>,
    people: csv::Writer<Vec<u8>>,
    identifiers: csv::Writer<Vec<u8>>,
    record_owners: csv::Writer<Vec<u8>>,
    scores: Scores,
    counts: Counts,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Counts {
    pub people: u64,
    /// Of the people, how many are crawlers.
    pub crawlers: u64,
    pub registered: u64,
    pub requests: u64,
    pub events: u64,
    pub cookies: u64,
    pub records: BTreeMap<&'static str, u64>,
}

impl Counts {
    fn merge(&mut self, other: Counts) {
        self.people += other.people;
        self.crawlers += other.crawlers;
        self.registered += other.registered;
        self.requests += other.requests;
        self.events += other.events;
        self.cookies += other.cookies;
        for (source, count) in other.records {
            *self.records.entry(source).or_default() += count;
        }
    }
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

fn create_file(path: &Path, header: &[&str]) -> Result<BufWriter<File>> {
    let file = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let mut line = csv::Writer::from_writer(Vec::new());
    line.write_record(header).map_err(|e| e.to_string())?;
    let line = line.into_inner().map_err(|e| e.to_string())?;
    writer
        .write_all(&line)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
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
                create_file(&dir.join("records").join(format!("{name}.csv")), columns)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut people_header: Vec<String> = [
            "person_id",
            "crawler",
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
        let mut files = records;
        files.push(create_file(&truth.join("people.csv"), &people_header)?);
        files.push(create_file(
            &truth.join("identifiers.csv"),
            &["identifier_type", "identifier", "person_id"],
        )?);
        files.push(create_file(
            &truth.join("records.csv"),
            &["source", "record_id", "person_id"],
        )?);
        Ok(Self {
            dir: dir.to_owned(),
            files,
            scores: Scores::default(),
            counts: Counts::default(),
        })
    }

    /// Appends a chunk's rows after the rows written so far.
    pub fn append(&mut self, rows: Rows) -> Result<()> {
        let theirs =
            rows.records
                .into_iter()
                .chain([rows.people, rows.identifiers, rows.record_owners]);
        for (file, rows) in self.files.iter_mut().zip(theirs) {
            let bytes = rows.into_inner().map_err(|e| e.to_string())?;
            file.write_all(&bytes).map_err(|e| e.to_string())?;
        }
        self.scores.extend(rows.scores);
        self.counts.merge(rows.counts);
        Ok(())
    }

    pub fn people(&self) -> u64 {
        self.counts.people
    }

    pub fn finish(mut self, options: &SimOptions) -> Result<Summary> {
        for file in &mut self.files {
            file.flush().map_err(|e| e.to_string())?;
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

impl Default for Rows {
    fn default() -> Self {
        let writer = || {
            csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(Vec::with_capacity(64 * 1024))
        };
        Self {
            records: SOURCES.iter().map(|_| writer()).collect(),
            people: writer(),
            identifiers: writer(),
            record_owners: writer(),
            scores: Scores::default(),
            counts: Counts::default(),
        }
    }
}

impl Rows {
    /// Rows of a chunk of people, in order.
    pub fn of(people: &[Person]) -> Result<Self> {
        let mut rows = Self::default();
        for person in people {
            rows.add(person)?;
        }
        Ok(rows)
    }

    pub fn add(&mut self, person: &Person) -> Result<()> {
        let error = |e: csv::Error| e.to_string();
        let truth = &person.run.truth;
        let identity = &person.run.identity;
        let id = &truth.person_id;
        let traits = &truth.traits;
        let mut row: Vec<String> = vec![
            id.clone(),
            truth.crawler.to_string(),
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
        self.counts.crawlers += u64::from(truth.crawler);
        self.counts.registered += u64::from(truth.registered);
        self.counts.requests += truth.requests as u64;
        self.counts.events += truth.events as u64;
        self.counts.cookies += person.run.cookies.len() as u64;
        Ok(())
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
    let raw = dir.join("raw");
    let mut log = BulkWriter::open(&raw, FileLogOptions::default())
        .map_err(|e| format!("cannot open the raw log in {}: {e}", raw.display()))?;
    // a second backfill would mix two simulations under one truth
    if log.end_offset() > 0 {
        return Err(format!(
            "{} already holds {} requests; write the backfill to an empty folder",
            raw.display(),
            log.end_offset()
        ));
    }
    let mut outputs = Outputs::create(dir)?;
    let collector = format!("weft-sim-{}", env!("CARGO_PKG_VERSION"));
    let chunk = 256;
    crate::generate(
        options,
        chunk,
        threads,
        |mut people| {
            let rows = Rows::of(&people)?;
            let frames: Vec<Vec<u8>> = people
                .iter_mut()
                .flat_map(|person| person.run.requests.drain(..))
                .map(|request| encode_frame(&request.into_payload(BACKFILL_HOST, &collector)))
                .collect();
            Ok((rows, frames))
        },
        |chunk: Result<(Rows, Vec<Vec<u8>>)>| {
            let (rows, frames) = chunk?;
            log.append(&frames)
                .map_err(|e| format!("cannot write the raw log: {e}"))?;
            outputs.append(rows)?;
            progress(outputs.people());
            Ok(())
        },
    )?;
    let bytes = log.bytes_written();
    Ok((outputs.finish(options)?, bytes))
}
