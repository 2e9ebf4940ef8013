//! Shared plumbing for Carve's binaries: typed ids, the domain error and its gRPC code table,
//! the command runner seam, operation guards, telemetry and socket serving.
//!
//! Nothing here knows LVM, LIO or iSCSI; the OS layers live in the binaries' crates.

pub mod command;
pub mod endpoint;
pub mod error;
pub mod guard;
pub mod ids;

pub use error::{Error, Kind, Result};
