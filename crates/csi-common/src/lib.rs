//! Shared plumbing for Carve's binaries: typed ids, the domain error and its gRPC code table,
//! the command runner seam, operation guards, telemetry, the Identity service and serving (on
//! CSI endpoints, and with mutual TLS for Carve's own links between hosts).
//!
//! Nothing here knows LVM, LIO or iSCSI; the OS layers live in the binaries' crates.

pub mod cli;
pub mod command;
pub mod contract;
pub mod drain;
pub mod endpoint;
pub mod error;
pub mod escape;
pub mod grpc;
pub mod guard;
pub mod identity;
pub mod ids;
pub mod iscsi_name;
pub mod mtls;
pub mod placed;
pub mod serve;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod topology;

pub use error::{Error, Kind, Result};
