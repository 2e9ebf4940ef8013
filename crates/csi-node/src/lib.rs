//! Carve's CSI node plugin: configuration, readiness and the gRPC services.
//!
//! Layers: `config` (flags) → `service` (gRPC, thin: the only module that reads CSI requests
//! and builds CSI responses) → `ops` (one file per RPC: domain requests in, domain results out)
//! → OS layers (`iscsi`, `device`, `filesystem`, `mount`, `records` (the stage records),
//! `paths`) that know nothing of gRPC. Errors become gRPC codes only in `csi_common::error`.

pub mod config;
pub mod device;
pub mod filesystem;
pub mod gauges;
pub mod host;
pub mod initiator_name;
pub mod iscsi;
pub mod mount;
pub mod multipath;
pub mod ops;
pub mod paths;
pub mod readiness;
pub mod records;
pub mod server;
pub mod service;
