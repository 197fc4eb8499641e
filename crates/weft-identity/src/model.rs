//! Fellegi–Sunter matching: each comparison level has a probability among
//! matches (m) and among non-matches (u); a pair's match weight is the prior
//! odds plus the sum of log2(m/u) over its levels. u comes from random pairs
//! (nearly all non-matches); m and the prior are learned from the candidate
//! pairs by expectation–maximisation, with no labels. Exact name agreements
//! weigh by how rare the name is (term frequency adjustment).

use std::collections::HashMap;

use crate::compare::{Comparison, Level};
use crate::record::Record;

/// A pair's levels on every comparison, 4 bits each; [`NULL`] where missing.
pub type Pattern = u32;
pub const NULL: Level = 0xF;

#[derive(Debug, Clone)]
pub struct Model {
    pub comparisons: Vec<Comparison>,
    /// `m[c][level]`: the share of matching pairs at that level.
    pub m: Vec<Vec<f64>>,
    /// `u[c][level]`: the share of non-matching pairs at that level.
    pub u: Vec<Vec<f64>>,
    /// The shares among random pairs, matches included: `u` is these with
    /// the matches' part taken out.
    sampled: Vec<Vec<f64>>,
    /// The smallest share a level can have: one pair in the sample.
    floor: f64,
    /// The share of candidate pairs that match, as learned.
    pub candidate_prior: f64,
    /// The chance that two records drawn at random match: the prior of every
    /// pair's weight (the candidates' share spread over all pairs).
    pub prior: f64,
    /// Each first and last name's share of the records that have one.
    first_names: HashMap<String, f64>,
    last_names: HashMap<String, f64>,
    pub em_iterations: usize,
}

/// One comparison's part in a pair's weight.
#[derive(Debug, Clone)]
pub struct Term {
    pub comparison: Comparison,
    /// `None` when either record lacked the value.
    pub level: Option<Level>,
    pub weight: f64,
}

impl Model {
    /// A model over `comparisons` with u estimated from `samples` random pairs
    /// (every pair when there are fewer) and m at neutral starting values.
    pub fn new(
        comparisons: Vec<Comparison>,
        records: &[Record],
        samples: usize,
        threads: usize,
    ) -> Self {
        let n = records.len();
        let mut counts: Vec<Vec<f64>> = comparisons
            .iter()
            .map(|c| vec![0.0; c.levels().len()])
            .collect();
        let all_pairs = n * n.saturating_sub(1) / 2;
        let tally = |pairs: &mut dyn Iterator<Item = (usize, usize)>| {
            let mut counts: Vec<Vec<f64>> = comparisons
                .iter()
                .map(|c| vec![0.0; c.levels().len()])
                .collect();
            for (a, b) in pairs {
                for (c, comparison) in comparisons.iter().enumerate() {
                    if let Some(level) = comparison.level(&records[a], &records[b]) {
                        counts[c][level as usize] += 1.0;
                    }
                }
            }
            counts
        };
        let parts: Vec<Vec<Vec<f64>>> = if all_pairs <= samples {
            vec![tally(
                &mut (0..n).flat_map(|a| (a + 1..n).map(move |b| (a, b))),
            )]
        } else {
            let per_thread = samples / threads.max(1);
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads.max(1))
                    .map(|t| {
                        let tally = &tally;
                        scope.spawn(move || {
                            let mut rng = SplitMix(0x5eed_0000 + t as u64);
                            let mut pairs = std::iter::from_fn(|| {
                                loop {
                                    let a = (rng.next() % n as u64) as usize;
                                    let b = (rng.next() % n as u64) as usize;
                                    if a != b {
                                        return Some((a, b));
                                    }
                                }
                            })
                            .take(per_thread);
                            tally(&mut pairs)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("u sampling"))
                    .collect()
            })
        };
        for part in parts {
            for (c, levels) in part.into_iter().enumerate() {
                for (l, count) in levels.into_iter().enumerate() {
                    counts[c][l] += count;
                }
            }
        }
        // add-one smoothing: a level never seen among random pairs is rare, not impossible
        let sampled: Vec<Vec<f64>> = counts
            .iter()
            .map(|levels| {
                let total: f64 = levels.iter().sum::<f64>() + levels.len() as f64;
                levels.iter().map(|count| (count + 1.0) / total).collect()
            })
            .collect();
        let m = comparisons
            .iter()
            .map(|c| {
                let levels = c.levels().len();
                // most matches agree fully; the rest spread over the lower levels
                (0..levels)
                    .map(|l| {
                        if l == 0 {
                            0.8
                        } else {
                            0.2 / (levels - 1) as f64
                        }
                    })
                    .collect()
            })
            .collect();
        let drawn = all_pairs.min(samples).max(1) as f64;
        Self {
            u: sampled.clone(),
            sampled,
            floor: 1.0 / drawn,
            first_names: frequencies(records.iter().map(|r| r.first.as_str())),
            last_names: frequencies(records.iter().map(|r| r.last.as_str())),
            comparisons,
            m,
            candidate_prior: 0.1,
            prior: 0.1,
            em_iterations: 0,
        }
    }

    /// The levels of a pair on every comparison.
    pub fn pattern(&self, a: &Record, b: &Record) -> Pattern {
        let mut pattern = 0;
        for (c, comparison) in self.comparisons.iter().enumerate() {
            let level = comparison.level(a, b).unwrap_or(NULL);
            pattern |= (level as u32) << (4 * c);
        }
        pattern
    }

    pub fn level(pattern: Pattern, c: usize) -> Option<Level> {
        let level = ((pattern >> (4 * c)) & 0xF) as Level;
        (level != NULL).then_some(level)
    }

    /// Learns m and the prior from the candidate pairs, u held fixed.
    ///
    /// `counts` holds each (pattern, rules) with its number of pairs, where
    /// bit `r` of rules says the pair shares rule `r`'s key; `excluded[r]`
    /// has bit `c` set for each comparison that reads one of rule `r`'s
    /// fields. As Splink does, m is learned by expectation–maximisation
    /// within each rule's pairs, on the comparisons the rule leaves free: a
    /// pair blocked on its birth date agrees on it whether it matches or not,
    /// so there that agreement says nothing, and u (from random pairs) is
    /// right about the other comparisons. Over all candidates at once, EM
    /// would find that u explains blocked pairs badly and call them all
    /// matches. Each comparison's m is the rules' estimates weighed by the
    /// matches each found; the prior comes from all candidates with m fixed.
    /// `all_pairs` is how many pairs the records make, blocked or not.
    pub fn train(
        &mut self,
        counts: &HashMap<(Pattern, u32), u64>,
        excluded: &[u32],
        all_pairs: f64,
        max_iterations: usize,
    ) {
        let mut by_rule: Vec<HashMap<Pattern, f64>> = vec![HashMap::new(); excluded.len()];
        let mut all: HashMap<Pattern, f64> = HashMap::new();
        for (&(pattern, rules), &n) in counts {
            *all.entry(pattern).or_default() += n as f64;
            for (r, patterns) in by_rule.iter_mut().enumerate() {
                if rules & (1 << r) != 0 {
                    *patterns.entry(pattern).or_default() += n as f64;
                }
            }
        }
        let by_rule: Vec<Vec<(Pattern, f64)>> = by_rule
            .into_iter()
            .map(|patterns| patterns.into_iter().collect())
            .collect();
        let all: Vec<(Pattern, f64)> = all.into_iter().collect();
        let candidates: f64 = all.iter().map(|(_, n)| n).sum();
        let start = self.m.clone();
        // Random pairs hold a few matches, and on near-unique identifiers they
        // are most of the agreements: take their part out of u, learn again.
        for _ in 0..3 {
            let mut sums: Vec<Vec<f64>> = self.m.iter().map(|l| vec![0.0; l.len()]).collect();
            let mut weights = vec![0.0; self.comparisons.len()];
            for (patterns, &excluded) in by_rule.iter().zip(excluded) {
                let free = !excluded & ((1 << self.comparisons.len()) - 1);
                if patterns.is_empty() || free == 0 {
                    continue;
                }
                let (lambda, m) =
                    self.expectation_maximisation(patterns, &start, free, max_iterations);
                let matches = lambda * patterns.iter().map(|(_, n)| n).sum::<f64>();
                for c in (0..self.comparisons.len()).filter(|c| free & (1 << c) != 0) {
                    for (sum, value) in sums[c].iter_mut().zip(&m[c]) {
                        *sum += matches * value;
                    }
                    weights[c] += matches;
                }
            }
            for (c, sums) in sums.into_iter().enumerate() {
                if weights[c] > 0.0 {
                    self.m[c] = sums
                        .into_iter()
                        .map(|s| (s / weights[c]).max(1e-6))
                        .collect();
                }
            }
            self.candidate_prior = self.share_of_matches(&all, max_iterations);
            self.prior = (self.candidate_prior * candidates / all_pairs.max(1.0)).clamp(1e-12, 0.5);
            for c in 0..self.comparisons.len() {
                let levels: Vec<f64> = self.sampled[c]
                    .iter()
                    .zip(&self.m[c])
                    .map(|(sampled, m)| {
                        ((sampled - self.prior * m) / (1.0 - self.prior)).max(self.floor)
                    })
                    .collect();
                let total: f64 = levels.iter().sum();
                self.u[c] = levels.into_iter().map(|u| u / total).collect();
            }
        }
    }

    /// EM over `patterns` on the comparisons in `free` (bit per comparison),
    /// from `start`: the share of matches and m (only `free` rows learned).
    fn expectation_maximisation(
        &mut self,
        patterns: &[(Pattern, f64)],
        start: &[Vec<f64>],
        free: u32,
        max_iterations: usize,
    ) -> (f64, Vec<Vec<f64>>) {
        let mut m = start.to_vec();
        let mut lambda: f64 = 0.1;
        let is_free = |c: usize| free & (1 << c) != 0;
        for iteration in 0..max_iterations {
            let mut m_sum: Vec<Vec<f64>> = m.iter().map(|l| vec![0.0; l.len()]).collect();
            let (mut matched, mut total) = (0.0, 0.0);
            for &(pattern, count) in patterns {
                let (mut lm, mut lu) = (lambda, 1.0 - lambda);
                for c in (0..self.comparisons.len()).filter(|&c| is_free(c)) {
                    if let Some(level) = Self::level(pattern, c) {
                        lm *= m[c][level as usize];
                        lu *= self.u[c][level as usize];
                    }
                }
                let posterior = lm / (lm + lu);
                matched += posterior * count;
                total += count;
                for (c, sums) in m_sum.iter_mut().enumerate().filter(|(c, _)| is_free(*c)) {
                    if let Some(level) = Self::level(pattern, c) {
                        sums[level as usize] += posterior * count;
                    }
                }
            }
            let mut change: f64 = 0.0;
            for (c, sums) in m_sum.into_iter().enumerate() {
                let seen: f64 = sums.iter().sum();
                if seen <= 0.0 {
                    continue;
                }
                for (l, sum) in sums.into_iter().enumerate() {
                    let value = (sum / seen).max(1e-6);
                    change = change.max((value - m[c][l]).abs());
                    m[c][l] = value;
                }
            }
            let share = (matched / total.max(1.0)).clamp(1e-9, 1.0 - 1e-9);
            change = change.max((share - lambda).abs());
            lambda = share;
            self.em_iterations += 1;
            if change < 1e-6 || iteration + 1 == max_iterations {
                break;
            }
        }
        (lambda, m)
    }

    /// The share of `patterns` that match, m and u held fixed (EM on the share alone).
    fn share_of_matches(&self, patterns: &[(Pattern, f64)], max_iterations: usize) -> f64 {
        let odds: Vec<(f64, f64)> = patterns
            .iter()
            .map(|&(pattern, count)| {
                let mut ratio = 1.0;
                for c in 0..self.comparisons.len() {
                    if let Some(level) = Self::level(pattern, c) {
                        ratio *= self.m[c][level as usize] / self.u[c][level as usize];
                    }
                }
                (ratio, count)
            })
            .collect();
        let total: f64 = odds.iter().map(|(_, n)| n).sum::<f64>().max(1.0);
        let mut lambda: f64 = 0.1;
        for _ in 0..max_iterations {
            let matched: f64 = odds
                .iter()
                .map(|&(ratio, n)| n * lambda * ratio / (lambda * ratio + 1.0 - lambda))
                .sum();
            let share = (matched / total).clamp(1e-9, 1.0 - 1e-9);
            let change = (share - lambda).abs();
            lambda = share;
            if change < 1e-9 {
                break;
            }
        }
        lambda
    }

    /// Each comparison's weight for a pair, term frequencies applied.
    pub fn terms(&self, pattern: Pattern, a: &Record, b: &Record) -> Vec<Term> {
        self.comparisons
            .iter()
            .enumerate()
            .map(|(c, comparison)| {
                let level = Self::level(pattern, c);
                let weight = level.map_or(0.0, |l| self.level_weight(c, l, a, b));
                Term {
                    comparison: *comparison,
                    level,
                    weight,
                }
            })
            .collect()
    }

    /// The match weight: log2 of the prior odds plus every comparison's weight.
    pub fn weight(&self, pattern: Pattern, a: &Record, b: &Record) -> f64 {
        let mut weight = (self.prior / (1.0 - self.prior)).log2();
        for c in 0..self.comparisons.len() {
            if let Some(level) = Self::level(pattern, c) {
                weight += self.level_weight(c, level, a, b);
            }
        }
        weight
    }

    fn level_weight(&self, c: usize, level: Level, a: &Record, b: &Record) -> f64 {
        let comparison = self.comparisons[c];
        let m = self.m[c][level as usize];
        let mut u = self.u[c][level as usize];
        if comparison.exact_name(level) {
            // agreeing on a rare name says more than agreeing on a common one
            let (table, value) = match comparison {
                Comparison::FirstName => (&self.first_names, &a.first),
                _ => (&self.last_names, &a.last),
            };
            let value = if value.is_empty() || !table.contains_key(value) {
                if comparison == Comparison::FirstName {
                    &b.first
                } else {
                    &b.last
                }
            } else {
                value
            };
            if let Some(tf) = table.get(value) {
                u = tf.max(1e-6);
            }
        }
        (m / u).log2()
    }

    pub fn prior_weight(&self) -> f64 {
        (self.prior / (1.0 - self.prior)).log2()
    }
}

/// A match weight as a probability.
pub fn probability(weight: f64) -> f64 {
    1.0 / (1.0 + (-weight).exp2())
}

fn frequencies<'a>(values: impl Iterator<Item = &'a str>) -> HashMap<String, f64> {
    let mut counts: HashMap<&str, f64> = HashMap::new();
    let mut total = 0.0;
    for value in values.filter(|v| !v.is_empty()) {
        *counts.entry(value).or_default() += 1.0;
        total += 1.0;
    }
    counts
        .into_iter()
        .map(|(v, n)| (v.to_owned(), n / total))
        .collect()
}

/// A small fast generator for sampling pairs (reproducible by seed).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
