//! The collector's HTTP endpoints, as Snowplow's collector answers them:
//!
//! - `GET /i`, `/ice.png`, `/{vendor}/{version}` → 200 with a 1×1 GIF;
//! - `POST /{vendor}/{version}` → 200 `ok`;
//! - `GET /r/tp2?u=…` → 302 to `u` (only when enabled, only to allowed hosts);
//! - `OPTIONS` on any of them → CORS preflight; CORS headers on every answer;
//! - custom paths from `collector.paths` behave as the path they map to.
//!
//! Every accepted request is appended to the raw log, and synced, before it is
//! answered. A body over `max_payload_bytes` is still stored, flagged as a size
//! violation, and answered 200 so the tracker stops resending it; one over
//! `max_body_bytes` is refused with 413 before it is read.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tracing::warn;
use uuid::Uuid;
use weft_core::config::CollectorConfig;

use crate::metrics::{Metrics, RequestLabels};
use crate::payload::{CollectorPayload, Header, SizeViolation};
use crate::protocol::{REDIRECT_PATH, TP2_PATH};
use crate::raw_log::RawLog;

/// A transparent 1×1 GIF, the answer to pixel requests.
pub const PIXEL: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0xf0, 0x00, 0x00, 0xff, 0xff, 0xff,
    0x00, 0x00, 0x00, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];
/// The network user id of anonymous (`SP-Anonymous`) requests.
pub const ANONYMOUS_NUID: &str = "00000000-0000-0000-0000-000000000000";
/// Placeholder in a redirect target replaced by the network user id.
const NUID_MACRO: &str = "${SP_NUID}";
const NO_CACHE: &str = "no-cache, no-store, must-revalidate";
/// Headers that carry the client's address; dropped from anonymous requests.
const IP_HEADERS: [&str; 6] = [
    "x-forwarded-for",
    "x-real-ip",
    "forwarded",
    "cf-connecting-ip",
    "true-client-ip",
    "x-client-ip",
];

#[derive(Debug, thiserror::Error)]
#[error("invalid config key collector.{key}: {reason}")]
pub struct InvalidCollectorConfig {
    pub key: String,
    pub reason: String,
}

/// The peer address of a connection, put in each request's extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// What kind of tracker endpoint a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// `/i`, `/ice.png`: GET only.
    Pixel,
    /// `/{vendor}/{version}`: GET pixel or POST batch.
    Vendor,
    Redirect,
}

impl Endpoint {
    fn of(path: &str) -> Option<Self> {
        match path {
            "/i" | "/ice.png" => Some(Self::Pixel),
            REDIRECT_PATH => Some(Self::Redirect),
            _ => {
                let rest = path.strip_prefix('/')?;
                let (vendor, version) = rest.split_once('/')?;
                let ok = |s: &str| !s.is_empty() && !s.contains('/');
                (ok(vendor) && ok(version)).then_some(Self::Vendor)
            }
        }
    }

    fn label(self, method: &Method) -> &'static str {
        match (self, method) {
            (_, &Method::OPTIONS) => "preflight",
            (Self::Redirect, _) => "redirect",
            (Self::Vendor, &Method::POST) => "tp2",
            _ => "pixel",
        }
    }
}

pub struct Collector {
    config: CollectorConfig,
    log: Arc<dyn RawLog>,
    metrics: Arc<Metrics>,
    name: String,
    cookie_suffix: String,
}

impl Collector {
    pub fn new(
        config: CollectorConfig,
        log: Arc<dyn RawLog>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, InvalidCollectorConfig> {
        let invalid = |key: &str, reason: String| InvalidCollectorConfig {
            key: key.to_owned(),
            reason,
        };
        for (from, to) in &config.paths {
            if !from.starts_with('/') || from.contains(['?', '#', '{', '}', '*']) {
                return Err(invalid("paths", format!("{from:?} is not a plain path")));
            }
            if Endpoint::of(to).is_none() {
                return Err(invalid(
                    "paths",
                    format!(
                        "{from:?} maps to {to:?}, which is not a collector path (/i, {TP2_PATH}, {REDIRECT_PATH}, /vendor/version)"
                    ),
                ));
            }
        }
        if !matches!(config.cookie.same_site.as_str(), "None" | "Lax" | "Strict") {
            return Err(invalid(
                "cookie.same_site",
                format!("{:?} is not None, Lax or Strict", config.cookie.same_site),
            ));
        }
        if !is_token(&config.cookie.name) {
            return Err(invalid(
                "cookie.name",
                format!("{:?} is not a valid cookie name", config.cookie.name),
            ));
        }
        if config.max_payload_bytes > config.max_body_bytes {
            return Err(invalid(
                "max_payload_bytes",
                "must not be larger than max_body_bytes".into(),
            ));
        }
        let cookie = &config.cookie;
        let max_age = u64::from(cookie.expiration_days) * 86_400;
        let mut cookie_suffix = format!("; Max-Age={max_age}; Path=/");
        if let Some(domain) = cookie.domain.as_deref().filter(|d| !d.is_empty()) {
            cookie_suffix.push_str(&format!("; Domain={domain}"));
        }
        cookie_suffix.push_str(&format!("; SameSite={}", cookie.same_site));
        if cookie.secure {
            cookie_suffix.push_str("; Secure");
        }
        if cookie.http_only {
            cookie_suffix.push_str("; HttpOnly");
        }
        if config.redirect.enabled && config.redirect.allowed_domains.is_empty() {
            warn!(
                "collector.redirect is enabled for any target host; set collector.redirect.allowed_domains"
            );
        }
        Ok(Self {
            config,
            log,
            metrics,
            name: format!("weft-{}", weft_core::VERSION),
            cookie_suffix,
        })
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    async fn handle(&self, endpoint: Endpoint, path: String, request: Request) -> Response {
        let method = request.method().clone();
        match (&method, endpoint) {
            (&Method::OPTIONS, _) => self.preflight(),
            (&Method::GET, _) | (&Method::POST, Endpoint::Vendor) => {
                self.store(endpoint, path, request).await
            }
            _ => {
                self.metrics.error("method_not_allowed");
                let allow = if endpoint == Endpoint::Vendor {
                    "GET, POST, OPTIONS"
                } else {
                    "GET, OPTIONS"
                };
                (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, allow)]).into_response()
            }
        }
    }

    fn preflight(&self) -> Response {
        let max_age = self.config.cors.max_age_secs.to_string();
        (
            StatusCode::OK,
            [
                (
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    "Content-Type, SP-Anonymous",
                ),
                (header::ACCESS_CONTROL_ALLOW_METHODS, "POST, GET, OPTIONS"),
                (header::ACCESS_CONTROL_MAX_AGE, max_age.as_str()),
            ],
        )
            .into_response()
    }

    async fn store(&self, endpoint: Endpoint, path: String, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let max_body = self.config.max_body_bytes;
        if content_length(&parts.headers).is_some_and(|length| length > max_body as u64) {
            self.metrics.error("too_large");
            return too_large(max_body);
        }
        let body = match Limited::new(body, max_body).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<LengthLimitError>() => {
                self.metrics.error("too_large");
                return too_large(max_body);
            }
            Err(error) => {
                self.metrics.error("body_read");
                return (
                    StatusCode::BAD_REQUEST,
                    format!("could not read the request body: {error}"),
                )
                    .into_response();
            }
        };
        self.metrics.request_bytes.inc_by(body.len() as u64);

        let anonymous = parts.headers.contains_key("sp-anonymous");
        let query = parts.uri.query().map(str::to_owned);
        let nuid = if anonymous {
            ANONYMOUS_NUID.to_owned()
        } else {
            query_param(query.as_deref(), "nuid")
                .filter(|v| is_safe_id(v))
                .or_else(|| self.cookie_value(&parts.headers))
                .unwrap_or_else(|| Uuid::new_v4().to_string())
        };

        let redirect_target = if endpoint == Endpoint::Redirect {
            match self.redirect_target(query.as_deref(), &nuid) {
                Ok(target) => Some(target),
                Err(refused) => return refused.into_response(&self.metrics),
            }
        } else {
            None
        };

        let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0);
        let ip = if anonymous {
            None
        } else {
            self.client_ip(peer, &parts.headers)
        };
        let headers = parts
            .headers
            .iter()
            .filter(|(name, _)| {
                !anonymous || !(IP_HEADERS.contains(&name.as_str()) || name == &header::COOKIE)
            })
            .map(|(name, value)| Header {
                name: name.as_str().to_owned(),
                value: value.as_bytes().to_vec(),
            })
            .collect();
        let size_violation = (body.len() > self.config.max_payload_bytes).then(|| SizeViolation {
            actual_bytes: body.len() as u64,
            max_bytes: self.config.max_payload_bytes as u64,
        });
        if size_violation.is_some() {
            self.metrics.error("size_violation");
        }
        let payload = CollectorPayload {
            received_at_ms: now_ms(),
            method: parts.method.as_str().to_owned(),
            path,
            query,
            body: (!body.is_empty()).then_some(body),
            content_type: header_string(&parts.headers, &header::CONTENT_TYPE),
            headers,
            ip: ip.map(|ip| ip.to_string()),
            user_agent: header_string(&parts.headers, &header::USER_AGENT),
            referer: header_string(&parts.headers, &header::REFERER),
            hostname: header_string(&parts.headers, &header::HOST)
                .or_else(|| parts.uri.authority().map(|a| a.to_string())),
            network_user_id: Some(nuid.clone()),
            collector: self.name.clone(),
            size_violation,
        };
        if let Err(error) = self.log.append(&payload).await {
            self.metrics.error("log_write");
            warn!(%error, "could not store a request; answering 503 so the tracker retries");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                "the collector cannot store events right now",
            )
                .into_response();
        }

        let mut response = match (endpoint, &parts.method, redirect_target) {
            (_, _, Some(target)) => {
                (StatusCode::FOUND, [(header::LOCATION, target)]).into_response()
            }
            (Endpoint::Vendor, &Method::POST, _) => {
                ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok").into_response()
            }
            _ => ([(header::CONTENT_TYPE, "image/gif")], PIXEL.as_slice()).into_response(),
        };
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
        if self.config.cookie.enabled && !anonymous {
            // Expires for old browsers that ignore Max-Age, counted from now
            let expires = SystemTime::now()
                + Duration::from_secs(u64::from(self.config.cookie.expiration_days) * 86_400);
            let cookie = format!(
                "{}={nuid}; Expires={}{}",
                self.config.cookie.name,
                httpdate::fmt_http_date(expires),
                self.cookie_suffix
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                headers.insert(header::SET_COOKIE, value);
            }
        }
        response
    }

    /// The collector's own cookie, ignoring the page's first-party `_sp_*` cookies.
    fn cookie_value(&self, headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.config.cookie.name)
            .map(|(_, value)| value.trim_matches('"').to_owned())
            .filter(|value| is_safe_id(value))
    }

    /// The client address: the socket's peer, or, when the peer is a trusted proxy,
    /// the nearest untrusted address in `X-Forwarded-For`.
    fn client_ip(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.ip().to_canonical();
        if !self.config.is_trusted_proxy(peer) {
            return Some(peer);
        }
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for entry in forwarded.iter().rev() {
            let Some(ip) = parse_forwarded_ip(entry) else {
                break; // a garbled hop: trust nothing to its left
            };
            client = ip;
            if !self.config.is_trusted_proxy(ip) {
                break;
            }
        }
        Some(client)
    }

    fn redirect_target(&self, query: Option<&str>, nuid: &str) -> Result<String, RedirectRefused> {
        if !self.config.redirect.enabled {
            return Err(RedirectRefused::Disabled);
        }
        let target = query_param(query, "u")
            .filter(|u| !u.is_empty())
            .ok_or(RedirectRefused::Invalid("missing u parameter"))?
            .replace(NUID_MACRO, nuid);
        let uri = target
            .parse::<Uri>()
            .map_err(|_| RedirectRefused::Invalid("u is not a URL"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(RedirectRefused::Invalid("u must be an http or https URL"));
        }
        let host = uri.host().unwrap_or("").to_ascii_lowercase();
        let allowed = &self.config.redirect.allowed_domains;
        let permitted = allowed.is_empty()
            || allowed.iter().any(|domain| {
                let domain = domain.to_ascii_lowercase();
                host == domain || host.ends_with(&format!(".{domain}"))
            });
        if host.is_empty() || !permitted {
            return Err(RedirectRefused::Invalid(
                "target host is not in collector.redirect.allowed_domains",
            ));
        }
        if HeaderValue::from_str(&target).is_err() {
            return Err(RedirectRefused::Invalid(
                "u has characters not allowed in a Location header",
            ));
        }
        Ok(target)
    }
}

enum RedirectRefused {
    Disabled,
    Invalid(&'static str),
}

impl RedirectRefused {
    fn into_response(self, metrics: &Metrics) -> Response {
        match self {
            Self::Disabled => {
                metrics.error("redirect_disabled");
                (
                    StatusCode::NOT_FOUND,
                    "redirects are disabled on this collector",
                )
                    .into_response()
            }
            Self::Invalid(reason) => {
                metrics.error("redirect_refused");
                (
                    StatusCode::BAD_REQUEST,
                    format!("redirect refused: {reason}"),
                )
                    .into_response()
            }
        }
    }
}

/// The collector's routes; merge them into a bigger router or serve them alone.
pub fn router(collector: Arc<Collector>) -> Router {
    let mut router = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(metrics));
    let mut paths: Vec<(String, String)> = ["/i", "/ice.png", REDIRECT_PATH, "/{vendor}/{version}"]
        .iter()
        .map(|p| (p.to_string(), String::new()))
        .collect();
    paths.extend(
        collector
            .config
            .paths
            .iter()
            .map(|(from, to)| (from.clone(), to.clone())),
    );
    for (route, mapped_to) in paths {
        router = router.route(
            &route,
            any(
                move |State(collector): State<Arc<Collector>>, request: Request| async move {
                    let path = if mapped_to.is_empty() {
                        request.uri().path().to_owned()
                    } else {
                        mapped_to
                    };
                    collect(collector, path, request).await
                },
            ),
        );
    }
    router
        .fallback(not_found)
        .layer(middleware::from_fn(cors))
        .with_state(collector)
}

async fn collect(collector: Arc<Collector>, path: String, request: Request) -> Response {
    let started = Instant::now();
    let Some(endpoint) = Endpoint::of(&path) else {
        return not_found().await;
    };
    let endpoint_label = endpoint.label(request.method());
    let response = collector.handle(endpoint, path, request).await;
    let metrics = collector.metrics();
    metrics
        .requests
        .get_or_create(&RequestLabels {
            endpoint: endpoint_label,
            status: response.status().as_u16(),
        })
        .inc();
    metrics.latency.observe(started.elapsed().as_secs_f64());
    response
}

async fn metrics(State(collector): State<Arc<Collector>>) -> Response {
    let text = collector.metrics.render(collector.log.as_ref());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

/// CORS on every answer: the browser tracker sends with credentials, so the
/// origin is echoed (a wildcard is not allowed with credentials).
async fn cors(request: Request<Body>, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    match origin {
        Some(origin) => {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        None => {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
    }
    response
}

fn too_large(max: usize) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body over the {max} byte limit"),
    )
        .into_response()
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn header_string(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Ids echoed into `Set-Cookie` must not be able to inject attributes.
fn is_safe_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_token(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    // "1.2.3.4:5678" or "[2001:db8::1]:443"
    entry
        .parse::<SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
