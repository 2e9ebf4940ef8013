//! Carve's agent API, `carve.agent.v1`: the domain operations of one storage host (not CSI),
//! served by `carve-agent` over mutual TLS. Generated from `proto/carve/agent/v1/agent.proto`,
//! which documents every field.
//!
//! Invariant: no `Debug` output can contain a CHAP secret: [`v1::Chap`] prints its keys and
//! [`crate::REDACTED`] for every value, and the requests that hold one print it that way.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("carve.agent.v1");

    impl ::core::fmt::Debug for Chap {
        fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
            let mut keys: Vec<&String> = self.secrets.keys().collect();
            keys.sort();
            f.debug_map()
                .entries(keys.into_iter().map(|k| (k, crate::REDACTED)))
                .finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::v1::{Chap, PublishRequest};
    use std::collections::HashMap;

    #[test]
    fn chap_secrets_never_print() {
        let sentinel = "s3cr3t-SENTINEL-value";
        let request = PublishRequest {
            volume_id: "csi-v-1".into(),
            chap: Some(Chap {
                secrets: HashMap::from([
                    ("chapUsername".to_string(), sentinel.to_string()),
                    ("chapPassword".to_string(), sentinel.to_string()),
                ]),
            }),
            ..Default::default()
        };
        for debug in [format!("{request:?}"), format!("{request:#?}")] {
            assert!(!debug.contains(sentinel), "secret leaked: {debug}");
            assert!(debug.contains("chapPassword"), "keys stay visible: {debug}");
            assert!(debug.contains(crate::REDACTED), "{debug}");
            assert!(debug.contains("csi-v-1"), "other fields print: {debug}");
        }
    }
}
