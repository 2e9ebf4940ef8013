//! Mutual TLS for Carve's own gRPC links (csi-controller to a storage host's agent): both ends
//! present a certificate signed by the one CA they trust, and each refuses a peer whose
//! certificate that CA did not sign, or that presents none (TLS 1.3, RFC 8446 §4.3.2
//! CertificateRequest and §4.4.2 Certificate; rustls's WebPKI verifiers do the checking).
//!
//! The three files are PEM (RFC 7468) as a Kubernetes `kubernetes.io/tls` Secret holds them
//! (`ca.crt`, `tls.crt`, `tls.key`): [`MtlsFiles::load`] reads and checks them once at start.
//!
//! Invariants: the private key is never formatted (the `Debug` of [`Mtls`] says only how many
//! certificates it holds), and every error names a file, never its contents.

use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use std::{
    fmt,
    path::{Path, PathBuf},
};
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};

/// Where the CA certificate, this end's certificate chain and its private key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtlsFiles {
    /// PEM file of the CA certificate(s) a peer's certificate must chain to (`ca.crt`).
    pub ca: PathBuf,
    /// PEM file of this end's certificate, leaf first, then any intermediates (`tls.crt`).
    pub cert: PathBuf,
    /// PEM file of this end's private key: PKCS#8, PKCS#1 or SEC1 (`tls.key`).
    pub key: PathBuf,
}

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MtlsError {
    /// A file could not be read.
    #[error("TLS file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// A file holds no usable PEM object of the kind it must hold.
    #[error("TLS file {path}: {reason}")]
    Content {
        /// The file.
        path: PathBuf,
        /// What is missing or malformed (never the file's bytes).
        reason: String,
    },
}

/// Loaded, checked TLS material for one end of a mutually authenticated link.
#[derive(Clone)]
pub struct Mtls {
    ca: Certificate,
    ca_count: usize,
    identity: Identity,
    chain_len: usize,
}

impl fmt::Debug for Mtls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mtls")
            .field("ca_certificates", &self.ca_count)
            .field("chain_certificates", &self.chain_len)
            .field("private_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl MtlsFiles {
    /// Reads and checks the three files: the CA and certificate files must each hold at least
    /// one well-formed `CERTIFICATE` PEM block, the key file one private key.
    ///
    /// # Errors
    /// [`MtlsError::Read`] when a file cannot be read, [`MtlsError::Content`] when it holds no
    /// such block or a malformed one. Whether the key matches the certificate is checked by
    /// rustls when a server or client is built from the result.
    pub fn load(&self) -> Result<Mtls, MtlsError> {
        let ca = read(&self.ca)?;
        let ca_count = certificates(&self.ca, &ca)?;
        let cert = read(&self.cert)?;
        let chain_len = certificates(&self.cert, &cert)?;
        let key = read(&self.key)?;
        PrivateKeyDer::from_pem_slice(&key).map_err(|e| MtlsError::Content {
            path: self.key.clone(),
            reason: format!("no usable private key ({})", pem_reason(&e)),
        })?;
        Ok(Mtls {
            ca: Certificate::from_pem(ca),
            ca_count,
            identity: Identity::from_pem(cert, key),
            chain_len,
        })
    }
}

impl Mtls {
    /// The server side: presents this end's certificate and requires every client to present
    /// one that chains to the CA (a client without one fails the handshake).
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
            .client_auth_optional(false)
    }

    /// The client side: trusts only the CA (not the system's roots), checks that the server's
    /// certificate names `server_name` (a DNS name or an IP address, RFC 6125), and presents this
    /// end's certificate.
    pub fn client(&self, server_name: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
            .domain_name(server_name)
    }
}

/// Opens a channel to `https://{address}` (`host:port`), checking that the server's
/// certificate names `server_name` and chains to the CA, and presenting this end's certificate.
///
/// # Errors
/// The transport error when the address is malformed, the connection fails or the TLS handshake
/// is refused (by either end).
pub async fn connect(
    address: &str,
    server_name: &str,
    mtls: &Mtls,
) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("https://{address}"))?
        .tls_config(mtls.client(server_name))?
        .connect()
        .await
}

fn read(path: &Path) -> Result<Vec<u8>, MtlsError> {
    std::fs::read(path).map_err(|e| MtlsError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// How many certificates `pem` holds; an error when none or one is malformed.
fn certificates(path: &Path, pem: &[u8]) -> Result<usize, MtlsError> {
    let fail = |reason: String| MtlsError::Content {
        path: path.to_path_buf(),
        reason,
    };
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| fail(format!("malformed certificate ({})", pem_reason(&e))))?;
        count += 1;
    }
    if count == 0 {
        return Err(fail("no PEM CERTIFICATE block".into()));
    }
    Ok(count)
}

/// The PEM error's kind, without any of the bytes some of its variants carry.
fn pem_reason(e: &rustls_pki_types::pem::Error) -> &'static str {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { .. } => "a PEM section has no END line",
        E::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed",
        E::Base64Decode(_) => "PEM body is not base64",
        E::Io(_) => "read error",
        E::NoItemsFound => "none found",
        _ => "unreadable PEM",
    }
}

#[cfg(test)]
#[path = "mtls_tests.rs"]
mod tests;
