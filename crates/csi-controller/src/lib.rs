//! Carve's CSI controller: configuration, readiness and the gRPC services.
//!
//! Layers: `config` (flags) → `service` (gRPC, thin) → `ops` (one file per RPC) → OS layers
//! (`lvm`, `lio`, from the carve-storage crate) that know nothing of gRPC. Errors become gRPC codes only in
//! `csi_common::error`. `reconcile` rebuilds LIO from LVM at start while the service already
//! answers (`restoration` says which volumes wait for it). The controller keeps the VG's
//! figures in memory (`lvm::ledger`), seeded at start and resynced by `resync`. `host` builds
//! one storage host's runtime from its flags, for this binary and for `carve-agent` alike;
//! `agent` reaches a host through its carve-agent instead (the client), and `fleet` holds the
//! backends the service dispatches to (the local host, or the agents of `--agents`), placement
//! and listings across agents.

pub mod agent;
pub mod config;
pub mod fleet;
pub mod host;
pub mod ops;
pub mod readiness;
pub mod reconcile;
pub mod restoration;
pub mod resync;
pub mod server;
pub mod service;
pub mod tools;
pub mod wiper;

/// The storage host's layers ([`carve_storage`]), under the paths the controller has always used.
pub use carve_storage::{gauges, lio, lvm};
