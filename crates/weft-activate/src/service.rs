//! Syncs as the CLI and the admin API use them: stored, versioned specs
//! (`weft_meta`), checked against the destinations in the config and the
//! profile columns, and run: read members, diff, deliver, record the run.
//! Journeys likewise: stored, checked against the audiences, and run:
//! route the entry audience's members, record the moves, run the
//! branches' syncs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use weft_audience::service::Audiences;
use weft_lake::catalog::Lake;
use weft_meta::{Definition, Kind, Store};

use crate::deliver::{Delivery, Run, deliver};
use crate::destination::{Built, build};
use crate::diff::diff;
use crate::journey::{self, JourneySpec, Rule};
use crate::rows::{self, customer_columns};
use crate::runs::{self, RunRecord, Stages};
use crate::spec::{self, Source, SyncSpec};
use crate::{ActivateError, Result, spec_error};

pub struct Syncs<'a> {
    store: &'a Store,
    lake: &'a Lake,
    destinations: &'a BTreeMap<String, Value>,
}

impl<'a> Syncs<'a> {
    pub fn new(
        store: &'a Store,
        lake: &'a Lake,
        destinations: &'a BTreeMap<String, Value>,
    ) -> Self {
        Syncs {
            store,
            lake,
            destinations,
        }
    }

    /// Parses and checks a spec: its destination is configured and can
    /// carry out its mode, its key and fields are profile columns.
    pub async fn check(&self, text: &str) -> Result<(Value, SyncSpec)> {
        let (value, spec) = spec::parse(text)?;
        let built = self.destination(&spec)?;
        if !built.destination.modes().contains(&spec.mode) {
            let modes: Vec<_> = built.destination.modes().iter().map(|m| m.name()).collect();
            return Err(spec_error(
                "$.mode",
                format!(
                    "destination {:?} ({}) does not do {}: it does {}",
                    spec.destination,
                    built.common.kind,
                    spec.mode.name(),
                    modes.join(", ")
                ),
            )
            .into());
        }
        let names: Vec<&str> = spec.fields.iter().map(|(name, _)| name.as_str()).collect();
        built
            .destination
            .check_fields(&names)
            .map_err(|reason| spec_error("$.fields", reason))?;
        rows::fields(&customer_columns(self.lake).await?, &spec.key, &spec.fields)?;
        Ok((value, spec))
    }

    pub async fn create(&self, text: &str) -> Result<Definition> {
        let (value, spec) = self.check(text).await?;
        Ok(self
            .store
            .create(Kind::Sync, &spec.name, &value.to_string())?)
    }

    /// Stores a new version. Changing the destination, key or mode starts
    /// the sync afresh: what the old one delivered says nothing of the new.
    pub async fn update(&self, text: &str) -> Result<Definition> {
        self.update_as(None, text).await
    }

    /// [`Syncs::update`] of the sync `name` (the admin API's URL): a spec
    /// naming another sync is refused, so an update never renames.
    pub async fn update_named(&self, name: &str, text: &str) -> Result<Definition> {
        self.update_as(Some(name), text).await
    }

    async fn update_as(&self, name: Option<&str>, text: &str) -> Result<Definition> {
        let (value, spec) = self.check(text).await?;
        same_name(name, &spec.name)?;
        let old = self.spec(&spec.name)?;
        let definition = self
            .store
            .update(Kind::Sync, &spec.name, &value.to_string())?;
        if (old.destination, old.key, old.mode) != (spec.destination, spec.key, spec.mode) {
            self.store.reset_sync(&spec.name)?;
        }
        Ok(definition)
    }

    pub fn list(&self) -> Result<Vec<(Definition, SyncSpec)>> {
        self.store
            .all(Kind::Sync)?
            .into_iter()
            .map(|definition| {
                let spec = stored_spec(&definition)?;
                Ok((definition, spec))
            })
            .collect()
    }

    pub fn spec(&self, name: &str) -> Result<SyncSpec> {
        stored_spec(&stored(self.store, Kind::Sync, "sync", name)?)
    }

    /// Deletes the sync and what it knew was delivered (the destination
    /// keeps its rows).
    pub fn delete(&self, name: &str) -> Result<()> {
        self.store.delete(Kind::Sync, name)?;
        self.store.reset_sync(name)?;
        Ok(())
    }

    /// Runs the sync `name`: with `dry_run`, counts what would be sent and
    /// sends nothing.
    pub async fn run(&self, name: &str, dry_run: bool) -> Result<RunRecord> {
        let started_at = Utc::now();
        let spec = self.spec(name)?;
        let built = self.destination(&spec)?;
        let mut stages = Stages::default();
        let mut clock = Instant::now();
        let mut lap = || {
            let ms = clock.elapsed().as_millis() as u64;
            clock = Instant::now();
            ms
        };
        let members = self.members(&spec.source).await?;
        stages.members_ms = lap();
        let read = rows::read(
            self.lake,
            &members,
            &spec.key,
            &spec.fields,
            built.common.purpose,
        )
        .await?;
        stages.read_ms = lap();
        let fields = read.fields;
        let delivered = self.store.delivered(name)?;
        let failures = self.store.failures(name)?;
        stages.state_ms = lap();
        let plan = diff(spec.mode, read.rows, &delivered, &failures);
        drop(delivered);
        stages.diff_ms = lap();
        let counts = plan.counts;
        let to_send = plan.changes.len();
        let run_id = format!("{}-{}", started_at.format("%Y%m%dT%H%M%S%.6fZ"), name);
        let delivery = if dry_run {
            Delivery::default()
        } else {
            let run = Run {
                sync: name,
                run_id: &run_id,
                fields: &fields,
                abandon_after: spec.abandon_after,
            };
            deliver(&built, self.store, &run, plan).await?
        };
        stages.deliver_ms = lap();
        let status = match (&delivery.stopped, delivery.failed, dry_run) {
            (_, _, true) => "dry_run",
            (Some(_), _, _) => "stopped",
            (None, 0, _) => "succeeded",
            (None, _, _) => "partial",
        };
        let record = RunRecord {
            sync: name.to_owned(),
            run_id,
            destination: spec.destination.clone(),
            mode: spec.mode.name().to_owned(),
            started_at,
            finished_at: Utc::now(),
            dry_run,
            added: counts.added,
            changed: counts.changed,
            removed: counts.removed,
            unchanged: counts.unchanged,
            to_send,
            delivered: delivery.delivered,
            failed: delivery.failed,
            retried: counts.retried,
            abandoned: counts.abandoned,
            without_consent: read.without_consent,
            without_key: read.without_key,
            retries: delivery.retries,
            status: status.to_owned(),
            error: delivery.stopped,
            stages,
        };
        if !dry_run {
            runs::append(self.lake, &record).await?;
        }
        Ok(record)
    }

    fn destination(&self, spec: &SyncSpec) -> Result<Built> {
        let settings = self.destinations.get(&spec.destination).ok_or_else(|| {
            let known: Vec<_> = self.destinations.keys().map(String::as_str).collect();
            spec_error(
                "$.destination",
                format!(
                    "no destination {:?} in the config [activation.destinations]{}",
                    spec.destination,
                    if known.is_empty() {
                        String::new()
                    } else {
                        format!(": one of {}", known.join(", "))
                    }
                ),
            )
        })?;
        build(&spec.destination, settings)
    }

    async fn members(&self, source: &Source) -> Result<BTreeSet<String>> {
        Ok(match source {
            Source::Audience(name) => {
                Audiences::new(self.store, self.lake)
                    .member_ids(name)
                    .await?
            }
            Source::Branch { journey, branch } => self
                .store
                .assignments(journey)?
                .into_iter()
                .filter(|(_, assigned)| assigned == branch)
                .map(|(customer, _)| customer)
                .collect(),
        })
    }
}

/// An update addressed to `expected` must carry that name.
fn same_name(expected: Option<&str>, spec_name: &str) -> Result<()> {
    match expected {
        Some(expected) if expected != spec_name => Err(spec_error(
            "$.name",
            format!("the spec is named {spec_name:?}, the URL {expected:?}"),
        )
        .into()),
        _ => Ok(()),
    }
}

/// The latest version of `name`, or what is missing.
fn stored(store: &Store, kind: Kind, noun: &'static str, name: &str) -> Result<Definition> {
    store
        .get(kind, name)?
        .ok_or_else(|| ActivateError::Missing {
            kind: noun,
            name: name.to_owned(),
        })
}

fn stored_spec(definition: &Definition) -> Result<SyncSpec> {
    Ok(spec::from_value(&stored_json(definition)?)?)
}

fn stored_json(definition: &Definition) -> Result<Value> {
    Ok(serde_json::from_str(&definition.spec)
        .map_err(|e| spec_error("$", format!("the stored spec is not JSON: {e}")))?)
}

/// Journeys as the CLI and the admin API use them.
pub struct Journeys<'a> {
    store: &'a Store,
    lake: &'a Lake,
    destinations: &'a BTreeMap<String, Value>,
}

/// What a journey run did.
#[derive(Debug, Clone, Serialize)]
pub struct JourneyRun {
    pub journey: String,
    pub run_id: String,
    pub dry_run: bool,
    /// Members of the entry audience.
    pub members: usize,
    /// Members per branch after the run (the holdout included).
    pub branches: BTreeMap<String, usize>,
    /// Members no branch took.
    pub unrouted: usize,
    pub entered: usize,
    pub moved: usize,
    pub left: usize,
    /// The runs of the syncs fed by the journey's branches.
    pub syncs: Vec<RunRecord>,
}

impl<'a> Journeys<'a> {
    pub fn new(
        store: &'a Store,
        lake: &'a Lake,
        destinations: &'a BTreeMap<String, Value>,
    ) -> Self {
        Journeys {
            store,
            lake,
            destinations,
        }
    }

    /// Parses a spec and checks that the audiences it names exist.
    pub fn check(&self, text: &str) -> Result<(Value, JourneySpec)> {
        let (value, spec) = journey::parse(text)?;
        let mut paths = vec![("$.entry".to_owned(), spec.entry.as_str())];
        for (i, branch) in spec.branches.iter().enumerate() {
            if let Rule::Audience(name) = &branch.rule {
                paths.push((format!("$.branches[{i}].audience"), name));
            }
        }
        for (path, name) in paths {
            if self.store.get(Kind::Audience, name)?.is_none() {
                return Err(spec_error(&path, format!("no audience named {name:?}")).into());
            }
        }
        Ok((value, spec))
    }

    pub fn create(&self, text: &str) -> Result<Definition> {
        let (value, spec) = self.check(text)?;
        Ok(self
            .store
            .create(Kind::Journey, &spec.name, &value.to_string())?)
    }

    pub fn update(&self, text: &str) -> Result<Definition> {
        self.update_as(None, text)
    }

    /// [`Journeys::update`] of the journey `name`, which the spec must name.
    pub fn update_named(&self, name: &str, text: &str) -> Result<Definition> {
        self.update_as(Some(name), text)
    }

    fn update_as(&self, name: Option<&str>, text: &str) -> Result<Definition> {
        let (value, spec) = self.check(text)?;
        same_name(name, &spec.name)?;
        Ok(self
            .store
            .update(Kind::Journey, &spec.name, &value.to_string())?)
    }

    pub fn list(&self) -> Result<Vec<(Definition, JourneySpec)>> {
        self.store
            .all(Kind::Journey)?
            .into_iter()
            .map(|definition| {
                let spec = stored_journey(&definition)?;
                Ok((definition, spec))
            })
            .collect()
    }

    pub fn spec(&self, name: &str) -> Result<JourneySpec> {
        stored_journey(&stored(self.store, Kind::Journey, "journey", name)?)
    }

    /// Deletes the journey and its current assignments (its history stays).
    pub fn delete(&self, name: &str) -> Result<()> {
        self.store.delete(Kind::Journey, name)?;
        let current: Vec<String> = self.store.assignments(name)?.into_keys().collect();
        let left: Vec<&str> = current.iter().map(String::as_str).collect();
        self.store.assign(name, &[], &left)?;
        Ok(())
    }

    /// Members per branch now.
    pub fn counts(&self, name: &str) -> Result<BTreeMap<String, usize>> {
        let spec = self.spec(name)?;
        let mut counts: BTreeMap<String, usize> = spec
            .branch_names()
            .into_iter()
            .map(|b| (b.to_owned(), 0))
            .collect();
        for branch in self.store.assignments(name)?.into_values() {
            *counts.entry(branch).or_default() += 1;
        }
        Ok(counts)
    }

    /// What each branch's customers did after they were put on it.
    pub async fn results(&self, name: &str) -> Result<Vec<journey::BranchResult>> {
        self.spec(name)?;
        journey::results(self.lake, name).await
    }

    /// The syncs fed by the journey's branches.
    pub fn syncs(&self, name: &str) -> Result<Vec<SyncSpec>> {
        let syncs = Syncs::new(self.store, self.lake, self.destinations);
        Ok(syncs
            .list()?
            .into_iter()
            .map(|(_, spec)| spec)
            .filter(
                |spec| matches!(&spec.source, Source::Branch { journey, .. } if journey == name),
            )
            .collect())
    }

    /// Routes the entry audience's members, records who entered, moved
    /// and left, then runs the branches' syncs. With `dry_run`, only counts.
    pub async fn run(&self, name: &str, dry_run: bool) -> Result<JourneyRun> {
        let at = Utc::now();
        let spec = self.spec(name)?;
        let audiences = Audiences::new(self.store, self.lake);
        let members = audiences.member_ids(&spec.entry).await?;
        let mut conditions = HashMap::new();
        for audience in spec.audiences().into_iter().skip(1) {
            let ids = audiences.member_ids(audience).await?;
            conditions.insert(audience.to_owned(), ids.into_iter().collect());
        }
        let routes = journey::route(&spec, &members, &conditions);
        let moves = journey::moves(&self.store.assignments(name)?, &routes);
        let run_id = format!("{}-{}", at.format("%Y%m%dT%H%M%S%.6fZ"), name);
        let mut branches: BTreeMap<String, usize> = spec
            .branch_names()
            .into_iter()
            .map(|b| (b.to_owned(), 0))
            .collect();
        for branch in routes.values() {
            *branches.entry(branch.clone()).or_default() += 1;
        }
        let mut syncs = Vec::new();
        if !dry_run {
            let assigned: Vec<(&str, &str)> = moves
                .entered
                .iter()
                .map(|(c, b)| (c.as_str(), b.as_str()))
                .chain(moves.moved.iter().map(|(c, _, b)| (c.as_str(), b.as_str())))
                .collect();
            let left: Vec<&str> = moves.left.iter().map(|(c, _)| c.as_str()).collect();
            self.store.assign(name, &assigned, &left)?;
            journey::record(self.lake, name, &run_id, at, &moves).await?;
            let runner = Syncs::new(self.store, self.lake, self.destinations);
            for sync in self.syncs(name)? {
                syncs.push(runner.run(&sync.name, false).await?);
            }
        }
        Ok(JourneyRun {
            journey: name.to_owned(),
            run_id,
            dry_run,
            members: members.len(),
            unrouted: members.len() - routes.len(),
            branches,
            entered: moves.entered.len(),
            moved: moves.moved.len(),
            left: moves.left.len(),
            syncs,
        })
    }
}

fn stored_journey(definition: &Definition) -> Result<JourneySpec> {
    Ok(journey::from_value(&stored_json(definition)?)?)
}
