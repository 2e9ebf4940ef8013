//! carve-agent: the daemon that owns one storage host's LVM volume group and LIO target and
//! serves Carve's own gRPC API ([`csi_proto::agent::v1`], not CSI) to a CSI controller that
//! places volumes on several hosts, over mutual TLS only.
//!
//! Layers: `config` (flags; the storage host's are csi-controller's own
//! [`StorageHostArgs`](csi_controller::config::StorageHostArgs)) → `server` (the host built by
//! [`csi_controller::host::build`], the same runtime the single-host controller drives, and the
//! routes) → `service` (thin: agent messages ↔ the operations' domain requests and results,
//! through [`csi_controller::agent::convert`], the table the controller's client reads back
//! with) → csi-controller's `ops`. Errors become gRPC codes only in
//! `csi_common::error`.

pub mod config;
pub mod server;
pub mod service;

pub use csi_proto::agent::v1 as proto;
