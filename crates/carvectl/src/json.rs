//! [`ToJson`]: a hand-written JSON view of every CSI response this tool prints (prost types
//! do not derive `Serialize`).
//!
//! Conventions: proto field names in snake_case; enums as their spec names
//! (`SINGLE_NODE_WRITER`; an unknown number stays a number); unset messages and unset
//! optional scalars as `null`; string maps as objects with sorted keys; timestamps as RFC 3339
//! strings; `int64` as JSON numbers. Only responses implement this: requests carry secrets.

use std::collections::{BTreeMap, HashMap};

use csi_proto::v1::*;
use serde_json::{Map, Value, json};

/// A JSON view of a CSI message.
pub trait ToJson {
    /// The JSON value of `self`.
    fn to_json(&self) -> Value;
}

impl<T: ToJson> ToJson for Option<T> {
    fn to_json(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToJson::to_json)
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn to_json(&self) -> Value {
        Value::Array(self.iter().map(ToJson::to_json).collect())
    }
}

impl ToJson for HashMap<String, String> {
    fn to_json(&self) -> Value {
        let sorted: BTreeMap<&String, &String> = self.iter().collect();
        Value::Object(
            sorted
                .into_iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    }
}

impl ToJson for prost_types::Timestamp {
    fn to_json(&self) -> Value {
        Value::String(self.to_string())
    }
}

/// An enum value as its spec name, or the raw number if this build does not know it.
fn enum_json<E: TryFrom<i32>>(value: i32, name: impl Fn(E) -> &'static str) -> Value {
    E::try_from(value).map_or_else(
        |_| Value::from(value),
        |e| Value::String(name(e).to_string()),
    )
}

/// Messages without fields.
macro_rules! empty_json {
    ($($t:ty),* $(,)?) => {$(
        impl ToJson for $t {
            fn to_json(&self) -> Value { Value::Object(Map::new()) }
        }
    )*};
}

empty_json!(
    DeleteVolumeResponse,
    ControllerUnpublishVolumeResponse,
    ControllerModifyVolumeResponse,
    DeleteSnapshotResponse,
    NodeStageVolumeResponse,
    NodeUnstageVolumeResponse,
    NodePublishVolumeResponse,
    NodeUnpublishVolumeResponse,
);

// ---- Identity ----

impl ToJson for GetPluginInfoResponse {
    fn to_json(&self) -> Value {
        json!({ "name": self.name, "vendor_version": self.vendor_version, "manifest": self.manifest.to_json() })
    }
}

impl ToJson for PluginCapability {
    fn to_json(&self) -> Value {
        use plugin_capability::{Type, service, volume_expansion};
        match &self.r#type {
            Some(Type::Service(s)) => {
                json!({ "service": enum_json(s.r#type, |t: service::Type| t.as_str_name()) })
            }
            Some(Type::VolumeExpansion(v)) => {
                json!({ "volume_expansion": enum_json(v.r#type, |t: volume_expansion::Type| t.as_str_name()) })
            }
            None => json!({}),
        }
    }
}

impl ToJson for GetPluginCapabilitiesResponse {
    fn to_json(&self) -> Value {
        json!({ "capabilities": self.capabilities.to_json() })
    }
}

impl ToJson for ProbeResponse {
    fn to_json(&self) -> Value {
        json!({ "ready": self.ready })
    }
}

// ---- Shared pieces ----

impl ToJson for Topology {
    fn to_json(&self) -> Value {
        json!({ "segments": self.segments.to_json() })
    }
}

impl ToJson for VolumeContentSource {
    fn to_json(&self) -> Value {
        use volume_content_source::Type;
        match &self.r#type {
            Some(Type::Snapshot(s)) => json!({ "snapshot": { "snapshot_id": s.snapshot_id } }),
            Some(Type::Volume(v)) => json!({ "volume": { "volume_id": v.volume_id } }),
            None => json!({}),
        }
    }
}

impl ToJson for Volume {
    fn to_json(&self) -> Value {
        json!({
            "volume_id": self.volume_id,
            "capacity_bytes": self.capacity_bytes,
            "volume_context": self.volume_context.to_json(),
            "content_source": self.content_source.to_json(),
            "accessible_topology": self.accessible_topology.to_json(),
        })
    }
}

impl ToJson for VolumeCapability {
    fn to_json(&self) -> Value {
        use volume_capability::{AccessType, access_mode::Mode};
        let access_mode = self.access_mode.map_or(Value::Null, |m| {
            enum_json(m.mode, |m: Mode| m.as_str_name())
        });
        let mut object = Map::new();
        match &self.access_type {
            Some(AccessType::Block(_)) => {
                object.insert("block".into(), json!({}));
            }
            Some(AccessType::Mount(m)) => {
                let mount = json!({
                    "fs_type": m.fs_type,
                    "mount_flags": m.mount_flags,
                    "volume_mount_group": m.volume_mount_group,
                });
                object.insert("mount".into(), mount);
            }
            None => {}
        }
        object.insert("access_mode".into(), access_mode);
        Value::Object(object)
    }
}

impl ToJson for VolumeCondition {
    fn to_json(&self) -> Value {
        json!({ "abnormal": self.abnormal, "message": self.message })
    }
}

impl ToJson for Snapshot {
    fn to_json(&self) -> Value {
        json!({
            "snapshot_id": self.snapshot_id,
            "source_volume_id": self.source_volume_id,
            "size_bytes": self.size_bytes,
            "creation_time": self.creation_time.to_json(),
            "ready_to_use": self.ready_to_use,
            "group_snapshot_id": self.group_snapshot_id,
        })
    }
}

// ---- Controller ----

impl ToJson for CreateVolumeResponse {
    fn to_json(&self) -> Value {
        json!({ "volume": self.volume.to_json() })
    }
}

impl ToJson for ControllerPublishVolumeResponse {
    fn to_json(&self) -> Value {
        json!({ "publish_context": self.publish_context.to_json() })
    }
}

impl ToJson for ValidateVolumeCapabilitiesResponse {
    fn to_json(&self) -> Value {
        let confirmed = self.confirmed.as_ref().map_or(Value::Null, |c| {
            json!({
                "volume_context": c.volume_context.to_json(),
                "volume_capabilities": c.volume_capabilities.to_json(),
                "parameters": c.parameters.to_json(),
                "mutable_parameters": c.mutable_parameters.to_json(),
            })
        });
        json!({ "confirmed": confirmed, "message": self.message })
    }
}

fn status_json(published_node_ids: &[String], volume_condition: &Option<VolumeCondition>) -> Value {
    json!({ "published_node_ids": published_node_ids, "volume_condition": volume_condition.to_json() })
}

impl ToJson for list_volumes_response::Entry {
    fn to_json(&self) -> Value {
        let status = self.status.as_ref().map_or(Value::Null, |s| {
            status_json(&s.published_node_ids, &s.volume_condition)
        });
        json!({ "volume": self.volume.to_json(), "status": status })
    }
}

impl ToJson for ListVolumesResponse {
    fn to_json(&self) -> Value {
        json!({ "entries": self.entries.to_json(), "next_token": self.next_token })
    }
}

impl ToJson for ControllerGetVolumeResponse {
    fn to_json(&self) -> Value {
        let status = self.status.as_ref().map_or(Value::Null, |s| {
            status_json(&s.published_node_ids, &s.volume_condition)
        });
        json!({ "volume": self.volume.to_json(), "status": status })
    }
}

impl ToJson for GetCapacityResponse {
    fn to_json(&self) -> Value {
        json!({
            "available_capacity": self.available_capacity,
            "maximum_volume_size": self.maximum_volume_size,
            "minimum_volume_size": self.minimum_volume_size,
        })
    }
}

impl ToJson for ControllerServiceCapability {
    fn to_json(&self) -> Value {
        use controller_service_capability::{Type, rpc};
        match &self.r#type {
            Some(Type::Rpc(r)) => {
                json!({ "rpc": enum_json(r.r#type, |t: rpc::Type| t.as_str_name()) })
            }
            None => json!({}),
        }
    }
}

impl ToJson for ControllerGetCapabilitiesResponse {
    fn to_json(&self) -> Value {
        json!({ "capabilities": self.capabilities.to_json() })
    }
}

impl ToJson for CreateSnapshotResponse {
    fn to_json(&self) -> Value {
        json!({ "snapshot": self.snapshot.to_json() })
    }
}

impl ToJson for list_snapshots_response::Entry {
    fn to_json(&self) -> Value {
        json!({ "snapshot": self.snapshot.to_json() })
    }
}

impl ToJson for ListSnapshotsResponse {
    fn to_json(&self) -> Value {
        json!({ "entries": self.entries.to_json(), "next_token": self.next_token })
    }
}

impl ToJson for GetSnapshotResponse {
    fn to_json(&self) -> Value {
        json!({ "snapshot": self.snapshot.to_json() })
    }
}

impl ToJson for ControllerExpandVolumeResponse {
    fn to_json(&self) -> Value {
        json!({ "capacity_bytes": self.capacity_bytes, "node_expansion_required": self.node_expansion_required })
    }
}

// ---- Node ----

impl ToJson for VolumeUsage {
    fn to_json(&self) -> Value {
        json!({
            "available": self.available,
            "total": self.total,
            "used": self.used,
            "unit": enum_json(self.unit, |u: volume_usage::Unit| u.as_str_name()),
        })
    }
}

impl ToJson for NodeGetVolumeStatsResponse {
    fn to_json(&self) -> Value {
        json!({ "usage": self.usage.to_json(), "volume_condition": self.volume_condition.to_json() })
    }
}

impl ToJson for NodeServiceCapability {
    fn to_json(&self) -> Value {
        use node_service_capability::{Type, rpc};
        match &self.r#type {
            Some(Type::Rpc(r)) => {
                json!({ "rpc": enum_json(r.r#type, |t: rpc::Type| t.as_str_name()) })
            }
            None => json!({}),
        }
    }
}

impl ToJson for NodeGetCapabilitiesResponse {
    fn to_json(&self) -> Value {
        json!({ "capabilities": self.capabilities.to_json() })
    }
}

impl ToJson for NodeGetInfoResponse {
    fn to_json(&self) -> Value {
        json!({
            "node_id": self.node_id,
            "max_volumes_per_node": self.max_volumes_per_node,
            "accessible_topology": self.accessible_topology.to_json(),
        })
    }
}

impl ToJson for NodeExpandVolumeResponse {
    fn to_json(&self) -> Value {
        json!({ "capacity_bytes": self.capacity_bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{from_snapshot, mount_capability};
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
                "capacity_bytes": 1073741824,
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
