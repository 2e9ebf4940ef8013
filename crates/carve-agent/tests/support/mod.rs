//! Loopback plumbing for the agent's tests: CAs and certificates made by rcgen, an Agent
//! service served with mutual TLS on 127.0.0.1 by [`csi_common::serve::serve_mtls`], and
//! clients connected by [`csi_common::mtls::connect`].

#![allow(dead_code)] // each test binary uses its own part

use carve_agent::{proto, service::AgentService};
use csi_common::{
    command::BoxFuture,
    identity::Readiness,
    mtls::{Mtls, MtlsFiles, connect},
};
use proto::{agent_client::AgentClient, agent_server::AgentServer};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use std::{path::Path, sync::Arc, time::Duration};
use tokio::sync::oneshot;
use tonic::{service::Routes, transport::Channel};

/// The name the agent's certificate carries and clients check.
pub const AGENT_NAME: &str = "agent.carve.test";

/// Always ready.
#[derive(Debug)]
pub struct Ready;

impl Readiness for Ready {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// A CA that signs leaf certificates.
pub struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        Self(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    /// Writes `trusting`'s certificate as ca.crt and a leaf this CA signs for `names` as
    /// tls.crt and tls.key into `dir`, as `--tls-dir` holds them.
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

/// `routes` served with `mtls` on a loopback port; its address and a handle that stops it.
pub async fn serve_routes(routes: Routes, mtls: Mtls) -> (String, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        csi_common::serve::serve_mtls(listener, routes, Duration::from_secs(5), &mtls, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (address, stop)
}

/// `service` served on loopback with a certificate for [`AGENT_NAME`] that `ca` signs.
pub async fn serve(service: AgentService, ca: &Ca, dir: &Path) -> (String, oneshot::Sender<()>) {
    let files = ca.files(&dir.join("agent"), &[AGENT_NAME], ca);
    let routes = Routes::new(AgentServer::new(service));
    serve_routes(routes, files.load().unwrap()).await
}

/// A client of the agent at `address`, presenting the certificate in `files`.
pub async fn client(
    address: &str,
    files: &MtlsFiles,
) -> Result<AgentClient<Channel>, tonic::transport::Error> {
    let channel = connect(address, AGENT_NAME, &files.load().unwrap()).await?;
    Ok(AgentClient::new(channel))
}

/// The service over `ctx`, always ready.
pub fn service(ctx: &csi_controller::ops::Ctx) -> AgentService {
    AgentService::new(ctx.clone(), Arc::new(Ready))
}
