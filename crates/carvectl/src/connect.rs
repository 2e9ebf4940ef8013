//! Connecting to a CSI endpoint: one tonic [`Channel`] over a unix socket or TCP, and the
//! [`Client`] bundle of Identity, Controller and Node clients sharing it.
//!
//! Invariant: every connect attempt is bounded by a timeout; nothing here retries forever.

use std::time::{Duration, Instant};

use csi_common::endpoint::Endpoint;
use csi_proto::v1::{
    ProbeRequest, controller_client::ControllerClient, identity_client::IdentityClient,
    node_client::NodeClient,
};
use tonic::transport::{self, Channel};

/// How long [`connect`] waits for a connection before giving up.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The endpoint refused, did not exist, or the HTTP/2 handshake failed.
    #[error("cannot connect to {endpoint}: {source}")]
    Transport {
        /// Where we tried to connect.
        endpoint: String,
        /// The underlying transport error.
        #[source]
        source: transport::Error,
    },
    /// No connection within the allowed time.
    #[error("cannot connect to {endpoint}: timed out after {after:?}")]
    Timeout {
        /// Where we tried to connect.
        endpoint: String,
        /// How long we waited.
        after: Duration,
    },
    /// Connected, but the plugin's Probe did not report ready in time.
    #[error("{endpoint} did not become ready within {after:?}: {last}")]
    NotReady {
        /// Where we connected.
        endpoint: String,
        /// How long we waited.
        after: Duration,
        /// The last Probe outcome.
        last: String,
    },
}

/// Connects to `endpoint` with [`DEFAULT_CONNECT_TIMEOUT`].
pub async fn connect(endpoint: &Endpoint) -> Result<Channel, ConnectError> {
    connect_timeout(endpoint, DEFAULT_CONNECT_TIMEOUT).await
}

/// Connects to `endpoint`, failing after `timeout`.
pub async fn connect_timeout(
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<Channel, ConnectError> {
    let fail = |source| ConnectError::Transport {
        endpoint: endpoint.to_string(),
        source,
    };
    let attempt = async {
        match endpoint {
            Endpoint::Unix(path) => {
                let path = path.clone();
                // The URI is required by tonic but unused: the connector ignores it.
                transport::Endpoint::from_static("http://[::]:50051")
                    .connect_timeout(timeout)
                    .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                        let path = path.clone();
                        async move {
                            let stream = tokio::net::UnixStream::connect(path).await?;
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                        }
                    }))
                    .await
                    .map_err(fail)
            }
            Endpoint::Tcp(addr) => transport::Endpoint::from_shared(format!("http://{addr}"))
                .map_err(fail)?
                .connect_timeout(timeout)
                .connect()
                .await
                .map_err(fail),
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(ConnectError::Timeout {
                endpoint: endpoint.to_string(),
                after: timeout,
            })
        })
}

/// Connects to `endpoint`, retrying failed attempts (socket not there yet, refused) with a
/// short backoff until `within` has passed; returns the last error then.
pub async fn connect_with_retry(
    endpoint: &Endpoint,
    within: Duration,
) -> Result<Channel, ConnectError> {
    let deadline = Instant::now() + within;
    let mut backoff = Duration::from_millis(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let error = match connect_timeout(endpoint, left.max(Duration::from_millis(1))).await {
            Ok(channel) => return Ok(channel),
            Err(error) => error,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(error);
        }
        tokio::time::sleep(backoff.min(left)).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

/// Identity, Controller and Node clients over one channel. Cloning is cheap (the channel is
/// shared), and each field can be used on its own: `client.node.clone().node_get_info(..)`.
#[derive(Debug, Clone)]
pub struct Client {
    /// The Identity service.
    pub identity: IdentityClient<Channel>,
    /// The Controller service.
    pub controller: ControllerClient<Channel>,
    /// The Node service.
    pub node: NodeClient<Channel>,
}

impl Client {
    /// Wraps an existing channel.
    pub fn from_channel(channel: Channel) -> Self {
        Client {
            identity: IdentityClient::new(channel.clone()),
            controller: ControllerClient::new(channel.clone()),
            node: NodeClient::new(channel),
        }
    }

    /// Connects to `endpoint` (see [`connect`]).
    pub async fn connect(endpoint: &Endpoint) -> Result<Self, ConnectError> {
        Ok(Self::from_channel(connect(endpoint).await?))
    }

    /// Connects to `endpoint`, retrying until `within` has passed (see [`connect_with_retry`]).
    pub async fn connect_with_retry(
        endpoint: &Endpoint,
        within: Duration,
    ) -> Result<Self, ConnectError> {
        Ok(Self::from_channel(
            connect_with_retry(endpoint, within).await?,
        ))
    }

    /// Connects with retries and then calls Probe until the plugin answers ready (an unset
    /// `ready` counts as ready, per the spec), all within `within`. For tests that start a
    /// driver and must wait for it.
    pub async fn wait_until_ready(
        endpoint: &Endpoint,
        within: Duration,
    ) -> Result<Self, ConnectError> {
        let deadline = Instant::now() + within;
        let client = Self::connect_with_retry(endpoint, within).await?;
        loop {
            let mut identity = client.identity.clone();
            let last = match identity.probe(ProbeRequest {}).await {
                Ok(response) if response.get_ref().ready != Some(false) => return Ok(client),
                Ok(_) => "probe answered ready=false".to_string(),
                Err(status) => format!(
                    "probe failed: {}: {}",
                    crate::code_name(status.code()),
                    status.message()
                ),
            };
            if Instant::now() >= deadline {
                return Err(ConnectError::NotReady {
                    endpoint: endpoint.to_string(),
                    after: within,
                    last,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
