//! Web identities: every cookie (`domain_userid`) the model stitched to a user
//! id, or seen with an email or a phone in a self-describing column (a login
//! or sign-up entity), is a record of the source `web`, so the linker puts
//! cookies, logins and CRM rows together.

use std::collections::BTreeMap;

use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, TimeUnit};
use deltalake::datafusion::prelude::SessionContext;
use weft_core::config::WebIdentityConfig;
use weft_identity::{Field, RawRecord};

use crate::sources::SourceRecord;
use crate::{ProfilesError, Result};

/// The source name of web identities.
pub const WEB_SOURCE: &str = "web";

#[derive(Default)]
struct Cookie {
    user_id: Option<(i64, String)>,
    email: Option<(i64, String)>,
    phone: Option<(i64, String)>,
}

impl Cookie {
    fn seen(slot: &mut Option<(i64, String)>, at: i64, value: String) {
        if slot.as_ref().is_none_or(|(t, _)| at > *t) {
            *slot = Some((at, value));
        }
    }
}

/// One record per identified cookie, its latest user id, email and phone.
pub async fn records(
    context: &SessionContext,
    config: &WebIdentityConfig,
    trust: usize,
) -> Result<Vec<SourceRecord>> {
    if !config.enabled {
        return Ok(Vec::new());
    }
    let mut cookies: BTreeMap<String, Cookie> = BTreeMap::new();
    if weft_lake::sql::has_table(context, "derived.user_mapping") {
        let batches = crate::query(
            context,
            "SELECT domain_userid, user_id, last_seen_tstamp AS seen FROM derived.user_mapping",
        )
        .await?;
        for (cookie, user_id, at) in triples(&batches)? {
            Cookie::seen(&mut cookies.entry(cookie).or_default().user_id, at, user_id);
        }
    }
    // a plain list: a borrowing iterator held across the awaits below would
    // make this future unsendable to the runtime
    let paths: Vec<(Field, &String)> = config
        .emails
        .iter()
        .map(|p| (Field::Email, p))
        .chain(config.phones.iter().map(|p| (Field::Phone, p)))
        .collect();
    if weft_lake::sql::has_table(context, "atomic.events") && !paths.is_empty() {
        let events = context.table("atomic.events").await?;
        let known = events.schema().as_arrow().clone();
        for (field, path) in paths {
            let (column, key) =
                weft_lake::sql::self_describing_path(path).map_err(ProfilesError::Config)?;
            if known.field_with_name(column).is_err() {
                continue; // no event has carried that entity yet
            }
            let value = weft_lake::sql::json_key("json_get_str", column, key);
            let sql = format!(
                "SELECT domain_userid, value, max(derived_tstamp) AS seen FROM \
                   (SELECT domain_userid, {value} AS value, derived_tstamp FROM atomic.events \
                    WHERE {column} IS NOT NULL AND domain_userid IS NOT NULL) e \
                 WHERE value IS NOT NULL AND value <> '' GROUP BY domain_userid, value"
            );
            for (cookie, value, at) in triples(&crate::query(context, &sql).await?)? {
                let cookie = cookies.entry(cookie).or_default();
                let slot = match field {
                    Field::Phone => &mut cookie.phone,
                    _ => &mut cookie.email,
                };
                Cookie::seen(slot, at, value);
            }
        }
    }
    Ok(cookies
        .into_iter()
        .map(|(id, cookie)| {
            let updated_at = [&cookie.user_id, &cookie.email, &cookie.phone]
                .into_iter()
                .flatten()
                .map(|(t, _)| *t)
                .max();
            let mut values = Vec::new();
            if let Some((_, user_id)) = cookie.user_id {
                values.push((Field::UserId, user_id));
            }
            if let Some((_, email)) = cookie.email {
                values.push((Field::Email, email));
            }
            if let Some((_, phone)) = cookie.phone {
                values.push((Field::Phone, phone));
            }
            SourceRecord {
                raw: RawRecord {
                    source: WEB_SOURCE.to_owned(),
                    id,
                    values,
                },
                updated_at,
                consent: None,
                trust,
            }
        })
        .collect())
}

/// (text, text, timestamp in µs) rows.
fn triples(batches: &[RecordBatch]) -> Result<Vec<(String, String, i64)>> {
    let mut out = Vec::new();
    for batch in batches {
        let a = cast(batch.column(0), &DataType::Utf8)?;
        let b = cast(batch.column(1), &DataType::Utf8)?;
        let t = cast(
            batch.column(2),
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )?;
        let (a, b) = (a.as_string::<i32>(), b.as_string::<i32>());
        let t = t.as_primitive::<deltalake::arrow::datatypes::TimestampMicrosecondType>();
        for row in 0..batch.num_rows() {
            if a.is_null(row) || b.is_null(row) {
                continue;
            }
            let at = if t.is_null(row) { 0 } else { t.value(row) };
            out.push((a.value(row).to_owned(), b.value(row).to_owned(), at));
        }
    }
    Ok(out)
}
