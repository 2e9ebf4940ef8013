//! Mutual TLS against a real server on loopback: certificates made by rcgen (one CA for
//! the link, a foreign CA standing for anyone else), the Identity service served by
//! [`crate::serve::serve_mtls`] ([`tls::serve`]), clients made by [`super::connect`].

use super::*;
use crate::{
    identity::IdentityService,
    testing::{
        Ready,
        tls::{self, Ca},
    },
};
use csi_proto::v1::{
    GetPluginInfoRequest, identity_client::IdentityClient, identity_server::IdentityServer,
};
use std::sync::Arc;
use tokio::sync::oneshot;

/// The Identity service on loopback with `files`; its address and a handle that stops it.
async fn serve(files: &MtlsFiles) -> (String, oneshot::Sender<()>) {
    let identity = IdentityService::new("carve.test", "0", Vec::new(), Arc::new(Ready));
    let routes = tonic::service::Routes::new(IdentityServer::new(identity));
    tls::serve(routes, files.load().unwrap()).await
}

/// GetPluginInfo over a fresh mutually authenticated channel, or the failure as text.
async fn call(address: &str, server_name: &str, files: &MtlsFiles) -> Result<String, String> {
    let mtls = files.load().map_err(|e| e.to_string())?;
    let channel = connect(address, server_name, &mtls)
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let info = IdentityClient::new(channel)
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .map_err(|s| format!("rpc: {s:?}"))?;
    Ok(info.into_inner().name)
}

/// The server ended the handshake of `refused` with the fatal TLS `alert`.
fn assert_alert(refused: &str, alert: &str) {
    assert!(
        refused.contains(&format!("received fatal alert: {alert}")),
        "{alert} expected: {refused}"
    );
}

#[tokio::test]
async fn a_client_the_ca_signed_is_served_and_a_foreign_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, foreign) = (Ca::new("carve link CA"), Ca::new("someone else"));
    let server = ca.files(&dir.path().join("agent"), &["localhost", "127.0.0.1"], &ca);
    let (address, _stop) = serve(&server).await;

    let client = ca.files(&dir.path().join("controller"), &["controller"], &ca);
    assert_eq!(
        call(&address, "localhost", &client).await.unwrap(),
        "carve.test"
    );

    // A certificate from another CA, even one that trusts our server, is refused.
    let stranger = foreign.files(&dir.path().join("stranger"), &["controller"], &ca);
    let refused = call(&address, "localhost", &stranger).await.unwrap_err();
    assert_alert(&refused, "UnknownCA");

    // A self-signed certificate naming our CA's subject is refused as well.
    let impostor = Ca::new("carve link CA");
    let forged = impostor.files(&dir.path().join("forged"), &["controller"], &ca);
    let refused = call(&address, "localhost", &forged).await.unwrap_err();
    assert_alert(&refused, "DecryptError");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("carve link CA");
    let server = ca.files(&dir.path().join("agent"), &["localhost"], &ca);
    let (address, _stop) = serve(&server).await;
    let ca_only = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(&server.ca).unwrap()))
        .domain_name("localhost");
    let result = async {
        let channel = Endpoint::from_shared(format!("https://{address}"))?
            .tls_config(ca_only)?
            .connect()
            .await?;
        Ok::<_, tonic::transport::Error>(
            IdentityClient::new(channel)
                .get_plugin_info(GetPluginInfoRequest {})
                .await,
        )
    }
    .await;
    let refused = format!("{result:?}");
    // A client with no certificate is not served.
    assert_alert(&refused, "CertificateRequired");
}

#[tokio::test]
async fn the_client_refuses_a_server_the_ca_did_not_sign_or_that_names_another_host() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, foreign) = (Ca::new("carve link CA"), Ca::new("someone else"));
    let client = ca.files(&dir.path().join("controller"), &["controller"], &ca);

    let rogue = foreign.files(&dir.path().join("rogue"), &["localhost"], &foreign);
    let (address, _stop) = serve(&rogue).await;
    let refused = call(&address, "localhost", &client).await.unwrap_err();
    assert!(refused.contains("UnknownIssuer"), "{refused}");

    let agent = ca.files(&dir.path().join("agent"), &["agent-b.example"], &ca);
    let (address, _stop) = serve(&agent).await;
    let refused = call(&address, "localhost", &client).await.unwrap_err();
    assert!(refused.contains("NotValidForName"), "{refused}");
    call(&address, "agent-b.example", &client).await.unwrap();
}

#[test]
fn load_names_the_file_that_is_wrong_and_never_echoes_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("carve link CA");
    let good = ca.files(dir.path(), &["localhost"], &ca);
    let mtls = good.load().unwrap();
    let shown = format!("{mtls:?}");
    assert!(
        shown.contains("<redacted>") && shown.ends_with(".. }"),
        "{shown}"
    );
    let key = std::fs::read_to_string(&good.key).unwrap();
    let body: String = key.lines().nth(1).unwrap().to_string();
    assert!(!shown.contains(&body), "the key leaked into Debug");

    let missing = MtlsFiles {
        key: dir.path().join("absent.key"),
        ..good.clone()
    };
    let err = missing.load().unwrap_err();
    assert!(
        matches!(&err, MtlsError::Read { path, .. } if path == &missing.key),
        "{err}"
    );

    // A key file holding a certificate, and a certificate file holding a key: named, not echoed.
    let swapped = MtlsFiles {
        cert: good.key.clone(),
        key: good.cert.clone(),
        ..good.clone()
    };
    let err = swapped.load().unwrap_err();
    assert!(
        matches!(&err, MtlsError::Content { path, .. } if path == &good.key),
        "{err}"
    );
    assert!(!err.to_string().contains(&body), "{err}");

    let garbage = dir.path().join("garbage.crt");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n",
    )
    .unwrap();
    let err = MtlsFiles {
        ca: garbage.clone(),
        ..good.clone()
    }
    .load()
    .unwrap_err();
    assert!(
        matches!(&err, MtlsError::Content { path, .. } if path == &garbage),
        "{err}"
    );
    assert!(!err.to_string().contains("not base64"), "{err}");

    let empty = dir.path().join("empty.crt");
    std::fs::write(&empty, "").unwrap();
    let err = MtlsFiles { ca: empty, ..good }.load().unwrap_err();
    assert!(
        err.to_string().contains("no PEM CERTIFICATE block"),
        "{err}"
    );
}
