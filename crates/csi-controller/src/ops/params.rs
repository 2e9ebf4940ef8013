//! StorageClass parameters: the keys Carve understands, strictly validated.
//!
//! Invariants: an unknown key is `InvalidArgument` (a typo must not silently give another kind
//! of volume), except the CO's reserved `csi.storage.k8s.io/*` keys, which are ignored;
//! `thin=true` needs a configured thin pool.

use csi_common::{Error, Result};
use std::collections::HashMap;

/// The parameter choosing a thin LV (`true`) or a linear one (`false`, the default).
pub const THIN: &str = "thin";
const RESERVED_PREFIX: &str = "csi.storage.k8s.io/";

/// Validated parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params {
    /// Thin LV in the configured pool.
    pub thin: bool,
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

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn thin_is_parsed_and_unknown_keys_refused() {
        assert!(parse(&map(&[("thin", "TRUE")]), Some("pool")).unwrap().thin);
        assert!(!parse(&map(&[]), Some("pool")).unwrap().thin);
        let reserved = map(&[("csi.storage.k8s.io/pvc/name", "x"), ("thin", "false")]);
        assert!(!parse(&reserved, None).unwrap().thin);
        for bad in [
            map(&[("thin", "yes")]),
            map(&[("thinn", "true")]),
            map(&[("thin", "true")]),
        ] {
            assert_eq!(
                parse(&bad, None).unwrap_err().kind(),
                Kind::InvalidArgument,
                "{bad:?}"
            );
        }
    }
}
