//! Certificates for mutual-TLS tests, made by rcgen: a [`Ca`] that signs leaf certificates and
//! writes them as a `--tls-dir` holds them (`ca.crt`, `tls.crt`, `tls.key`); and servers on
//! loopback ([`serve`], [`spawn_server`]) for clients to present them to.

use crate::{
    command::BoxFuture,
    mtls::{Mtls, MtlsFiles},
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use std::{fmt::Debug, future::Future, path::Path, time::Duration};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::service::Routes;

/// `routes` served with `mtls` by [`crate::serve::serve_mtls`] on a loopback port; its address
/// and a handle that stops it.
///
/// # Panics
/// When no loopback port can be bound; the server's task panics when serving fails.
pub async fn serve(routes: Routes, mtls: Mtls) -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_server(listener, |listener, stopped| async move {
        crate::serve::serve_mtls(listener, routes, Duration::from_secs(5), &mtls, stopped).await
    })
}

/// Runs `server` on `listener` in a task, with a shutdown future that completes when the
/// returned handle is used or dropped; the listener's address and that handle.
///
/// # Panics
/// When `listener` has no local address; the task panics when `server` fails.
pub fn spawn_server<Fut, E>(
    listener: TcpListener,
    server: impl FnOnce(TcpListener, BoxFuture<'static, ()>) -> Fut,
) -> (String, oneshot::Sender<()>)
where
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Debug,
{
    let address = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = server(
        listener,
        Box::pin(async {
            let _ = stopped.await;
        }),
    );
    tokio::spawn(async move { served.await.unwrap() });
    (address, stop)
}

/// A CA that signs leaf certificates.
pub struct Ca(CertifiedIssuer<'static, KeyPair>);

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ca")
    }
}

impl Ca {
    /// A self-signed CA whose subject's common name is `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        Self(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    /// Writes `trusting`'s certificate as ca.crt, and a leaf this CA signs for `names` (DNS
    /// names or IP addresses) as tls.crt with its key as tls.key, into `dir`.
    pub fn files(&self, dir: &Path, names: &[&str], trusting: &Ca) -> MtlsFiles {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(ToString::to_string).collect::<Vec<_>>())
                .unwrap();
        let leaf = params.signed_by(&key, &self.0).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let files = MtlsFiles {
            ca: dir.join("ca.crt"),
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        };
        std::fs::write(&files.ca, trusting.0.pem()).unwrap();
        std::fs::write(&files.cert, leaf.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }
}
