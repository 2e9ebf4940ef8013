//! Carve's CSI controller: configuration, readiness and the gRPC services.
//!
//! Layers: `config` (flags) → `service` (gRPC, thin) → operations → OS layers (LVM, LIO) that
//! know nothing of gRPC. Errors become gRPC codes only in `csi_common::error`.

pub mod config;
pub mod readiness;
pub mod server;
