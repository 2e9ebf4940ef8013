//! Stateless Node cases: NodeGetInfo (what kubelet registers), the capabilities, and every Node
//! RPC given an id Carve never issued, a volume not staged here, a path that holds no volume or a
//! missing field (spec.md, each RPC's error table). None may run a tool or create a path.

use super::{ABSENT_VOLUME, FOREIGN_VOLUME, Table, stateless::Env};
use carvectl::{
    Client,
    request::{capacity_range, mount_capability},
};
use csi_proto::v1::{
    NodeExpandVolumeRequest, NodeGetCapabilitiesRequest, NodeGetInfoRequest,
    NodeGetVolumeStatsRequest, NodePublishVolumeRequest, NodeStageVolumeRequest,
    NodeUnpublishVolumeRequest, NodeUnstageVolumeRequest, VolumeCapability,
    node_service_capability::rpc::Type as NodeRpc, volume_capability::access_mode::Mode,
};
use std::{collections::HashMap, path::Path};
use tonic::Code::{self, FailedPrecondition, InvalidArgument, NotFound, Ok};

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A publish_context for a volume that does not exist (well-formed, so only the id decides).
fn context() -> HashMap<String, String> {
    HashMap::from([
        (
            "targetIqn".into(),
            format!("iqn.2024-01.dev.carve:{FOREIGN_VOLUME}"),
        ),
        ("portals".into(), "127.0.0.1:3260".into()),
        ("lun".into(), "0".into()),
        (
            "serial".into(),
            "0123abcd-0000-4000-8000-000000000001".into(),
        ),
    ])
}

/// Runs the stateless Node cases.
pub async fn node_cases(t: &mut Table, client: &Client, env: &Env<'_>) {
    let mut n = client.node.clone();
    let cap = mount_capability(Mode::SingleNodeWriter, "ext4", &[], "");
    if let Some(info) = t.code(
        "node_get_info__answers",
        Ok,
        n.node_get_info(NodeGetInfoRequest {}).await,
    ) {
        let info = info.into_inner();
        t.check(
            "node_get_info__node_id_is_the_initiator",
            info.node_id == env.node_id,
            format!("{info:?}"),
        );
        t.check(
            "node_get_info__max_volumes_per_node",
            info.max_volumes_per_node == env.max_volumes,
            format!(
                "want {}, got {}",
                env.max_volumes, info.max_volumes_per_node
            ),
        );
    }
    let answer = n.node_get_capabilities(NodeGetCapabilitiesRequest {}).await;
    let wanted = [
        NodeRpc::StageUnstageVolume,
        NodeRpc::GetVolumeStats,
        NodeRpc::ExpandVolume,
    ]
    .map(|r| (r.as_str_name(), r as i32));
    t.capabilities("node_get_capabilities", answer, &wanted);

    let stage =
        |volume: &str, staging: String, cap: Option<&VolumeCapability>| NodeStageVolumeRequest {
            volume_id: volume.into(),
            staging_target_path: staging,
            volume_capability: cap.cloned(),
            publish_context: context(),
            ..Default::default()
        };
    let staging = s(env.staging);
    let target = s(env.target);
    for (case, want, volume, staging, cap) in [
        (
            "node_stage_volume__volume_id_missing",
            InvalidArgument,
            "",
            staging.clone(),
            Some(&cap),
        ),
        (
            "node_stage_volume__staging_target_path_missing",
            InvalidArgument,
            FOREIGN_VOLUME,
            String::new(),
            Some(&cap),
        ),
        (
            "node_stage_volume__volume_capability_missing",
            InvalidArgument,
            FOREIGN_VOLUME,
            staging.clone(),
            None,
        ),
        (
            "node_stage_volume__volume_not_found",
            NotFound,
            FOREIGN_VOLUME,
            staging.clone(),
            Some(&cap),
        ),
    ] {
        t.code(
            case,
            want,
            n.node_stage_volume(stage(volume, staging, cap)).await,
        );
    }

    let unstage = |volume: &str, staging: String| NodeUnstageVolumeRequest {
        volume_id: volume.into(),
        staging_target_path: staging,
    };
    for (case, want, volume, staging) in [
        (
            "node_unstage_volume__volume_id_missing",
            InvalidArgument,
            "",
            staging.clone(),
        ),
        (
            "node_unstage_volume__staging_target_path_missing",
            InvalidArgument,
            FOREIGN_VOLUME,
            String::new(),
        ),
        (
            "node_unstage_volume__foreign_volume_not_staged_is_ok",
            Ok,
            FOREIGN_VOLUME,
            staging.clone(),
        ),
        (
            "node_unstage_volume__absent_volume_not_staged_is_ok",
            Ok,
            ABSENT_VOLUME,
            staging.clone(),
        ),
    ] {
        t.code(
            case,
            want,
            n.node_unstage_volume(unstage(volume, staging)).await,
        );
    }

    let publish =
        |volume: &str, staging: String, target: String, cap: Option<&VolumeCapability>| {
            NodePublishVolumeRequest {
                volume_id: volume.into(),
                staging_target_path: staging,
                target_path: target,
                volume_capability: cap.cloned(),
                publish_context: context(),
                ..Default::default()
            }
        };
    for (case, want, volume, staging, target, cap) in [
        (
            "node_publish_volume__volume_id_missing",
            InvalidArgument,
            "",
            staging.clone(),
            target.clone(),
            Some(&cap),
        ),
        (
            "node_publish_volume__staging_target_path_missing",
            FailedPrecondition,
            FOREIGN_VOLUME,
            String::new(),
            target.clone(),
            Some(&cap),
        ),
        (
            "node_publish_volume__target_path_missing",
            InvalidArgument,
            FOREIGN_VOLUME,
            staging.clone(),
            String::new(),
            Some(&cap),
        ),
        (
            "node_publish_volume__volume_capability_missing",
            InvalidArgument,
            FOREIGN_VOLUME,
            staging.clone(),
            target.clone(),
            None,
        ),
        (
            "node_publish_volume__volume_not_found",
            NotFound,
            FOREIGN_VOLUME,
            staging.clone(),
            target.clone(),
            Some(&cap),
        ),
        (
            "node_publish_volume__volume_not_staged",
            NotFound,
            ABSENT_VOLUME,
            staging.clone(),
            target.clone(),
            Some(&cap),
        ),
    ] {
        let req = publish(volume, staging, target, cap);
        t.code(case, want, n.node_publish_volume(req).await);
    }

    let unpublish = |volume: &str, target: String| NodeUnpublishVolumeRequest {
        volume_id: volume.into(),
        target_path: target,
    };
    for (case, want, volume, target) in [
        (
            "node_unpublish_volume__volume_id_missing",
            InvalidArgument,
            "",
            target.clone(),
        ),
        (
            "node_unpublish_volume__target_path_missing",
            InvalidArgument,
            FOREIGN_VOLUME,
            String::new(),
        ),
        (
            "node_unpublish_volume__foreign_volume_not_published_is_ok",
            Ok,
            FOREIGN_VOLUME,
            target.clone(),
        ),
    ] {
        t.code(
            case,
            want,
            n.node_unpublish_volume(unpublish(volume, target)).await,
        );
    }

    let stats = |volume: &str, path: String| NodeGetVolumeStatsRequest {
        volume_id: volume.into(),
        volume_path: path,
        staging_target_path: String::new(),
    };
    let expand = |volume: &str, path: String| NodeExpandVolumeRequest {
        volume_id: volume.into(),
        volume_path: path,
        capacity_range: capacity_range(1 << 30, 0),
        ..Default::default()
    };
    // NodeGetVolumeStats and NodeExpandVolume (`<rpc>__<case>`) refuse the same inputs alike;
    // only the stats are asked for a path that does not exist.
    let rows: [(&str, Code, &str, String); 5] = [
        ("volume_id_missing", InvalidArgument, "", staging.clone()),
        (
            "volume_path_missing",
            InvalidArgument,
            FOREIGN_VOLUME,
            String::new(),
        ),
        (
            "volume_not_found",
            NotFound,
            FOREIGN_VOLUME,
            staging.clone(),
        ),
        (
            "volume_not_staged",
            NotFound,
            ABSENT_VOLUME,
            staging.clone(),
        ),
        ("relative_path", NotFound, ABSENT_VOLUME, "some/path".into()),
    ];
    for (case, want, volume, path) in rows.clone() {
        let answer = n.node_get_volume_stats(stats(volume, path)).await;
        t.code(&format!("node_get_volume_stats__{case}"), want, answer);
    }
    let nonexistent = stats(ABSENT_VOLUME, format!("{staging}/nonexistent"));
    t.code(
        "node_get_volume_stats__nonexistent_path",
        NotFound,
        n.node_get_volume_stats(nonexistent).await,
    );
    for (case, want, volume, path) in rows {
        let answer = n.node_expand_volume(expand(volume, path)).await;
        t.code(&format!("node_expand_volume__{case}"), want, answer);
    }
}
