//! Journeys: an entry audience's members routed down branches, each
//! branch the source of syncs (`journey:` and `branch:` in a sync spec).
//!
//! ```yaml
//! name: winback
//! entry: lapsed-customers
//! holdout_percent: 10          # a control group, sent nowhere
//! branches:
//!   - name: email
//!     audience: emailable      # members of this audience
//!   - name: ads-a
//!     percent: 50              # of everyone, stable per customer
//!   - name: ads-b
//!     percent: 50
//!   - name: other              # no condition: whoever is left
//! ```
//!
//! A member goes down the first branch whose condition holds. Random
//! splits are stable: a customer's place in `[0, 100)` comes from a hash
//! of the journey and the customer id, and the percent branches take
//! consecutive ranges of it, so 50 / 50 is an even A/B split of those who
//! reach them and reruns keep everyone where they were. The holdout uses
//! its own hash, independent of the split. Members left unrouted (percent
//! ranges short of 100 and no default branch) are on no branch.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde::Serialize;
use serde_json::Value;
use weft_audience::spec::{check_name, parse_value};
use weft_lake::catalog::Lake;

use crate::spec::{text, unknown_keys};
use crate::{Result, SpecError, spec_error};

/// The branch of the holdout group.
pub const HOLDOUT: &str = "holdout";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JourneySpec {
    pub name: String,
    pub description: Option<String>,
    /// The audience whose members enter.
    pub entry: String,
    pub holdout_percent: f64,
    pub branches: Vec<Branch>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Branch {
    pub name: String,
    pub rule: Rule,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Members of this audience.
    Audience(String),
    /// The next `percent` of the stable random range.
    Percent(f64),
    /// Everyone who reaches it.
    Rest,
}

impl JourneySpec {
    /// The audiences the journey reads: its entry, then its branches'.
    pub fn audiences(&self) -> Vec<&str> {
        let mut names = vec![self.entry.as_str()];
        for branch in &self.branches {
            if let Rule::Audience(name) = &branch.rule
                && !names.contains(&name.as_str())
            {
                names.push(name);
            }
        }
        names
    }

    /// Every branch a member can be on, the holdout included.
    pub fn branch_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.branches.iter().map(|b| b.name.as_str()).collect();
        if self.holdout_percent > 0.0 {
            names.push(HOLDOUT);
        }
        names
    }
}

pub fn parse(text: &str) -> Result<(Value, JourneySpec), SpecError> {
    let value = parse_value(text)?;
    let spec = from_value(&value)?;
    Ok((value, spec))
}

const KEYS: [&str; 5] = [
    "name",
    "description",
    "entry",
    "holdout_percent",
    "branches",
];
const BRANCH_KEYS: [&str; 3] = ["name", "audience", "percent"];

pub fn from_value(value: &Value) -> Result<JourneySpec, SpecError> {
    let object = value
        .as_object()
        .ok_or_else(|| spec_error("$", "a journey spec is an object"))?;
    unknown_keys(object, &KEYS, "$")?;
    let name = text(object, "name", "$")?.ok_or_else(|| spec_error("$.name", "required"))?;
    check_name(&name, "$.name")?;
    let entry = text(object, "entry", "$")?
        .ok_or_else(|| spec_error("$.entry", "required: the audience whose members enter"))?;
    let holdout_percent = match object.get("holdout_percent") {
        None => 0.0,
        Some(value) => percent(value)
            .ok_or_else(|| spec_error("$.holdout_percent", "a number from 0 to 100"))?,
    };
    let list = object
        .get("branches")
        .and_then(Value::as_array)
        .filter(|list| !list.is_empty())
        .ok_or_else(|| spec_error("$.branches", "a list of at least one branch"))?;
    let mut branches: Vec<Branch> = Vec::with_capacity(list.len());
    let mut split = 0.0;
    for (i, item) in list.iter().enumerate() {
        let path = format!("$.branches[{i}]");
        let item = item
            .as_object()
            .ok_or_else(|| spec_error(&path, "a branch is an object"))?;
        unknown_keys(item, &BRANCH_KEYS, &path)?;
        let name = text(item, "name", &path)?
            .ok_or_else(|| spec_error(&format!("{path}.name"), "required"))?;
        check_name(&name, &format!("{path}.name"))?;
        if name == HOLDOUT || branches.iter().any(|b| b.name == name) {
            return Err(spec_error(
                &format!("{path}.name"),
                format!(
                    "{name:?} is taken: branch names are unique and {HOLDOUT:?} is the holdout's"
                ),
            ));
        }
        let rule = match (text(item, "audience", &path)?, item.get("percent")) {
            (Some(audience), None) => Rule::Audience(audience),
            (None, Some(value)) => {
                let share = percent(value).filter(|p| *p > 0.0).ok_or_else(|| {
                    spec_error(&format!("{path}.percent"), "a number above 0, at most 100")
                })?;
                split += share;
                if split > 100.0 + 1e-9 {
                    return Err(spec_error(
                        &format!("{path}.percent"),
                        format!("the percent branches add up to {split}, more than 100"),
                    ));
                }
                Rule::Percent(share)
            }
            (None, None) => Rule::Rest,
            (Some(_), Some(_)) => {
                return Err(spec_error(
                    &path,
                    "a branch has an audience or a percent, not both",
                ));
            }
        };
        if let Some(previous) = branches.last()
            && previous.rule == Rule::Rest
        {
            return Err(spec_error(
                &path,
                format!(
                    "branch {:?} takes everyone left: it must be the last",
                    previous.name
                ),
            ));
        }
        branches.push(Branch { name, rule });
    }
    Ok(JourneySpec {
        name,
        description: text(object, "description", "$")?,
        entry,
        holdout_percent,
        branches,
    })
}

fn percent(value: &Value) -> Option<f64> {
    value.as_f64().filter(|p| (0.0..=100.0).contains(p))
}

/// A customer's stable place in `[0, 100)` for one use (`salt`) in one journey.
pub fn bucket(journey: &str, salt: &str, customer: &str) -> f64 {
    let key = format!("{journey}\u{1f}{salt}\u{1f}{customer}");
    let hash = twox_hash::XxHash3_64::oneshot(key.as_bytes());
    // 53 bits make an exact f64 fraction
    (hash >> 11) as f64 / (1u64 << 53) as f64 * 100.0
}

/// The branch of each member; members no branch takes are left out.
pub fn route(
    spec: &JourneySpec,
    members: &BTreeSet<String>,
    audiences: &HashMap<String, HashSet<String>>,
) -> BTreeMap<String, String> {
    let mut routes = BTreeMap::new();
    for customer in members {
        if spec.holdout_percent > 0.0
            && bucket(&spec.name, HOLDOUT, customer) < spec.holdout_percent
        {
            routes.insert(customer.clone(), HOLDOUT.to_owned());
            continue;
        }
        let place = bucket(&spec.name, "split", customer);
        let mut start = 0.0;
        for branch in &spec.branches {
            let taken = match &branch.rule {
                Rule::Audience(name) => audiences
                    .get(name)
                    .is_some_and(|set| set.contains(customer)),
                Rule::Percent(share) => {
                    let taken = place >= start && place < start + share;
                    start += share;
                    taken
                }
                Rule::Rest => true,
            };
            if taken {
                routes.insert(customer.clone(), branch.name.clone());
                break;
            }
        }
    }
    routes
}

/// How a run moved members, against the assignments before it.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Moves {
    pub entered: Vec<(String, String)>,
    /// (customer, from, to)
    pub moved: Vec<(String, String, String)>,
    /// (customer, the branch they were on)
    pub left: Vec<(String, String)>,
}

pub fn moves(before: &HashMap<String, String>, after: &BTreeMap<String, String>) -> Moves {
    let mut moves = Moves::default();
    for (customer, branch) in after {
        match before.get(customer) {
            None => moves.entered.push((customer.clone(), branch.clone())),
            Some(old) if old != branch => {
                moves
                    .moved
                    .push((customer.clone(), old.clone(), branch.clone()))
            }
            Some(_) => {}
        }
    }
    let mut left: Vec<_> = before
        .iter()
        .filter(|(customer, _)| !after.contains_key(*customer))
        .map(|(c, b)| (c.clone(), b.clone()))
        .collect();
    left.sort();
    moves.left = left;
    moves
}

/// Appends a run's moves to `activation.journey_history`: one row per
/// customer who entered, moved or left, so a branch's (or the holdout's)
/// members on any date can be measured against outcomes later.
pub async fn record(
    lake: &Lake,
    journey: &str,
    run_id: &str,
    at: DateTime<Utc>,
    moves: &Moves,
) -> Result<()> {
    let rows: Vec<(&str, Option<&str>, Option<&str>, &str)> = moves
        .entered
        .iter()
        .map(|(c, b)| (c.as_str(), None, Some(b.as_str()), "entered"))
        .chain(
            moves
                .moved
                .iter()
                .map(|(c, from, to)| (c.as_str(), Some(from.as_str()), Some(to.as_str()), "moved")),
        )
        .chain(
            moves
                .left
                .iter()
                .map(|(c, b)| (c.as_str(), Some(b.as_str()), None, "left")),
        )
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let schema = Arc::new(Schema::new(vec![
        Field::new("journey", DataType::Utf8, false),
        Field::new("run_id", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("from_branch", DataType::Utf8, true),
        Field::new("to_branch", DataType::Utf8, true),
        Field::new("change", DataType::Utf8, false),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    let repeat = |value: &str| Arc::new(StringArray::from(vec![value; n])) as ArrayRef;
    let batch = RecordBatch::try_new(
        schema,
        vec![
            repeat(journey),
            repeat(run_id),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.2))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))),
            Arc::new(
                TimestampMicrosecondArray::from(vec![at.timestamp_micros(); n])
                    .with_timezone("UTC"),
            ),
        ],
    )?;
    crate::runs::append_batch(lake, "journey_history", batch).await
}

/// What one branch's customers did after they were put on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BranchResult {
    pub branch: String,
    /// Customers whose first place in the journey was this branch.
    pub customers: usize,
    /// Of them, those with a conversion after that moment.
    pub converted: usize,
    pub conversions: usize,
    pub revenue: f64,
    /// `converted / customers`.
    pub conversion_rate: f64,
    /// The rate against the holdout's, less one (none without a holdout
    /// or when nobody in it converted).
    pub lift: Option<f64>,
}

/// Each branch's outcome, by intention to treat: a customer counts in the
/// branch they were first put on, whatever happened after, with the
/// conversions (`derived.conversions`, through their cookies in
/// `identity.person_map`) from that moment on. The holdout is the baseline.
pub async fn results(lake: &Lake, journey: &str) -> Result<Vec<BranchResult>> {
    let names = [
        "activation.journey_history",
        "identity.person_map",
        "derived.conversions",
    ];
    let tables: Vec<(String, String)> = names
        .iter()
        .map(|name| {
            let (schema, table) = name.split_once('.').expect("a lake name");
            (schema.to_owned(), table.to_owned())
        })
        .collect();
    let context = weft_lake::sql::session_of(lake, &tables).await?;
    if !weft_lake::sql::has_table(&context, names[0]) {
        return Ok(Vec::new());
    }
    let outcomes = if names[1..]
        .iter()
        .all(|name| weft_lake::sql::has_table(&context, name))
    {
        "SELECT a.customer_id, count(c.conversion_tstamp) AS conversions,
           coalesce(sum(c.value), 0) AS revenue
         FROM assigned a
         LEFT JOIN identity.person_map m
           ON m.customer_id = a.customer_id AND m.kind = 'domain_userid'
         LEFT JOIN derived.conversions c
           ON c.domain_userid = m.value
           AND CAST(c.conversion_tstamp AS TIMESTAMP) >= CAST(a.entered_at AS TIMESTAMP)
         GROUP BY a.customer_id"
    } else {
        // nothing modelled yet: nobody has converted
        "SELECT customer_id, 0 AS conversions, 0.0 AS revenue FROM assigned"
    };
    let journey = journey.replace('\'', "''");
    let sql = format!(
        "WITH first AS (
           SELECT customer_id, min(at) AS entered_at
           FROM activation.journey_history
           WHERE journey = '{journey}' AND to_branch IS NOT NULL
           GROUP BY customer_id
         ),
         assigned AS (
           SELECT f.customer_id, min(h.to_branch) AS branch, f.entered_at
           FROM first f
           JOIN activation.journey_history h
             ON h.customer_id = f.customer_id AND h.at = f.entered_at
           WHERE h.journey = '{journey}' AND h.to_branch IS NOT NULL
           GROUP BY f.customer_id, f.entered_at
         ),
         outcomes AS ({outcomes})
         SELECT a.branch, count(*) AS customers,
           sum(CASE WHEN o.conversions > 0 THEN 1 ELSE 0 END) AS converted,
           sum(o.conversions) AS conversions, sum(o.revenue) AS revenue
         FROM assigned a JOIN outcomes o ON o.customer_id = a.customer_id
         GROUP BY a.branch
         ORDER BY a.branch"
    );
    let batches = context.sql(&sql).await?.collect().await?;
    let mut results = Vec::new();
    for batch in &batches {
        let branches = crate::rows::json_values(batch.column(0))?;
        let numbers: Vec<Vec<Value>> = (1..5)
            .map(|i| crate::rows::json_values(batch.column(i)))
            .collect::<Result<_>>()?;
        for row in 0..batch.num_rows() {
            let number = |i: usize| numbers[i][row].as_f64().unwrap_or(0.0);
            let customers = number(0) as usize;
            let converted = number(1) as usize;
            results.push(BranchResult {
                branch: branches[row].as_str().unwrap_or_default().to_owned(),
                customers,
                converted,
                conversions: number(2) as usize,
                revenue: number(3),
                conversion_rate: if customers == 0 {
                    0.0
                } else {
                    converted as f64 / customers as f64
                },
                lift: None,
            });
        }
    }
    let baseline = results
        .iter()
        .find(|r| r.branch == HOLDOUT)
        .map(|r| r.conversion_rate)
        .filter(|rate| *rate > 0.0);
    if let Some(baseline) = baseline {
        for result in results.iter_mut().filter(|r| r.branch != HOLDOUT) {
            result.lift = Some(result.conversion_rate / baseline - 1.0);
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> JourneySpec {
        parse(text).unwrap().1
    }

    #[test]
    fn specs_are_checked_with_paths() {
        let bad = |text: &str| parse(text).unwrap_err().path;
        assert_eq!(bad("name: j\nbranches: [{name: a}]"), "$.entry");
        assert_eq!(bad("name: j\nentry: e\nbranches: []"), "$.branches");
        assert_eq!(
            bad("name: j\nentry: e\nbranches: [{name: a, percent: 60}, {name: b, percent: 50}]"),
            "$.branches[1].percent"
        );
        assert_eq!(
            bad("name: j\nentry: e\nbranches: [{name: a}, {name: b, audience: x}]"),
            "$.branches[1]"
        );
        assert_eq!(
            bad("name: j\nentry: e\nbranches: [{name: holdout}]"),
            "$.branches[0].name"
        );
        assert_eq!(
            bad("name: j\nentry: e\nbranches: [{name: a, audience: x, percent: 5}]"),
            "$.branches[0]"
        );
        assert_eq!(
            bad("name: j\nentry: e\nholdout_percent: 101\nbranches: [{name: a}]"),
            "$.holdout_percent"
        );
        assert_eq!(
            bad("name: j\nentry: e\nbranches: [{name: a, when: x}]"),
            "$.branches[0].when"
        );
    }

    #[test]
    fn members_go_down_the_first_branch_that_takes_them() {
        let journey = spec(
            "name: winback\nentry: lapsed\nholdout_percent: 10\nbranches:\n  - {name: email, audience: emailable}\n  - {name: ads-a, percent: 50}\n  - {name: ads-b, percent: 50}\n",
        );
        assert_eq!(journey.audiences(), ["lapsed", "emailable"]);
        let members: BTreeSet<String> = (0..20_000).map(|i| format!("c{i}")).collect();
        let emailable: HashSet<String> = (0..20_000).step_by(4).map(|i| format!("c{i}")).collect();
        let audiences = HashMap::from([("emailable".to_owned(), emailable.clone())]);
        let routes = route(&journey, &members, &audiences);
        assert_eq!(
            routes.len(),
            20_000,
            "the split covers 100%: everyone is routed"
        );
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for branch in routes.values() {
            *counts.entry(branch).or_default() += 1;
        }
        // 10% held out; of the rest a quarter are emailable, the others halved
        let near = |n: usize, expected: f64| (n as f64 - expected).abs() < expected * 0.06;
        assert!(near(counts[HOLDOUT], 2_000.0), "{counts:?}");
        assert!(near(counts["email"], 4_500.0), "{counts:?}");
        assert!(near(counts["ads-a"], 6_750.0), "{counts:?}");
        assert!(near(counts["ads-b"], 6_750.0), "{counts:?}");
        for (customer, branch) in &routes {
            if branch == "email" {
                assert!(emailable.contains(customer));
            }
        }
        // stable: a rerun, and a rerun with fewer members, keep everyone's branch
        assert_eq!(route(&journey, &members, &audiences), routes);
        let fewer: BTreeSet<String> = members.iter().take(500).cloned().collect();
        for (customer, branch) in route(&journey, &fewer, &audiences) {
            assert_eq!(routes[&customer], branch);
        }
    }

    #[test]
    fn a_short_split_leaves_the_rest_unrouted_and_moves_are_counted() {
        let journey = spec("name: j\nentry: e\nbranches: [{name: test, percent: 20}]");
        let members: BTreeSet<String> = (0..1000).map(|i| format!("c{i}")).collect();
        let routes = route(&journey, &members, &HashMap::new());
        assert!((150..250).contains(&routes.len()), "{}", routes.len());

        let before = HashMap::from([
            ("a".to_owned(), "x".to_owned()),
            ("b".to_owned(), "x".to_owned()),
            ("c".to_owned(), "y".to_owned()),
        ]);
        let after = BTreeMap::from([
            ("a".to_owned(), "x".to_owned()),
            ("b".to_owned(), "y".to_owned()),
            ("d".to_owned(), "x".to_owned()),
        ]);
        let moves = moves(&before, &after);
        assert_eq!(moves.entered, [("d".into(), "x".into())]);
        assert_eq!(moves.moved, [("b".into(), "x".into(), "y".into())]);
        assert_eq!(moves.left, [("c".into(), "y".into())]);
    }
}
