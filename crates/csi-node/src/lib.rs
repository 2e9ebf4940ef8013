//! Carve's CSI node plugin: configuration, readiness and the gRPC services.
//!
//! Layers: `config` (flags) → `service` (gRPC, thin) → operations → OS layers (iSCSI, devices,
//! mounts) that know nothing of gRPC. Errors become gRPC codes only in `csi_common::error`.

pub mod config;
pub mod initiator_name;
pub mod readiness;
pub mod server;
