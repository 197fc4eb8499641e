//! The SaaS destinations against local servers that keep each service's
//! documented contract — request shape, limits, authentication, per-row
//! answers, throttling — and hold what was sent, so the tests check what
//! the service ends up with, not what the client meant to send.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use weft_activate::deliver::{Delivery, Run, deliver};
use weft_activate::destination::{Built, build};
use weft_activate::diff::diff;
use weft_activate::rows::{Field, FieldKind, Row};
use weft_activate::spec::Mode;
use weft_meta::Store;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

fn text_fields(names: &[(&str, &str)]) -> Vec<Field> {
    names
        .iter()
        .map(|(name, column)| Field {
            name: name.to_string(),
            column: column.to_string(),
            kind: FieldKind::Text,
        })
        .collect()
}

/// Diffs `rows` against what `store` says was delivered and sends the difference.
async fn sync(
    built: &Built,
    store: &Store,
    fields: &[Field],
    mode: Mode,
    rows: Vec<Row>,
    run_id: &str,
) -> Delivery {
    let plan = diff(
        mode,
        rows,
        &store.delivered("s").unwrap(),
        &store.failures("s").unwrap(),
    );
    let run = Run {
        sync: "s",
        run_id,
        fields,
        abandon_after: 3,
    };
    deliver(built, store, &run, plan).await.unwrap()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

// ---------------------------------------------------------------- Meta

#[derive(Default)]
struct MetaAudience {
    requests: usize,
    /// The hashed rows in the audience.
    members: BTreeSet<Vec<String>>,
    /// session_id → (batch_seq, last_batch_flag, estimated_num_total) of each add.
    sessions: BTreeMap<u64, Vec<(u64, bool, u64)>>,
}

fn graph_error(code: i64, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "A1"}})),
    )
        .into_response()
}

/// `/{audience_id}/users`, POST to add and DELETE to remove, as the
/// Marketing API documents it; the second request is throttled (80003).
async fn meta_users(
    State(audience): State<Arc<Mutex<MetaAudience>>>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if bearer(&headers) != Some("meta-token") {
        return graph_error(
            190,
            "Invalid OAuth access token - Cannot parse access token",
        );
    }
    if id != "23850000000000001" {
        return graph_error(100, "Unsupported post request. Object does not exist");
    }
    let mut audience = audience.lock().unwrap();
    audience.requests += 1;
    if audience.requests == 2 {
        return graph_error(80003, "There have been too many calls to this ad-account");
    }
    let keys = [
        "EMAIL",
        "PHONE",
        "FN",
        "LN",
        "FI",
        "CT",
        "ST",
        "ZIP",
        "COUNTRY",
        "DOBY",
        "DOBM",
        "DOBD",
        "GEN",
        "MADID",
        "EXTERN_ID",
    ];
    let Some(schema) = body["payload"]["schema"].as_array() else {
        return graph_error(100, "(#100) The parameter payload is required");
    };
    if schema
        .iter()
        .any(|k| !keys.contains(&k.as_str().unwrap_or("")))
    {
        return graph_error(100, "(#100) Invalid schema");
    }
    let data = body["payload"]["data"].as_array().unwrap();
    if data.len() > 10_000 {
        return graph_error(100, "(#100) Too many users in one request: at most 10000");
    }
    let mut rows = Vec::new();
    for row in data {
        let row: Vec<String> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let hashed = |v: &String| {
            v.is_empty()
                || (v.len() == 64
                    && v.chars()
                        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)))
        };
        if row.len() != schema.len() || !row.iter().all(hashed) {
            return graph_error(100, "(#100) Data is not hashed as the schema says");
        }
        rows.push(row);
    }
    if method == Method::POST {
        let session = &body["session"];
        let (Some(id), Some(seq), Some(last), Some(total)) = (
            session["session_id"].as_u64(),
            session["batch_seq"].as_u64(),
            session["last_batch_flag"].as_bool(),
            session["estimated_num_total"].as_u64(),
        ) else {
            return graph_error(100, "(#100) session is incomplete");
        };
        audience
            .sessions
            .entry(id)
            .or_default()
            .push((seq, last, total));
        audience.members.extend(rows.iter().cloned());
    } else {
        for row in &rows {
            audience.members.remove(row);
        }
    }
    Json(json!({
        "audience_id": id,
        "session_id": body["session"]["session_id"].to_string(),
        "num_received": rows.len(),
        "num_invalid_entries": 0,
        "invalid_entry_samples": {},
    }))
    .into_response()
}

fn meta_rows(range: std::ops::Range<usize>) -> Vec<Row> {
    range
        .map(|i| {
            let values = if i == 7 {
                // nothing Meta could match on
                vec![json!(null), json!("   "), json!("")]
            } else {
                vec![
                    json!(format!(" Person{i}@Example.COM ")),
                    json!(format!("+1 (555) 010-{i:04}")),
                    json!(if i.is_multiple_of(2) {
                        "Émile"
                    } else {
                        "Anne-Marie"
                    }),
                ]
            };
            Row::new(format!("c{i:02}"), values)
        })
        .collect()
}

fn meta_hashes(i: usize) -> Vec<String> {
    vec![
        sha256(&format!("person{i}@example.com")),
        sha256(&format!("1555010{i:04}")),
        sha256(if i.is_multiple_of(2) {
            "émile"
        } else {
            "annemarie"
        }),
    ]
}

#[tokio::test]
async fn meta_custom_audience_holds_the_members_hashed_added_and_removed() {
    let audience = Arc::new(Mutex::new(MetaAudience::default()));
    let url = serve(
        Router::new()
            .route("/v21.0/{id}/users", post(meta_users).delete(meta_users))
            .with_state(audience.clone()),
    )
    .await;
    let settings = |token: &str| {
        json!({
            "type": "meta",
            "url": format!("{url}/v21.0"),
            "audience_id": "23850000000000001",
            "access_token": token,
            "batch_size": 10,
            "backoff_secs": 0.01,
        })
    };
    let built = build("ads", &settings("meta-token")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let fields = text_fields(&[("EMAIL", "email"), ("PHONE", "phone"), ("FN", "first_name")]);

    let done = sync(
        &built,
        &store,
        &fields,
        Mode::Membership,
        meta_rows(0..25),
        "r1",
    )
    .await;
    assert_eq!(done.stopped, None);
    assert_eq!((done.delivered, done.failed), (24, 1));
    assert_eq!(done.retries, 1, "the throttled call is tried again");
    assert!(
        store.failures("s").unwrap()["c07"]
            .message
            .contains("no identifier")
    );
    {
        let audience = audience.lock().unwrap();
        let expected: BTreeSet<Vec<String>> =
            (0..25).filter(|i| *i != 7).map(meta_hashes).collect();
        assert_eq!(audience.members, expected, "normalised, hashed, each once");
        assert_eq!(audience.sessions.len(), 1, "one upload session per run");
        let batches = audience.sessions.values().next().unwrap();
        let seqs: Vec<u64> = batches.iter().map(|b| b.0).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(
            batches.iter().map(|b| b.1).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert!(batches.iter().all(|b| b.2 == 25));
    }

    // Five members leave: they are removed, the rest stay.
    let done = sync(
        &built,
        &store,
        &fields,
        Mode::Membership,
        meta_rows(5..25),
        "r2",
    )
    .await;
    assert_eq!((done.delivered, done.failed, done.stopped), (5, 1, None));
    let expected: BTreeSet<Vec<String>> = (5..25).filter(|i| *i != 7).map(meta_hashes).collect();
    assert_eq!(audience.lock().unwrap().members, expected);

    // A member's email changes: the old identifiers leave, the new ones enter.
    let mut moved = meta_rows(5..25);
    let i = moved.iter().position(|r| r.key == "c10").unwrap();
    let mut values = moved[i].values();
    values[0] = json!("new10@example.com");
    moved[i] = Row::new("c10".into(), values);
    let done = sync(&built, &store, &fields, Mode::Membership, moved, "r2b").await;
    assert_eq!((done.delivered, done.stopped), (1, None));
    let mut expected = expected;
    assert!(expected.remove(&meta_hashes(10)));
    let mut new = meta_hashes(10);
    new[0] = sha256("new10@example.com");
    expected.insert(new);
    assert_eq!(audience.lock().unwrap().members, expected);

    // An expired token stops the run at once.
    let expired = build("ads", &settings("expired")).unwrap();
    let other = tempfile::tempdir().unwrap();
    let store = Store::open(other.path()).unwrap();
    let done = sync(
        &expired,
        &store,
        &fields,
        Mode::Membership,
        meta_rows(0..3),
        "r3",
    )
    .await;
    assert!(done.stopped.unwrap().contains("Meta error 190"));
    assert_eq!(done.requests, 1);
}

// ---------------------------------------------------------------- Salesforce

#[derive(Default)]
struct Org {
    /// Tokens issued, and the calls each has made.
    tokens: HashMap<String, usize>,
    issued: usize,
    patches: usize,
    /// Contact records by Weft_Id__c.
    contacts: BTreeMap<String, serde_json::Map<String, Value>>,
}

const CONTACT_FIELDS: [&str; 5] = [
    "Weft_Id__c",
    "Email",
    "LastName",
    "FirstName",
    "In_Audience__c",
];

fn sf_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!([{"message": message, "errorCode": code}])),
    )
        .into_response()
}

/// The client-credentials flow: a token that lasts three calls.
async fn sf_token(
    State(org): State<Arc<Mutex<Org>>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id").map(String::as_str) == Some("weft-app")
        && form.get("client_secret").map(String::as_str) == Some("s3cret&more");
    if !ok {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_client", "error_description": "invalid client credentials"})),
        )
            .into_response();
    }
    let mut org = org.lock().unwrap();
    org.issued += 1;
    let token = format!("00D-token-{}", org.issued);
    org.tokens.insert(token.clone(), 0);
    Json(json!({"access_token": token, "instance_url": "http://unused", "token_type": "Bearer"}))
        .into_response()
}

/// Counts a call against its token: false once the token has expired.
fn sf_session(org: &mut Org, headers: &HeaderMap) -> bool {
    let uses = bearer(headers).and_then(|token| org.tokens.get_mut(token));
    match uses {
        Some(uses) if *uses < 3 => {
            *uses += 1;
            true
        }
        _ => false,
    }
}

fn sf_expired() -> Response {
    sf_error(
        StatusCode::UNAUTHORIZED,
        "INVALID_SESSION_ID",
        "Session expired or invalid",
    )
}

async fn sf_describe(State(org): State<Arc<Mutex<Org>>>, headers: HeaderMap) -> Response {
    let mut org = org.lock().unwrap();
    if !sf_session(&mut org, &headers) {
        return sf_expired();
    }
    let fields: Vec<Value> = CONTACT_FIELDS
        .iter()
        .map(|name| json!({"name": name, "externalId": *name == "Weft_Id__c"}))
        .collect();
    Json(json!({"name": "Contact", "fields": fields})).into_response()
}

/// sObject Collections upsert by external id, allOrNone false: one
/// UpsertResult per record in order; LastName is required on create.
/// The second call finds the org busy.
async fn sf_upsert(
    State(org): State<Arc<Mutex<Org>>>,
    Path((object, external)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut org = org.lock().unwrap();
    if !sf_session(&mut org, &headers) {
        return sf_expired();
    }
    org.patches += 1;
    if org.patches == 2 {
        return sf_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_UNAVAILABLE",
            "Server temporarily unavailable",
        );
    }
    if object != "Contact" || external != "Weft_Id__c" || body["allOrNone"] != false {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            "bad collection request",
        );
    }
    let records = body["records"].as_array().unwrap();
    if records.len() > 200 {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        );
    }
    let mut results = Vec::new();
    for record in records {
        let record = record.as_object().unwrap();
        if record["attributes"]["type"] != "Contact" {
            return sf_error(StatusCode::BAD_REQUEST, "INVALID_TYPE", "mixed types");
        }
        if let Some(unknown) = record
            .keys()
            .find(|k| *k != "attributes" && !CONTACT_FIELDS.contains(&k.as_str()))
        {
            return sf_error(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                &format!("No such column '{unknown}' on sobject of type Contact"),
            );
        }
        let id = record["Weft_Id__c"].as_str().unwrap().to_owned();
        let exists = org.contacts.contains_key(&id);
        let has_last_name = record.get("LastName").is_some_and(|v| v.is_string());
        if !exists && !has_last_name {
            results.push(json!({"success": false, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]", "fields": ["LastName"]}]}));
            continue;
        }
        let contact = org.contacts.entry(id).or_default();
        for (k, v) in record {
            if k != "attributes" {
                contact.insert(k.clone(), v.clone());
            }
        }
        results.push(json!({"id": "003xx", "success": true, "errors": [], "created": !exists}));
    }
    Json(Value::Array(results)).into_response()
}

fn contacts(range: std::ops::Range<usize>) -> Vec<Row> {
    range
        .map(|i| {
            let last = if i == 13 {
                json!(null)
            } else {
                json!(format!("Last{i}"))
            };
            Row::new(
                format!("c{i:03}"),
                vec![json!(format!("p{i}@x.test")), last],
            )
        })
        .collect()
}

#[tokio::test]
async fn salesforce_upserts_by_external_id_with_per_record_results() {
    let org = Arc::new(Mutex::new(Org::default()));
    let url = serve(
        Router::new()
            .route("/services/oauth2/token", post(sf_token))
            .route(
                "/services/data/v60.0/sobjects/Contact/describe",
                get(sf_describe),
            )
            .route(
                "/services/data/v60.0/composite/sobjects/{object}/{external}",
                patch(sf_upsert),
            )
            .with_state(org.clone()),
    )
    .await;
    let settings = |field: &str, secret: &str| {
        json!({
            "type": "salesforce",
            "url": url,
            "object": "Contact",
            "external_id_field": field,
            "membership_field": "In_Audience__c",
            "client_id": "weft-app",
            "client_secret": secret,
            "backoff_secs": 0.01,
        })
    };
    let built = build("crm", &settings("Weft_Id__c", "s3cret&more")).unwrap();
    built.destination.check().await.unwrap();
    let wrong = build("crm", &settings("Email", "s3cret&more")).unwrap();
    let refused = wrong.destination.check().await.unwrap_err();
    assert!(
        refused.to_string().contains("not an external id field"),
        "{refused}"
    );

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let fields = text_fields(&[("Email", "email"), ("LastName", "last_name")]);
    let done = sync(
        &built,
        &store,
        &fields,
        Mode::Membership,
        contacts(0..450),
        "r1",
    )
    .await;
    assert_eq!(done.stopped, None);
    assert_eq!((done.delivered, done.failed), (449, 1));
    assert_eq!(done.retries, 1, "the busy org is tried again");
    let failure = &store.failures("s").unwrap()["c013"];
    assert!(
        failure.message.contains("REQUIRED_FIELD_MISSING"),
        "{}",
        failure.message
    );
    {
        let org = org.lock().unwrap();
        assert_eq!(org.contacts.len(), 449);
        assert!(org.issued >= 2, "the expired session was renewed");
        let c042 = &org.contacts["c042"];
        assert_eq!(c042["Email"], "p42@x.test");
        assert_eq!(c042["In_Audience__c"], true);
    }

    // Ten leave: still in the CRM, no longer flagged, other fields kept.
    let done = sync(
        &built,
        &store,
        &fields,
        Mode::Membership,
        contacts(10..450),
        "r2",
    )
    .await;
    assert_eq!(done.stopped, None);
    assert_eq!(done.delivered, 10);
    {
        let org = org.lock().unwrap();
        assert_eq!(org.contacts["c003"]["In_Audience__c"], false);
        assert_eq!(org.contacts["c003"]["LastName"], "Last3");
        assert_eq!(org.contacts["c042"]["In_Audience__c"], true);
    }

    // A refused client stops the run with Salesforce's reason.
    let locked_out = build("crm", &settings("Weft_Id__c", "wrong")).unwrap();
    let other = tempfile::tempdir().unwrap();
    let store = Store::open(other.path()).unwrap();
    let done = sync(
        &locked_out,
        &store,
        &fields,
        Mode::Upsert,
        contacts(0..3),
        "r3",
    )
    .await;
    assert!(done.stopped.unwrap().contains("invalid_client"));
}

// ---------------------------------------------------------------- Braze

#[derive(Default)]
struct Workspace {
    requests: usize,
    /// The rate-limit window's end, once the limit was reached.
    users: BTreeMap<String, serde_json::Map<String, Value>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `/users/track`: at most 75 attributes objects, each keyed by
/// external_id; an email that is not one is refused by index; the third
/// request finds the rate limit spent until the next second.
async fn braze_track(
    State(workspace): State<Arc<Mutex<Workspace>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if bearer(&headers) != Some("braze-key") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Invalid API key: braze-***"})),
        )
            .into_response();
    }
    let mut workspace = workspace.lock().unwrap();
    workspace.requests += 1;
    let limit = [
        ("x-ratelimit-limit", "250000".to_owned()),
        ("x-ratelimit-remaining", "0".to_owned()),
        ("x-ratelimit-reset", (now() + 1).to_string()),
    ];
    if workspace.requests == 3 {
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"message": "rate limit reached"})),
        )
            .into_response();
        for (name, value) in limit {
            response.headers_mut().insert(name, value.parse().unwrap());
        }
        return response;
    }
    let attributes = body["attributes"].as_array().unwrap();
    if attributes.len() > 75 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "Too many attributes objects: at most 75"})),
        )
            .into_response();
    }
    let mut errors = Vec::new();
    for (index, object) in attributes.iter().enumerate() {
        let object = object.as_object().unwrap();
        let Some(id) = object.get("external_id").and_then(Value::as_str) else {
            errors.push(json!({"type": "'external_id' is required", "input_array": "attributes", "index": index}));
            continue;
        };
        if let Some(email) = object.get("email").and_then(Value::as_str)
            && !email.contains('@')
        {
            errors.push(json!({"type": "'email' is not a valid email address", "input_array": "attributes", "index": index}));
            continue;
        }
        let user = workspace.users.entry(id.to_owned()).or_default();
        for (k, v) in object {
            match v.as_object() {
                Some(change) if change.contains_key("add") || change.contains_key("remove") => {
                    let mut list: BTreeSet<String> = user
                        .get(k)
                        .and_then(Value::as_array)
                        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                        .unwrap_or_default();
                    for added in change
                        .get("add")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        list.insert(added.as_str().unwrap().to_owned());
                    }
                    for gone in change
                        .get("remove")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        list.remove(gone.as_str().unwrap());
                    }
                    user.insert(k.clone(), json!(list));
                }
                _ => {
                    user.insert(k.clone(), v.clone());
                }
            }
        }
    }
    let mut response = (
        StatusCode::CREATED,
        Json(json!({"message": "success", "attributes_processed": attributes.len() - errors.len(), "errors": errors})),
    )
        .into_response();
    for (name, value) in limit {
        let value = if name == "x-ratelimit-remaining" {
            "1000".to_owned()
        } else {
            value
        };
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

#[tokio::test]
async fn braze_tracks_attributes_and_membership_within_its_limits() {
    let workspace = Arc::new(Mutex::new(Workspace::default()));
    let url = serve(
        Router::new()
            .route("/users/track", post(braze_track))
            .with_state(workspace.clone()),
    )
    .await;
    let built = build(
        "email",
        &json!({"type": "braze", "url": url, "api_key": "braze-key", "backoff_secs": 0.01}),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let fields = text_fields(&[("email", "email"), ("first_name", "first_name")]);
    let users = |range: std::ops::Range<usize>| -> Vec<Row> {
        range
            .map(|i| {
                let email = if i == 99 {
                    "nobody".to_owned()
                } else {
                    format!("u{i}@x.test")
                };
                Row::new(
                    format!("u{i:03}"),
                    vec![json!(email), json!(format!("Name{i}"))],
                )
            })
            .collect()
    };
    let done = sync(
        &built,
        &store,
        &fields,
        Mode::Membership,
        users(0..160),
        "r1",
    )
    .await;
    assert_eq!(done.stopped, None);
    assert_eq!((done.delivered, done.failed), (159, 1));
    assert_eq!(
        done.retries, 1,
        "the rate-limited request waits for the reset and goes again"
    );
    assert!(
        store.failures("s").unwrap()["u099"]
            .message
            .contains("not a valid email")
    );
    {
        let workspace = workspace.lock().unwrap();
        assert_eq!(workspace.users.len(), 159);
        assert_eq!(workspace.users["u005"]["weft_audiences"], json!(["s"]));
        assert_eq!(workspace.users["u005"]["first_name"], "Name5");
    }
    let done = sync(
        &built,
        &store,
        &fields,
        Mode::Membership,
        users(3..160),
        "r2",
    )
    .await;
    assert_eq!(done.delivered, 3);
    {
        let workspace = workspace.lock().unwrap();
        assert_eq!(workspace.users["u001"]["weft_audiences"], json!([]));
        assert_eq!(workspace.users["u004"]["weft_audiences"], json!(["s"]));
    }

    let wrong = build(
        "email",
        &json!({"type": "braze", "url": url, "api_key": "nope"}),
    )
    .unwrap();
    assert!(matches!(
        wrong.destination.check().await,
        Err(weft_activate::destination::SendError::Fatal(_))
    ));
}

// ---------------------------------------------------------------- Salesforce Bulk API 2.0

#[derive(Default)]
struct BulkJob {
    csv: String,
    state: String,
    polls: usize,
    failed: Vec<String>,
}

#[derive(Default)]
struct BulkOrg {
    org: Org,
    jobs: BTreeMap<String, BulkJob>,
}

type Bulk = State<Arc<Mutex<BulkOrg>>>;

async fn bulk_create(State(bulk): Bulk, headers: HeaderMap, Json(spec): Json<Value>) -> Response {
    let mut bulk = bulk.lock().unwrap();
    if !sf_session(&mut bulk.org, &headers) {
        return sf_expired();
    }
    let expected = json!({"object": "Contact", "externalIdFieldName": "Weft_Id__c",
        "contentType": "CSV", "operation": "upsert", "lineEnding": "LF"});
    if spec != expected {
        return sf_error(StatusCode::BAD_REQUEST, "INVALIDJOB", "unexpected job spec");
    }
    let id = format!("750{:013}", bulk.jobs.len() + 1);
    bulk.jobs.insert(
        id.clone(),
        BulkJob {
            state: "Open".into(),
            ..BulkJob::default()
        },
    );
    Json(json!({"id": id, "state": "Open", "object": "Contact", "operation": "upsert"}))
        .into_response()
}

async fn bulk_upload(
    State(bulk): Bulk,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut bulk = bulk.lock().unwrap();
    if !sf_session(&mut bulk.org, &headers) {
        return sf_expired();
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("text/csv") {
        return sf_error(StatusCode::BAD_REQUEST, "INVALIDBATCH", "CSV is expected");
    }
    match bulk.jobs.get_mut(&id) {
        Some(job) if job.state == "Open" => {
            job.csv.push_str(&body);
            StatusCode::CREATED.into_response()
        }
        _ => sf_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no open job"),
    }
}

/// Closing the job processes its rows: LastName is required on create,
/// an empty cell leaves a field alone and #N/A clears it.
async fn bulk_close(
    State(bulk): Bulk,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(change): Json<Value>,
) -> Response {
    let mut bulk = bulk.lock().unwrap();
    if !sf_session(&mut bulk.org, &headers) {
        return sf_expired();
    }
    if change != json!({"state": "UploadComplete"}) {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOBSTATE",
            "bad state change",
        );
    }
    let BulkOrg { org, jobs } = &mut *bulk;
    let Some(job) = jobs.get_mut(&id) else {
        return sf_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such job");
    };
    let mut reader = csv::Reader::from_reader(job.csv.as_bytes());
    let columns: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    for row in reader.records() {
        let row = row.unwrap();
        let id = row.get(0).unwrap().to_owned();
        let cells: Vec<(&String, &str)> = columns.iter().zip(row.iter()).collect();
        let last_name = cells
            .iter()
            .find(|(c, _)| *c == "LastName")
            .map(|(_, v)| *v);
        if !org.contacts.contains_key(&id) && matches!(last_name, None | Some("") | Some("#N/A")) {
            job.failed.push(format!(
                "\"\",\"REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --\",{}",
                row.iter().collect::<Vec<_>>().join(",")
            ));
            continue;
        }
        let contact = org.contacts.entry(id).or_default();
        for (column, value) in cells {
            match value {
                "" => {}
                "#N/A" => {
                    contact.insert(column.clone(), Value::Null);
                }
                value => {
                    contact.insert(column.clone(), json!(value));
                }
            }
        }
    }
    job.state = "UploadComplete".into();
    Json(json!({"id": id, "state": "UploadComplete"})).into_response()
}

/// A job is in progress on the first look, complete on the next.
async fn bulk_info(State(bulk): Bulk, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut bulk = bulk.lock().unwrap();
    if !sf_session(&mut bulk.org, &headers) {
        return sf_expired();
    }
    let Some(job) = bulk.jobs.get_mut(&id) else {
        return sf_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such job");
    };
    job.polls += 1;
    if job.state == "UploadComplete" || job.state == "InProgress" {
        job.state = if job.polls > 1 {
            "JobComplete"
        } else {
            "InProgress"
        }
        .into();
    }
    Json(json!({"id": id, "state": job.state, "numberRecordsFailed": job.failed.len()}))
        .into_response()
}

async fn bulk_failed(State(bulk): Bulk, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut bulk = bulk.lock().unwrap();
    if !sf_session(&mut bulk.org, &headers) {
        return sf_expired();
    }
    let Some(job) = bulk.jobs.get(&id) else {
        return sf_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such job");
    };
    let columns = csv::Reader::from_reader(job.csv.as_bytes())
        .headers()
        .unwrap()
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(",");
    let mut text = format!("\"sf__Id\",\"sf__Error\",{columns}\n");
    for line in &job.failed {
        text.push_str(line);
        text.push('\n');
    }
    text.into_response()
}

#[tokio::test]
async fn salesforce_bulk_jobs_upsert_large_syncs_and_report_failed_rows() {
    let bulk = Arc::new(Mutex::new(BulkOrg::default()));
    let base = "/services/data/v60.0/jobs/ingest";
    let token = {
        let bulk = bulk.clone();
        move |form: Form<HashMap<String, String>>| {
            let bulk = bulk.clone();
            async move {
                // the same token endpoint, on the bulk org's sessions
                let org = Arc::new(Mutex::new(std::mem::take(&mut bulk.lock().unwrap().org)));
                let response = sf_token(State(org.clone()), form).await;
                bulk.lock().unwrap().org = std::mem::take(&mut *org.lock().unwrap());
                response
            }
        }
    };
    let url = serve(
        Router::new()
            .route("/services/oauth2/token", post(token))
            .route(base, post(bulk_create))
            .route(&format!("{base}/{{id}}"), get(bulk_info).patch(bulk_close))
            .route(
                &format!("{base}/{{id}}/batches"),
                axum::routing::put(bulk_upload),
            )
            .route(&format!("{base}/{{id}}/failedResults/"), get(bulk_failed))
            .with_state(bulk.clone()),
    )
    .await;
    let built = build(
        "crm",
        &json!({
            "type": "salesforce", "url": url, "object": "Contact",
            "external_id_field": "Weft_Id__c", "membership_field": "In_Audience__c",
            "client_id": "weft-app", "client_secret": "s3cret&more",
            "bulk": true, "poll_secs": 0.01, "backoff_secs": 0.01,
        }),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let fields = text_fields(&[("Email", "email"), ("LastName", "last_name")]);
    let done = sync(
        &built,
        &store,
        &fields,
        Mode::Membership,
        contacts(0..25_000),
        "r1",
    )
    .await;
    assert_eq!(done.stopped, None);
    assert_eq!((done.delivered, done.failed), (24_999, 1));
    assert!(
        store.failures("s").unwrap()["c013"]
            .message
            .contains("REQUIRED_FIELD_MISSING")
    );
    {
        let bulk = bulk.lock().unwrap();
        assert_eq!(bulk.jobs.len(), 3, "10,000 rows per job");
        assert_eq!(bulk.org.contacts.len(), 24_999);
        assert!(bulk.org.issued >= 2, "the expired session was renewed");
        let contact = &bulk.org.contacts["c20042"];
        assert_eq!(contact["Email"], "p20042@x.test");
        assert_eq!(contact["In_Audience__c"], "true");
    }
    // Leavers are flagged false and keep their other fields.
    let done = sync(
        &built,
        &store,
        &fields,
        Mode::Membership,
        contacts(5..25_000),
        "r2",
    )
    .await;
    assert_eq!((done.delivered, done.stopped), (5, None));
    let bulk = bulk.lock().unwrap();
    assert_eq!(bulk.org.contacts["c001"]["In_Audience__c"], "false");
    assert_eq!(bulk.org.contacts["c001"]["LastName"], "Last1");
}

// ---------------------------------------------------------------- S3 (files to an object store)

#[derive(Default)]
struct Bucket {
    objects: BTreeMap<String, Vec<u8>>,
    puts: usize,
}

fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message><RequestId>R1</RequestId></Error>"#
    );
    (status, [("content-type", "application/xml")], body).into_response()
}

/// PutObject and DeleteObject, path-style, as S3 documents them: signed
/// with Signature Version 4 by the bucket's key, the payload's SHA-256 in
/// `x-amz-content-sha256`, an ETag in the answer; the first PUT meets
/// 503 SlowDown.
async fn s3_object(
    State(bucket): State<Arc<Mutex<Bucket>>>,
    Path((name, key)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let authorization = header("authorization").unwrap_or_default();
    let Some(credential) = authorization
        .strip_prefix("AWS4-HMAC-SHA256 Credential=")
        .and_then(|rest| rest.split(',').next())
    else {
        return s3_error(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied");
    };
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.first() != Some(&"weft-test") {
        return s3_error(
            StatusCode::FORBIDDEN,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        );
    }
    if scope.get(2..) != Some(&["us-east-1", "s3", "aws4_request"][..])
        || !authorization.contains("SignedHeaders=")
        || !authorization.contains("Signature=")
        || header("x-amz-date").is_none()
    {
        return s3_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match",
        );
    }
    if name != "exports" {
        return s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "The specified bucket does not exist",
        );
    }
    let mut bucket = bucket.lock().unwrap();
    if method == Method::PUT {
        match header("x-amz-content-sha256") {
            Some("UNSIGNED-PAYLOAD") => {}
            Some(hash) if hash == hex::encode(Sha256::digest(&body)) => {}
            _ => {
                return s3_error(
                    StatusCode::BAD_REQUEST,
                    "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                );
            }
        }
        bucket.puts += 1;
        if bucket.puts == 1 {
            return s3_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SlowDown",
                "Please reduce your request rate.",
            );
        }
        let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&body)[..16]));
        bucket.objects.insert(key, body.to_vec());
        return (StatusCode::OK, [("etag", etag)]).into_response();
    }
    bucket.objects.remove(&key);
    StatusCode::NO_CONTENT.into_response()
}

/// DeleteObjects (`POST /bucket?delete`), the way the client removes
/// objects: an XML list of keys in, the deleted keys out.
async fn s3_delete_objects(
    State(bucket): State<Arc<Mutex<Bucket>>>,
    Path(name): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
    body: String,
) -> Response {
    let signed = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 Credential=weft-test/"));
    if !signed {
        return s3_error(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied");
    }
    if name != "exports" || query.as_deref() != Some("delete") {
        return s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "not a DeleteObjects request",
        );
    }
    if !headers.contains_key("content-md5")
        && !headers
            .keys()
            .any(|k| k.as_str().starts_with("x-amz-checksum-"))
    {
        return s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Missing required header for this request: Content-MD5",
        );
    }
    let mut bucket = bucket.lock().unwrap();
    let mut deleted = String::new();
    for part in body.split("<Key>").skip(1) {
        let key = part.split("</Key>").next().unwrap_or_default();
        bucket.objects.remove(key);
        deleted.push_str(&format!("<Deleted><Key>{key}</Key></Deleted>"));
    }
    let answer = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{deleted}</DeleteResult>"#
    );
    (
        StatusCode::OK,
        [("content-type", "application/xml")],
        answer,
    )
        .into_response()
}

#[tokio::test]
async fn files_go_to_an_object_store_with_their_manifest() {
    let bucket = Arc::new(Mutex::new(Bucket::default()));
    let url = serve(
        Router::new()
            .route("/{bucket}", post(s3_delete_objects))
            .route(
                "/{bucket}/{*key}",
                axum::routing::put(s3_object).delete(s3_object),
            )
            .with_state(bucket.clone()),
    )
    .await;
    let settings = |key: &str| {
        json!({
            "type": "files",
            "path": "s3://exports/weft",
            "batch_size": 10,
            "max_retries": 1,
            "backoff_secs": 0.01,
            "options": {
                "aws_endpoint": url,
                "aws_allow_http": "true",
                "aws_region": "us-east-1",
                "aws_access_key_id": key,
                "aws_secret_access_key": "not-logged",
            },
        })
    };
    let built = build("drop", &settings("weft-test")).unwrap();
    built.destination.check().await.unwrap();
    assert!(
        bucket.lock().unwrap().objects.is_empty(),
        "the write check leaves nothing"
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let fields = text_fields(&[("email", "email")]);
    let rows: Vec<Row> = (0..25)
        .map(|i| Row::new(format!("c{i:02}"), vec![json!(format!("p{i}@x.test"))]))
        .collect();
    let done = sync(&built, &store, &fields, Mode::Upsert, rows, "r1").await;
    assert_eq!((done.delivered, done.stopped), (25, None));
    let objects = bucket.lock().unwrap().objects.clone();
    let names: Vec<&str> = objects.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "weft/s/r1/manifest.json",
            "weft/s/r1/part-00001.csv",
            "weft/s/r1/part-00002.csv",
            "weft/s/r1/part-00003.csv",
        ]
    );
    let manifest: Value = serde_json::from_slice(&objects["weft/s/r1/manifest.json"]).unwrap();
    assert_eq!(
        (manifest["complete"].as_bool(), manifest["rows"].as_u64()),
        (Some(true), Some(25))
    );
    for file in manifest["files"].as_array().unwrap() {
        let bytes = &objects[&format!("weft/s/r1/{}", file["name"].as_str().unwrap())];
        assert_eq!(file["sha256"], hex::encode(Sha256::digest(bytes)));
    }
    let first = String::from_utf8(objects["weft/s/r1/part-00001.csv"].clone()).unwrap();
    assert_eq!(first.lines().next(), Some("_op,_key,email"));
    assert_eq!(first.lines().nth(1), Some("upsert,c00,p0@x.test"));

    // a key the store does not know stops the run at once, nothing recorded as sent
    let refused = build("drop", &settings("nobody")).unwrap();
    let other = tempfile::tempdir().unwrap();
    let store = Store::open(other.path()).unwrap();
    let rows = vec![Row::new("c1".into(), vec![json!("a@x.test")])];
    let done = sync(&refused, &store, &fields, Mode::Upsert, rows, "r2").await;
    let stopped = done.stopped.unwrap();
    assert!(stopped.contains("writing files"), "{stopped}");
    assert!(!stopped.contains("not-logged"), "{stopped}");
    assert_eq!((done.delivered, done.requests), (0, 1));
    assert!(store.delivered("s").unwrap().is_empty());
}
