//! Audiences run on weft's embedded engine: the DataFusion dialect's SQL
//! over the lake's tables.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDateTime;
use deltalake::arrow::array::{ArrayRef, AsArray, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Int64Type};
use deltalake::datafusion::common::TableReference;
use deltalake::datafusion::prelude::SessionContext;
use serde::Serialize;
use weft_lake::catalog::Lake;

use crate::Result;
use crate::catalog::{Catalog, Columns};
use crate::dialect::DataFusion;
use crate::plan::{self, Audiences, Query};
use crate::spec::Spec;
use crate::sql::{self, Shape, TABLES, Tables};

/// A session over the tables audiences read, and what they hold.
pub struct Engine {
    context: SessionContext,
    catalog: Catalog,
}

impl Engine {
    /// The lake's audience tables, registered as they are now.
    pub async fn open(lake: &Lake) -> Result<Self> {
        let tables: Vec<(String, String)> = TABLES
            .iter()
            .filter_map(|t| t.split_once('.'))
            .map(|(s, t)| (s.to_owned(), t.to_owned()))
            .collect();
        let context = weft_lake::sql::session_of(lake, &tables).await?;
        Self::read(context).await
    }

    /// Any session that has (some of) the tables, by their lake names.
    pub async fn from_context(mut context: SessionContext) -> Result<Self> {
        weft_lake::sql::register_functions(&mut context)?;
        Self::read(context).await
    }

    async fn read(context: SessionContext) -> Result<Self> {
        let mut found = BTreeMap::new();
        for name in TABLES {
            let (schema, table) = name.split_once('.').expect("lake names are schema.table");
            let reference = TableReference::partial(schema, table);
            if context.table_exist(reference.clone()).unwrap_or(false) {
                let provider = context.table_provider(reference).await?;
                found.insert(name, Columns::from_schema(&provider.schema()));
            }
        }
        let mut take = |name: &str| found.remove(name).unwrap_or_default();
        let catalog = Catalog {
            customers: take("profiles.customers"),
            scores: take("ml.scores"),
            events: take("atomic.events"),
            conversions: take("derived.conversions"),
            sessions: take("derived.sessions"),
            page_views: take("derived.page_views"),
        };
        Ok(Self { context, catalog })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn context(&self) -> &SessionContext {
        &self.context
    }

    pub fn compile(
        &self,
        spec: &Spec,
        audiences: &dyn Audiences,
        as_of: NaiveDateTime,
    ) -> Result<Query> {
        Ok(plan::compile(spec, &self.catalog, audiences, as_of)?)
    }

    async fn run(&self, query: &Query, shape: Shape) -> Result<Vec<RecordBatch>> {
        let text = sql::render(query, &DataFusion, &Tables::lake(), shape);
        let frame = self.context.sql(&text).await?;
        Ok(frame.collect().await?)
    }

    /// How many customers are in the audience (its limit applied).
    pub async fn size(&self, query: &Query) -> Result<u64> {
        let batches = self.run(query, Shape::Count).await?;
        let count = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .map(|b| b.column(0).as_primitive::<Int64Type>().value(0))
            .unwrap_or(0)
            .max(0) as u64;
        Ok(query.main.limit.map_or(count, |limit| count.min(limit)))
    }

    /// Every member with the selected attributes.
    pub async fn members(&self, query: &Query) -> Result<Vec<RecordBatch>> {
        self.run(query, Shape::Members).await
    }

    /// The first `rows` members (in the audience's order, else by customer id).
    pub async fn preview(&self, query: &Query, rows: u64) -> Result<Vec<RecordBatch>> {
        let mut query = query.clone();
        query.main.limit = Some(query.main.limit.map_or(rows, |limit| limit.min(rows)));
        self.members(&query).await
    }

    /// The members' customer ids.
    pub async fn member_ids(&self, query: &Query) -> Result<BTreeSet<String>> {
        let mut only_ids = query.clone();
        only_ids.main.columns.clear();
        let batches = self.members(&only_ids).await?;
        let mut ids = BTreeSet::new();
        for batch in &batches {
            ids.extend(texts(batch.column(0))?.into_iter().flatten());
        }
        Ok(ids)
    }
}

/// A text column's values, whatever its string layout (Utf8, LargeUtf8, views).
pub(crate) fn texts(column: &ArrayRef) -> Result<Vec<Option<String>>> {
    let cast = deltalake::arrow::compute::cast(column, &DataType::Utf8)?;
    Ok(cast
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect())
}

/// How two or more audiences share customers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overlap {
    pub sizes: BTreeMap<String, usize>,
    /// Every pair: (a, b, customers in both).
    pub pairs: Vec<(String, String, usize)>,
    /// Customers in every one of them.
    pub all: usize,
    /// Customers in at least one.
    pub any: usize,
}

/// The overlap of member sets.
pub fn overlap(sets: &[(String, BTreeSet<String>)]) -> Overlap {
    let sizes = sets.iter().map(|(n, s)| (n.clone(), s.len())).collect();
    let mut pairs = Vec::new();
    for (i, (a, first)) in sets.iter().enumerate() {
        for (b, second) in &sets[i + 1..] {
            pairs.push((a.clone(), b.clone(), first.intersection(second).count()));
        }
    }
    let all = match sets.split_first() {
        None => 0,
        Some(((_, first), rest)) => first
            .iter()
            .filter(|id| rest.iter().all(|(_, s)| s.contains(*id)))
            .count(),
    };
    let any = sets
        .iter()
        .flat_map(|(_, s)| s.iter())
        .collect::<BTreeSet<_>>()
        .len();
    Overlap {
        sizes,
        pairs,
        all,
        any,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_counts_pairs_every_and_any() {
        let set = |ids: &[&str]| ids.iter().map(|s| (*s).to_owned()).collect();
        let sets = vec![
            ("a".to_owned(), set(&["1", "2", "3"])),
            ("b".to_owned(), set(&["2", "3", "4"])),
            ("c".to_owned(), set(&["3", "5"])),
        ];
        let overlap = overlap(&sets);
        assert_eq!(overlap.pairs[0], ("a".into(), "b".into(), 2));
        assert_eq!(overlap.pairs[1], ("a".into(), "c".into(), 1));
        assert_eq!(overlap.pairs[2], ("b".into(), "c".into(), 1));
        assert_eq!(overlap.all, 1);
        assert_eq!(overlap.any, 5);
    }
}
