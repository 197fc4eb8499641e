//! Clustering linked pairs into persons, strongest links first, with guards
//! against over-merging: a merge that would give one person two national ids
//! or user ids, too many emails or phones, birth dates that cannot be one
//! date mistyped, or only first names that cannot be one name, is refused.

use std::collections::BTreeSet;

use chrono::NaiveDate;

use crate::compare::{first_names_compatible, near_date};
use crate::record::Record;

/// Limits on what one person may have.
#[derive(Debug, Clone)]
pub struct Guards {
    pub max_emails: usize,
    pub max_phones: usize,
    pub max_national_ids: usize,
    pub max_user_ids: usize,
}

impl Default for Guards {
    fn default() -> Self {
        Self {
            max_emails: 4,
            max_phones: 4,
            max_national_ids: 1,
            max_user_ids: 1,
        }
    }
}

/// What a cluster holds, for the guards.
#[derive(Debug, Default)]
struct Summary {
    emails: BTreeSet<String>,
    phones: BTreeSet<String>,
    national_ids: BTreeSet<String>,
    user_ids: BTreeSet<String>,
    dobs: Vec<NaiveDate>,
    /// One record per distinct (first, last) name, for the name guard.
    named: Vec<u32>,
}

impl Summary {
    fn of(index: u32, record: &Record) -> Self {
        let set = |value: &str| {
            let mut set = BTreeSet::new();
            if !value.is_empty() {
                set.insert(value.to_owned());
            }
            set
        };
        Self {
            emails: set(&record.email),
            phones: set(&record.phone),
            national_ids: set(&record.national_id),
            user_ids: set(&record.user_id),
            dobs: record.dob.into_iter().collect(),
            named: if record.first.is_empty() {
                vec![]
            } else {
                vec![index]
            },
        }
    }
}

/// Why a merge was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NationalIds,
    UserIds,
    Emails,
    Phones,
    BirthDates,
    FirstNames,
}

impl Refusal {
    pub fn name(self) -> &'static str {
        match self {
            Refusal::NationalIds => "two national ids",
            Refusal::UserIds => "two user ids",
            Refusal::Emails => "too many emails",
            Refusal::Phones => "too many phones",
            Refusal::BirthDates => "birth dates that differ",
            Refusal::FirstNames => "first names that differ",
        }
    }
}

/// Union–find over records with a guard summary per cluster.
pub struct Clusters<'a> {
    records: &'a [Record],
    guards: Guards,
    parent: Vec<u32>,
    summary: Vec<Option<Summary>>,
}

impl<'a> Clusters<'a> {
    pub fn new(records: &'a [Record], guards: Guards) -> Self {
        Self {
            parent: (0..records.len() as u32).collect(),
            summary: records
                .iter()
                .enumerate()
                .map(|(i, r)| Some(Summary::of(i as u32, r)))
                .collect(),
            records,
            guards,
        }
    }

    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    /// Joins the clusters of `a` and `b` unless a guard refuses. `Ok(false)`
    /// when they already were one.
    pub fn merge(&mut self, a: u32, b: u32) -> Result<bool, Refusal> {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return Ok(false);
        }
        let (x, y) = (
            self.summary[ra as usize].as_ref().expect("a root"),
            self.summary[rb as usize].as_ref().expect("a root"),
        );
        self.check(x, y)?;
        // the smaller joins the larger
        let (big, small) = if x.named.len() + x.dobs.len() >= y.named.len() + y.dobs.len() {
            (ra, rb)
        } else {
            (rb, ra)
        };
        let from = self.summary[small as usize].take().expect("a root");
        let into = self.summary[big as usize].as_mut().expect("a root");
        into.emails.extend(from.emails);
        into.phones.extend(from.phones);
        into.national_ids.extend(from.national_ids);
        into.user_ids.extend(from.user_ids);
        for dob in from.dobs {
            if !into.dobs.contains(&dob) {
                into.dobs.push(dob);
            }
        }
        for index in from.named {
            let r = &self.records[index as usize];
            if !into.named.iter().any(|&i| {
                let o = &self.records[i as usize];
                o.first == r.first && o.last == r.last
            }) {
                into.named.push(index);
            }
        }
        self.parent[small as usize] = big;
        Ok(true)
    }

    fn check(&self, x: &Summary, y: &Summary) -> Result<(), Refusal> {
        let union = |a: &BTreeSet<String>, b: &BTreeSet<String>| a.len() + b.difference(a).count();
        if union(&x.national_ids, &y.national_ids) > self.guards.max_national_ids {
            return Err(Refusal::NationalIds);
        }
        if union(&x.user_ids, &y.user_ids) > self.guards.max_user_ids {
            return Err(Refusal::UserIds);
        }
        if union(&x.emails, &y.emails) > self.guards.max_emails {
            return Err(Refusal::Emails);
        }
        if union(&x.phones, &y.phones) > self.guards.max_phones {
            return Err(Refusal::Phones);
        }
        // one person has one birth date, give or take a slip of the keyboard
        if x.dobs
            .iter()
            .any(|a| y.dobs.iter().any(|b| a != b && !near_date(*a, *b)))
        {
            return Err(Refusal::BirthDates);
        }
        let named = |i: &u32| &self.records[*i as usize];
        if !x.named.is_empty()
            && !y.named.is_empty()
            && !x.named.iter().any(|a| {
                y.named
                    .iter()
                    .any(|b| first_names_compatible(named(a), named(b)))
            })
        {
            return Err(Refusal::FirstNames);
        }
        Ok(())
    }

    /// Every record's cluster, numbered from 0 in order of first appearance.
    pub fn assignments(&mut self) -> Vec<u32> {
        let mut number = vec![u32::MAX; self.parent.len()];
        let mut next = 0;
        (0..self.parent.len() as u32)
            .map(|i| {
                let root = self.find(i) as usize;
                if number[root] == u32::MAX {
                    number[root] = next;
                    next += 1;
                }
                number[root]
            })
            .collect()
    }
}
