//! Logs and metrics: the subscriber (text or JSON, `RUST_LOG` honoured), the Prometheus
//! exporter, and [`RpcLayer`], which gives every RPC a span and its metrics.
//!
//! Invariants: every RPC runs inside an `rpc` span carrying `request_id`, `method` and (once the
//! handler records them with [`record_ids`]) `volume_id` and `node_id`; request bodies are never
//! logged here, and requests are only ever printed through their redacting `Debug`.
//! Metrics: `carve_rpc_requests_total{method}`, `carve_rpc_errors_total{method,code}`,
//! `carve_rpc_duration_seconds{method}` and (from the runner) `carve_command_duration_seconds`.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll},
    time::{Duration, Instant},
};
use tracing::{Instrument, Span, field::Empty};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber on stderr; `RUST_LOG` overrides the default `info`.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}

/// Serves Prometheus text format on `address` (at any path, conventionally `/metrics`).
/// Must be called inside a tokio runtime.
pub fn install_metrics(address: SocketAddr) -> Result<(), String> {
    const LATENCY_BUCKETS: &[f64] = &[
        0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
    ];
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(address)
        .set_buckets(LATENCY_BUCKETS)
        .map_err(|e| e.to_string())?
        .install()
        .map_err(|e| format!("cannot serve metrics on {address}: {e}"))?;
    metrics::describe_counter!("carve_rpc_requests_total", "CSI RPCs received, by method");
    metrics::describe_counter!(
        "carve_rpc_errors_total",
        "CSI RPCs that failed, by method and gRPC code"
    );
    metrics::describe_histogram!(
        "carve_rpc_duration_seconds",
        metrics::Unit::Seconds,
        "CSI RPC latency"
    );
    metrics::describe_histogram!(
        "carve_command_duration_seconds",
        metrics::Unit::Seconds,
        "Duration of external commands, by program"
    );
    Ok(())
}

/// Records the ids an RPC is about on the current `rpc` span.
pub fn record_ids(volume_id: Option<&str>, node_id: Option<&str>) {
    let span = Span::current();
    if let Some(v) = volume_id.filter(|v| !v.is_empty()) {
        span.record("volume_id", v);
    }
    if let Some(n) = node_id.filter(|n| !n.is_empty()) {
        span.record("node_id", n);
    }
}

static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// A tower layer for the gRPC server: span, metrics and a slow-call warning per RPC.
#[derive(Debug, Clone)]
pub struct RpcLayer {
    slow: Duration,
}

impl RpcLayer {
    /// Warns about calls that take longer than `slow`.
    pub fn new(slow: Duration) -> Self {
        Self { slow }
    }
}

impl<S> tower::Layer<S> for RpcLayer {
    type Service = RpcService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcService {
            inner,
            slow: self.slow,
        }
    }
}

/// The service [`RpcLayer`] wraps around the router.
#[derive(Debug, Clone)]
pub struct RpcService<S> {
    inner: S,
    slow: Duration,
}

/// `/csi.v1.Controller/CreateVolume` → `Controller/CreateVolume`.
fn method_name(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_start_matches("csi.v1.")
        .to_string()
}

/// The gRPC status code of a response: in the headers for errors (trailers-only), else OK.
fn grpc_code<B>(response: &http::Response<B>) -> tonic::Code {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32)
}

fn grpc_message<B>(response: &http::Response<B>) -> String {
    response
        .headers()
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default()
}

fn percent_decode(input: &str) -> String {
    crate::escape::unescape(input, b'%', 2, 16)
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for RpcService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let method = method_name(request.uri().path());
        let request_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 64)
            .map_or_else(
                || format!("{:08x}", NEXT_REQUEST.fetch_add(1, Ordering::Relaxed)),
                str::to_string,
            );
        let span = tracing::info_span!("rpc", %request_id, method = %method, volume_id = Empty, node_id = Empty);
        let slow = self.slow;
        let started = Instant::now();
        let future = self.inner.call(request).instrument(span.clone());
        Box::pin(async move {
            let result = future.await;
            let elapsed = started.elapsed();
            let _entered = span.enter();
            metrics::counter!("carve_rpc_requests_total", "method" => method.clone()).increment(1);
            metrics::histogram!("carve_rpc_duration_seconds", "method" => method.clone())
                .record(elapsed.as_secs_f64());
            let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            if let Ok(response) = &result {
                let code = grpc_code(response);
                if code == tonic::Code::Ok {
                    tracing::debug!(duration_ms = ms, "rpc succeeded");
                } else {
                    metrics::counter!("carve_rpc_errors_total", "method" => method.clone(), "code" => format!("{code:?}"))
                        .increment(1);
                    tracing::warn!(duration_ms = ms, code = ?code, message = %grpc_message(response), "rpc failed");
                }
            }
            if elapsed > slow {
                tracing::warn!(
                    duration_ms = ms,
                    threshold_ms = u64::try_from(slow.as_millis()).unwrap_or(u64::MAX),
                    "slow rpc"
                );
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_are_short() {
        assert_eq!(
            method_name("/csi.v1.Controller/CreateVolume"),
            "Controller/CreateVolume"
        );
    }

    #[test]
    fn status_code_comes_from_headers() {
        let ok = http::Response::new(());
        assert_eq!(grpc_code(&ok), tonic::Code::Ok);
        let failed = http::Response::builder()
            .header("grpc-status", "10")
            .header("grpc-message", "volume%20busy")
            .body(())
            .unwrap();
        assert_eq!(grpc_code(&failed), tonic::Code::Aborted);
        assert_eq!(grpc_message(&failed), "volume busy");
    }
}
