//! `identity.links`: the evidence behind every link of the latest run, and
//! [`explain`], which reads it back to show why a customer's records are one
//! customer: the rule or each field's match weight, and the path from one
//! record to every other.

use std::collections::BTreeSet;
use std::sync::Arc;

use deltalake::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::datafusion::prelude::{Expr, SessionContext, col, lit};
use serde::Serialize;
use weft_identity::Linkage;

use crate::Result;

/// The tables [`explain`] reads: a session of these is all it needs.
pub const TABLES: [(&str, &str); 3] = [
    ("identity", "person_map"),
    ("identity", "links"),
    ("identity", "customer_changes"),
];

/// The rows of `identity.links`: each pair at or above the threshold (or
/// linked by a rule), accepted or refused by a guard, with its evidence.
pub fn rows(run: i64, linkage: &Linkage, customer_ids: &[String]) -> RecordBatch {
    let label = |r: u32| {
        let record = &linkage.records[r as usize];
        (
            linkage.sources[record.source as usize].as_str(),
            record.id.as_str(),
        )
    };
    let links = &linkage.links;
    let (left, right): (Vec<_>, Vec<_>) = links.iter().map(|l| (label(l.a), label(l.b))).unzip();
    let evidence = links.iter().map(|link| {
        let terms: Vec<Term> = linkage
            .terms(link)
            .into_iter()
            .map(|t| Term {
                comparison: t.comparison.name().to_owned(),
                level: t
                    .level
                    .map(|l| t.comparison.levels()[l as usize].to_owned()),
                weight: (t.weight * 100.0).round() / 100.0,
            })
            .collect();
        serde_json::to_string(&terms).expect("terms are JSON")
    });
    let schema = Arc::new(Schema::new(vec![
        Field::new("run", DataType::Int64, false),
        // the order links were taken in: rules first, in their order, then the strongest
        Field::new("rank", DataType::Int64, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("other_customer_id", DataType::Utf8, true),
        Field::new("left_source", DataType::Utf8, false),
        Field::new("left_id", DataType::Utf8, false),
        Field::new("right_source", DataType::Utf8, false),
        Field::new("right_id", DataType::Utf8, false),
        Field::new("rule", DataType::Utf8, true),
        Field::new("match_probability", DataType::Float64, false),
        Field::new("match_weight", DataType::Float64, false),
        Field::new("prior_weight", DataType::Float64, false),
        Field::new("refused", DataType::Utf8, true),
        Field::new("evidence", DataType::Utf8, false),
    ]));
    let customer = |r: u32| customer_ids[r as usize].as_str();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![run; links.len()])),
            Arc::new(Int64Array::from_iter_values(0..links.len() as i64)),
            Arc::new(StringArray::from_iter_values(
                links.iter().map(|l| customer(l.a)),
            )),
            Arc::new(
                links
                    .iter()
                    .map(|l| (customer(l.b) != customer(l.a)).then(|| customer(l.b)))
                    .collect::<StringArray>(),
            ),
            Arc::new(StringArray::from_iter_values(left.iter().map(|l| l.0))),
            Arc::new(StringArray::from_iter_values(left.iter().map(|l| l.1))),
            Arc::new(StringArray::from_iter_values(right.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(right.iter().map(|r| r.1))),
            Arc::new(
                links
                    .iter()
                    .map(|l| l.rule.map(|r| linkage.deterministic[r].to_string()))
                    .collect::<StringArray>(),
            ),
            Arc::new(Float64Array::from_iter_values(
                links.iter().map(|l| l.probability),
            )),
            Arc::new(Float64Array::from_iter_values(
                links.iter().map(|l| l.weight),
            )),
            Arc::new(Float64Array::from(vec![
                linkage.model.prior_weight();
                links.len()
            ])),
            Arc::new(
                links
                    .iter()
                    .map(|l| l.refused.map(|r| r.name()))
                    .collect::<StringArray>(),
            ),
            Arc::new(StringArray::from_iter_values(evidence)),
        ],
    )
    .expect("columns match the schema")
}

/// Why a customer's records are one customer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// What was asked about: a customer id, `source:record_id`, or an identifier.
    pub query: String,
    pub customer_id: String,
    /// When the query was an id retired by a merge: the id and the run that merged it.
    pub merged_from: Option<(String, i64)>,
    /// `source:record_id` of each record, sorted.
    pub records: Vec<String>,
    /// `(kind, value)` of each identifier the customer carries (email, phone, user_id, domain_userid).
    pub identifiers: Vec<(String, String)>,
    /// The record the paths start from: the one asked about, else the first.
    pub start: String,
    /// The links that made the customer, in the order they were taken:
    /// rules first, then the strongest.
    pub links: Vec<Evidence>,
    /// Links to other customers that a guard refused.
    pub refused: Vec<Evidence>,
    /// For each other record, the chain of `links` (indices) from `start` to it.
    pub paths: Vec<(String, Vec<usize>)>,
    /// The customer id's history, as `(run, what happened)` from its side.
    pub changes: Vec<(i64, String)>,
}

/// One link and why it was made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub left: String,
    pub right: String,
    pub rule: Option<String>,
    pub match_probability: f64,
    pub match_weight: f64,
    pub prior_weight: f64,
    pub refused: Option<String>,
    /// Each comparison: its name, the level the pair reached (`None`: a value
    /// was missing) and that level's weight.
    pub terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Term {
    pub comparison: String,
    pub level: Option<String>,
    pub weight: f64,
}

/// Explains the customer that `query` names: a customer id (also one a
/// merge retired), `source:record_id`, a record id, or an identifier (an
/// email is normalised first). `None` when nothing does; an error when it
/// names several customers.
pub async fn explain(context: &SessionContext, query: &str) -> Result<Option<Explanation>> {
    if !weft_lake::sql::has_table(context, "identity.person_map") {
        return Ok(None);
    }
    let person_map = |filter: Expr| {
        select(
            context,
            "identity.person_map",
            filter,
            &["customer_id", "kind", "value", "source"],
        )
    };
    let (mut customer, mut start) = (None, None);
    if let Some(row) = person_map(col("customer_id").eq(lit(query))).await?.first() {
        customer = row[0].clone();
    }
    if customer.is_none()
        && let Some((source, id)) = query.split_once(':')
    {
        let filter = col("kind")
            .eq(lit("record"))
            .and(col("source").eq(lit(source)))
            .and(col("value").eq(lit(id)));
        if let Some(row) = person_map(filter).await?.first() {
            customer = row[0].clone();
            start = Some(query.to_owned());
        }
    }
    if customer.is_none() {
        let email = weft_identity::normalise::email(query).unwrap_or_else(|| query.to_owned());
        let found = person_map(col("value").eq(lit(query)).or(col("value").eq(lit(email)))).await?;
        let customers: BTreeSet<&str> = found.iter().filter_map(|r| r[0].as_deref()).collect();
        if customers.len() > 1 {
            let named: Vec<String> = found
                .iter()
                .map(|r| {
                    let [customer, kind, value, source] =
                        [0, 1, 2, 3].map(|i| r[i].as_deref().unwrap_or(""));
                    match kind {
                        "record" => format!("{customer} ({source}:{value})"),
                        _ => format!("{customer} ({kind})"),
                    }
                })
                .collect();
            return Err(crate::ProfilesError::Config(format!(
                "{query:?} names {} customers: {}; ask for one of them, or for source:record_id",
                customers.len(),
                named.join(", ")
            )));
        }
        if let Some(row) = found.first() {
            customer = row[0].clone();
            if row[1].as_deref() == Some("record") {
                start = Some(format!(
                    "{}:{}",
                    row[3].as_deref().unwrap_or(""),
                    row[2].as_deref().unwrap_or("")
                ));
            }
        }
    }
    let changes_table = weft_lake::sql::has_table(context, "identity.customer_changes");
    let mut merged_from = None;
    if customer.is_none() && changes_table {
        // an id a merge retired: explain the customer it went into
        let merged = select(
            context,
            "identity.customer_changes",
            col("change")
                .eq(lit("merged"))
                .and(col("customer_id").eq(lit(query))),
            &["other_customer_id", "run"],
        )
        .await?;
        if let Some(row) = merged.iter().max_by_key(|row| parse_int(&row[1])) {
            customer = row[0].clone();
            merged_from = Some((query.to_owned(), parse_int(&row[1])));
        }
    }
    let Some(customer) = customer else {
        return Ok(None);
    };

    let members = select(
        context,
        "identity.person_map",
        col("customer_id").eq(lit(customer.as_str())),
        &["kind", "value", "source"],
    )
    .await?;
    let mut records = BTreeSet::new();
    let mut identifiers = BTreeSet::new();
    for row in &members {
        let [kind, value, source] = [0, 1, 2].map(|i| row[i].clone().unwrap_or_default());
        if kind == "record" {
            records.insert(format!("{source}:{value}"));
        } else {
            identifiers.insert((kind, value));
        }
    }
    let records: Vec<String> = records.into_iter().collect();
    let start = start
        .filter(|s| records.contains(s))
        .or_else(|| records.first().cloned())
        .unwrap_or_default();

    let (mut links, mut refused) = (Vec::new(), Vec::new());
    if weft_lake::sql::has_table(context, "identity.links") {
        let filter = col("customer_id")
            .eq(lit(customer.as_str()))
            .or(col("other_customer_id").eq(lit(customer.as_str())));
        let mut rows = select(
            context,
            "identity.links",
            filter,
            &[
                "left_source",
                "left_id",
                "right_source",
                "right_id",
                "rule",
                "match_probability",
                "match_weight",
                "prior_weight",
                "refused",
                "evidence",
                "rank",
            ],
        )
        .await?;
        rows.sort_by_key(|row| parse_int(&row[10]));
        for row in rows {
            let text = |i: usize| row[i].clone().unwrap_or_default();
            let number = |i: usize| text(i).parse::<f64>().unwrap_or(f64::NAN);
            let evidence = Evidence {
                left: format!("{}:{}", text(0), text(1)),
                right: format!("{}:{}", text(2), text(3)),
                rule: row[4].clone(),
                match_probability: number(5),
                match_weight: number(6),
                prior_weight: number(7),
                refused: row[8].clone(),
                terms: serde_json::from_str(&text(9)).unwrap_or_default(),
            };
            if evidence.refused.is_some() {
                refused.push(evidence);
            } else if records.binary_search(&evidence.left).is_ok() {
                links.push(evidence);
            }
        }
    }
    let edges: Vec<(&str, &str)> = links
        .iter()
        .map(|l| (l.left.as_str(), l.right.as_str()))
        .collect();
    let paths = weft_identity::paths(start.as_str(), &edges)
        .into_iter()
        .map(|(member, chain)| (member.to_owned(), chain))
        .collect();

    let mut changes = Vec::new();
    if changes_table {
        let id = customer.as_str();
        let rows = select(
            context,
            "identity.customer_changes",
            col("customer_id")
                .eq(lit(id))
                .or(col("other_customer_id").eq(lit(id))),
            &["run", "change", "customer_id", "other_customer_id"],
        )
        .await?;
        for row in rows {
            let [change, who, other] = [1, 2, 3].map(|i| row[i].clone().unwrap_or_default());
            let ours = who == customer;
            let text = match (change.as_str(), ours) {
                ("new", _) => "first seen".to_owned(),
                ("gone", _) => "no records left".to_owned(),
                ("merged", true) => format!("merged into {other}"),
                ("merged", false) => format!("{who} merged into it"),
                ("split", true) => format!("split off from {other}"),
                ("split", false) => format!("{who} split off from it"),
                _ => format!("{change} {who} {other}"),
            };
            changes.push((parse_int(&row[0]), text));
        }
        changes.sort();
    }

    Ok(Some(Explanation {
        query: query.to_owned(),
        customer_id: customer,
        merged_from,
        records,
        identifiers: identifiers.into_iter().collect(),
        start,
        links,
        refused,
        paths,
        changes,
    }))
}

/// `columns` of the rows of `table` that pass `filter`, as text.
async fn select(
    context: &SessionContext,
    table: &str,
    filter: Expr,
    columns: &[&str],
) -> Result<Vec<Vec<Option<String>>>> {
    let batches = context
        .table(table)
        .await?
        .filter(filter)?
        .select_columns(columns)?
        .collect()
        .await?;
    crate::sources::text_cells(&batches)
}

/// A whole number read back from text (a run, a rank).
fn parse_int(text: &Option<String>) -> i64 {
    text.as_deref().and_then(|t| t.parse().ok()).unwrap_or(0)
}
