//! `/admin/audiences…`: store, show, size, preview, write as SQL, overlap
//! and run audiences (syncs and journeys are in `activation`). A bad spec is a 400 naming the JSON path and the
//! reason; an unknown audience 404; a duplicate 409.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use deltalake::arrow::array::RecordBatch;
use serde::Deserialize;
use serde_json::{Value, json};
use weft_audience::service::Audiences;
use weft_audience::spec::{self, Spec};
use weft_audience::sql::Tables;
use weft_audience::{AudienceError, SpecError};
use weft_lake::catalog::Lake;
use weft_meta::{MetaError, Store};

/// What the handlers share.
pub struct Admin {
    pub store: Store,
    pub lake: Lake,
    /// `[activation.destinations]` of the config: syncs name them.
    pub destinations: BTreeMap<String, Value>,
}

impl Admin {
    pub fn open(
        data_dir: &std::path::Path,
        destinations: BTreeMap<String, Value>,
    ) -> Result<Self, MetaError> {
        Ok(Self {
            store: Store::open(data_dir)?,
            lake: Lake::new(data_dir),
            destinations,
        })
    }
}

/// The admin routes, to be nested under `/admin`.
pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/audiences", get(list).post(create))
        .route("/audiences/size", post(size_of_spec))
        .route("/audiences/sql", post(sql_of_spec))
        .route("/audiences/overlap", post(overlap))
        .route("/audiences/run", post(run_all))
        .route("/audiences/{name}", get(show).put(update).delete(delete))
        .route("/audiences/{name}/size", get(size))
        .route("/audiences/{name}/preview", get(preview))
        .route("/audiences/{name}/sql", get(sql))
        .route("/audiences/{name}/run", post(run_one))
        .merge(crate::activation::routes())
        .layer(DefaultBodyLimit::max(1 << 20))
        .with_state(admin)
}

type Shared = State<Arc<Admin>>;

/// An error as JSON, with the status it deserves.
pub(crate) struct Failure(pub StatusCode, pub Value);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<AudienceError> for Failure {
    fn from(error: AudienceError) -> Self {
        match error {
            AudienceError::Spec(SpecError { path, reason }) => Failure(
                StatusCode::BAD_REQUEST,
                json!({ "path": path, "reason": reason }),
            ),
            AudienceError::Missing(_) | AudienceError::Meta(MetaError::Missing(..)) => Failure(
                StatusCode::NOT_FOUND,
                json!({ "reason": error.to_string() }),
            ),
            AudienceError::Meta(MetaError::Exists(..)) => {
                Failure(StatusCode::CONFLICT, json!({ "reason": error.to_string() }))
            }
            other => {
                tracing::warn!(error = %other, "admin request failed");
                Failure(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "reason": other.to_string() }),
                )
            }
        }
    }
}

fn bad_request(reason: String) -> Failure {
    Failure(StatusCode::BAD_REQUEST, json!({ "reason": reason }))
}

pub(crate) type Reply = Result<Response, Failure>;

pub(crate) fn reply(value: impl serde::Serialize) -> Reply {
    Ok(axum::Json(value).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Options {
    /// "Today": YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (UTC).
    as_of: Option<String>,
    dialect: Option<String>,
    rows: Option<u64>,
    /// LAKE=NAME pairs, comma-separated.
    tables: Option<String>,
}

impl Options {
    fn audiences<'a>(&self, admin: &'a Admin) -> Result<Audiences<'a>, Failure> {
        let mut audiences = Audiences::new(&admin.store, &admin.lake);
        if let Some(text) = &self.as_of {
            audiences.as_of = weft_audience::plan::parse_time(text)
                .ok_or_else(|| bad_request(format!("as_of {text:?}: YYYY-MM-DD[THH:MM:SS]")))?;
        }
        Ok(audiences)
    }

    fn tables(&self) -> Result<Tables, Failure> {
        let pairs: Vec<String> = self
            .tables
            .iter()
            .flat_map(|t| t.split(','))
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        Tables::parse(&pairs).map_err(bad_request)
    }
}

pub(crate) fn text(body: &Bytes) -> Result<&str, Failure> {
    std::str::from_utf8(body).map_err(|_| bad_request("the body is not UTF-8".into()))
}

fn parsed(body: &Bytes) -> Result<Spec, Failure> {
    Ok(spec::parse(text(body)?).map_err(AudienceError::from)?)
}

async fn list(State(admin): Shared) -> Reply {
    reply(Audiences::new(&admin.store, &admin.lake).list()?)
}

async fn create(State(admin): Shared, Query(options): Query<Options>, body: Bytes) -> Reply {
    let stored = options.audiences(&admin)?.create(text(&body)?).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "name": stored.name, "version": stored.version })),
    )
        .into_response())
}

async fn update(
    State(admin): Shared,
    Path(name): Path<String>,
    Query(options): Query<Options>,
    body: Bytes,
) -> Reply {
    let stored = options
        .audiences(&admin)?
        .update_named(&name, text(&body)?)
        .await?;
    reply(json!({ "name": stored.name, "version": stored.version }))
}

async fn show(State(admin): Shared, Path(name): Path<String>) -> Reply {
    reply(Audiences::new(&admin.store, &admin.lake).show(&name)?)
}

async fn delete(State(admin): Shared, Path(name): Path<String>) -> Reply {
    Audiences::new(&admin.store, &admin.lake).delete(&name)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn size(
    State(admin): Shared,
    Path(name): Path<String>,
    Query(options): Query<Options>,
) -> Reply {
    let audiences = options.audiences(&admin)?;
    let spec = audiences.spec(&name)?;
    reply(audiences.size(&spec).await?)
}

async fn size_of_spec(State(admin): Shared, Query(options): Query<Options>, body: Bytes) -> Reply {
    let spec = parsed(&body)?;
    reply(options.audiences(&admin)?.size(&spec).await?)
}

async fn preview(
    State(admin): Shared,
    Path(name): Path<String>,
    Query(options): Query<Options>,
) -> Reply {
    let audiences = options.audiences(&admin)?;
    let spec = audiences.spec(&name)?;
    let rows = options.rows.unwrap_or(20).min(10_000);
    let batches = audiences.preview(&spec, rows).await?;
    reply(json!({ "name": name, "rows": rows_json(&batches)? }))
}

pub(crate) fn rows_json(batches: &[RecordBatch]) -> Result<Value, Failure> {
    let mut out = Vec::new();
    weft_lake::sql::write_json(batches, &mut out).map_err(AudienceError::from)?;
    if out.is_empty() {
        return Ok(json!([]));
    }
    serde_json::from_slice(&out).map_err(|e| {
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "reason": e.to_string() }),
        )
    })
}

async fn sql_text(audiences: &Audiences<'_>, spec: &Spec, options: &Options) -> Reply {
    let dialect = options.dialect.as_deref().unwrap_or("datafusion");
    let sql = audiences.sql(spec, dialect, &options.tables()?).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], sql).into_response())
}

async fn sql(
    State(admin): Shared,
    Path(name): Path<String>,
    Query(options): Query<Options>,
) -> Reply {
    let audiences = options.audiences(&admin)?;
    let spec = audiences.spec(&name)?;
    sql_text(&audiences, &spec, &options).await
}

async fn sql_of_spec(State(admin): Shared, Query(options): Query<Options>, body: Bytes) -> Reply {
    let spec = parsed(&body)?;
    let audiences = options.audiences(&admin)?;
    sql_text(&audiences, &spec, &options).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverlapRequest {
    names: Vec<String>,
}

async fn overlap(State(admin): Shared, Query(options): Query<Options>, body: Bytes) -> Reply {
    let request: OverlapRequest = serde_json::from_slice(&body)
        .map_err(|e| bad_request(format!("expected {{\"names\": [A, B, …]}}: {e}")))?;
    if request.names.len() < 2 {
        return Err(bad_request("overlap takes two or more audiences".into()));
    }
    reply(options.audiences(&admin)?.overlap(&request.names).await?)
}

async fn run_one(
    State(admin): Shared,
    Path(name): Path<String>,
    Query(options): Query<Options>,
) -> Reply {
    reply(options.audiences(&admin)?.run(&name, Utc::now()).await?)
}

async fn run_all(State(admin): Shared, Query(options): Query<Options>) -> Reply {
    reply(options.audiences(&admin)?.run_all(Utc::now()).await?)
}
