//! ValidateVolumeCapabilities: confirms capabilities Carve can serve for an existing volume.
//!
//! Invariants: an unknown volume is `NotFound`; a capability or parameter Carve cannot serve
//! leaves the answer unconfirmed with the reason (not an error); confirmation needs every
//! capability to be served, each to match what the volume was created for (block or mount, the
//! filesystem; as ControllerPublish requires), and the volume to be large enough for the
//! filesystem named; `parameters` may be left out, and only a `thin` they name is compared.

use super::{Ctx, capability, params, volume};
use csi_common::{Error, Result};
use csi_proto::v1::VolumeCapability;
use std::collections::HashMap;

/// The answer: confirmed, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    /// Every capability (and the parameters) can be served.
    Confirmed,
    /// Not confirmed, with the reason.
    Unconfirmed(String),
}

/// ValidateVolumeCapabilities.
pub async fn validate(
    ctx: &Ctx,
    raw_id: &str,
    capabilities: &[VolumeCapability],
    parameters: &HashMap<String, String>,
) -> Result<Validation> {
    let id = volume::parse_id(raw_id)?;
    if capabilities.is_empty() {
        return Err(Error::invalid_argument("volume_capabilities is required"));
    }
    let id = id.ok_or_else(|| Error::not_found(format!("volume {raw_id:?} does not exist")))?;
    let vol = volume::find(ctx, &id)
        .await?
        .ok_or_else(|| Error::not_found(format!("volume {id} does not exist")))?;
    let caps = match capability::parse_all(capabilities) {
        Ok(caps) => caps,
        Err(e) => return Ok(Validation::Unconfirmed(e.message().to_string())),
    };
    if let Some(why) = capability::unserved(&caps, &vol.record.capabilities) {
        return Ok(Validation::Unconfirmed(why));
    }
    match params::parse(parameters, ctx.settings.thin_pool.as_deref()) {
        // `parameters` is optional (spec.md): only a `thin` it names is compared.
        Ok(p) if parameters.contains_key(params::THIN) && p.thin != vol.thin() => {
            return Ok(Validation::Unconfirmed(format!(
                "the volume is {}thin",
                if vol.thin() { "" } else { "not " }
            )));
        }
        Ok(_) => {}
        Err(e) => return Ok(Validation::Unconfirmed(e.message().to_string())),
    }
    Ok(by_size(vol.lv.size, &caps))
}

/// Confirmed, unless a volume of `capacity` bytes is smaller than the smallest filesystem
/// `caps` name can be made on ([`capability::minimum_bytes`]).
pub fn by_size(capacity: u64, caps: &[capability::Capability]) -> Validation {
    let minimum = capability::minimum_bytes(caps);
    if capacity < minimum {
        return Validation::Unconfirmed(format!(
            "the volume has {capacity} bytes, less than the filesystem minimum {minimum}"
        ));
    }
    Validation::Confirmed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{
        capability::mount,
        testing::{FakeHost, carve_tags, lv_row},
    };
    use csi_common::{Kind, testing::refused};
    use csi_proto::v1::volume_capability::{AccessMode, AccessType, access_mode::Mode};

    #[tokio::test]
    async fn confirms_served_capabilities_only() {
        let host = FakeHost::new();
        let row = lv_row("csi-v-1", 64 << 20, None, &carve_tags("v"));
        let none = HashMap::new();
        host.expect_lvs_one("csi-v-1", std::slice::from_ref(&row));
        let caps = [mount("ext4", Mode::SingleNodeWriter)];
        let ok = validate(&host.ctx, "csi-v-1", &caps, &none);
        assert_eq!(ok.await.unwrap(), Validation::Confirmed);
        host.expect_lvs_one("csi-v-1", std::slice::from_ref(&row));
        let caps = [mount("ext4", Mode::MultiNodeMultiWriter)];
        let rwx = validate(&host.ctx, "csi-v-1", &caps, &none);
        assert!(matches!(rwx.await.unwrap(), Validation::Unconfirmed(_)));
        host.expect_lvs_one("csi-v-1", &[row]);
        let caps = [mount("xfs", Mode::SingleNodeWriter)];
        let xfs = validate(&host.ctx, "csi-v-1", &caps, &none);
        assert!(matches!(xfs.await.unwrap(), Validation::Unconfirmed(m) if m.contains("minimum")));
        host.expect_lvs_one("csi-none-1", &[]);
        let caps = [mount("", Mode::SingleNodeWriter)];
        let missing = validate(&host.ctx, "csi-none-1", &caps, &none);
        refused(missing.await, Kind::NotFound);
        let empty = validate(&host.ctx, "csi-v-1", &[], &none)
            .await
            .unwrap_err();
        assert_eq!(empty.kind(), Kind::InvalidArgument);
        host.finish();
    }

    #[tokio::test]
    async fn confirms_only_what_the_volume_was_created_for_and_parameters_may_be_left_out() {
        let host = FakeHost::new();
        // A thin volume created for a filesystem (`carve_tags`: mount, the node's default).
        let row = lv_row("csi-v-1", 64 << 20, Some("pool"), &carve_tags("v"));
        let none = HashMap::new();
        let fs = [mount("ext4", Mode::SingleNodeWriter)];
        host.expect_lvs_one("csi-v-1", std::slice::from_ref(&row));
        let without = validate(&host.ctx, "csi-v-1", &fs, &none).await.unwrap();
        assert_eq!(without, Validation::Confirmed, "no parameters given");
        host.expect_lvs_one("csi-v-1", std::slice::from_ref(&row));
        let linear = HashMap::from([(params::THIN.to_string(), "false".to_string())]);
        let named = validate(&host.ctx, "csi-v-1", &fs, &linear).await.unwrap();
        assert!(matches!(named, Validation::Unconfirmed(m) if m.contains("thin")));
        // Raw block on a filesystem volume: ControllerPublish would refuse it, so not confirmed.
        let block = [VolumeCapability {
            access_type: Some(AccessType::Block(Default::default())),
            access_mode: Some(AccessMode {
                mode: Mode::SingleNodeWriter as i32,
            }),
        }];
        host.expect_lvs_one("csi-v-1", &[row]);
        let as_block = validate(&host.ctx, "csi-v-1", &block, &none).await.unwrap();
        assert!(matches!(as_block, Validation::Unconfirmed(m) if m.contains("created for")));
        host.finish();
    }
}
