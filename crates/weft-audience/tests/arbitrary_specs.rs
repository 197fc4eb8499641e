//! Arbitrary JSON, built from the spec's own words so it reaches deep into
//! the reader and the compiler: every input is accepted or refused with a
//! path, never a panic, and whatever compiles is SQL DataFusion runs.

mod fixture;

use deltalake::datafusion::prelude::SessionContext;
use proptest::prelude::*;
use serde_json::{Map, Value};
use weft_audience::engine::Engine;
use weft_audience::spec::{self, Op};

const WORDS: &[&str] = &[
    "name",
    "conditions",
    "all",
    "any",
    "not",
    "trait",
    "score",
    "consent",
    "behaviour",
    "audience",
    "op",
    "value",
    "source",
    "event",
    "where",
    "field",
    "within_days",
    "measure",
    "of",
    "select",
    "sample",
    "percent",
    "limit",
    "order_by",
    "desc",
    "country",
    "revenue",
    "emails",
    "last_seen",
    "dob",
    "overall",
    "bread",
    "email",
    "marketing",
    "events",
    "conversions",
    "sessions",
    "count",
    "sum",
    "max",
    "eq",
    "ne",
    "gte",
    "between",
    "in",
    "contains",
    "is_set",
    "within_days",
    "unstruct_event_com_acme_product_view_1.category",
    "categories",
    "value",
    "gb",
    "x'; --",
    "\\",
    "東京",
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..40).prop_map(Value::from),
        (-1.0f64..2.0).prop_map(Value::from),
        proptest::sample::select(WORDS).prop_map(|w| Value::String(w.to_owned())),
        Just(Value::String("2026-11-01".into())),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(WORDS), inner), 0..5).prop_map(
                |pairs| {
                    Value::Object(
                        pairs
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect::<Map<_, _>>(),
                    )
                }
            ),
        ]
    })
}

const SLOTS: &[&str] = &[
    "op",
    "value",
    "trait",
    "score",
    "within_days",
    "field",
    "source",
    "measure",
    "of",
    "consent",
    "audience",
    "event",
    "percent",
    "limit",
];

fn slots(value: &Value) -> usize {
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(key, child)| usize::from(SLOTS.contains(&key.as_str())) + slots(child))
            .sum(),
        Value::Array(items) => items.iter().map(slots).sum(),
        _ => 0,
    }
}

/// Replaces the value of the `index`th key the spec reads (op, value, trait, …).
fn replace(value: &mut Value, index: &mut usize, with: &mut Option<Value>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if with.is_none() {
                    return;
                }
                if SLOTS.contains(&key.as_str()) {
                    if *index == 0 {
                        *child = with.take().expect("checked above");
                        return;
                    }
                    *index -= 1;
                }
                replace(child, index, with);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| replace(item, index, with)),
        _ => {}
    }
}

fn mutate(spec: &mut Value, n: usize, with: Value) {
    let count = slots(spec);
    if count > 0 {
        replace(spec, &mut (n % count), &mut Some(with));
    }
}

/// A test case's spec with one of its values replaced by something arbitrary.
fn spec_like() -> impl Strategy<Value = Value> {
    let cases: Vec<Value> = serde_json::from_str::<Value>(include_str!("fixture/cases.json"))
        .unwrap()["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["spec"].clone())
        .collect();
    let words = prop_oneof![
        3 => json(),
        1 => proptest::sample::select(Vec::from(Op::ALL)).prop_map(|op| Value::from(op.name())),
        1 => proptest::sample::select(Vec::from(FIELDS)).prop_map(Value::from),
    ];
    (
        proptest::sample::select(cases),
        0usize..64,
        words,
        proptest::bool::weighted(0.3),
    )
        .prop_map(|(mut spec, n, with, keep)| {
            if !keep {
                mutate(&mut spec, n, with);
            }
            spec
        })
}

const FIELDS: &[&str] = &[
    "country",
    "revenue",
    "emails",
    "last_seen",
    "dob",
    "email",
    "sessions",
    "first_name",
    "overall",
    "bread",
    "decile",
    "propensity",
    "consent_marketing",
    "value",
    "categories",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_json_is_read_or_refused_with_a_path(value in json()) {
        if let Err(error) = spec::from_value(&value) {
            prop_assert!(error.path.starts_with('$'), "{error}");
        }
    }

    #[test]
    fn whatever_compiles_runs(value in spec_like()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let spec = match spec::from_value(&value) {
                Ok(spec) => spec,
                Err(error) => {
                    if std::env::var_os("SHOW_COMPILED").is_some() {
                        eprintln!("unread: {error}");
                    }
                    return Ok(());
                }
            };
            let context: SessionContext = fixture::session().await;
            let engine = Engine::from_context(context).await.unwrap();
            let cases = fixture::cases();
            match engine.compile(&spec, &cases.audiences, cases.as_of) {
                Err(weft_audience::AudienceError::Spec(error)) => {
                    if std::env::var_os("SHOW_COMPILED").is_some() {
                        eprintln!("refused: {error}");
                    }
                    prop_assert!(error.path.starts_with('$'), "{error}");
                }
                Err(other) => prop_assert!(false, "{other}"),
                Ok(query) => {
                    if std::env::var_os("SHOW_COMPILED").is_some() {
                        eprintln!("compiled: {value}");
                    }
                    let result = engine.member_ids(&query).await;
                    prop_assert!(result.is_ok(), "{value}: {:?}", result.err());
                }
            }
            Ok(())
        })?;
    }
}
