//! The request checks every creating RPC shares (CreateVolume, with or without a content
//! source, and CreateSnapshot), written once so their answers cannot drift apart.
//!
//! Invariants: a name is required and at most [`MAX_NAME_BYTES`] bytes (spec.md, size limits:
//! "128 bytes"); a volume needs a portal to be exported on (FAILED_PRECONDITION until the
//! controller is started with one). Both checks run before any LVM or LIO work.

use super::Ctx;
use csi_common::{Error, Result};

/// The longest CSI name accepted, in bytes (spec.md, size limits).
pub const MAX_NAME_BYTES: usize = 128;

/// Refuses an empty name or one longer than [`MAX_NAME_BYTES`] (INVALID_ARGUMENT).
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid_argument("name is required"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::invalid_argument(format!(
            "name is {} bytes, longer than {MAX_NAME_BYTES}",
            name.len()
        )));
    }
    Ok(())
}

/// Refuses a volume when no portal is configured (FAILED_PRECONDITION).
pub fn check_portals(ctx: &Ctx) -> Result<()> {
    if ctx.settings.portals.is_empty() {
        return Err(Error::failed_precondition(
            "no iSCSI portal configured: start csi-controller with --portal IP:PORT",
        ));
    }
    Ok(())
}
