//! What a run sends: the members' rows against what the destination last
//! acknowledged (`weft_meta::state`), by key and hash, turned into
//! operations by the sync's mode.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;
use weft_meta::state::Failure;

use crate::rows::Row;
use crate::spec::Mode;

/// What the destination is asked to do with one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Upsert,
    Insert,
    Update,
    Delete,
    /// Entered the audience (membership mode).
    Enter,
    /// Left the audience (membership mode).
    Exit,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Upsert => "upsert",
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Enter => "enter",
            Op::Exit => "exit",
        }
    }

    /// Whether the row leaves the destination (its values are the last ones sent).
    pub fn removes(self) -> bool {
        matches!(self, Op::Delete | Op::Exit)
    }
}

/// One row to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub key: String,
    pub op: Op,
    pub values: Vec<Value>,
    /// The hash the state keeps once the destination acknowledges it.
    pub hash: u64,
    pub json: String,
    /// Whether the key was delivered before with other values.
    pub replaces: bool,
    /// Those other values, for destinations that want them.
    pub previous: Option<Vec<Value>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub unchanged: usize,
    /// Of the rows sent, those refused on an earlier run.
    pub retried: usize,
    /// Refused too often: not sent until they change.
    pub abandoned: usize,
}

#[derive(Debug, Default)]
pub struct Plan {
    /// Upserts, inserts, updates, enters first (in key order), then removals.
    pub changes: Vec<Change>,
    /// Rows that left in a mode that leaves them at the destination: their
    /// state is dropped without sending anything, so a return sends them again.
    pub forget: Vec<String>,
    pub counts: Counts,
}

/// Compares `rows` with `delivered` (key → hash of what was acknowledged).
/// Removals carry no values: the caller fills them with what was last sent.
pub fn diff(
    mode: Mode,
    mut rows: Vec<Row>,
    delivered: &HashMap<String, u64>,
    failures: &HashMap<String, Failure>,
) -> Plan {
    // already in key order when read: then this is one pass
    rows.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    let mut plan = Plan::default();
    let mut matched = 0;
    // the keys of rows not sent, kept (not copied) for finding removals
    let mut kept = Vec::new();
    for row in rows {
        let before = delivered.get(&row.key);
        let op = match before {
            None => {
                plan.counts.added += 1;
                Some(match mode {
                    Mode::Upsert | Mode::Mirror => Op::Upsert,
                    Mode::Insert => Op::Insert,
                    Mode::Update => Op::Update,
                    Mode::Membership => Op::Enter,
                })
            }
            Some(&hash) if hash != row.hash => {
                matched += 1;
                plan.counts.changed += 1;
                match mode {
                    Mode::Upsert | Mode::Mirror => Some(Op::Upsert),
                    Mode::Insert => None,
                    Mode::Update => Some(Op::Update),
                    Mode::Membership => Some(Op::Enter),
                }
            }
            Some(_) => {
                matched += 1;
                plan.counts.unchanged += 1;
                None
            }
        };
        let Some(op) = op else {
            kept.push(row.key);
            continue;
        };
        if let Some(failure) = failures.get(&row.key) {
            if failure.abandoned && failure.hash == row.hash {
                plan.counts.abandoned += 1;
                kept.push(row.key);
                continue;
            }
            plan.counts.retried += 1;
        }
        plan.changes.push(Change {
            values: row.values(),
            key: row.key,
            op,
            hash: row.hash,
            json: row.json,
            replaces: before.is_some(),
            previous: None,
        });
    }
    if matched == delivered.len() {
        return plan;
    }
    let current: HashSet<&str> = kept
        .iter()
        .chain(plan.changes.iter().map(|change| &change.key))
        .map(String::as_str)
        .collect();
    let mut gone: Vec<(&String, u64)> = delivered
        .iter()
        .filter(|(key, _)| !current.contains(key.as_str()))
        .map(|(key, hash)| (key, *hash))
        .collect();
    drop(current);
    gone.sort_unstable();
    for (key, hash) in gone {
        let op = match mode {
            Mode::Mirror => Op::Delete,
            Mode::Membership => Op::Exit,
            Mode::Upsert | Mode::Insert | Mode::Update => {
                plan.forget.push(key.clone());
                continue;
            }
        };
        plan.counts.removed += 1;
        if let Some(failure) = failures.get(key) {
            if failure.abandoned && failure.hash == hash {
                plan.counts.abandoned += 1;
                continue;
            }
            plan.counts.retried += 1;
        }
        plan.changes.push(Change {
            key: key.clone(),
            op,
            values: Vec::new(),
            hash,
            json: String::new(),
            replaces: false,
            previous: None,
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(key: &str, email: &str) -> Row {
        Row::new(key.into(), vec![json!(email)])
    }

    fn state(rows: &[Row]) -> HashMap<String, u64> {
        rows.iter().map(|r| (r.key.clone(), r.hash)).collect()
    }

    fn ops(plan: &Plan) -> Vec<(&str, Op)> {
        plan.changes
            .iter()
            .map(|c| (c.key.as_str(), c.op))
            .collect()
    }

    #[test]
    fn each_mode_sends_its_share_of_the_difference() {
        let before = [row("a", "a@x"), row("b", "b@x"), row("c", "c@x")];
        let now = vec![row("a", "a@x"), row("b", "b@new"), row("d", "d@x")];
        let delivered = state(&before);
        let none = HashMap::new();
        let cases = [
            (Mode::Upsert, vec![("b", Op::Upsert), ("d", Op::Upsert)], 1),
            (Mode::Insert, vec![("d", Op::Insert)], 1),
            (Mode::Update, vec![("b", Op::Update), ("d", Op::Update)], 1),
            (
                Mode::Mirror,
                vec![("b", Op::Upsert), ("d", Op::Upsert), ("c", Op::Delete)],
                0,
            ),
            (
                Mode::Membership,
                vec![("b", Op::Enter), ("d", Op::Enter), ("c", Op::Exit)],
                0,
            ),
        ];
        for (mode, expected, forgotten) in cases {
            let plan = diff(mode, now.clone(), &delivered, &none);
            assert_eq!(ops(&plan), expected, "{mode:?}");
            assert_eq!(plan.forget.len(), forgotten, "{mode:?}");
            assert_eq!((plan.counts.added, plan.counts.unchanged), (1, 1));
        }
        // a first run sends everything, an unchanged audience nothing
        let first = diff(Mode::Mirror, now.clone(), &HashMap::new(), &none);
        assert_eq!(first.changes.len(), 3);
        let again = diff(Mode::Mirror, now.clone(), &state(&now), &none);
        assert!(again.changes.is_empty() && again.forget.is_empty());
        assert_eq!(again.counts.unchanged, 3);
    }

    #[test]
    fn refused_rows_are_retried_until_abandoned_and_then_until_they_change() {
        let now = vec![row("a", "bad")];
        let failure = |abandoned, hash| {
            HashMap::from([(
                "a".to_owned(),
                Failure {
                    key: "a".into(),
                    hash,
                    attempts: 2,
                    message: "invalid email".into(),
                    first_failed_at: String::new(),
                    last_failed_at: String::new(),
                    abandoned,
                },
            )])
        };
        let hash = now[0].hash;
        let retry = diff(
            Mode::Upsert,
            now.clone(),
            &HashMap::new(),
            &failure(false, hash),
        );
        assert_eq!((retry.changes.len(), retry.counts.retried), (1, 1));
        let given_up = diff(
            Mode::Upsert,
            now.clone(),
            &HashMap::new(),
            &failure(true, hash),
        );
        assert_eq!((given_up.changes.len(), given_up.counts.abandoned), (0, 1));
        let changed = diff(Mode::Upsert, now, &HashMap::new(), &failure(true, hash ^ 1));
        assert_eq!(changed.changes.len(), 1);
    }
}
