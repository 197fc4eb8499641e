//! The collector's endpoints, driven through the router with captured tracker requests.

mod fixtures;
mod service;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use http_body_util::BodyExt;
use tower::ServiceExt;
use weft_collect::metrics::Metrics;
use weft_collect::raw_log::{FileLogOptions, LogRecord};
use weft_collect::service::{Collector, PeerAddr, router};
use weft_collect::{FileLog, RawLog};
use weft_core::config::CollectorConfig;

pub struct TestCollector {
    pub app: Router,
    pub log: Arc<FileLog>,
    _dir: tempfile::TempDir,
}

impl TestCollector {
    pub fn new(config: CollectorConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(FileLog::open(dir.path(), FileLogOptions::default()).unwrap());
        let collector = Collector::new(config, log.clone(), Arc::new(Metrics::new())).unwrap();
        Self {
            app: router(Arc::new(collector)),
            log,
            _dir: dir,
        }
    }

    pub fn default_config() -> Self {
        Self::new(CollectorConfig::default())
    }

    /// Sends a request as if from `peer`, returning the response with its body read.
    pub async fn send_from(
        &self,
        peer: &str,
        mut request: Request<Body>,
    ) -> (Response<()>, Vec<u8>) {
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(PeerAddr(peer));
        let response = self.app.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (Response::from_parts(parts, ()), bytes)
    }

    pub async fn send(&self, request: Request<Body>) -> (Response<()>, Vec<u8>) {
        self.send_from("198.51.100.7:50000", request).await
    }

    pub fn records(&self) -> Vec<LogRecord> {
        self.log.read(0, 10_000).unwrap()
    }
}

pub fn testdata(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

pub fn header<'a>(response: &'a Response<()>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}
