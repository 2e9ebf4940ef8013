//! Draining a server at shutdown: the calls in flight finish, idle connections hold nothing up.
//!
//! tonic's `serve_with_incoming_shutdown` returns only when every connection has closed. An
//! HTTP/2 connection closes gracefully only when its client answers the server's GOAWAY and PING
//! (RFC 9113 §6.8), and CSI's clients (kubelet, the sidecars) keep their connections open between
//! calls: a client that is busy, stopped or gone leaves the server waiting until SIGKILL. So the
//! server counts its calls ([`InFlightLayer`]) and, once shutdown has begun and no call is in
//! flight, stops waiting for connections ([`until_drained`]). A call already running always
//! finishes and sends its answer; no new call starts after shutdown begins (tonic stops
//! accepting and sends GOAWAY), and one that slipped in is finished too, since it counts.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};
use tokio::sync::Notify;

/// How long a drained server still waits for its connections to close by themselves.
pub const LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// The number of calls in flight, shared by the layer that counts them and the drain that waits
/// for none.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<Counter>);

#[derive(Debug, Default)]
struct Counter {
    calls: AtomicUsize,
    idle: Notify,
}

/// Ends one call's count when dropped: its response is ready, or the call was abandoned.
#[derive(Debug)]
struct CallGuard(Arc<Counter>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.0.calls.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl InFlight {
    /// Calls counted and not yet answered.
    pub fn calls(&self) -> usize {
        self.0.calls.load(Ordering::Acquire)
    }

    fn enter(&self) -> CallGuard {
        self.0.calls.fetch_add(1, Ordering::AcqRel);
        CallGuard(self.0.clone())
    }

    /// Completes when no call is in flight (at once if none is).
    pub async fn idle(&self) {
        loop {
            let notified = self.0.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.calls() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A tower layer that counts each call in `InFlight` from the request until its response is
/// ready.
#[derive(Debug, Clone)]
pub struct InFlightLayer(pub InFlight);

impl<S> tower::Layer<S> for InFlightLayer {
    type Service = InFlightService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlightService {
            inner,
            in_flight: self.0.clone(),
        }
    }
}

/// The service [`InFlightLayer`] wraps around the router.
#[derive(Debug, Clone)]
pub struct InFlightService<S> {
    inner: S,
    in_flight: InFlight,
}

impl<S, R> tower::Service<R> for InFlightService<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let guard = self.in_flight.enter();
        let response = self.inner.call(request);
        Box::pin(async move {
            let out = response.await;
            drop(guard);
            out
        })
    }
}

/// One server's drain: its [`InFlightLayer`], its shutdown signal and the wait for both.
///
/// Use: build the server with [`Drain::layer`], give it [`Drain::signal`]`(shutdown)` as its
/// shutdown future, and await its serving future through [`Drain::run`].
#[derive(Debug, Clone, Default)]
pub struct Drain {
    in_flight: InFlight,
    begun: Arc<Notify>,
}

impl Drain {
    /// The layer that counts this server's calls.
    pub fn layer(&self) -> InFlightLayer {
        InFlightLayer(self.in_flight.clone())
    }

    /// Completes when `shutdown` does, noting that shutdown has begun.
    pub async fn signal(&self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        self.begun.notify_one();
    }

    /// Awaits `serving` until it returns, or until shutdown has begun, no call is in flight and
    /// [`LINGER`] more has passed (for the last answers to leave and for clients that do answer
    /// to close); the connections still open then are left to the runtime's end. Returns what
    /// `serving` returned, or `Ok(())` when drained.
    pub async fn run<E>(&self, serving: impl Future<Output = Result<(), E>>) -> Result<(), E> {
        tokio::pin!(serving);
        tokio::select! {
            served = &mut serving => served,
            () = async {
                self.begun.notified().await;
                self.in_flight.idle().await;
            } => {
                if let Ok(served) = tokio::time::timeout(LINGER, serving).await {
                    return served;
                }
                tracing::info!(
                    linger_ms = LINGER.as_millis(),
                    "no calls in flight: not waiting longer for idle connections to close"
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
#[path = "drain_tests.rs"]
mod tests;
