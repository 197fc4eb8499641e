//! Gradient-boosted decision trees for a binary outcome, learned on
//! histograms of binned features, leaf by leaf (the leaf whose best split
//! gains most is split next), with log loss as the objective.
//!
//! Each leaf's histogram holds, per feature and bin, the sums of gradients
//! and hessians of its rows; a split is found by scanning it. Only the
//! smaller child's histogram is built from rows, the larger one is the
//! parent's minus it. Numeric splits learn where missing values go;
//! categorical splits order the levels by gradient over hessian and cut that
//! order, so one split can put any set of levels on the left. Boosting stops
//! when the validation log loss has not improved for a number of rounds and
//! the model keeps the best round.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bins::{BinMapper, Binned, Binner};
use crate::schema::Matrix;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GbdtParams {
    pub learning_rate: f64,
    pub num_leaves: usize,
    pub max_depth: usize,
    pub min_data_in_leaf: usize,
    pub min_sum_hessian: f64,
    pub lambda_l2: f64,
    pub max_rounds: usize,
    pub early_stopping_rounds: usize,
    pub max_bins: usize,
    /// Weight of a positive row against a negative one (class imbalance).
    pub pos_weight: f64,
    /// Share of features each tree may split on (seeded, so runs repeat).
    pub feature_fraction: f64,
    pub seed: u64,
    /// Most levels on the left of a categorical split.
    pub max_cat_threshold: usize,
    /// Added to the hessian when ordering levels, so rare levels rank near the middle.
    pub cat_smooth: f64,
    /// Extra L2 on categorical splits.
    pub cat_l2: f64,
    /// A level needs this many rows to be ordered on its own.
    pub min_data_per_group: usize,
    pub threads: usize,
}

impl Default for GbdtParams {
    fn default() -> Self {
        Self {
            learning_rate: 0.1,
            num_leaves: 31,
            max_depth: 0,
            min_data_in_leaf: 20,
            min_sum_hessian: 1e-3,
            lambda_l2: 0.0,
            max_rounds: 1000,
            early_stopping_rounds: 30,
            max_bins: 255,
            pos_weight: 1.0,
            feature_fraction: 1.0,
            seed: 42,
            max_cat_threshold: 32,
            cat_smooth: 10.0,
            cat_l2: 10.0,
            min_data_per_group: 100,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// A trained ensemble: the sum of its trees' leaves plus `base` is the log-odds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gbdt {
    pub base: f64,
    pub trees: Vec<Tree>,
    /// Total split gain per feature.
    pub importance: Vec<f64>,
    /// Rounds run before stopping, and the best one kept.
    pub rounds_run: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
    pub leaves: Vec<f64>,
    /// Bitsets of level indices of the categorical nodes, back to back.
    pub cat_bits: Vec<u64>,
}

/// A child below zero is the leaf `!child`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub feature: u32,
    /// Numeric: rows with a value ≤ threshold go left.
    pub threshold: f32,
    /// Categorical: the levels going left are the bitset
    /// `cat_bits[cat_start .. cat_start + cat_words]`; `cat_words` 0 means numeric.
    pub cat_start: u32,
    pub cat_words: u32,
    pub missing_left: bool,
    pub left: i32,
    pub right: i32,
}

/// A tree laid out for scoring, where every node decides without a branch:
/// a numeric node and a categorical one both read a bitset word and compare,
/// and the node's kind picks the answer. Branching on the kind instead cost
/// a third of the scoring time in mispredictions. Rows come coded
/// ([`code_rows`]): a categorical value as its level's integer, so a
/// categorical test needs no conversion on its path.
struct Scorer<'a> {
    nodes: Vec<ScoreNode>,
    /// Word 0 is empty, read by numeric nodes; each level set is followed by
    /// an empty word, where levels beyond it land.
    bits: Vec<u64>,
    leaves: &'a [f64],
}

#[derive(Clone, Copy)]
struct ScoreNode {
    feature: u32,
    threshold: f32,
    bits_at: u32,
    words: u32,
    missing_left: bool,
    children: [i32; 2],
}

impl<'a> Scorer<'a> {
    fn of(tree: &'a Tree) -> Self {
        let mut bits = vec![0];
        let nodes = tree
            .nodes
            .iter()
            .map(|node| {
                let bits_at = if node.cat_words == 0 {
                    0
                } else {
                    let at = bits.len() as u32;
                    let start = node.cat_start as usize;
                    bits.extend_from_slice(&tree.cat_bits[start..start + node.cat_words as usize]);
                    bits.push(0);
                    at
                };
                ScoreNode {
                    feature: node.feature,
                    threshold: node.threshold,
                    bits_at,
                    words: node.cat_words,
                    missing_left: node.missing_left,
                    children: [node.left, node.right],
                }
            })
            .collect();
        Self {
            nodes,
            bits,
            leaves: &tree.leaves,
        }
    }

    /// The child a coded row goes to from node `at`.
    #[inline(always)]
    fn step(&self, at: i32, row: &[u32]) -> i32 {
        let node = &self.nodes[at as usize];
        let level = row[node.feature as usize];
        let value = f32::from_bits(level);
        // a missing level is coded as a NaN too
        let missing = value.is_nan();
        let word = self.bits[(node.bits_at + (level / 64).min(node.words)) as usize];
        let in_set = word >> (level % 64) & 1 == 1;
        let below = value <= node.threshold;
        let categorical = node.words > 0;
        let known = (categorical & in_set) | (!categorical & below);
        let left = (known & !missing) | (missing & node.missing_left);
        node.children[usize::from(!left)]
    }

    /// The leaves of four rows, walked side by side.
    #[inline]
    fn leaves_of(&self, rows: [&[u32]; 4]) -> [usize; 4] {
        if self.nodes.is_empty() {
            return [0; 4];
        }
        walk4(|k, at| self.step(at, rows[k]))
    }
}

/// Rows of the matrix as [`Scorer`] reads them: a numeric value as its
/// `f32` bits, a categorical one as its level (a whole number), missing as
/// a NaN's bits.
fn code_rows(matrix: &Matrix, rows: std::ops::Range<usize>, categorical: &[bool]) -> Vec<u32> {
    let mut coded = Vec::with_capacity(rows.len() * matrix.cols);
    for r in rows {
        coded.extend(matrix.row(r).iter().zip(categorical).map(|(value, cat)| {
            if *cat && !value.is_nan() {
                *value as u32
            } else {
                value.to_bits()
            }
        }));
    }
    coded
}

/// The leaves four rows reach from the root, walked side by side so their
/// memory reads overlap: `step(k, node)` is where row k goes from `node`, a
/// child below zero the leaf `!child`.
#[inline(always)]
fn walk4(step: impl Fn(usize, i32) -> i32) -> [usize; 4] {
    let mut at = [0i32; 4];
    loop {
        let mut walking = false;
        for (k, node) in at.iter_mut().enumerate() {
            if *node >= 0 {
                *node = step(k, *node);
                walking = true;
            }
        }
        if !walking {
            return at.map(|a| !a as usize);
        }
    }
}

/// Rows handled at least per part: fewer are not worth handing over.
const MIN_PART: usize = 4096;

/// `work(first, part)` over consecutive parts of `items` on rayon's threads
/// (up to `threads` parts), where `first` is the part's first index; the
/// results in order, so sums over them repeat exactly.
fn in_parts<T: Send, R: Send>(
    items: &mut [T],
    threads: usize,
    work: impl Fn(usize, &mut [T]) -> R + Sync,
) -> Vec<R> {
    let size = items.len().div_ceil(threads.max(1)).max(MIN_PART);
    items
        .par_chunks_mut(size)
        .enumerate()
        .map(|(i, part)| work(i * size, part))
        .collect()
}

impl Gbdt {
    /// Log-odds of each row of the matrix.
    pub fn predict_margin(&self, matrix: &Matrix, threads: usize) -> Vec<f64> {
        let mut out = vec![self.base; matrix.rows];
        let scorers: Vec<Scorer> = self.trees.iter().map(Scorer::of).collect();
        let mut categorical = vec![false; matrix.cols];
        for tree in &self.trees {
            for node in tree.nodes.iter().filter(|n| n.cat_words > 0) {
                categorical[node.feature as usize] = true;
            }
        }
        in_parts(&mut out, threads, |part_start, part| {
            // trees in the outer loop over small blocks keep both in cache
            for (block_start, block) in part.chunks_mut(256).enumerate() {
                let first = part_start + block_start * 256;
                let coded = code_rows(matrix, first..first + block.len(), &categorical);
                // the block's rows in fours, found once for all the trees
                let rows: Vec<[&[u32]; 4]> = (0..block.len().div_ceil(4))
                    .map(|q| {
                        std::array::from_fn(|k| {
                            let r = (q * 4 + k).min(block.len() - 1);
                            &coded[r * matrix.cols..(r + 1) * matrix.cols]
                        })
                    })
                    .collect();
                for tree in &scorers {
                    for (quad, rows) in block.chunks_mut(4).zip(&rows) {
                        let leaves = tree.leaves_of(*rows);
                        for (margin, leaf) in quad.iter_mut().zip(leaves) {
                            *margin += tree.leaves[leaf];
                        }
                    }
                }
            }
        });
        out
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct BinStat {
    g: f64,
    h: f64,
    n: u32,
}

impl BinStat {
    fn add(&mut self, other: &BinStat) {
        self.g += other.g;
        self.h += other.h;
        self.n += other.n;
    }

    fn minus(&self, other: &BinStat) -> BinStat {
        BinStat {
            g: self.g - other.g,
            h: self.h - other.h,
            n: self.n - other.n,
        }
    }
}

#[derive(Debug, Clone)]
enum SplitRule {
    /// Bins `1..=bin` go left.
    Le(u8),
    /// Bins in the set go left.
    In([u64; 4]),
}

impl SplitRule {
    /// Whether a row in `bin` goes left. Bin 0 is missing, which goes left
    /// where `missing_left` says (a level set holds bin 0 itself when it does).
    /// Without a branch: a split sends rows either way at random.
    #[inline(always)]
    fn goes_left(&self, missing_left: bool, bin: u8) -> bool {
        match self {
            SplitRule::Le(t) => (bin != 0) & (bin <= *t) | (bin == 0) & missing_left,
            SplitRule::In(bits) => bits[bin as usize / 64] >> (bin % 64) & 1 == 1,
        }
    }
}

/// Puts the rows going left first, each side in its order; returns how
/// many go left. `scratch` holds the right side meanwhile.
fn partition(rows: &mut [u32], scratch: &mut Vec<u32>, goes_left: impl Fn(u32) -> bool) -> usize {
    // each row is written to both sides and only the side it belongs to
    // moves on: no branch to mispredict
    scratch.clear();
    scratch.resize(rows.len(), 0);
    let (mut left, mut right) = (0, 0);
    for i in 0..rows.len() {
        let row = rows[i];
        let goes = goes_left(row);
        rows[left] = row;
        scratch[right] = row;
        left += usize::from(goes);
        right += usize::from(!goes);
    }
    rows[left..].copy_from_slice(&scratch[..right]);
    left
}

#[derive(Debug, Clone)]
struct Candidate {
    gain: f64,
    feature: usize,
    rule: SplitRule,
    missing_left: bool,
    left: BinStat,
}

struct Leaf {
    start: usize,
    len: usize,
    total: BinStat,
    hist: Vec<BinStat>,
    depth: usize,
    best: Option<Candidate>,
    /// Where the leaf hangs in the tree: (node, is left child); None for the root.
    parent: Option<(usize, bool)>,
}

struct TrainNode {
    feature: usize,
    rule: SplitRule,
    missing_left: bool,
    left: i32,
    right: i32,
}

/// What the learner reads: binned features, their offsets in a histogram, the labels.
struct Problem<'a> {
    binned: &'a Binned,
    offsets: Vec<usize>,
    categorical: Vec<bool>,
    params: &'a GbdtParams,
}

impl Problem<'_> {
    fn hist_len(&self) -> usize {
        *self.offsets.last().unwrap_or(&0)
    }

    /// The histogram of the rows, feature by feature as LightGBM builds it:
    /// the rows' gradients are gathered once in the rows' order, then each
    /// feature's pass reads its byte column (small enough to stay in cache)
    /// into its own few hundred bins (which stay in the fastest cache).
    /// Features are shared out over threads; each writes its own bins.
    fn histogram(&self, rows: &[u32], grad: &[(f32, f32)], features: &[bool]) -> Vec<BinStat> {
        let ordered: Vec<(f32, f32)> = rows.iter().map(|&r| grad[r as usize]).collect();
        let mut hist = vec![BinStat::default(); self.hist_len()];
        let mut parts = Vec::new();
        let mut rest = hist.as_mut_slice();
        for ((bounds, column), on) in self
            .offsets
            .windows(2)
            .zip(&self.binned.columns)
            .zip(features)
        {
            let (bins, tail) = rest.split_at_mut(bounds[1] - bounds[0]);
            rest = tail;
            if *on {
                parts.push((column, bins));
            }
        }
        let fill = |column: &[u8], bins: &mut [BinStat]| {
            // even and odd rows into two sets of bins: two rows in the same
            // bin one after another (common for features of few levels) then
            // add to different memory, and the CPU need not wait for the
            // first sum; 256 bins each, so a byte indexes them unchecked
            let mut even = [BinStat::default(); 256];
            let mut odd = [BinStat::default(); 256];
            let add = |bins: &mut [BinStat; 256], r: u32, (g, h): (f32, f32)| {
                let stat = &mut bins[usize::from(column[r as usize])];
                stat.g += f64::from(g);
                stat.h += f64::from(h);
                stat.n += 1;
            };
            let mut pairs = rows.chunks_exact(2).zip(ordered.chunks_exact(2));
            for (r, gh) in &mut pairs {
                add(&mut even, r[0], gh[0]);
                add(&mut odd, r[1], gh[1]);
            }
            if rows.len() % 2 == 1 {
                add(&mut even, rows[rows.len() - 1], ordered[rows.len() - 1]);
            }
            for ((total, a), b) in bins.iter_mut().zip(&even).zip(&odd) {
                *total = *a;
                total.add(b);
            }
        };
        // handing work to another thread costs as much as some 50,000 bins added
        if rows.len() * parts.len() <= 50_000 || self.params.threads <= 1 {
            for (column, bins) in parts {
                fill(column, bins);
            }
        } else {
            parts
                .into_par_iter()
                .for_each(|(column, bins)| fill(column, bins));
        }
        hist
    }

    fn gain_of(&self, s: &BinStat, l2: f64) -> f64 {
        s.g * s.g / (s.h + l2)
    }

    fn admissible(&self, s: &BinStat) -> bool {
        s.n as usize >= self.params.min_data_in_leaf && s.h >= self.params.min_sum_hessian
    }

    fn best_split(&self, leaf: &Leaf, features: &[bool]) -> Option<Candidate> {
        if leaf.len < 2 * self.params.min_data_in_leaf {
            return None;
        }
        let max_depth = self.params.max_depth;
        if max_depth > 0 && leaf.depth >= max_depth {
            return None;
        }
        let mut best: Option<Candidate> = None;
        for (f, _) in features.iter().enumerate().filter(|(_, on)| **on) {
            let hist = &leaf.hist[self.offsets[f]..self.offsets[f + 1]];
            let found = if self.categorical[f] {
                self.categorical_split(f, hist, &leaf.total)
            } else {
                self.numeric_split(f, hist, &leaf.total)
            };
            if let Some(found) = found
                && best.as_ref().is_none_or(|b| found.gain > b.gain)
            {
                best = Some(found);
            }
        }
        best
    }

    fn numeric_split(
        &self,
        feature: usize,
        hist: &[BinStat],
        total: &BinStat,
    ) -> Option<Candidate> {
        let l2 = self.params.lambda_l2;
        let parent = self.gain_of(total, l2);
        let missing = hist[0];
        let mut best: Option<Candidate> = None;
        let mut left = BinStat::default();
        let last = hist.len().saturating_sub(1);
        for (bin, stat) in hist.iter().enumerate().take(last).skip(1) {
            left.add(stat);
            for missing_left in [false, true] {
                if missing.n == 0 && missing_left {
                    continue;
                }
                let mut l = left;
                if missing_left {
                    l.add(&missing);
                }
                let r = total.minus(&l);
                if !self.admissible(&l) || !self.admissible(&r) {
                    continue;
                }
                let gain = self.gain_of(&l, l2) + self.gain_of(&r, l2) - parent;
                if gain > 1e-12 && best.as_ref().is_none_or(|b| gain > b.gain) {
                    best = Some(Candidate {
                        gain,
                        feature,
                        rule: SplitRule::Le(bin as u8),
                        // without missing values in training, missing follows the bigger side
                        missing_left: if missing.n == 0 {
                            l.n >= r.n
                        } else {
                            missing_left
                        },
                        left: l,
                    });
                }
            }
        }
        best
    }

    fn categorical_split(
        &self,
        feature: usize,
        hist: &[BinStat],
        total: &BinStat,
    ) -> Option<Candidate> {
        let params = self.params;
        let l2 = params.lambda_l2 + params.cat_l2;
        let parent = self.gain_of(total, l2);
        let used: Vec<usize> = (0..hist.len()).filter(|b| hist[*b].n > 0).collect();
        if used.len() < 2 {
            return None;
        }
        let mut best: Option<Candidate> = None;
        let consider = |set: &[usize], best: &mut Option<Candidate>| {
            let mut l = BinStat::default();
            for b in set {
                l.add(&hist[*b]);
            }
            let r = total.minus(&l);
            if !self.admissible(&l) || !self.admissible(&r) {
                return;
            }
            let gain = self.gain_of(&l, l2) + self.gain_of(&r, l2) - parent;
            if gain > 1e-12 && best.as_ref().is_none_or(|b| gain > b.gain) {
                let mut bits = [0u64; 4];
                for b in set {
                    bits[b / 64] |= 1 << (b % 64);
                }
                *best = Some(Candidate {
                    gain,
                    feature,
                    missing_left: bits[0] & 1 == 1,
                    rule: SplitRule::In(bits),
                    left: l,
                });
            }
        };
        if used.len() <= 4 {
            // few levels: one level against the rest
            for b in &used {
                consider(&[*b], &mut best);
            }
            return best;
        }
        let mut ordered: Vec<usize> = used
            .into_iter()
            .filter(|b| hist[*b].n as usize >= params.min_data_per_group)
            .collect();
        ordered.sort_by(|a, b| {
            let ratio = |s: &BinStat| s.g / (s.h + params.cat_smooth);
            ratio(&hist[*a]).total_cmp(&ratio(&hist[*b]))
        });
        let most = params
            .max_cat_threshold
            .min(ordered.len().saturating_sub(1));
        for k in 1..=most {
            consider(&ordered[..k], &mut best);
            consider(&ordered[ordered.len() - k..], &mut best);
        }
        best
    }
}

/// Trains on `train`, stopping early on `valid`; labels are 0/1.
pub fn train(
    binner: &Binner,
    train: (&Binned, &[bool]),
    valid: Option<(&Binned, &[bool])>,
    params: &GbdtParams,
) -> Gbdt {
    // threads kept for the whole training: starting them for each histogram
    // cost more than some histograms take
    let boost = || boost(binner, train, valid, params);
    match rayon::ThreadPoolBuilder::new()
        .num_threads(params.threads.max(1))
        .build()
    {
        Ok(pool) => pool.install(boost),
        Err(_) => boost(),
    }
}

fn boost(
    binner: &Binner,
    train: (&Binned, &[bool]),
    valid: Option<(&Binned, &[bool])>,
    params: &GbdtParams,
) -> Gbdt {
    let (binned, labels) = train;
    let n = binned.rows;
    let mut offsets = vec![0];
    for mapper in &binner.mappers {
        offsets.push(offsets.last().unwrap() + mapper.bins());
    }
    let categorical = binner
        .mappers
        .iter()
        .map(|m| matches!(m, BinMapper::Categorical { .. }))
        .collect();
    let n_features = binner.mappers.len();
    let problem = Problem {
        binned,
        offsets,
        categorical,
        params,
    };
    let weight = |y: bool| if y { params.pos_weight } else { 1.0 };
    let (wp, wn) = labels.iter().fold((0.0, 0.0), |(p, q), &y| {
        if y {
            (p + weight(y), q)
        } else {
            (p, q + weight(y))
        }
    });
    let base = if wp > 0.0 && wn > 0.0 {
        (wp / wn).ln()
    } else {
        0.0
    };
    let mut margin = vec![base; n];
    let mut valid_margin = valid.map(|(v, _)| vec![base; v.rows]);
    let valid_rows = valid.map(|(v, _)| v.row_major());
    let mut grad = vec![(0.0f32, 0.0f32); n];
    let mut trees: Vec<Tree> = Vec::new();
    let mut gains: Vec<Vec<(usize, f64)>> = Vec::new();
    let mut best = (f64::INFINITY, 0usize);
    let mut rng = params.seed.max(1);
    for round in 0..params.max_rounds {
        in_parts(&mut grad, params.threads, |first, part| {
            for (i, (g, h)) in (first..).zip(part) {
                let p = sigmoid(margin[i]);
                let w = weight(labels[i]);
                *g = (w * (p - f64::from(u8::from(labels[i])))) as f32;
                *h = (w * (p * (1.0 - p)).max(1e-16)) as f32;
            }
        });
        let features: Vec<bool> = if params.feature_fraction < 1.0 {
            (0..n_features)
                .map(|_| next_unit(&mut rng) < params.feature_fraction)
                .collect()
        } else {
            vec![true; n_features]
        };
        let (tree, tree_gains, leaf_rows) = grow(&problem, &grad, &features);
        let Some(tree) = tree else { break };
        for (leaf, rows) in leaf_rows.iter().enumerate() {
            for &r in rows {
                margin[r as usize] += tree.leaves[leaf];
            }
        }
        let raw = tree.to_model(binner);
        if let (Some((_, valid_labels)), Some(valid_margin)) = (valid, valid_margin.as_mut()) {
            let valid_rows = valid_rows.as_deref().unwrap_or_default();
            let losses = in_parts(valid_margin, params.threads, |first, part| {
                for (q, quad) in part.chunks_mut(4).enumerate() {
                    let row = |k: usize| {
                        let r = first + q * 4 + k.min(quad.len() - 1);
                        &valid_rows[r * n_features..(r + 1) * n_features]
                    };
                    let leaves = tree.leaves_of_bins([row(0), row(1), row(2), row(3)]);
                    for (m, leaf) in quad.iter_mut().zip(leaves) {
                        *m += raw.leaves[leaf];
                    }
                }
                log_loss_sum(part, &valid_labels[first..first + part.len()])
            });
            let loss = losses.iter().sum::<f64>() / valid_margin.len().max(1) as f64;
            if loss < best.0 - 1e-9 {
                best = (loss, round + 1);
            }
        } else {
            best = (0.0, round + 1);
        }
        trees.push(raw);
        gains.push(tree_gains);
        if round + 1 - best.1 >= params.early_stopping_rounds.max(1) && valid.is_some() {
            break;
        }
    }
    let rounds_run = trees.len();
    trees.truncate(best.1);
    let mut importance = vec![0.0; n_features];
    for tree_gains in gains.iter().take(best.1) {
        for (f, g) in tree_gains {
            importance[*f] += g;
        }
    }
    Gbdt {
        base,
        trees,
        importance,
        rounds_run,
    }
}

/// A tree while it grows, in bins.
struct BinTree {
    nodes: Vec<TrainNode>,
    leaves: Vec<f64>,
}

impl BinTree {
    /// The leaves of four rows of bins (each row all its features' bins).
    fn leaves_of_bins(&self, rows: [&[u8]; 4]) -> [usize; 4] {
        if self.nodes.is_empty() {
            return [0; 4];
        }
        walk4(|k, at| {
            let node = &self.nodes[at as usize];
            let bin = rows[k][node.feature];
            if node.rule.goes_left(node.missing_left, bin) {
                node.left
            } else {
                node.right
            }
        })
    }

    /// The same tree on raw values: bin thresholds become values, bin sets level sets.
    fn to_model(&self, binner: &Binner) -> Tree {
        let mut cat_bits = Vec::new();
        let nodes = self
            .nodes
            .iter()
            .map(|node| {
                let mapper = &binner.mappers[node.feature];
                let (threshold, cat_start, cat_words) = match (&node.rule, mapper) {
                    (SplitRule::Le(bin), BinMapper::Numeric { upper }) => {
                        (upper[*bin as usize - 1], 0, 0)
                    }
                    (SplitRule::In(bins), BinMapper::Categorical { bin_of_level, .. }) => {
                        let words = bin_of_level.len().div_ceil(64).max(1);
                        let start = cat_bits.len();
                        cat_bits.resize(start + words, 0);
                        for (level, bin) in bin_of_level.iter().enumerate() {
                            if *bin != 0 && bins[*bin as usize / 64] >> (bin % 64) & 1 == 1 {
                                cat_bits[start + level / 64] |= 1 << (level % 64);
                            }
                        }
                        (0.0, start as u32, words as u32)
                    }
                    _ => unreachable!("split rules follow their feature's kind"),
                };
                Node {
                    feature: node.feature as u32,
                    threshold,
                    cat_start,
                    cat_words,
                    missing_left: node.missing_left,
                    left: node.left,
                    right: node.right,
                }
            })
            .collect();
        Tree {
            nodes,
            leaves: self.leaves.clone(),
            cat_bits,
        }
    }
}

type Grown = (Option<BinTree>, Vec<(usize, f64)>, Vec<Vec<u32>>);

/// One tree, leaf by leaf; also the gain of each split and the rows of each leaf.
fn grow(problem: &Problem, grad: &[(f32, f32)], features: &[bool]) -> Grown {
    let params = problem.params;
    let n = problem.binned.rows;
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut scratch = Vec::with_capacity(n);
    let hist = problem.histogram(&order, grad, features);
    let total = grad.iter().fold(BinStat::default(), |mut acc, (g, h)| {
        acc.g += f64::from(*g);
        acc.h += f64::from(*h);
        acc.n += 1;
        acc
    });
    let mut root = Leaf {
        start: 0,
        len: n,
        total,
        hist,
        depth: 0,
        best: None,
        parent: None,
    };
    root.best = problem.best_split(&root, features);
    let mut leaves = vec![root];
    let mut nodes: Vec<TrainNode> = Vec::new();
    let mut gains = Vec::new();
    while leaves.len() < params.num_leaves.max(2) {
        let Some((at, _)) = leaves
            .iter()
            .enumerate()
            .filter_map(|(i, leaf)| leaf.best.as_ref().map(|b| (i, b.gain)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
        else {
            break;
        };
        let leaf = leaves.swap_remove(at);
        let split = leaf.best.clone().expect("chosen for its split");
        gains.push((split.feature, split.gain));
        let bins = &problem.binned.columns[split.feature];
        let left_len = partition(
            &mut order[leaf.start..leaf.start + leaf.len],
            &mut scratch,
            |r| split.rule.goes_left(split.missing_left, bins[r as usize]),
        );
        let node = nodes.len();
        nodes.push(TrainNode {
            feature: split.feature,
            rule: split.rule.clone(),
            missing_left: split.missing_left,
            left: 0,
            right: 0,
        });
        if let Some((parent, is_left)) = leaf.parent {
            if is_left {
                nodes[parent].left = node as i32;
            } else {
                nodes[parent].right = node as i32;
            }
        }
        let left_total = split.left;
        let right_total = leaf.total.minus(&left_total);
        let (left_start, right_start) = (leaf.start, leaf.start + left_len);
        let right_len = leaf.len - left_len;
        // build the smaller child's histogram, subtract for the other
        let (small_start, small_len) = if left_len <= right_len {
            (left_start, left_len)
        } else {
            (right_start, right_len)
        };
        let small = problem.histogram(&order[small_start..small_start + small_len], grad, features);
        let mut large = leaf.hist;
        for (l, s) in large.iter_mut().zip(&small) {
            *l = l.minus(s);
        }
        let (left_hist, right_hist) = if left_len <= right_len {
            (small, large)
        } else {
            (large, small)
        };
        for (start, len, total, hist, is_left) in [
            (left_start, left_len, left_total, left_hist, true),
            (right_start, right_len, right_total, right_hist, false),
        ] {
            let mut child = Leaf {
                start,
                len,
                total,
                hist,
                depth: leaf.depth + 1,
                best: None,
                parent: Some((node, is_left)),
            };
            child.best = problem.best_split(&child, features);
            leaves.push(child);
        }
    }
    if nodes.is_empty() && leaves[0].total.n == 0 {
        return (None, gains, Vec::new());
    }
    // number the leaves and hang them on their parents
    let mut values = Vec::with_capacity(leaves.len());
    let mut rows = Vec::with_capacity(leaves.len());
    for (index, leaf) in leaves.iter().enumerate() {
        let value = -leaf.total.g / (leaf.total.h + params.lambda_l2) * params.learning_rate;
        values.push(value);
        rows.push(order[leaf.start..leaf.start + leaf.len].to_vec());
        if let Some((parent, is_left)) = leaf.parent {
            let child = !(index as i32);
            if is_left {
                nodes[parent].left = child;
            } else {
                nodes[parent].right = child;
            }
        }
    }
    if nodes.is_empty() {
        // nothing to split: no more gain to be had
        return (None, gains, rows);
    }
    (
        Some(BinTree {
            nodes,
            leaves: values,
        }),
        gains,
        rows,
    )
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The summed log loss of rows given as margins.
fn log_loss_sum(margins: &[f64], labels: &[bool]) -> f64 {
    margins
        .iter()
        .zip(labels)
        .map(|(m, y)| {
            // log(1 + e^−m) for a positive, log(1 + e^m) for a negative, stably
            let z = if *y { -m } else { *m };
            z.max(0.0) + (-z.abs()).exp().ln_1p()
        })
        .sum()
}

/// A uniform number in [0, 1) from a xorshift state (seeded, no dependency).
fn next_unit(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Column, Frame};
    use crate::schema::FeatureSchema;

    fn fit(frame: &Frame, params: &GbdtParams) -> (Gbdt, Matrix) {
        let schema = FeatureSchema::of(frame);
        let matrix = schema.matrix(frame).unwrap();
        let binner = Binner::fit(&schema, &matrix, params.max_bins);
        let binned = binner.bin(&matrix);
        let labels = frame.label.clone().unwrap();
        (train(&binner, (&binned, &labels), None, params), matrix)
    }

    #[test]
    fn a_threshold_and_a_level_set_are_learned_exactly() {
        // y = x > 50 or colour in {red, blue}; missing x counts as high
        let colours = ["red", "green", "blue", "grey", "pink", "teal"];
        let n = 6000;
        let x: Vec<f64> = (0..n)
            .map(|i| {
                if i % 10 == 0 {
                    f64::NAN
                } else {
                    (i % 100) as f64
                }
            })
            .collect();
        let colour: Vec<Option<&str>> = (0..n).map(|i| Some(colours[(i / 7) % 6])).collect();
        let label: Vec<bool> = (0..n)
            .map(|i| x[i].is_nan() || x[i] > 50.0 || matches!(colour[i], Some("red" | "blue")))
            .collect();
        let frame = Frame {
            columns: vec![
                Column::numeric("x", x),
                Column::categorical("colour", &colour),
            ],
            label: Some(label.clone()),
            ids: None,
        };
        let params = GbdtParams {
            max_rounds: 60,
            min_data_per_group: 10,
            ..GbdtParams::default()
        };
        let (model, matrix) = fit(&frame, &params);
        let margins = model.predict_margin(&matrix, 2);
        let wrong = margins
            .iter()
            .zip(&label)
            .filter(|(m, y)| (**m > 0.0) != **y)
            .count();
        assert_eq!(wrong, 0);
        assert!(model.importance.iter().all(|g| *g > 0.0));
        // rows that do not fill a group of four, alone or after a thread's share, score the same
        for rows in [1, 3, 4099, 4103] {
            let part = Matrix {
                rows,
                cols: matrix.cols,
                data: matrix.data[..rows * matrix.cols].to_vec(),
            };
            assert_eq!(
                model.predict_margin(&part, 2),
                margins[..rows],
                "{rows} rows"
            );
        }
    }

    #[test]
    fn a_histogram_sums_the_gradients_of_its_rows_in_every_bin() {
        // a feature of many bins, one of few, one mostly missing (bin 0)
        let n = 30_000;
        let binned = Binned {
            rows: n,
            columns: vec![
                (0..n).map(|i| ((i * 7919) % 251) as u8 + 1).collect(),
                (0..n).map(|i| (i % 3) as u8 + 1).collect(),
                (0..n)
                    .map(|i| {
                        if i % 5 == 0 {
                            ((i / 5) % 4) as u8 + 1
                        } else {
                            0
                        }
                    })
                    .collect(),
            ],
        };
        let params = GbdtParams::default();
        let problem = Problem {
            binned: &binned,
            offsets: vec![0, 252, 256, 261],
            categorical: vec![false; 3],
            params: &params,
        };
        let grad: Vec<(f32, f32)> = (0..n)
            .map(|i| ((i % 13) as f32 - 6.0, 0.1 + (i % 7) as f32 * 0.01))
            .collect();
        let every = (0..n as u32).collect::<Vec<_>>();
        let thirds = (0..n as u32).step_by(3).collect::<Vec<_>>();
        let odd = (0..n as u32).step_by(299).collect::<Vec<_>>();
        // all rows with all features are spread over threads; the rest are not
        for (rows, features) in [
            (&every, [true, true, true]),
            (&thirds, [true, false, true]),
            (&odd, [false, true, true]),
        ] {
            let hist = problem.histogram(rows, &grad, &features);
            let mut want = vec![BinStat::default(); 261];
            for &r in rows.iter() {
                let (g, h) = grad[r as usize];
                for f in (0..3).filter(|f| features[*f]) {
                    let stat =
                        &mut want[problem.offsets[f] + binned.columns[f][r as usize] as usize];
                    stat.add(&BinStat {
                        g: f64::from(g),
                        h: f64::from(h),
                        n: 1,
                    });
                }
            }
            for (bin, (got, want)) in hist.iter().zip(&want).enumerate() {
                assert_eq!(got.n, want.n, "{} rows, bin {bin}", rows.len());
                assert!(
                    (got.g - want.g).abs() < 1e-6,
                    "{} rows, bin {bin}",
                    rows.len()
                );
                assert!(
                    (got.h - want.h).abs() < 1e-6,
                    "{} rows, bin {bin}",
                    rows.len()
                );
            }
        }
    }

    #[test]
    fn a_grown_tree_sends_each_row_to_the_same_leaf_on_bins_and_on_values() {
        // a numeric feature with missing values and a categorical one: the
        // validation walk (on bins) must agree with scoring (on values)
        let n = 8000;
        let x: Vec<f64> = (0..n)
            .map(|i| {
                if i % 9 == 0 {
                    f64::NAN
                } else {
                    ((i * 31) % 997) as f64
                }
            })
            .collect();
        let levels = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let level: Vec<Option<&str>> = (0..n).map(|i| Some(levels[(i * 7) % 8])).collect();
        let frame = Frame {
            columns: vec![
                Column::numeric("x", x),
                Column::categorical("level", &level),
            ],
            label: None,
            ids: None,
        };
        let schema = FeatureSchema::of(&frame);
        let matrix = schema.matrix(&frame).unwrap();
        let binner = Binner::fit(&schema, &matrix, 255);
        let binned = binner.bin(&matrix);
        let params = GbdtParams {
            min_data_per_group: 10,
            ..GbdtParams::default()
        };
        let mut offsets = vec![0];
        for mapper in &binner.mappers {
            offsets.push(offsets.last().unwrap() + mapper.bins());
        }
        let problem = Problem {
            binned: &binned,
            offsets,
            categorical: vec![false, true],
            params: &params,
        };
        // gradients that reward splitting on both features
        let grad: Vec<(f32, f32)> = (0..n)
            .map(|i| {
                let high = matrix.get(i, 0).is_nan() || matrix.get(i, 0) > 500.0;
                let odd_level = (i * 7) % 8 % 2 == 1;
                (if high ^ odd_level { -0.4 } else { 0.3 }, 0.25)
            })
            .collect();
        let (tree, _, leaf_rows) = grow(&problem, &grad, &[true, true]);
        let tree = tree.expect("the gradients are worth splitting");
        assert!(
            tree.nodes
                .iter()
                .any(|n| matches!(n.rule, SplitRule::In(_)))
        );
        let raw = tree.to_model(&binner);
        let bins = binned.row_major();
        let mut grown_leaf = vec![0; n];
        for (leaf, rows) in leaf_rows.iter().enumerate() {
            for &r in rows {
                grown_leaf[r as usize] = leaf;
            }
        }
        let coded = code_rows(&matrix, 0..n, &[false, true]);
        for first in (0..n).step_by(4) {
            let rows: [usize; 4] = std::array::from_fn(|k| first + k);
            let on_bins = tree.leaves_of_bins(rows.map(|r| &bins[r * 2..r * 2 + 2]));
            let on_values = Scorer::of(&raw).leaves_of(rows.map(|r| &coded[r * 2..r * 2 + 2]));
            for k in 0..4 {
                assert_eq!(on_bins[k], grown_leaf[rows[k]], "row {}", rows[k]);
                assert_eq!(on_values[k], grown_leaf[rows[k]], "row {}", rows[k]);
            }
        }
    }

    #[test]
    fn scoring_reads_level_sets_of_many_words_and_missing_values() {
        // root: level of feature 1 in {1, 70, 130} (three words; missing goes
        // left) → leaf 0, else node 1: feature 0 ≤ 2.5 (missing right) → leaf 1 / 2
        let mut cat_bits = vec![0u64; 3];
        for level in [1, 70, 130] {
            cat_bits[level / 64] |= 1 << (level % 64);
        }
        let tree = Tree {
            nodes: vec![
                Node {
                    feature: 1,
                    threshold: 0.0,
                    cat_start: 0,
                    cat_words: 3,
                    missing_left: true,
                    left: !0,
                    right: 1,
                },
                Node {
                    feature: 0,
                    threshold: 2.5,
                    cat_start: 0,
                    cat_words: 0,
                    missing_left: false,
                    left: !1,
                    right: !2,
                },
            ],
            leaves: vec![10.0, 20.0, 30.0],
            cat_bits,
        };
        let cases: [(f32, f32, usize); 9] = [
            (0.0, 1.0, 0),
            (0.0, 70.0, 0),
            (9.0, 130.0, 0),
            (0.0, f32::NAN, 0),
            (1.0, 2.0, 1),
            (2.5, 64.0, 1),
            (3.0, 129.0, 2),
            (f32::NAN, 140.0, 2),
            (-1.0, 500.0, 1),
        ];
        let matrix = Matrix {
            rows: cases.len(),
            cols: 2,
            data: cases
                .iter()
                .flat_map(|(x, level, _)| [*x, *level])
                .collect(),
        };
        let model = Gbdt {
            base: 0.0,
            trees: vec![tree],
            importance: vec![0.0; 2],
            rounds_run: 1,
        };
        let margins = model.predict_margin(&matrix, 1);
        for ((x, level, leaf), margin) in cases.iter().zip(margins) {
            assert_eq!(margin, [10.0, 20.0, 30.0][*leaf], "x {x}, level {level}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_model() {
        let n = 3000;
        let x: Vec<f64> = (0..n).map(|i| ((i * 37) % 101) as f64).collect();
        let z: Vec<f64> = (0..n).map(|i| ((i * 53) % 89) as f64).collect();
        let label: Vec<bool> = (0..n)
            .map(|i| (x[i] + z[i] + (i % 7) as f64 * 9.0) > 100.0)
            .collect();
        let frame = Frame {
            columns: vec![Column::numeric("x", x), Column::numeric("z", z)],
            label: Some(label),
            ids: None,
        };
        let params = GbdtParams {
            feature_fraction: 0.5,
            max_rounds: 40,
            ..GbdtParams::default()
        };
        let (a, _) = fit(&frame, &params);
        let (b, _) = fit(&frame, &params);
        assert_eq!(a, b);
        let (c, _) = fit(
            &frame,
            &GbdtParams {
                seed: 7,
                ..params.clone()
            },
        );
        assert_ne!(a, c, "another seed samples other features");
    }
}
