//! CSI v1.12.0 protocol: generated messages, `*_server` and `*_client` modules.
//!
//! Invariant: no `Debug` output of a request can contain a secret. Every message with a
//! `csi_secret` field prints a copy whose secret values are replaced by [`REDACTED`]; the
//! [`HasSecrets`] marker lists them, and a test checks each with a sentinel.
//!
//! Responses, and the messages they hold, implement `serde::Serialize` (proto field names,
//! enum names, `int64` as numbers, RFC 3339 timestamps: what `carvectl --json` prints);
//! requests do not, so a secret cannot be serialized either.
//!
//! [`agent`] holds Carve's own storage-agent API (`carve.agent.v1`), generated the same way.

#![allow(missing_debug_implementations)]

/// The CSI spec version this crate implements.
pub const CSI_SPEC_VERSION: &str = "1.12.0";

/// What a secret value is replaced with wherever it would be printed.
pub const REDACTED: &str = "<redacted>";

/// Marker for request types that carry a `csi_secret` map.
pub trait HasSecrets {}

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("csi.v1");

    /// Plain copies of the messages with derived `Debug`, only for printing redacted requests.
    #[allow(dead_code)]
    pub(crate) mod mirror {
        include!(concat!(env!("OUT_DIR"), "/mirror/csi.v1.rs"));
    }

    include!(concat!(env!("OUT_DIR"), "/redacted_debug.rs"));
    include!(concat!(env!("OUT_DIR"), "/enum_json.rs"));
}

pub mod agent;
mod serialize;

fn redact_map(map: &mut std::collections::HashMap<String, String>) {
    for value in map.values_mut() {
        *value = REDACTED.to_string();
    }
}

/// Prints `message` through its `Debug`-deriving mirror type `M` (same wire format).
fn mirror_debug<M: prost::Message + Default + std::fmt::Debug>(
    message: &impl prost::Message,
    f: &mut std::fmt::Formatter<'_>,
) -> std::fmt::Result {
    match M::decode(message.encode_to_vec().as_slice()) {
        Ok(mirror) => std::fmt::Debug::fmt(&mirror, f),
        Err(_) => f.write_str("<unprintable request>"),
    }
}

#[cfg(test)]
mod tests {
    use super::v1::*;
    use std::collections::HashMap;

    const SENTINEL: &str = "s3cr3t-SENTINEL-value";

    fn secrets() -> HashMap<String, String> {
        HashMap::from([("password".to_string(), SENTINEL.to_string())])
    }

    fn assert_redacted(debug: &str, visible: &str) {
        assert!(!debug.contains(SENTINEL), "secret leaked: {debug}");
        assert!(
            debug.contains(super::REDACTED),
            "no redaction marker: {debug}"
        );
        assert!(
            debug.contains("password"),
            "secret keys stay visible: {debug}"
        );
        assert!(
            debug.contains(visible),
            "other fields must still print: {debug}"
        );
    }

    #[test]
    #[allow(clippy::needless_update)] // some requests have no fields beyond the two set
    fn every_request_with_secrets_redacts_them() {
        macro_rules! check {
            ($($ty:ident { $field:ident }),* $(,)?) => {$(
                let req = $ty { secrets: secrets(), $field: "visible-id".into(), ..Default::default() };
                assert_redacted(&format!("{req:?}"), "visible-id");
                assert_redacted(&format!("{req:#?}"), "visible-id");
            )*};
        }
        check!(
            CreateVolumeRequest { name },
            DeleteVolumeRequest { volume_id },
            ControllerPublishVolumeRequest { volume_id },
            ControllerUnpublishVolumeRequest { volume_id },
            ValidateVolumeCapabilitiesRequest { volume_id },
            ControllerModifyVolumeRequest { volume_id },
            CreateSnapshotRequest { name },
            DeleteSnapshotRequest { snapshot_id },
            ListSnapshotsRequest { snapshot_id },
            GetSnapshotRequest { snapshot_id },
            ControllerExpandVolumeRequest { volume_id },
            NodeStageVolumeRequest { volume_id },
            NodePublishVolumeRequest { volume_id },
            NodeExpandVolumeRequest { volume_id },
            CreateVolumeGroupSnapshotRequest { name },
            DeleteVolumeGroupSnapshotRequest { group_snapshot_id },
            GetVolumeGroupSnapshotRequest { group_snapshot_id },
        );
    }

    /// Compiles only for types that do not implement `Serialize` (two impls would apply).
    trait NotSerialize<Marker> {
        fn check() {}
    }
    impl<T: ?Sized> NotSerialize<()> for T {}
    struct Serializable;
    impl<T: ?Sized + serde::Serialize> NotSerialize<Serializable> for T {}

    #[test]
    fn requests_with_secrets_cannot_be_serialized() {
        macro_rules! check {
            ($($ty:ty),* $(,)?) => {$( <$ty as NotSerialize<_>>::check(); )*};
        }
        check!(
            CreateVolumeRequest,
            DeleteVolumeRequest,
            ControllerPublishVolumeRequest,
            ControllerUnpublishVolumeRequest,
            ValidateVolumeCapabilitiesRequest,
            ControllerModifyVolumeRequest,
            CreateSnapshotRequest,
            DeleteSnapshotRequest,
            ListSnapshotsRequest,
            GetSnapshotRequest,
            ControllerExpandVolumeRequest,
            NodeStageVolumeRequest,
            NodePublishVolumeRequest,
            NodeExpandVolumeRequest,
            CreateVolumeGroupSnapshotRequest,
            DeleteVolumeGroupSnapshotRequest,
            GetVolumeGroupSnapshotRequest,
        );
    }

    #[test]
    fn redaction_does_not_alter_the_request() {
        let req = NodeStageVolumeRequest {
            secrets: secrets(),
            ..Default::default()
        };
        let _ = format!("{req:?}");
        assert_eq!(req.secrets["password"], SENTINEL);
    }

    #[test]
    fn messages_without_secrets_keep_derived_debug() {
        let req = NodeUnstageVolumeRequest {
            volume_id: "v1".into(),
            staging_target_path: "/stage".into(),
        };
        assert!(format!("{req:?}").contains("/stage"));
    }
}
