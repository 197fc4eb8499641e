//! `profiles.customers`: one current row per customer, its attributes chosen
//! among its records by survivorship rules, its web behaviour rolled up from
//! the modelled tables, every linked identifier, and history: a row whose
//! attributes change is closed (`valid_to`) and a new one opened, so what was
//! known of a customer on any date stays answerable.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, Int64Array, ListBuilder,
    RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::SessionContext;
use weft_identity::{Field as IdField, Record};

use crate::sources::SourceRecord;
use crate::web::WEB_SOURCE;
use crate::{ProfilesError, Result};

/// How an attribute's value is chosen among a customer's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survivorship {
    /// From the most trusted source (the first in the config), then the most recent.
    MostTrusted,
    MostRecent,
    MostFrequent,
}

impl std::str::FromStr for Survivorship {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "most_trusted" => Ok(Self::MostTrusted),
            "most_recent" => Ok(Self::MostRecent),
            "most_frequent" => Ok(Self::MostFrequent),
            _ => Err(format!(
                "unknown rule {text:?}: most_trusted, most_recent or most_frequent"
            )),
        }
    }
}

/// The attributes survivorship chooses, each a rule of `identity.survivorship`.
pub const ATTRIBUTES: [&str; 6] = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "dob",
    "address",
];

/// One candidate value and what it is weighed by.
struct Candidate<'a> {
    value: &'a str,
    trust: usize,
    updated_at: Option<i64>,
}

/// The surviving value among candidates; ties end on the smallest value so every run agrees.
fn survive(rule: Survivorship, candidates: &[Candidate<'_>]) -> Option<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for c in candidates {
        *counts.entry(c.value).or_default() += 1;
    }
    candidates
        .iter()
        .max_by(|a, b| {
            let recent = a.updated_at.cmp(&b.updated_at);
            let trusted = b.trust.cmp(&a.trust);
            let frequent = counts[a.value].cmp(&counts[b.value]);
            match rule {
                Survivorship::MostTrusted => trusted.then(recent),
                Survivorship::MostRecent => recent.then(trusted),
                Survivorship::MostFrequent => frequent.then(recent).then(trusted),
            }
            .then(b.value.cmp(a.value))
        })
        .map(|c| c.value.to_owned())
}

/// What the web tables say of a customer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebRollup {
    pub sessions: i64,
    pub page_views: i64,
    pub engaged_time_in_s: i64,
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    pub first_channel: Option<String>,
    pub last_channel: Option<String>,
    pub conversions: i64,
    pub revenue: f64,
}

/// A customer's current row, before history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    pub customer_id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub dob: Option<chrono::NaiveDate>,
    pub street: Option<String>,
    pub city: Option<String>,
    pub postcode: Option<String>,
    pub country: Option<String>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    pub user_ids: Vec<String>,
    pub domain_userids: Vec<String>,
    pub sources: Vec<String>,
    pub records: i64,
    pub consent_marketing: Option<bool>,
    pub emailable: bool,
    pub web: WebRollup,
}

/// A record's names as written (not folded for matching): its first and last
/// name columns, or its full name split.
fn display_names(record: &SourceRecord) -> (String, String) {
    let (first, last) = (
        record.raw.get(IdField::FirstName).trim(),
        record.raw.get(IdField::LastName).trim(),
    );
    if !first.is_empty() || !last.is_empty() {
        return (first.to_owned(), last.to_owned());
    }
    let full = record.raw.get(IdField::FullName).trim();
    if let Some((last, first)) = full.split_once(',') {
        return (first.trim().to_owned(), last.trim().to_owned());
    }
    match full.rsplit_once(' ') {
        Some((first, last)) => (first.trim().to_owned(), last.to_owned()),
        None => (full.to_owned(), String::new()),
    }
}

/// `north shields` → `North Shields`.
fn title_case(words: &str) -> String {
    words
        .split(' ')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Each customer's profile from its records (`records[i]` normalised as
/// `normalised[i]`, customer `customer_ids[i]`).
pub fn profiles(
    records: &[SourceRecord],
    normalised: &[Record],
    customer_ids: &[String],
    rules: &BTreeMap<String, String>,
    web: &HashMap<String, WebRollup>,
) -> Result<Vec<Profile>> {
    let rule = |attribute: &str| -> Result<Survivorship> {
        rules
            .get(attribute)
            .map_or(Ok(Survivorship::MostRecent), |r| r.parse())
            .map_err(|e| ProfilesError::Config(format!("identity.survivorship.{attribute}: {e}")))
    };
    let rules: Vec<Survivorship> = ATTRIBUTES.iter().map(|a| rule(a)).collect::<Result<_>>()?;
    let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, id) in customer_ids.iter().enumerate() {
        members.entry(id).or_default().push(i);
    }
    let mut out = Vec::with_capacity(members.len());
    for (customer_id, members) in members {
        let names: Vec<(String, String)> = members
            .iter()
            .map(|&i| display_names(&records[i]))
            .collect();
        let column = |value: &dyn Fn(usize) -> String| -> Vec<String> {
            members.iter().map(|&i| value(i)).collect()
        };
        let first_names: Vec<String> = names.iter().map(|n| n.0.clone()).collect();
        let last_names: Vec<String> = names.iter().map(|n| n.1.clone()).collect();
        let emails = column(&|i| records[i].raw.get(IdField::Email).trim().to_lowercase());
        let phones = column(&|i| normalised[i].phone.clone());
        let dobs = column(&|i| normalised[i].dob.map(|d| d.to_string()).unwrap_or_default());
        // the address is chosen whole, among records with a street or postcode
        let addresses = column(&|i| {
            let r = &records[i].raw;
            if r.get(IdField::Address).trim().is_empty()
                && r.get(IdField::Postcode).trim().is_empty()
            {
                String::new()
            } else {
                i.to_string()
            }
        });
        let pick = |rule: Survivorship, values: &[String]| -> Option<String> {
            let candidates: Vec<Candidate<'_>> = members
                .iter()
                .zip(values)
                .filter(|(_, v)| !v.is_empty())
                .map(|(&i, v)| Candidate {
                    value: v,
                    trust: records[i].trust,
                    updated_at: records[i].updated_at,
                })
                .collect();
            survive(rule, &candidates)
        };
        let first_name = pick(rules[0], &first_names);
        let last_name = pick(rules[1], &last_names);
        let email = pick(rules[2], &emails);
        let phone = pick(rules[3], &phones);
        let dob = pick(rules[4], &dobs).and_then(|d| d.parse().ok());
        let address = pick(rules[5], &addresses).and_then(|i| i.parse::<usize>().ok());
        let text = |value: &str| (!value.trim().is_empty()).then(|| value.trim().to_owned());
        let consent_marketing = members
            .iter()
            .filter_map(|&i| records[i].consent.map(|c| (records[i].updated_at, !c)))
            // the latest says; at the same time a refusal wins
            .max()
            .map(|(_, refused)| !refused);

        let set = |value: &dyn Fn(usize) -> String| -> Vec<String> {
            members
                .iter()
                .map(|&i| value(i))
                .filter(|v| !v.is_empty())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let email_present = email.is_some();
        out.push(Profile {
            customer_id: customer_id.to_owned(),
            first_name,
            last_name,
            email,
            phone,
            dob,
            street: address.and_then(|i| text(records[i].raw.get(IdField::Address))),
            // a shipping address line carries its town: the normalised one then
            city: address.and_then(|i| {
                text(records[i].raw.get(IdField::City))
                    .or_else(|| text(&title_case(&normalised[i].city)))
            }),
            postcode: address.and_then(|i| text(records[i].raw.get(IdField::Postcode))),
            country: members
                .iter()
                .rev()
                .find_map(|&i| text(&normalised[i].country)),
            emails: set(&|i| records[i].raw.get(IdField::Email).trim().to_lowercase()),
            phones: set(&|i| normalised[i].phone.clone()),
            user_ids: set(&|i| normalised[i].user_id.clone()),
            domain_userids: set(&|i| {
                if records[i].raw.source == WEB_SOURCE {
                    records[i].raw.id.clone()
                } else {
                    String::new()
                }
            }),
            sources: set(&|i| records[i].raw.source.clone()),
            records: members.len() as i64,
            emailable: consent_marketing == Some(true) && email_present,
            consent_marketing,
            web: web.get(customer_id).cloned().unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Sessions, page views, engaged time, first and last seen and channel, and
/// conversions with revenue, per customer, through their cookies.
pub async fn web_rollups(
    context: &SessionContext,
    cookie_customers: &[(String, String)],
) -> Result<HashMap<String, WebRollup>> {
    let mut out: HashMap<String, WebRollup> = HashMap::new();
    if cookie_customers.is_empty() || !weft_lake::sql::has_table(context, "derived.sessions") {
        return Ok(out);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("domain_userid", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                cookie_customers.iter().map(|(c, _)| c),
            )),
            Arc::new(StringArray::from_iter_values(
                cookie_customers.iter().map(|(_, c)| c),
            )),
        ],
    )?;
    context.register_table(
        "cookie_customers",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    let sessions = context
        .sql(include_str!("../sql/customer_sessions.sql"))
        .await?
        .collect()
        .await?;
    for batch in &sessions {
        let micros = |i: usize| -> Result<ArrayRef> {
            Ok(cast(
                batch.column(i),
                &DataType::Timestamp(TimeUnit::Microsecond, None),
            )?)
        };
        let int = |i: usize| -> Result<ArrayRef> { Ok(cast(batch.column(i), &DataType::Int64)?) };
        let text = |i: usize| -> Result<ArrayRef> { Ok(cast(batch.column(i), &DataType::Utf8)?) };
        let (customers, sessions, page_views, engaged) = (text(0)?, int(1)?, int(2)?, int(3)?);
        let (first_seen, last_seen, first_channel, last_channel) =
            (micros(4)?, micros(5)?, text(6)?, text(7)?);
        let value = |a: &ArrayRef, row: usize| {
            (!a.is_null(row)).then(|| {
                a.as_primitive::<deltalake::arrow::datatypes::Int64Type>()
                    .value(row)
            })
        };
        let time = |a: &ArrayRef, row: usize| {
            (!a.is_null(row)).then(|| {
                a.as_primitive::<deltalake::arrow::datatypes::TimestampMicrosecondType>()
                    .value(row)
            })
        };
        let string = |a: &ArrayRef, row: usize| {
            (!a.is_null(row)).then(|| a.as_string::<i32>().value(row).to_owned())
        };
        for row in 0..batch.num_rows() {
            let Some(customer) = string(&customers, row) else {
                continue;
            };
            let rollup = out.entry(customer).or_default();
            rollup.sessions = value(&sessions, row).unwrap_or(0);
            rollup.page_views = value(&page_views, row).unwrap_or(0);
            rollup.engaged_time_in_s = value(&engaged, row).unwrap_or(0);
            rollup.first_seen = time(&first_seen, row);
            rollup.last_seen = time(&last_seen, row);
            rollup.first_channel = string(&first_channel, row);
            rollup.last_channel = string(&last_channel, row);
        }
    }
    if weft_lake::sql::has_table(context, "derived.conversions") {
        let conversions = context
            .sql(
                "SELECT k.customer_id, count(*) AS conversions, \
                   round(coalesce(sum(CAST(c.value AS DOUBLE)), 0), 2) AS revenue \
                 FROM derived.conversions c JOIN cookie_customers k ON k.domain_userid = c.domain_userid \
                 GROUP BY k.customer_id",
            )
            .await?
            .collect()
            .await?;
        for batch in &conversions {
            let customer = cast(batch.column(0), &DataType::Utf8)?;
            let count = cast(batch.column(1), &DataType::Int64)?;
            let revenue = cast(batch.column(2), &DataType::Float64)?;
            for row in 0..batch.num_rows() {
                let rollup = out
                    .entry(customer.as_string::<i32>().value(row).to_owned())
                    .or_default();
                rollup.conversions = count
                    .as_primitive::<deltalake::arrow::datatypes::Int64Type>()
                    .value(row);
                rollup.revenue = revenue
                    .as_primitive::<deltalake::arrow::datatypes::Float64Type>()
                    .value(row);
            }
        }
    }
    Ok(out)
}

/// A profile's attributes as one value: equal digests, nothing to version.
pub fn digest(profile: &Profile) -> String {
    format!(
        "{:016x}",
        weft_identity::stable::fnv1a(&[&format!("{profile:?}")], 0)
    )
}

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

/// The columns of `profiles.customers`.
pub fn schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let int = |name: &str| Field::new(name, DataType::Int64, true);
    Arc::new(Schema::new(vec![
        text("customer_id"),
        text("first_name"),
        text("last_name"),
        text("email"),
        text("phone"),
        Field::new("dob", DataType::Date32, true),
        text("street"),
        text("city"),
        text("postcode"),
        text("country"),
        Field::new("emails", list(), true),
        Field::new("phones", list(), true),
        Field::new("user_ids", list(), true),
        Field::new("domain_userids", list(), true),
        Field::new("sources", list(), true),
        int("records"),
        Field::new("consent_marketing", DataType::Boolean, true),
        Field::new("emailable", DataType::Boolean, true),
        int("sessions"),
        int("page_views"),
        int("engaged_time_in_s"),
        Field::new("first_seen", timestamp(), true),
        Field::new("last_seen", timestamp(), true),
        text("first_channel"),
        text("last_channel"),
        int("conversions"),
        Field::new("revenue", DataType::Float64, true),
        text("profile_digest"),
        Field::new("valid_from", timestamp(), true),
        Field::new("valid_to", timestamp(), true),
        Field::new("is_current", DataType::Boolean, true),
    ]))
}

/// New current rows, opened at `valid_from`.
pub fn batch(profiles: &[&Profile], valid_from: i64) -> Result<RecordBatch> {
    let texts = |value: &dyn Fn(&Profile) -> Option<&str>| -> ArrayRef {
        Arc::new(profiles.iter().map(|p| value(p)).collect::<StringArray>())
    };
    let lists = |value: &dyn Fn(&Profile) -> &Vec<String>| -> ArrayRef {
        let mut builder = ListBuilder::new(StringBuilder::new());
        for p in profiles {
            for v in value(p) {
                builder.values().append_value(v);
            }
            builder.append(true);
        }
        Arc::new(builder.finish())
    };
    let ints = |value: &dyn Fn(&Profile) -> i64| -> ArrayRef {
        Arc::new(
            profiles
                .iter()
                .map(|p| Some(value(p)))
                .collect::<Int64Array>(),
        )
    };
    let times = |value: &dyn Fn(&Profile) -> Option<i64>| -> ArrayRef {
        Arc::new(
            profiles
                .iter()
                .map(|p| value(p))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        )
    };
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
    let digests: Vec<String> = profiles.iter().map(|p| digest(p)).collect();
    let columns: Vec<ArrayRef> = vec![
        texts(&|p| Some(p.customer_id.as_str())),
        texts(&|p| p.first_name.as_deref()),
        texts(&|p| p.last_name.as_deref()),
        texts(&|p| p.email.as_deref()),
        texts(&|p| p.phone.as_deref()),
        Arc::new(
            profiles
                .iter()
                .map(|p| p.dob.map(|d| (d - epoch).num_days() as i32))
                .collect::<Date32Array>(),
        ),
        texts(&|p| p.street.as_deref()),
        texts(&|p| p.city.as_deref()),
        texts(&|p| p.postcode.as_deref()),
        texts(&|p| p.country.as_deref()),
        lists(&|p| &p.emails),
        lists(&|p| &p.phones),
        lists(&|p| &p.user_ids),
        lists(&|p| &p.domain_userids),
        lists(&|p| &p.sources),
        ints(&|p| p.records),
        Arc::new(
            profiles
                .iter()
                .map(|p| p.consent_marketing)
                .collect::<BooleanArray>(),
        ),
        Arc::new(
            profiles
                .iter()
                .map(|p| Some(p.emailable))
                .collect::<BooleanArray>(),
        ),
        ints(&|p| p.web.sessions),
        ints(&|p| p.web.page_views),
        ints(&|p| p.web.engaged_time_in_s),
        times(&|p| p.web.first_seen),
        times(&|p| p.web.last_seen),
        texts(&|p| p.web.first_channel.as_deref()),
        texts(&|p| p.web.last_channel.as_deref()),
        ints(&|p| p.web.conversions),
        Arc::new(
            profiles
                .iter()
                .map(|p| Some(p.web.revenue))
                .collect::<Float64Array>(),
        ),
        Arc::new(
            digests
                .iter()
                .map(|d| Some(d.as_str()))
                .collect::<StringArray>(),
        ),
        times(&|_| Some(valid_from)),
        times(&|_| None),
        Arc::new(
            profiles
                .iter()
                .map(|_| Some(true))
                .collect::<BooleanArray>(),
        ),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// The table's rows after this run: earlier versions as they were, current
/// rows kept where the digest is unchanged and closed at `now` where it is
/// not (or the customer is gone), and new rows for every changed customer.
pub async fn next_version(
    context: &SessionContext,
    profiles: &[Profile],
    now: i64,
) -> Result<(Vec<RecordBatch>, usize)> {
    let digests: HashMap<&str, String> = profiles
        .iter()
        .map(|p| (p.customer_id.as_str(), digest(p)))
        .collect();
    let mut unchanged: BTreeSet<String> = BTreeSet::new();
    let mut batches = Vec::new();
    if weft_lake::sql::has_table(context, "profiles.customers") {
        let old = crate::query(context, "SELECT * FROM profiles.customers").await?;
        for batch in old {
            let batch = conform(&batch)?;
            let ids = batch.column(0).as_string::<i32>().clone();
            let digest_column = batch
                .column_by_name("profile_digest")
                .expect("the schema has it")
                .as_string::<i32>()
                .clone();
            let current = batch
                .column_by_name("is_current")
                .expect("the schema has it")
                .as_boolean()
                .clone();
            let valid_to = batch
                .column_by_name("valid_to")
                .expect("the schema has it")
                .as_primitive::<deltalake::arrow::datatypes::TimestampMicrosecondType>()
                .clone();
            let mut closed_to = Vec::with_capacity(batch.num_rows());
            let mut still_current = Vec::with_capacity(batch.num_rows());
            for row in 0..batch.num_rows() {
                let open = current.is_valid(row) && current.value(row);
                let same = open
                    && digests
                        .get(ids.value(row))
                        .is_some_and(|d| d == digest_column.value(row));
                if same {
                    unchanged.insert(ids.value(row).to_owned());
                }
                let close = open && !same;
                closed_to.push(if close {
                    Some(now)
                } else if valid_to.is_null(row) {
                    None
                } else {
                    Some(valid_to.value(row))
                });
                still_current.push(Some(open && same));
            }
            let mut columns = batch.columns().to_vec();
            let schema = schema();
            let to = schema.index_of("valid_to")?;
            let is_current = schema.index_of("is_current")?;
            columns[to] = Arc::new(TimestampMicrosecondArray::from(closed_to).with_timezone("UTC"));
            columns[is_current] = Arc::new(BooleanArray::from(still_current));
            batches.push(RecordBatch::try_new(schema, columns)?);
        }
    }
    let changed: Vec<&Profile> = profiles
        .iter()
        .filter(|p| !unchanged.contains(&p.customer_id))
        .collect();
    let count = changed.len();
    batches.push(batch(&changed, now)?);
    Ok((batches, count))
}

/// Rows read back from the table, in the schema's column types.
fn conform(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = schema();
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let column = batch.column_by_name(field.name()).ok_or_else(|| {
                ProfilesError::Config(format!("profiles.customers has no column {}", field.name()))
            })?;
            Ok(cast(column, field.data_type())?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates<'a>(values: &[(&'a str, usize, Option<i64>)]) -> Vec<Candidate<'a>> {
        values
            .iter()
            .map(|&(value, trust, updated_at)| Candidate {
                value,
                trust,
                updated_at,
            })
            .collect()
    }

    #[test]
    fn each_rule_picks_its_own_survivor() {
        let c = candidates(&[
            ("crm", 0, Some(1)),
            ("new", 2, Some(9)),
            ("often", 1, Some(2)),
            ("often", 3, Some(3)),
        ]);
        assert_eq!(
            survive(Survivorship::MostTrusted, &c).as_deref(),
            Some("crm")
        );
        assert_eq!(
            survive(Survivorship::MostRecent, &c).as_deref(),
            Some("new")
        );
        assert_eq!(
            survive(Survivorship::MostFrequent, &c).as_deref(),
            Some("often")
        );
        assert_eq!(survive(Survivorship::MostRecent, &[]), None);
        // a tie on everything ends on the value, whatever the order
        let tie = candidates(&[("b", 0, None), ("a", 0, None)]);
        let reversed = candidates(&[("a", 0, None), ("b", 0, None)]);
        assert_eq!(
            survive(Survivorship::MostTrusted, &tie),
            survive(Survivorship::MostTrusted, &reversed)
        );
    }

    #[test]
    fn towns_read_from_an_address_line_are_written_as_names() {
        assert_eq!(title_case("north shields"), "North Shields");
        assert_eq!(title_case(""), "");
    }

    #[test]
    fn unknown_rules_are_refused_by_name() {
        assert!(
            "most_popular"
                .parse::<Survivorship>()
                .unwrap_err()
                .contains("most_frequent")
        );
    }
}
