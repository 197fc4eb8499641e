//! Feature values as small bin numbers, the form the tree learner works on.
//!
//! Bin 0 is "missing" for every feature. A numeric feature's other bins are
//! value ranges with about as many training rows each (each distinct value
//! its own bin when there are few); a categorical feature's bins are its
//! levels, the most frequent first, the rarest sharing the last bin.

use rayon::prelude::*;

use crate::schema::{FeatureKind, FeatureSchema, Matrix};

/// At most this many bins per feature, missing included (bins are bytes).
pub const MAX_BINS: usize = 256;

#[derive(Debug, Clone)]
pub enum BinMapper {
    /// Bin `b ≥ 1` holds the values `≤ upper[b − 1]` above the bin before.
    Numeric { upper: Vec<f32> },
    /// The bin of each level index.
    Categorical { bin_of_level: Vec<u8>, bins: usize },
}

impl BinMapper {
    pub fn bins(&self) -> usize {
        match self {
            BinMapper::Numeric { upper } => upper.len() + 1,
            BinMapper::Categorical { bins, .. } => *bins,
        }
    }

    pub fn bin(&self, value: f32) -> u8 {
        if value.is_nan() {
            return 0;
        }
        match self {
            BinMapper::Numeric { upper } => {
                (upper.partition_point(|u| *u < value) + 1).min(upper.len()) as u8
            }
            BinMapper::Categorical { bin_of_level, .. } => {
                bin_of_level.get(value as usize).copied().unwrap_or(0)
            }
        }
    }

    fn numeric(mut values: Vec<f32>, max_bins: usize) -> Self {
        values.sort_by(f32::total_cmp);
        let mut distinct: Vec<(f32, usize)> = Vec::new();
        for v in values.iter().copied() {
            match distinct.last_mut() {
                Some((last, count)) if *last == v => *count += 1,
                _ => distinct.push((v, 1)),
            }
        }
        let slots = max_bins - 1;
        let mut upper = Vec::new();
        if distinct.len() <= slots {
            for pair in distinct.windows(2) {
                upper.push(midpoint(pair[0].0, pair[1].0));
            }
        } else {
            // equal-frequency ranges; a value more frequent than a range stands alone
            let target = values.len() as f64 / slots as f64;
            let mut filled = 0usize;
            for (i, pair) in distinct.windows(2).enumerate() {
                filled += pair[0].1;
                let remaining_slots = slots - 1 - upper.len();
                let remaining_values = distinct.len() - 1 - i;
                if filled as f64 >= target || remaining_values <= remaining_slots {
                    upper.push(midpoint(pair[0].0, pair[1].0));
                    filled = 0;
                    if upper.len() == slots - 1 {
                        break;
                    }
                }
            }
        }
        upper.push(f32::INFINITY);
        BinMapper::Numeric { upper }
    }

    fn categorical(codes: impl Iterator<Item = f32>, levels: usize, max_bins: usize) -> Self {
        let mut counts = vec![0usize; levels];
        for code in codes {
            if !code.is_nan() {
                counts[code as usize] += 1;
            }
        }
        let mut by_count: Vec<usize> = (0..levels).filter(|l| counts[*l] > 0).collect();
        by_count.sort_by_key(|l| (std::cmp::Reverse(counts[*l]), *l));
        let mut bin_of_level = vec![0u8; levels];
        let slots = max_bins - 1;
        for (rank, level) in by_count.iter().enumerate() {
            bin_of_level[*level] = (rank.min(slots - 1) + 1) as u8;
        }
        BinMapper::Categorical {
            bin_of_level,
            bins: by_count.len().min(slots) + 1,
        }
    }
}

fn midpoint(a: f32, b: f32) -> f32 {
    let m = a + (b - a) / 2.0;
    // a value right on a boundary must stay with its own bin
    if m >= b { a } else { m }
}

/// A binned matrix: one byte column per feature.
#[derive(Debug, Clone)]
pub struct Binned {
    pub rows: usize,
    pub columns: Vec<Vec<u8>>,
}

impl Binned {
    /// The same bins row by row, `[r * features + f]`: a row's bins share a
    /// cache line, for code that reads all of one row.
    pub fn row_major(&self) -> Vec<u8> {
        let features = self.columns.len();
        let mut rows = vec![0u8; self.rows * features];
        for (f, column) in self.columns.iter().enumerate() {
            for (r, bin) in column.iter().enumerate() {
                rows[r * features + f] = *bin;
            }
        }
        rows
    }
}

/// Bin boundaries learned from training data, applied to any matrix.
#[derive(Debug, Clone)]
pub struct Binner {
    pub mappers: Vec<BinMapper>,
}

impl Binner {
    pub fn fit(schema: &FeatureSchema, matrix: &Matrix, max_bins: usize) -> Self {
        let max_bins = max_bins.clamp(3, MAX_BINS);
        // features are independent: one task each on rayon's threads
        let mappers = schema
            .features
            .par_iter()
            .enumerate()
            .map(|(j, feature)| {
                let column = (0..matrix.rows).map(|i| matrix.get(i, j));
                match &feature.kind {
                    FeatureKind::Numeric => {
                        BinMapper::numeric(column.filter(|v| !v.is_nan()).collect(), max_bins)
                    }
                    FeatureKind::Categorical { levels } => {
                        BinMapper::categorical(column, levels.len(), max_bins)
                    }
                }
            })
            .collect();
        Self { mappers }
    }

    pub fn bin(&self, matrix: &Matrix) -> Binned {
        let columns = self
            .mappers
            .par_iter()
            .enumerate()
            .map(|(j, mapper)| {
                (0..matrix.rows)
                    .map(|i| mapper.bin(matrix.get(i, j)))
                    .collect()
            })
            .collect();
        Binned {
            rows: matrix.rows,
            columns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_values_get_a_bin_each_and_many_share_evenly() {
        let mapper = BinMapper::numeric(vec![3.0, 1.0, 2.0, 2.0, 1.0], 256);
        assert_eq!(mapper.bins(), 4);
        assert_eq!(
            [0.5, 1.0, 1.5, 2.0, 3.0, 9.0, f32::NAN].map(|v| mapper.bin(v)),
            [1, 1, 1, 2, 3, 3, 0]
        );
        let values: Vec<f32> = (0..10_000).map(|i| i as f32).collect();
        let mapper = BinMapper::numeric(values.clone(), 11);
        assert_eq!(mapper.bins(), 11);
        let mut per_bin = [0usize; 11];
        for v in values {
            per_bin[mapper.bin(v) as usize] += 1;
        }
        assert_eq!(per_bin[0], 0);
        assert!(
            per_bin[1..].iter().all(|n| (900..=1100).contains(n)),
            "{per_bin:?}"
        );
    }

    #[test]
    fn rare_levels_share_the_last_bin() {
        // level 2 is the most frequent, level 0 the rarest
        let codes = [2.0, 2.0, 2.0, 1.0, 1.0, 0.0, f32::NAN];
        let mapper = BinMapper::categorical(codes.into_iter(), 4, 3);
        assert_eq!(mapper.bins(), 3);
        assert_eq!(
            [2.0, 1.0, 0.0, 3.0, f32::NAN].map(|v| mapper.bin(v)),
            [1, 2, 2, 0, 0]
        );
    }
}
