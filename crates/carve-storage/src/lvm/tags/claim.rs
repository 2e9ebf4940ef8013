//! The Kubernetes objects a volume was provisioned for, as the external-provisioner's
//! `--extra-create-metadata` passes them in CreateVolume's parameters
//! (`csi.storage.k8s.io/pvc/namespace`, `…/pvc/name`, `…/pv/name`), kept in the LV's tags so
//! that `lvs` and ListVolumes tell an operator which claim an LV belongs to, also after the
//! PersistentVolume is gone.
//!
//! Invariants: the values are untrusted text: each is escaped and chunked exactly like the CSI
//! name ([`super::encode`]), so any byte round-trips and every tag stays within LVM's character
//! set; a value longer than [`MAX_BYTES`] (longer than any Kubernetes object name) is refused by
//! [`ClaimRef::from_parameters`] with `InvalidArgument`, never truncated; an empty or absent
//! value records nothing; an LV created before this record existed simply has none.

use super::{chunked, unchunked};
use csi_common::{Error, Result};
use std::collections::HashMap;

/// CreateVolume parameter: the PersistentVolumeClaim's namespace.
pub const PARAM_PVC_NAMESPACE: &str = "csi.storage.k8s.io/pvc/namespace";
/// CreateVolume parameter: the PersistentVolumeClaim's name.
pub const PARAM_PVC_NAME: &str = "csi.storage.k8s.io/pvc/name";
/// CreateVolume parameter: the name the PersistentVolume will have.
pub const PARAM_PV_NAME: &str = "csi.storage.k8s.io/pv/name";
/// The longest value accepted, in bytes: a Kubernetes object name (DNS subdomain) is at most 253.
pub const MAX_BYTES: usize = 253;

/// Tag prefix of the claim's namespace chunks (`carve.pvcns.<i>=<escaped>`).
pub const PVC_NAMESPACE: &str = "carve.pvcns.";
/// Tag prefix of the claim's name chunks (`carve.pvcname.<i>=<escaped>`).
pub const PVC_NAME: &str = "carve.pvcname.";
/// Tag prefix of the PersistentVolume's name chunks (`carve.pvname.<i>=<escaped>`).
pub const PV_NAME: &str = "carve.pvname.";

/// The claim (and PersistentVolume) a volume was provisioned for; empty fields are unknown.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClaimRef {
    /// The PersistentVolumeClaim's namespace.
    pub pvc_namespace: String,
    /// The PersistentVolumeClaim's name.
    pub pvc_name: String,
    /// The PersistentVolume's name.
    pub pv_name: String,
}

impl ClaimRef {
    /// The claim named in CreateVolume's `parameters`; a value over [`MAX_BYTES`] is
    /// `InvalidArgument`.
    pub fn from_parameters(parameters: &HashMap<String, String>) -> Result<Self> {
        let get = |key: &str| -> Result<String> {
            let value = parameters.get(key).map(String::as_str).unwrap_or_default();
            if value.len() > MAX_BYTES {
                return Err(Error::invalid_argument(format!(
                    "parameter {key} is {} bytes, longer than any Kubernetes name ({MAX_BYTES})",
                    value.len()
                )));
            }
            Ok(value.to_string())
        };
        Ok(Self {
            pvc_namespace: get(PARAM_PVC_NAMESPACE)?,
            pvc_name: get(PARAM_PVC_NAME)?,
            pv_name: get(PARAM_PV_NAME)?,
        })
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.pvc_namespace.is_empty() && self.pvc_name.is_empty() && self.pv_name.is_empty()
    }

    /// The tags recording this claim (none for an empty one).
    pub fn tags(&self) -> Vec<String> {
        let mut tags = chunked(PVC_NAMESPACE, &self.pvc_namespace);
        tags.extend(chunked(PVC_NAME, &self.pvc_name));
        tags.extend(chunked(PV_NAME, &self.pv_name));
        tags
    }

    /// The claim recorded in `tags` (empty when none is); malformed chunks are an internal
    /// error, as for every other record tag.
    pub fn from_tags<S: AsRef<str>>(tags: &[S]) -> Result<Self> {
        Ok(Self {
            pvc_namespace: unchunked(PVC_NAMESPACE, tags)?,
            pvc_name: unchunked(PVC_NAME, tags)?,
            pv_name: unchunked(PV_NAME, tags)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvm::tags::{CHUNK, is_valid_tag};
    use csi_common::{Kind, testing::map as params};

    #[test]
    fn provisioner_metadata_is_read_and_round_trips_through_valid_tags() {
        let claim = ClaimRef::from_parameters(&params(&[
            (PARAM_PVC_NAMESPACE, "team-a"),
            (PARAM_PVC_NAME, "data;$(reboot) 名"),
            (PARAM_PV_NAME, "pvc-0b7c9a"),
            ("thin", "true"),
        ]))
        .unwrap();
        assert_eq!(claim.pvc_namespace, "team-a");
        assert_eq!(claim.pvc_name, "data;$(reboot) 名");
        let tags = claim.tags();
        assert!(
            tags.contains(&"carve.pvcns.0=team-a".to_string()),
            "{tags:?}"
        );
        assert!(
            tags.contains(&"carve.pvname.0=pvc-0b7c9a".to_string()),
            "{tags:?}"
        );
        for tag in &tags {
            assert!(is_valid_tag(tag), "{tag:?}");
            assert!(tag.len() <= CHUNK + 20, "{tag:?}");
        }
        assert_eq!(ClaimRef::from_tags(&tags).unwrap(), claim);
    }

    #[test]
    fn absent_metadata_records_nothing() {
        let claim = ClaimRef::from_parameters(&params(&[("thin", "false")])).unwrap();
        assert!(claim.is_empty());
        assert!(claim.tags().is_empty());
        assert_eq!(ClaimRef::from_tags(&["carve.v=1"]).unwrap(), claim);
    }

    #[test]
    fn longest_name_is_kept_whole_and_longer_is_refused() {
        let longest = "%".repeat(MAX_BYTES);
        let claim =
            ClaimRef::from_parameters(&params(&[(PARAM_PVC_NAME, longest.as_str())])).unwrap();
        let tags = claim.tags();
        assert!(
            tags.len() > 1,
            "escaped to {} bytes: chunked",
            3 * MAX_BYTES
        );
        assert_eq!(ClaimRef::from_tags(&tags).unwrap().pvc_name, longest);
        for key in [PARAM_PVC_NAMESPACE, PARAM_PVC_NAME, PARAM_PV_NAME] {
            let long = "a".repeat(MAX_BYTES + 1);
            let err = ClaimRef::from_parameters(&params(&[(key, long.as_str())])).unwrap_err();
            assert_eq!(err.kind(), Kind::InvalidArgument, "{key}");
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn tampered_claim_tags_are_reported() {
        for bad in ["carve.pvcns.0=#ZZ", "carve.pvcname.1=x", "carve.pvname.x=y"] {
            assert!(ClaimRef::from_tags(&[bad]).is_err(), "{bad}");
        }
    }
}
