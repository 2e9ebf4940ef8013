//! [`ToJson`]: the JSON view of every CSI response this tool prints, from the `Serialize`
//! that csi-proto derives on responses (see its `build/serialize.rs`).
//!
//! Conventions: proto field names in snake_case; enums as their spec names
//! (`SINGLE_NODE_WRITER`; an unknown number stays a number); unset messages and unset
//! optional scalars as `null`; string maps as objects with sorted keys (a `serde_json::Value`
//! object is sorted); timestamps as RFC 3339 strings; `int64` as JSON numbers. Only responses
//! implement `Serialize`: requests carry secrets. `tests/json_golden.rs` pins every byte.

use serde::Serialize;
use serde_json::Value;

/// A JSON view of a CSI message.
pub trait ToJson {
    /// The JSON value of `self`.
    fn to_json(&self) -> Value;
}

impl<T: Serialize> ToJson for T {
    fn to_json(&self) -> Value {
        // Cannot fail: every map key is a string and no serializer reports an error.
        serde_json::to_value(self).expect("a CSI response serializes to JSON")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{from_snapshot, mount_capability};
    use csi_proto::v1::*;
    use serde_json::json;
    use std::collections::HashMap;
    use volume_capability::access_mode::Mode;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn create_volume_shape() {
        let response = CreateVolumeResponse {
            volume: Some(Volume {
                capacity_bytes: 1 << 30,
                volume_id: "vol-1".into(),
                volume_context: map(&[("iqn", "iqn.x"), ("b", "2")]),
                content_source: Some(from_snapshot("snap-1")),
                accessible_topology: vec![Topology {
                    segments: map(&[("zone", "a")]),
                }],
            }),
        };
        assert_eq!(
            response.to_json(),
            json!({ "volume": {
                "volume_id": "vol-1",
                "capacity_bytes": 1_073_741_824,
                "volume_context": { "b": "2", "iqn": "iqn.x" },
                "content_source": { "snapshot": { "snapshot_id": "snap-1" } },
                "accessible_topology": [ { "segments": { "zone": "a" } } ],
            }})
        );
        let keys: Vec<String> = response.to_json()["volume"]["volume_context"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["b", "iqn"]);
        assert_eq!(
            CreateVolumeResponse { volume: None }.to_json(),
            json!({ "volume": null })
        );
    }

    #[test]
    fn statuses_and_conditions() {
        let response = ListVolumesResponse {
            entries: vec![list_volumes_response::Entry {
                volume: Some(Volume {
                    volume_id: "v".into(),
                    ..Default::default()
                }),
                status: Some(list_volumes_response::VolumeStatus {
                    published_node_ids: vec!["n1".into(), "n2".into()],
                    volume_condition: Some(VolumeCondition {
                        abnormal: true,
                        message: "degraded".into(),
                    }),
                }),
            }],
            next_token: "t2".into(),
        };
        let value = response.to_json();
        assert_eq!(value["next_token"], "t2");
        assert_eq!(
            value["entries"][0]["status"]["published_node_ids"],
            json!(["n1", "n2"])
        );
        assert_eq!(
            value["entries"][0]["status"]["volume_condition"],
            json!({ "abnormal": true, "message": "degraded" })
        );
        assert_eq!(value["entries"][0]["volume"]["content_source"], Value::Null);

        let get = ControllerGetVolumeResponse {
            volume: None,
            status: None,
        };
        assert_eq!(get.to_json(), json!({ "volume": null, "status": null }));
    }

    #[test]
    fn capabilities_and_enums() {
        let response = ControllerGetCapabilitiesResponse {
            capabilities: vec![
                ControllerServiceCapability {
                    r#type: Some(controller_service_capability::Type::Rpc(
                        controller_service_capability::Rpc {
                            r#type: controller_service_capability::rpc::Type::CreateDeleteVolume
                                as i32,
                        },
                    )),
                },
                ControllerServiceCapability {
                    r#type: Some(controller_service_capability::Type::Rpc(
                        controller_service_capability::Rpc { r#type: 999 },
                    )),
                },
            ],
        };
        assert_eq!(
            response.to_json(),
            json!({ "capabilities": [ { "rpc": "CREATE_DELETE_VOLUME" }, { "rpc": 999 } ] })
        );

        let plugin = GetPluginCapabilitiesResponse {
            capabilities: vec![
                PluginCapability {
                    r#type: Some(plugin_capability::Type::Service(
                        plugin_capability::Service {
                            r#type: plugin_capability::service::Type::ControllerService as i32,
                        },
                    )),
                },
                PluginCapability {
                    r#type: Some(plugin_capability::Type::VolumeExpansion(
                        plugin_capability::VolumeExpansion {
                            r#type: plugin_capability::volume_expansion::Type::Online as i32,
                        },
                    )),
                },
            ],
        };
        assert_eq!(
            plugin.to_json(),
            json!({ "capabilities": [ { "service": "CONTROLLER_SERVICE" }, { "volume_expansion": "ONLINE" } ] })
        );
    }

    #[test]
    fn validate_confirmed_capabilities() {
        let response = ValidateVolumeCapabilitiesResponse {
            confirmed: Some(validate_volume_capabilities_response::Confirmed {
                volume_context: HashMap::new(),
                volume_capabilities: vec![mount_capability(
                    Mode::SingleNodeWriter,
                    "ext4",
                    &["ro"],
                    "",
                )],
                parameters: map(&[("pool", "fast")]),
                mutable_parameters: HashMap::new(),
            }),
            message: String::new(),
        };
        assert_eq!(
            response.to_json()["confirmed"]["volume_capabilities"][0],
            json!({
                "access_mode": "SINGLE_NODE_WRITER",
                "mount": { "fs_type": "ext4", "mount_flags": ["ro"], "volume_mount_group": "" },
            })
        );
        assert_eq!(
            response.to_json()["confirmed"]["parameters"],
            json!({ "pool": "fast" })
        );
    }

    #[test]
    fn snapshots_stats_info_probe() {
        let snapshot = Snapshot {
            size_bytes: 10,
            snapshot_id: "s".into(),
            source_volume_id: "v".into(),
            creation_time: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: 0,
            }),
            ready_to_use: true,
            group_snapshot_id: String::new(),
        };
        let value = GetSnapshotResponse {
            snapshot: Some(snapshot),
        }
        .to_json();
        assert_eq!(value["snapshot"]["creation_time"], "1970-01-01T00:00:00Z");
        assert_eq!(value["snapshot"]["ready_to_use"], true);

        let stats = NodeGetVolumeStatsResponse {
            usage: vec![VolumeUsage {
                available: 1,
                total: 3,
                used: 2,
                unit: volume_usage::Unit::Bytes as i32,
            }],
            volume_condition: None,
        };
        assert_eq!(
            stats.to_json(),
            json!({ "usage": [ { "available": 1, "total": 3, "used": 2, "unit": "BYTES" } ], "volume_condition": null })
        );

        let info = NodeGetInfoResponse {
            node_id: "n".into(),
            max_volumes_per_node: 0,
            accessible_topology: None,
        };
        assert_eq!(
            info.to_json(),
            json!({ "node_id": "n", "max_volumes_per_node": 0, "accessible_topology": null })
        );
        assert_eq!(
            ProbeResponse { ready: None }.to_json(),
            json!({ "ready": null })
        );
        assert_eq!(
            ProbeResponse { ready: Some(false) }.to_json(),
            json!({ "ready": false })
        );
        assert_eq!(
            GetCapacityResponse {
                available_capacity: 5,
                maximum_volume_size: Some(4),
                minimum_volume_size: None
            }
            .to_json(),
            json!({ "available_capacity": 5, "maximum_volume_size": 4, "minimum_volume_size": null })
        );
        assert_eq!(DeleteVolumeResponse {}.to_json(), json!({}));
    }
}
