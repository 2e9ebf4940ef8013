//! Serving gRPC on a CSI endpoint, with clean shutdown.
//!
//! Invariants for unix sockets: the parent directory is created (0750) if missing; a stale
//! socket is removed, but a live one (another instance answering) or a non-socket file is never
//! touched; the socket is made 0600; it is removed again when serving ends. On SIGTERM/SIGINT
//! the server stops accepting, lets in-flight calls finish, then returns without waiting for
//! idle connections to close ([`crate::drain`]).

use crate::{drain::Drain, endpoint::Endpoint, telemetry::RpcLayer};
use std::{
    future::Future,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
    time::Duration,
};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::service::Routes;

/// Why serving could not start or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The socket path is unusable.
    #[error("endpoint {path}: {reason}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Binding or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves `routes` on `endpoint` until `shutdown` completes, with [`RpcLayer`] on every call.
pub async fn serve(
    endpoint: &Endpoint,
    routes: Routes,
    slow_rpc: Duration,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let drain = Drain::default();
    let server = tonic::transport::Server::builder()
        .layer(drain.layer())
        .layer(RpcLayer::new(slow_rpc))
        .add_routes(routes);
    let shutdown = drain.signal(shutdown);
    match endpoint {
        Endpoint::Unix(path) => {
            let listener = bind_unix(path).await?;
            tracing::info!(endpoint = %endpoint, "serving");
            let result = drain
                .run(
                    server
                        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown),
                )
                .await;
            let _ = std::fs::remove_file(path);
            tracing::info!(endpoint = %endpoint, "stopped serving");
            Ok(result?)
        }
        Endpoint::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            tracing::info!(endpoint = %endpoint, "serving");
            drain
                .run(
                    server.serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown),
                )
                .await?;
            tracing::info!(endpoint = %endpoint, "stopped serving");
            Ok(())
        }
    }
}

/// Serves `routes` over TCP on `listener` with mutual TLS ([`crate::mtls`]) until `shutdown`
/// completes, with [`RpcLayer`] on every call: a client must present a certificate that chains
/// to `mtls`'s CA, or its handshake fails before any RPC.
pub async fn serve_mtls(
    listener: tokio::net::TcpListener,
    routes: Routes,
    slow_rpc: Duration,
    mtls: &crate::mtls::Mtls,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let address = listener.local_addr()?;
    let drain = Drain::default();
    let server = tonic::transport::Server::builder()
        .tls_config(mtls.server())?
        .layer(drain.layer())
        .layer(RpcLayer::new(slow_rpc))
        .add_routes(routes);
    tracing::info!(%address, "serving with mutual TLS");
    drain
        .run(
            server.serve_with_incoming_shutdown(
                TcpListenerStream::new(listener),
                drain.signal(shutdown),
            ),
        )
        .await?;
    tracing::info!(%address, "stopped serving");
    Ok(())
}

async fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, ServeError> {
    let fail = |reason: String| ServeError::Socket {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(parent) = path.parent().filter(|p| !p.exists()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| fail(format!("cannot create directory: {e}")))?;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o750))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if tokio::net::UnixStream::connect(path).await.is_ok() {
                return Err(fail(
                    "another server is already listening on this socket".into(),
                ));
            }
            tracing::info!(path = %path.display(), "removing stale socket");
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(fail(
                "exists and is not a socket; refusing to remove it".into(),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    let listener =
        tokio::net::UnixListener::bind(path).map_err(|e| fail(format!("cannot bind: {e}")))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Completes on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(
        signal = name,
        "shutting down: no new calls, waiting for calls in flight"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_to_remove_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("csi.sock");
        std::fs::write(&path, "precious").unwrap();
        let err = bind_unix(&path).await.unwrap_err();
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    }

    #[tokio::test]
    async fn replaces_a_stale_socket_and_refuses_a_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/csi.sock");
        let live = bind_unix(&path).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            bind_unix(&path)
                .await
                .unwrap_err()
                .to_string()
                .contains("already listening")
        );
        drop(live); // the socket file stays behind: stale
        assert!(path.exists());
        bind_unix(&path).await.expect("stale socket replaced");
    }
}
