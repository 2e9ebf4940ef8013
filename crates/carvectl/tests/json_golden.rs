//! Golden output: the exact `--json` line and human outline of every response carvectl prints,
//! each fully populated and in its unset/unknown corners (no oneof, unknown enum numbers, unset
//! wrappers and messages, timestamps with and without nanos, escapes in strings), compared byte
//! for byte with `tests/golden/responses.txt`.
//!
//! The file was written by the hand-written `ToJson` impls that came before the serde derives,
//! so this test is the proof that the derived JSON is identical. Rewrite it only on purpose:
//! `CARVECTL_BLESS=1 cargo nextest run -p carvectl --test json_golden`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use carvectl::ToJson;
use carvectl::csi_proto::v1::*;
use carvectl::render::{render_human, render_json};

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[allow(clippy::unnecessary_wraps)] // the value of an optional message field
fn timestamp(seconds: i64, nanos: i32) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos })
}

fn topology(zone: &str) -> Topology {
    Topology {
        segments: map(&[("zone", zone), ("rack", "r1"), ("a.example.com/x", "")]),
    }
}

fn volume() -> Volume {
    Volume {
        capacity_bytes: 1 << 30,
        volume_id: "vol-1".into(),
        volume_context: map(&[
            ("iqn", "iqn.2026-01.x:vol-1"),
            ("b", "2"),
            ("esc", "q\"\\é\n"),
        ]),
        content_source: Some(VolumeContentSource {
            r#type: Some(volume_content_source::Type::Snapshot(
                volume_content_source::SnapshotSource {
                    snapshot_id: "snap-1".into(),
                },
            )),
        }),
        accessible_topology: vec![topology("a"), topology("b")],
    }
}

fn snapshot() -> Snapshot {
    Snapshot {
        size_bytes: i64::MAX,
        snapshot_id: "snap-1".into(),
        source_volume_id: "vol-1".into(),
        creation_time: timestamp(1_764_547_200, 123_456_789),
        ready_to_use: true,
        group_snapshot_id: "group-1".into(),
    }
}

#[allow(clippy::unnecessary_wraps)] // the value of an optional message field
fn condition() -> Option<VolumeCondition> {
    Some(VolumeCondition {
        abnormal: true,
        message: "degraded".into(),
    })
}

fn capabilities() -> Vec<VolumeCapability> {
    use volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
    vec![
        VolumeCapability {
            access_mode: Some(AccessMode { mode: 1 }),
            access_type: Some(AccessType::Mount(MountVolume {
                fs_type: "ext4".into(),
                mount_flags: vec!["ro".into(), "noatime".into()],
                volume_mount_group: "1000".into(),
            })),
        },
        VolumeCapability {
            access_mode: Some(AccessMode { mode: 7 }),
            access_type: Some(AccessType::Block(BlockVolume {})),
        },
        VolumeCapability {
            access_mode: Some(AccessMode { mode: 99 }),
            access_type: None,
        },
        VolumeCapability::default(),
    ]
}

/// One rendered case: its name, the `--json` line and the human outline.
type Case = (&'static str, String, String);

/// Every case, rendered.
fn cases() -> Vec<Case> {
    #[allow(clippy::needless_pass_by_value)] // each case is written as a literal
    fn case<T: ToJson>(name: &'static str, response: T) -> Case {
        (name, render_json(&response), render_human(&response))
    }
    use controller_service_capability::{Rpc as CRpc, Type as CType};
    use node_service_capability::{Rpc as NRpc, Type as NType};
    use plugin_capability::{Service, Type as PType, VolumeExpansion};
    let plugin_caps = (0..=4)
        .map(|t| PluginCapability {
            r#type: Some(PType::Service(Service { r#type: t })),
        })
        .chain((0..=3).map(|t| PluginCapability {
            r#type: Some(PType::VolumeExpansion(VolumeExpansion { r#type: t })),
        }))
        .chain([
            PluginCapability {
                r#type: Some(PType::Service(Service { r#type: 1000 })),
            },
            PluginCapability { r#type: None },
        ])
        .collect();
    let controller_caps = (0..=16)
        .chain([-1, 1000])
        .map(|t| ControllerServiceCapability {
            r#type: Some(CType::Rpc(CRpc { r#type: t })),
        })
        .chain([ControllerServiceCapability { r#type: None }])
        .collect();
    let node_caps = (0..=7)
        .chain([1000])
        .map(|t| NodeServiceCapability {
            r#type: Some(NType::Rpc(NRpc { r#type: t })),
        })
        .chain([NodeServiceCapability { r#type: None }])
        .collect();
    let list_entry = |status| list_volumes_response::Entry {
        volume: Some(volume()),
        status,
    };
    vec![
        case(
            "GetPluginInfo",
            GetPluginInfoResponse {
                name: "carve.example.com".into(),
                vendor_version: "0.1.0".into(),
                manifest: map(&[("commit", "abc"), ("built", "2026-11-30")]),
            },
        ),
        case("GetPluginInfo/empty", GetPluginInfoResponse::default()),
        case(
            "GetPluginCapabilities",
            GetPluginCapabilitiesResponse {
                capabilities: plugin_caps,
            },
        ),
        case("Probe/unset", ProbeResponse { ready: None }),
        case("Probe/true", ProbeResponse { ready: Some(true) }),
        case("Probe/false", ProbeResponse { ready: Some(false) }),
        case(
            "CreateVolume",
            CreateVolumeResponse {
                volume: Some(volume()),
            },
        ),
        case(
            "CreateVolume/from-volume",
            CreateVolumeResponse {
                volume: Some(Volume {
                    content_source: Some(VolumeContentSource {
                        r#type: Some(volume_content_source::Type::Volume(
                            volume_content_source::VolumeSource {
                                volume_id: "vol-0".into(),
                            },
                        )),
                    }),
                    ..volume()
                }),
            },
        ),
        case(
            "CreateVolume/empty-source",
            CreateVolumeResponse {
                volume: Some(Volume {
                    content_source: Some(VolumeContentSource { r#type: None }),
                    ..Volume::default()
                }),
            },
        ),
        case("CreateVolume/unset", CreateVolumeResponse { volume: None }),
        case("DeleteVolume", DeleteVolumeResponse {}),
        case(
            "ControllerPublishVolume",
            ControllerPublishVolumeResponse {
                publish_context: map(&[("lun", "3"), ("node", "node-1"), ("readonly", "true")]),
            },
        ),
        case(
            "ControllerUnpublishVolume",
            ControllerUnpublishVolumeResponse {},
        ),
        case(
            "ValidateVolumeCapabilities",
            ValidateVolumeCapabilitiesResponse {
                confirmed: Some(validate_volume_capabilities_response::Confirmed {
                    volume_context: map(&[("iqn", "x")]),
                    volume_capabilities: capabilities(),
                    parameters: map(&[("pool", "fast"), ("fs", "xfs")]),
                    mutable_parameters: map(&[("iops", "100")]),
                }),
                message: "ok".into(),
            },
        ),
        case(
            "ValidateVolumeCapabilities/unconfirmed",
            ValidateVolumeCapabilitiesResponse {
                confirmed: None,
                message: "unsupported".into(),
            },
        ),
        case(
            "ListVolumes",
            ListVolumesResponse {
                entries: vec![
                    list_entry(Some(list_volumes_response::VolumeStatus {
                        published_node_ids: vec!["n1".into(), "n2".into()],
                        volume_condition: condition(),
                    })),
                    list_entry(Some(list_volumes_response::VolumeStatus::default())),
                    list_entry(None),
                    list_volumes_response::Entry::default(),
                ],
                next_token: "t2".into(),
            },
        ),
        case("ListVolumes/empty", ListVolumesResponse::default()),
        case(
            "ControllerGetVolume",
            ControllerGetVolumeResponse {
                volume: Some(volume()),
                status: Some(controller_get_volume_response::VolumeStatus {
                    published_node_ids: vec!["n1".into()],
                    volume_condition: condition(),
                }),
            },
        ),
        case(
            "ControllerGetVolume/unset",
            ControllerGetVolumeResponse::default(),
        ),
        case("ControllerModifyVolume", ControllerModifyVolumeResponse {}),
        case(
            "GetCapacity",
            GetCapacityResponse {
                available_capacity: 5 << 40,
                maximum_volume_size: Some(4 << 30),
                minimum_volume_size: Some(0),
            },
        ),
        case("GetCapacity/unset", GetCapacityResponse::default()),
        case(
            "ControllerGetCapabilities",
            ControllerGetCapabilitiesResponse {
                capabilities: controller_caps,
            },
        ),
        case(
            "CreateSnapshot",
            CreateSnapshotResponse {
                snapshot: Some(snapshot()),
            },
        ),
        case("CreateSnapshot/unset", CreateSnapshotResponse::default()),
        case("DeleteSnapshot", DeleteSnapshotResponse {}),
        case(
            "ListSnapshots",
            ListSnapshotsResponse {
                entries: vec![
                    list_snapshots_response::Entry {
                        snapshot: Some(snapshot()),
                    },
                    list_snapshots_response::Entry {
                        snapshot: Some(Snapshot {
                            creation_time: timestamp(0, 0),
                            ..Snapshot::default()
                        }),
                    },
                    list_snapshots_response::Entry {
                        snapshot: Some(Snapshot {
                            creation_time: timestamp(-1, 1_000),
                            ..Snapshot::default()
                        }),
                    },
                    list_snapshots_response::Entry {
                        snapshot: Some(Snapshot {
                            creation_time: timestamp(253_402_300_799, 500_000_000),
                            ..Snapshot::default()
                        }),
                    },
                    list_snapshots_response::Entry { snapshot: None },
                ],
                next_token: String::new(),
            },
        ),
        case(
            "GetSnapshot",
            GetSnapshotResponse {
                snapshot: Some(snapshot()),
            },
        ),
        case(
            "ControllerExpandVolume",
            ControllerExpandVolumeResponse {
                capacity_bytes: 2 << 30,
                node_expansion_required: true,
            },
        ),
        case("NodeStageVolume", NodeStageVolumeResponse {}),
        case("NodeUnstageVolume", NodeUnstageVolumeResponse {}),
        case("NodePublishVolume", NodePublishVolumeResponse {}),
        case("NodeUnpublishVolume", NodeUnpublishVolumeResponse {}),
        case(
            "NodeGetVolumeStats",
            NodeGetVolumeStatsResponse {
                usage: (0..=3)
                    .map(|unit| VolumeUsage {
                        available: 1 << 20,
                        total: 3 << 20,
                        used: -(2 << 20),
                        unit,
                    })
                    .collect(),
                volume_condition: condition(),
            },
        ),
        case(
            "NodeGetVolumeStats/empty",
            NodeGetVolumeStatsResponse::default(),
        ),
        case(
            "NodeGetCapabilities",
            NodeGetCapabilitiesResponse {
                capabilities: node_caps,
            },
        ),
        case(
            "NodeGetInfo",
            NodeGetInfoResponse {
                node_id: "iqn.2026-01.example:node-1".into(),
                max_volumes_per_node: 64,
                accessible_topology: Some(topology("a")),
            },
        ),
        case("NodeGetInfo/unset", NodeGetInfoResponse::default()),
        case(
            "NodeExpandVolume",
            NodeExpandVolumeResponse {
                capacity_bytes: i64::MIN,
            },
        ),
    ]
}

/// All cases rendered: `## name`, the JSON line, the human outline.
fn rendered() -> String {
    let mut out = String::new();
    for (name, json, human) in cases() {
        let _ = write!(out, "## {name}\n{json}\n{human}\n");
    }
    out
}

#[test]
fn every_response_renders_exactly_as_the_golden_file() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/responses.txt");
    let actual = rendered();
    if std::env::var_os("CARVECTL_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        cases().len(),
        39,
        "a case was added or lost: update the count"
    );
    for (got, want) in actual.lines().zip(expected.lines()) {
        assert_eq!(got, want, "first differing line");
    }
    assert_eq!(actual, expected);
}
