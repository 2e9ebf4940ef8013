//! StorageClass parameters: the keys Carve understands, strictly validated.
//!
//! Invariants: an unknown key is `InvalidArgument` (a typo must not silently give another kind
//! of volume), except the CO's reserved `csi.storage.k8s.io/*` keys, which never change the
//! volume: the external-provisioner's `--extra-create-metadata` keys (PVC namespace and name, PV
//! name) are read into [`Params::claim`] for the LV's tags, every other reserved key is ignored;
//! `thin=true` needs a configured thin pool.

use crate::lvm::tags::ClaimRef;
use csi_common::{Error, Result};
use std::collections::HashMap;

/// The parameter choosing a thin LV (`true`) or a linear one (`false`, the default).
pub const THIN: &str = "thin";
const RESERVED_PREFIX: &str = "csi.storage.k8s.io/";

/// Validated parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Params {
    /// Thin LV in the configured pool.
    pub thin: bool,
    /// The claim the volume is for (`--extra-create-metadata`; empty without it).
    pub claim: ClaimRef,
}

/// Validates `parameters`; `thin_pool` is the configured pool, if any.
pub fn parse(parameters: &HashMap<String, String>, thin_pool: Option<&str>) -> Result<Params> {
    let mut params = Params::default();
    for (key, value) in parameters {
        match key.as_str() {
            THIN => {
                params.thin = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(Error::invalid_argument(format!(
                            "parameter {THIN} must be true or false, not {value:?}"
                        )));
                    }
                }
            }
            k if k.starts_with(RESERVED_PREFIX) => {}
            k => {
                return Err(Error::invalid_argument(format!(
                    "unknown parameter {k:?} (supported: {THIN})"
                )));
            }
        }
    }
    params.claim = ClaimRef::from_parameters(parameters)?;
    if params.thin && thin_pool.is_none() {
        return Err(Error::invalid_argument(
            "thin=true but no thin pool is configured (--thin-pool)",
        ));
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use csi_common::Kind;
    use csi_common::testing::map;

    #[test]
    fn thin_is_parsed_and_unknown_keys_refused() {
        assert!(parse(&map(&[("thin", "TRUE")]), Some("pool")).unwrap().thin);
        assert!(!parse(&map(&[]), Some("pool")).unwrap().thin);
        let reserved = map(&[
            ("csi.storage.k8s.io/pvc/name", "x"),
            ("csi.storage.k8s.io/pvc/namespace", "ns"),
            ("csi.storage.k8s.io/pv/name", "pv-1"),
            ("csi.storage.k8s.io/provisioner-secret-name", "s"),
            ("thin", "false"),
        ]);
        let parsed = parse(&reserved, None).unwrap();
        assert!(!parsed.thin);
        assert_eq!(
            (
                parsed.claim.pvc_namespace.as_str(),
                parsed.claim.pvc_name.as_str(),
                parsed.claim.pv_name.as_str()
            ),
            ("ns", "x", "pv-1")
        );
        for bad in [
            map(&[("thin", "yes")]),
            map(&[("thinn", "true")]),
            map(&[("thin", "true")]),
            map(&[("csi.storage.k8s.io/pvc/name", &"n".repeat(254))]),
        ] {
            assert_eq!(
                parse(&bad, None).unwrap_err().kind(),
                Kind::InvalidArgument,
                "{bad:?}"
            );
        }
    }
}
