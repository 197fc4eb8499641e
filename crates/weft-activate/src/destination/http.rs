//! What the HTTP destinations share: a client with the configured timeout,
//! and how a response or a transport error becomes a [`SendError`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Response, StatusCode};

use super::{Common, SendError};

pub fn client(common: &Common) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(common.timeout)
        .connect_timeout(common.timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("weft/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// Sends `request`: the body of a 2xx answer, else what the failure means.
pub async fn exchange(request: reqwest::RequestBuilder) -> Result<String, SendError> {
    exchange_as(request, failure).await
}

/// [`exchange`] for a service whose error bodies say more than the status:
/// `classify` reads a non-2xx answer.
pub async fn exchange_as(
    request: reqwest::RequestBuilder,
    classify: fn(StatusCode, &reqwest::header::HeaderMap, &str) -> SendError,
) -> Result<String, SendError> {
    let response = request.send().await.map_err(transport)?;
    let (status, headers, body) = text(response).await?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(classify(status, &headers, &body))
    }
}

/// A request that got no answer: a timeout or a dropped connection is
/// worth retrying, a bad URL is not.
pub fn transport(error: reqwest::Error) -> SendError {
    if error.is_builder() {
        return SendError::Fatal(format!("bad request: {}", without_url(&error)));
    }
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    SendError::Retry {
        reason: format!("{what}: {}", without_url(&error)),
        after: None,
    }
}

// a URL may carry a token in its query
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), url.path());
    }
    text
}

/// A non-success response: 408, 429 and 5xx are retried (after Retry-After
/// or X-RateLimit-Reset when given), 401/403 stop the run, other 4xx reject
/// the batch. `body` is the response text, `what` names the service.
pub fn failure(status: StatusCode, headers: &reqwest::header::HeaderMap, body: &str) -> SendError {
    let reason = format!("HTTP {}: {}", status.as_u16(), excerpt(body));
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        SendError::Retry {
            reason,
            after: retry_after(headers),
        }
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        SendError::Fatal(reason)
    } else {
        SendError::Reject(reason)
    }
}

/// Reads the body of a response, or turns the failure into a SendError.
pub async fn text(
    response: Response,
) -> Result<(StatusCode, reqwest::header::HeaderMap, String), SendError> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(transport)?;
    Ok((status, headers, body))
}

/// The first 300 characters of a response, on one line.
pub fn excerpt(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(300) {
        Some((end, _)) => format!("{}…", &one_line[..end]),
        None => one_line,
    }
}

/// How long the service asked to wait: Retry-After in seconds or as an
/// HTTP date, else X-RateLimit-Reset as a Unix time (Braze).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let now = SystemTime::now();
    if let Some(value) = header("retry-after").or_else(|| header("x-ratelimit-retry-after")) {
        if let Ok(seconds) = value.parse::<f64>() {
            return (seconds.is_finite() && seconds >= 0.0)
                .then(|| Duration::from_secs_f64(seconds.min(3600.0)));
        }
        if let Ok(at) = httpdate::parse_http_date(value) {
            return Some(at.duration_since(now).unwrap_or_default());
        }
    }
    let reset: u64 = header("x-ratelimit-reset")?.parse().ok()?;
    let at = UNIX_EPOCH + Duration::from_secs(reset);
    Some(
        at.duration_since(now)
            .unwrap_or_default()
            .min(Duration::from_secs(3600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn statuses_say_retry_reject_or_stop() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("2"));
        let retry = failure(StatusCode::TOO_MANY_REQUESTS, &headers, "slow down");
        assert_eq!(
            retry,
            SendError::Retry {
                reason: "HTTP 429: slow down".into(),
                after: Some(Duration::from_secs(2))
            }
        );
        let empty = HeaderMap::new();
        assert!(matches!(
            failure(StatusCode::BAD_GATEWAY, &empty, ""),
            SendError::Retry { after: None, .. }
        ));
        assert!(matches!(
            failure(StatusCode::UNAUTHORIZED, &empty, ""),
            SendError::Fatal(_)
        ));
        assert!(matches!(
            failure(StatusCode::BAD_REQUEST, &empty, "bad"),
            SendError::Reject(_)
        ));
    }

    #[test]
    fn waits_come_from_retry_after_or_the_rate_limit_reset() {
        let mut headers = HeaderMap::new();
        let soon = SystemTime::now() + Duration::from_secs(30);
        headers.insert(
            "retry-after",
            HeaderValue::from_str(&httpdate::fmt_http_date(soon)).unwrap(),
        );
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        let mut braze = HeaderMap::new();
        let reset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3;
        braze.insert(
            "x-ratelimit-reset",
            HeaderValue::from_str(&reset.to_string()).unwrap(),
        );
        assert!(retry_after(&braze).unwrap() <= Duration::from_secs(3));
        let mut hostile = HeaderMap::new();
        hostile.insert("retry-after", HeaderValue::from_static("-5"));
        assert_eq!(retry_after(&hostile), None);
        hostile.insert("retry-after", HeaderValue::from_static("1e300"));
        assert_eq!(retry_after(&hostile), Some(Duration::from_secs(3600)));
    }
}
