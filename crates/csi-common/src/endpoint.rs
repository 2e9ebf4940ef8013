//! CSI endpoints: `unix:///abs/path.sock` or `tcp://host:port`, parsed once at start.
//!
//! Invariant: a parsed unix endpoint has an absolute path; a tcp endpoint has a host and port.

use std::{fmt, path::PathBuf, str::FromStr};

/// Where a CSI server listens or a client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix domain socket at an absolute path.
    Unix(PathBuf),
    /// A TCP `host:port`.
    Tcp(String),
}

/// Why an endpoint string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid endpoint {input:?}: {reason} (expected unix:///path/to/csi.sock or tcp://host:port)"
)]
pub struct EndpointError {
    input: String,
    reason: &'static str,
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason| EndpointError {
            input: input.to_string(),
            reason,
        };
        if let Some(path) = input.strip_prefix("unix://") {
            // Accept unix:///abs and the bare unix:/abs some tools emit.
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(fail("unix socket path must be absolute"));
            }
            if path.file_name().is_none() {
                return Err(fail("unix socket path must name a file"));
            }
            return Ok(Endpoint::Unix(path));
        }
        if let Some(path) = input.strip_prefix("unix:") {
            return Endpoint::from_str(&format!("unix://{path}"));
        }
        if let Some(addr) = input.strip_prefix("tcp://") {
            let (host, port) = addr.rsplit_once(':').ok_or_else(|| fail("missing :port"))?;
            if host.is_empty() {
                return Err(fail("missing host"));
            }
            port.parse::<u16>()
                .map_err(|_| fail("port must be a number 0-65535"))?;
            return Ok(Endpoint::Tcp(addr.to_string()));
        }
        if input.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(input)));
        }
        Err(fail("unknown scheme"))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_and_tcp() {
        for (text, want) in [
            (
                "unix:///csi/csi.sock",
                Endpoint::Unix("/csi/csi.sock".into()),
            ),
            ("unix:/csi/c.sock", Endpoint::Unix("/csi/c.sock".into())),
            ("/csi/c.sock", Endpoint::Unix("/csi/c.sock".into())),
            (
                "tcp://127.0.0.1:10000",
                Endpoint::Tcp("127.0.0.1:10000".into()),
            ),
            ("tcp://[::1]:9", Endpoint::Tcp("[::1]:9".into())),
        ] {
            assert_eq!(text.parse::<Endpoint>().unwrap(), want, "{text}");
        }
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "unix://relative/x.sock",
            "unix:///",
            "tcp://host",
            "tcp://:80",
            "tcp://h:99999",
            "http://x:1",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn round_trips_through_display() {
        for s in ["unix:///run/csi/csi.sock", "tcp://localhost:1234"] {
            assert_eq!(s.parse::<Endpoint>().unwrap().to_string(), s);
        }
    }
}
