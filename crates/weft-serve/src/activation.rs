//! `/admin/syncs…` and `/admin/journeys…`: what `weft sync` and
//! `weft journey` do, as JSON. A bad spec is a 400 naming the JSON path,
//! an unknown name 404, a duplicate 409; a sync stopped by its
//! destination answers 200 with its run record (status "stopped").

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use weft_activate::service::{Journeys, Syncs};
use weft_activate::{ActivateError, runs};
use weft_meta::{Definition, MetaError};

use crate::admin::{Admin, Failure, Reply, reply, rows_json, text};

pub fn routes() -> Router<Arc<Admin>> {
    Router::new()
        .route("/syncs", get(list_syncs).post(create_sync))
        .route(
            "/syncs/{name}",
            get(show_sync).put(update_sync).delete(delete_sync),
        )
        .route("/syncs/{name}/run", post(run_sync))
        .route("/syncs/{name}/status", get(sync_status))
        .route("/journeys", get(list_journeys).post(create_journey))
        .route(
            "/journeys/{name}",
            get(show_journey).put(update_journey).delete(delete_journey),
        )
        .route("/journeys/{name}/run", post(run_journey))
        .route("/journeys/{name}/status", get(journey_status))
        .route("/journeys/{name}/results", get(journey_results))
}

type Shared = State<Arc<Admin>>;

impl From<ActivateError> for Failure {
    fn from(error: ActivateError) -> Self {
        match error {
            ActivateError::Spec(spec) => Failure(
                StatusCode::BAD_REQUEST,
                json!({ "path": spec.path, "reason": spec.reason }),
            ),
            ActivateError::Missing { .. } | ActivateError::Meta(MetaError::Missing(..)) => Failure(
                StatusCode::NOT_FOUND,
                json!({ "reason": error.to_string() }),
            ),
            ActivateError::Meta(MetaError::Exists(..)) => {
                Failure(StatusCode::CONFLICT, json!({ "reason": error.to_string() }))
            }
            ActivateError::Audience(inner) => inner.into(),
            other if other.is_usage() => Failure(
                StatusCode::BAD_REQUEST,
                json!({ "reason": other.to_string() }),
            ),
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

fn syncs(admin: &Admin) -> Syncs<'_> {
    Syncs::new(&admin.store, &admin.lake, &admin.destinations)
}

fn journeys(admin: &Admin) -> Journeys<'_> {
    Journeys::new(&admin.store, &admin.lake, &admin.destinations)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunOptions {
    #[serde(default)]
    dry_run: bool,
}

/// Stored definitions with their version, as a list answers them.
fn listed<S: serde::Serialize>(stored: Vec<(Definition, S)>) -> Vec<serde_json::Value> {
    stored
        .into_iter()
        .map(|(definition, spec)| json!({"version": definition.version, "created_at": definition.created_at, "spec": spec}))
        .collect()
}

fn created(name: &str, version: i64) -> Reply {
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "name": name, "version": version })),
    )
        .into_response())
}

async fn list_syncs(State(admin): Shared) -> Reply {
    reply(listed(syncs(&admin).list()?))
}

async fn create_sync(State(admin): Shared, body: Bytes) -> Reply {
    let stored = syncs(&admin).create(text(&body)?).await?;
    created(&stored.name, stored.version)
}

async fn update_sync(State(admin): Shared, Path(name): Path<String>, body: Bytes) -> Reply {
    let stored = syncs(&admin).update_named(&name, text(&body)?).await?;
    reply(json!({ "name": stored.name, "version": stored.version }))
}

async fn show_sync(State(admin): Shared, Path(name): Path<String>) -> Reply {
    reply(syncs(&admin).spec(&name)?)
}

async fn delete_sync(State(admin): Shared, Path(name): Path<String>) -> Reply {
    syncs(&admin).delete(&name)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn run_sync(
    State(admin): Shared,
    Path(name): Path<String>,
    Query(options): Query<RunOptions>,
) -> Reply {
    reply(syncs(&admin).run(&name, options.dry_run).await?)
}

async fn sync_status(State(admin): Shared, Path(name): Path<String>) -> Reply {
    syncs(&admin).spec(&name)?;
    let delivered = admin
        .store
        .delivered_count(&name)
        .map_err(ActivateError::from)?;
    let mut failures: Vec<_> = admin
        .store
        .failures(&name)
        .map_err(ActivateError::from)?
        .into_values()
        .collect();
    failures.sort_by(|a, b| a.key.cmp(&b.key));
    let history = runs::history(&admin.lake, &name, 10).await?;
    reply(json!({
        "sync": name,
        "delivered": delivered,
        "failing": failures.len(),
        "failures": failures.iter().take(100).collect::<Vec<_>>(),
        "runs": rows_json(&history)?,
    }))
}

async fn list_journeys(State(admin): Shared) -> Reply {
    reply(listed(journeys(&admin).list()?))
}

async fn create_journey(State(admin): Shared, body: Bytes) -> Reply {
    let stored = journeys(&admin).create(text(&body)?)?;
    created(&stored.name, stored.version)
}

async fn update_journey(State(admin): Shared, Path(name): Path<String>, body: Bytes) -> Reply {
    let stored = journeys(&admin).update_named(&name, text(&body)?)?;
    reply(json!({ "name": stored.name, "version": stored.version }))
}

async fn show_journey(State(admin): Shared, Path(name): Path<String>) -> Reply {
    reply(journeys(&admin).spec(&name)?)
}

async fn delete_journey(State(admin): Shared, Path(name): Path<String>) -> Reply {
    journeys(&admin).delete(&name)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn run_journey(
    State(admin): Shared,
    Path(name): Path<String>,
    Query(options): Query<RunOptions>,
) -> Reply {
    reply(journeys(&admin).run(&name, options.dry_run).await?)
}

async fn journey_results(State(admin): Shared, Path(name): Path<String>) -> Reply {
    reply(json!({ "journey": name, "branches": journeys(&admin).results(&name).await? }))
}

async fn journey_status(State(admin): Shared, Path(name): Path<String>) -> Reply {
    let journeys = journeys(&admin);
    let counts = journeys.counts(&name)?;
    let syncs: Vec<_> = journeys.syncs(&name)?;
    reply(json!({ "journey": name, "branches": counts, "syncs": syncs }))
}
