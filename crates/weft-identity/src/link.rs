//! The linking pipeline: normalise, block, compare, learn, score, cluster.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::cluster::{Clusters, Guards, Refusal};
use crate::compare::Comparison;
use crate::field::Field;
use crate::model::{Model, Pattern, Term, probability};
use crate::record::{NormaliseOptions, RawRecord, Record};
use crate::rules::{self, BlockingStats, Rule, unpack};

#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// Rules that link a pair outright, in order; `None`: chosen from the mapped fields.
    pub deterministic: Option<Vec<Rule>>,
    /// Which pairs are compared; `None`: chosen from the mapped fields.
    pub blocking: Option<Vec<Rule>>,
    /// Pairs at or above this match probability are linked.
    pub threshold: f64,
    /// Blocks with more records than this are left out (and counted).
    pub max_block_size: usize,
    pub guards: Guards,
    pub normalise: NormaliseOptions,
    /// Random pairs drawn to estimate u.
    pub u_samples: usize,
    pub em_iterations: usize,
    pub threads: usize,
}

impl Default for LinkOptions {
    fn default() -> Self {
        Self {
            deterministic: None,
            blocking: None,
            threshold: 0.9,
            max_block_size: 1000,
            guards: Guards::default(),
            normalise: NormaliseOptions::default(),
            u_samples: 10_000_000,
            em_iterations: 50,
            threads: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        }
    }
}

/// A linked pair: why, and how strongly.
#[derive(Debug, Clone)]
pub struct Link {
    pub a: u32,
    pub b: u32,
    /// The deterministic rule that linked it, if one did.
    pub rule: Option<usize>,
    pub weight: f64,
    pub probability: f64,
    pub pattern: Pattern,
    /// Set when a guard kept the two clusters apart.
    pub refused: Option<Refusal>,
}

#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub normalise: Duration,
    pub block: Duration,
    pub compare: Duration,
    pub train: Duration,
    pub cluster: Duration,
}

/// The result: records, their clusters and the links behind them.
pub struct Linkage {
    pub sources: Vec<String>,
    pub records: Vec<Record>,
    /// Each record's cluster, numbered from 0 by first appearance.
    pub clusters: Vec<u32>,
    /// Every pair at or above the threshold, strongest first.
    pub links: Vec<Link>,
    pub model: Model,
    pub deterministic: Vec<Rule>,
    pub blocking: Vec<Rule>,
    pub blocking_stats: BlockingStats,
    pub pairs_compared: usize,
    pub timings: Timings,
}

/// Links records that were mapped to `mapped` fields.
pub fn link(raw: &[RawRecord], mapped: &[Field], options: &LinkOptions) -> Linkage {
    let threads = options.threads.max(1);
    let mut timings = Timings::default();

    let started = Instant::now();
    let mut sources: Vec<String> = Vec::new();
    let source_of: Vec<u32> = raw
        .iter()
        .map(|r| match sources.iter().position(|s| *s == r.source) {
            Some(i) => i as u32,
            None => {
                sources.push(r.source.clone());
                (sources.len() - 1) as u32
            }
        })
        .collect();
    let mut records: Vec<Record> = parallel_chunks(raw.len(), threads, |range| {
        range
            .map(|i| Record::normalise_except_phone(&raw[i], source_of[i], &options.normalise))
            .collect()
    });
    // phones region by region: the parser compiles its patterns into a small
    // shared cache, which thrashes when regions alternate; sorted, a number
    // written alike (as its key) many times is parsed once
    let regions: Vec<String> = raw
        .iter()
        .map(|r| Record::phone_region(r, &options.normalise))
        .collect();
    let mut phones: Vec<(&str, String, usize)> = (0..raw.len())
        .filter(|&i| !raw[i].get(Field::Phone).is_empty())
        .map(|i| {
            let key = crate::normalise::phone_key(raw[i].get(Field::Phone));
            (regions[i].as_str(), key, i)
        })
        .collect();
    phones.sort_unstable();
    let parsed: Vec<String> = parallel_chunks(phones.len(), threads, |range| {
        let mut last: Option<(usize, String)> = None;
        range
            .map(|k| {
                let (region, key, _) = &phones[k];
                if let Some((at, number)) = &last
                    && phones[*at].0 == *region
                    && phones[*at].1 == *key
                {
                    return number.clone();
                }
                let number = crate::normalise::phone(key, region).unwrap_or_default();
                last = Some((k, number.clone()));
                number
            })
            .collect()
    });
    for ((_, _, i), phone) in phones.iter().zip(parsed) {
        records[*i].phone = phone;
    }
    timings.normalise = started.elapsed();

    let started = Instant::now();
    let deterministic = options
        .deterministic
        .clone()
        .unwrap_or_else(|| rules::default_deterministic(mapped));
    let blocking = options
        .blocking
        .clone()
        .unwrap_or_else(|| rules::default_blocking(mapped));
    let mut all_rules = blocking.clone();
    all_rules.extend(
        deterministic
            .iter()
            .filter(|r| !blocking.contains(r))
            .cloned(),
    );
    // each record's key under each rule: for blocking, then for what EM learns within
    let keys: Vec<Vec<Option<u64>>> = all_rules
        .iter()
        .map(|rule| {
            parallel_chunks(records.len(), threads, |range| {
                range.map(|i| rule.key(&records[i])).collect()
            })
        })
        .collect();
    let (pairs, blocking_stats) = rules::candidate_pairs(&keys, options.max_block_size);
    timings.block = started.elapsed();

    let started = Instant::now();
    let comparisons: Vec<Comparison> = Comparison::ALL
        .into_iter()
        .filter(|c| c.fields().iter().any(|f| mapped.contains(f)))
        .collect();
    let mut model = Model::new(comparisons, &records, options.u_samples, threads);
    // each pair's pattern, and which rules' keys it shares (what EM learns within)
    let patterns: Vec<(Pattern, u32)> = parallel_chunks(pairs.len(), threads, |range| {
        range
            .map(|i| {
                let (a, b) = unpack(pairs[i]);
                let rules = keys.iter().enumerate().fold(0u32, |mask, (r, keys)| {
                    if r < 32 && keys[a].is_some() && keys[a] == keys[b] {
                        mask | (1 << r)
                    } else {
                        mask
                    }
                });
                (model.pattern(&records[a], &records[b]), rules)
            })
            .collect()
    });
    drop(keys);
    timings.compare = started.elapsed();

    let started = Instant::now();
    let mut counts: HashMap<(Pattern, u32), u64> = HashMap::new();
    for key in &patterns {
        *counts.entry(*key).or_default() += 1;
    }
    let excluded: Vec<u32> = all_rules
        .iter()
        .map(|rule| excluded_comparisons(rule, &model.comparisons))
        .collect();
    let n = records.len() as f64;
    model.train(
        &counts,
        &excluded,
        n * (n - 1.0) / 2.0,
        options.em_iterations,
    );
    timings.train = started.elapsed();

    let started = Instant::now();
    let mut links: Vec<Link> = parallel_chunks(pairs.len(), threads, |range| {
        range
            .filter_map(|i| {
                let (a, b) = unpack(pairs[i]);
                let (x, y) = (&records[a], &records[b]);
                let rule = deterministic.iter().position(|r| r.matches(x, y));
                let pattern = patterns[i].0;
                let weight = model.weight(pattern, x, y);
                let p = if rule.is_some() {
                    1.0
                } else {
                    probability(weight)
                };
                (p >= options.threshold).then_some(Link {
                    a: a as u32,
                    b: b as u32,
                    rule,
                    weight,
                    probability: p,
                    pattern,
                    refused: None,
                })
            })
            .collect()
    });
    // rules first, in their order; then the strongest evidence
    links.sort_by(|x, y| {
        x.rule
            .unwrap_or(usize::MAX)
            .cmp(&y.rule.unwrap_or(usize::MAX))
            .then(y.weight.total_cmp(&x.weight))
            .then((x.a, x.b).cmp(&(y.a, y.b)))
    });
    let mut clusters = Clusters::new(&records, options.guards.clone());
    for link in &mut links {
        if let Err(refusal) = clusters.merge(link.a, link.b) {
            link.refused = Some(refusal);
        }
    }
    let assignments = clusters.assignments();
    timings.cluster = started.elapsed();

    Linkage {
        sources,
        clusters: assignments,
        pairs_compared: pairs.len(),
        records,
        links,
        model,
        deterministic,
        blocking,
        blocking_stats,
        timings,
    }
}

impl Linkage {
    /// Each comparison's level and weight for a link.
    pub fn terms(&self, link: &Link) -> Vec<Term> {
        self.model.terms(
            link.pattern,
            &self.records[link.a as usize],
            &self.records[link.b as usize],
        )
    }

    /// How a record reaches every other record of its cluster: for each
    /// member, the chain of accepted links (indices into `links`) from `record` to it.
    pub fn paths(&self, record: u32) -> Vec<(u32, Vec<usize>)> {
        let cluster = self.clusters[record as usize];
        let accepted: Vec<usize> = (0..self.links.len())
            .filter(|&i| {
                let link = &self.links[i];
                link.refused.is_none() && self.clusters[link.a as usize] == cluster
            })
            .collect();
        let edges: Vec<(u32, u32)> = accepted
            .iter()
            .map(|&i| (self.links[i].a, self.links[i].b))
            .collect();
        paths(record, &edges)
            .into_iter()
            .map(|(member, chain)| (member, chain.into_iter().map(|e| accepted[e]).collect()))
            .collect()
    }

    pub fn find(&self, source: Option<&str>, id: &str) -> Option<u32> {
        self.records
            .iter()
            .position(|r| r.id == id && source.is_none_or(|s| self.sources[r.source as usize] == s))
            .map(|i| i as u32)
    }

    pub fn label(&self, record: u32) -> String {
        let r = &self.records[record as usize];
        format!("{}:{}", self.sources[r.source as usize], r.id)
    }
}

/// The comparisons (a bit each, in `comparisons`' order) that read a field
/// of `rule`: among pairs sharing the rule's key they agree by construction.
fn excluded_comparisons(rule: &Rule, comparisons: &[Comparison]) -> u32 {
    let mut mask = 0;
    for (c, comparison) in comparisons.iter().enumerate() {
        let reads = rule.parts.iter().any(|part| {
            let field = part.field();
            comparison.fields().contains(&field)
                || (field == Field::StreetNumber && *comparison == Comparison::Location)
                || (field == Field::FullName
                    && matches!(comparison, Comparison::FirstName | Comparison::LastName))
        });
        if reads {
            mask |= 1 << c;
        }
    }
    mask
}

/// How `start` reaches every node it is connected to through `edges`: for
/// each, breadth first, the chain of edge indices from `start` to it.
pub fn paths<T: Copy + Eq + std::hash::Hash>(start: T, edges: &[(T, T)]) -> Vec<(T, Vec<usize>)> {
    let mut adjacent: HashMap<T, Vec<(T, usize)>> = HashMap::new();
    for (i, &(a, b)) in edges.iter().enumerate() {
        adjacent.entry(a).or_default().push((b, i));
        adjacent.entry(b).or_default().push((a, i));
    }
    let mut via: HashMap<T, Option<(T, usize)>> = HashMap::from([(start, None)]);
    let mut queue = std::collections::VecDeque::from([start]);
    let mut order = Vec::new();
    while let Some(at) = queue.pop_front() {
        order.push(at);
        for &(next, edge) in adjacent.get(&at).into_iter().flatten() {
            if let std::collections::hash_map::Entry::Vacant(slot) = via.entry(next) {
                slot.insert(Some((at, edge)));
                queue.push_back(next);
            }
        }
    }
    order
        .into_iter()
        .skip(1)
        .map(|member| {
            let mut chain = Vec::new();
            let mut at = member;
            while let Some(Some((previous, edge))) = via.get(&at) {
                chain.push(*edge);
                at = *previous;
            }
            chain.reverse();
            (member, chain)
        })
        .collect()
}

/// `work` over `0..len` split into one contiguous range per thread, results in order.
pub fn parallel_chunks<T: Send>(
    len: usize,
    threads: usize,
    work: impl Fn(std::ops::Range<usize>) -> Vec<T> + Sync,
) -> Vec<T> {
    if threads <= 1 || len < 10_000 {
        return work(0..len);
    }
    let chunk = len.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let work = &work;
                scope.spawn(move || work(t * chunk..((t + 1) * chunk).min(len)))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a worker"))
            .collect()
    })
}
