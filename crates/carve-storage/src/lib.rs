//! Carve's storage-host layers, with no knowledge of CSI or gRPC: [`lvm`] carves logical
//! volumes (one per-VG queue for every mutation, the in-memory [`lvm::ledger`] of the VG, space
//! admission, quarantine and wiping) and [`lio`] exports them as iSCSI targets through Linux LIO
//! (configfs in targetcli's layout, or targetcli itself) and saves LIO's configuration;
//! [`gauges`] publishes the VG's figures as metrics.
//!
//! Every program runs through `csi_common::command::CommandRunner` (argv only, never a shell);
//! errors are `csi_common::Error` kinds, mapped to gRPC codes only by the CSI services built on
//! this crate (csi-controller today; a per-host storage agent next, see issue #19).

pub mod gauges;
pub mod lio;
pub mod lvm;
