//! Cases on real volumes (guest only): a volume's whole life in one access type, every mutating
//! RPC repeated (spec.md: "This operation MUST be idempotent"), the paths NodeGetVolumeStats
//! answers for, and what each sidecar reads from the answers (docs/csi-contract.md): capacity,
//! published nodes, node_expansion_required, ready_to_use / creation_time / size_bytes,
//! content_source of restores and clones, and the attach limit.

use super::Table;
use crate::{Driver, volume::MIB};
use carvectl::request::capacity_range;
use csi_proto::v1::{
    ControllerExpandVolumeRequest, ControllerGetVolumeRequest, ControllerPublishVolumeRequest,
    ControllerUnpublishVolumeRequest, CreateVolumeRequest, DeleteVolumeRequest, ListVolumesRequest,
    NodeExpandVolumeRequest, NodeGetVolumeStatsRequest, NodePublishVolumeRequest,
    NodeStageVolumeRequest, NodeUnpublishVolumeRequest, NodeUnstageVolumeRequest,
    ValidateVolumeCapabilitiesRequest, VolumeCapability, volume_usage,
};
use std::collections::HashMap;
use tonic::Code::{AlreadyExists, NotFound, Ok};

/// What one run covers.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    /// `mount` or `block`: the suffix of every case name of this run.
    pub mode: &'a str,
    /// The capability the volume is created, published and staged with.
    pub capability: VolumeCapability,
    /// Also snapshot, restore and clone the volume, and check the attach limit (which must be
    /// 2 on the controller: the volume and the restore fit, the clone does not).
    pub sources: bool,
}

impl Run<'_> {
    /// The case `<name>__<mode>`.
    pub fn case(&self, name: &str) -> String {
        format!("{name}__{}", self.mode)
    }

    /// The cases of a request sent twice: `<rpc>__<first>__<mode>` and
    /// `<rpc>__idempotent_repeat__<mode>`.
    pub fn twice(&self, rpc: &str, first: &str) -> [String; 2] {
        let repeat = format!("{rpc}__idempotent_repeat");
        [self.case(&format!("{rpc}__{first}")), self.case(&repeat)]
    }
}

fn thin() -> HashMap<String, String> {
    HashMap::from([("thin".to_string(), "true".to_string())])
}

/// Runs one volume's life through every RPC; leaves nothing behind when every case passes.
pub async fn lifecycle(t: &mut Table, d: &Driver, run: &Run<'_>) {
    let m = run.mode;
    let case = |name: &str| run.case(name);
    let mut c = d.controller.controller.clone();
    let mut n = d.node.node.clone();
    let cap = run.capability.clone();
    let node_id = d.lab.initiator.clone();
    let create = CreateVolumeRequest {
        name: format!("conformance-{m}"),
        capacity_range: capacity_range(64 * MIB, 0),
        volume_capabilities: vec![cap.clone()],
        parameters: thin(),
        ..Default::default()
    };
    let Some(volume) = t.code(
        &case("create_volume__new"),
        Ok,
        c.create_volume(create.clone()).await,
    ) else {
        return;
    };
    let volume = volume.into_inner().volume.unwrap_or_default();
    let id = volume.volume_id.clone();
    t.check(
        &case("create_volume__capacity_bytes"),
        volume.capacity_bytes >= 64 * MIB,
        format!("{} bytes", volume.capacity_bytes),
    );
    t.check(
        &case("create_volume__empty_has_no_content_source"),
        volume.content_source.is_none(),
        format!("{:?}", volume.content_source),
    );
    let again = t.code(
        &case("create_volume__idempotent_repeat"),
        Ok,
        c.create_volume(create.clone()).await,
    );
    t.check(
        &case("create_volume__idempotent_repeat_same_volume"),
        again.is_some_and(|a| {
            a.into_inner()
                .volume
                .is_some_and(|v| v.volume_id == id && v.capacity_bytes == volume.capacity_bytes)
        }),
        "same id and capacity",
    );
    let mut bigger = create.clone();
    bigger.capacity_range = capacity_range(128 * MIB, 128 * MIB);
    t.code(
        &case("create_volume__same_name_incompatible_capacity"),
        AlreadyExists,
        c.create_volume(bigger).await,
    );
    let validated = t.code(
        &case("validate_volume_capabilities__answers"),
        Ok,
        c.validate_volume_capabilities(ValidateVolumeCapabilitiesRequest {
            volume_id: id.clone(),
            volume_capabilities: vec![cap.clone()],
            volume_context: volume.volume_context.clone(),
            parameters: thin(),
            ..Default::default()
        })
        .await,
    );
    t.check(
        &case("validate_volume_capabilities__confirmed"),
        validated.is_some_and(|v| v.into_inner().confirmed.is_some()),
        "",
    );

    let publish = ControllerPublishVolumeRequest {
        volume_id: id.clone(),
        node_id: node_id.clone(),
        volume_capability: Some(cap.clone()),
        volume_context: volume.volume_context.clone(),
        ..Default::default()
    };
    let [first, repeat] = t
        .twice(
            run.twice("controller_publish_volume", "new"),
            publish.clone(),
            async |r| c.controller_publish_volume(r).await,
        )
        .await;
    let context = first
        .map(|r| r.into_inner().publish_context)
        .unwrap_or_default();
    t.check(
        &case("controller_publish_volume__repeat_same_context"),
        repeat.is_some_and(|r| r.into_inner().publish_context == context),
        "",
    );
    let mut readonly = publish.clone();
    readonly.readonly = true;
    t.code(
        &case("controller_publish_volume__incompatible_readonly"),
        AlreadyExists,
        c.controller_publish_volume(readonly).await,
    );
    let get = ControllerGetVolumeRequest {
        volume_id: id.clone(),
    };
    let got = t.code(
        &case("controller_get_volume__answers"),
        Ok,
        c.controller_get_volume(get.clone()).await,
    );
    t.check(
        &case("controller_get_volume__published_node_ids"),
        got.is_some_and(|g| {
            g.into_inner()
                .status
                .is_some_and(|s| s.published_node_ids == [node_id.clone()])
        }),
        "external-attacher reads published_node_ids",
    );
    let listed = t.code(
        &case("list_volumes__answers"),
        Ok,
        c.list_volumes(ListVolumesRequest::default()).await,
    );
    t.check(
        &case("list_volumes__published_node_ids"),
        listed.is_some_and(|l| {
            l.into_inner().entries.iter().any(|e| {
                e.volume.as_ref().is_some_and(|v| v.volume_id == id)
                    && e.status
                        .as_ref()
                        .is_some_and(|s| s.published_node_ids == [node_id.clone()])
            })
        }),
        "",
    );

    let staging = d.staging_path(m).display().to_string();
    let target = d.target_path(m).display().to_string();
    let stage = NodeStageVolumeRequest {
        volume_id: id.clone(),
        publish_context: context.clone(),
        staging_target_path: staging.clone(),
        volume_capability: Some(cap.clone()),
        volume_context: volume.volume_context.clone(),
        ..Default::default()
    };
    t.twice(run.twice("node_stage_volume", "new"), stage, async |r| {
        n.node_stage_volume(r).await
    })
    .await;
    let node_publish = NodePublishVolumeRequest {
        volume_id: id.clone(),
        publish_context: context.clone(),
        staging_target_path: staging.clone(),
        target_path: target.clone(),
        volume_capability: Some(cap.clone()),
        volume_context: volume.volume_context.clone(),
        ..Default::default()
    };
    t.twice(
        run.twice("node_publish_volume", "new"),
        node_publish,
        async |r| n.node_publish_volume(r).await,
    )
    .await;

    let stats = |path: &str| NodeGetVolumeStatsRequest {
        volume_id: id.clone(),
        volume_path: path.into(),
        staging_target_path: staging.clone(),
    };
    for (name, path) in [
        ("node_get_volume_stats__staging_path", &staging),
        ("node_get_volume_stats__target_path", &target),
    ] {
        let answer = t.code(&case(name), Ok, n.node_get_volume_stats(stats(path)).await);
        t.check(
            &case(&format!("{name}_usage_and_condition")),
            answer.is_some_and(|a| {
                let a = a.into_inner();
                a.usage
                    .iter()
                    .any(|u| u.unit == volume_usage::Unit::Bytes as i32 && u.total > 0)
                    && a.volume_condition.is_some_and(|c| !c.abnormal)
            }),
            "kubelet reads usage (bytes) and volume_condition",
        );
    }
    let pods = d.dir.path().join("pods").display().to_string();
    t.code(
        &case("node_get_volume_stats__path_of_no_volume"),
        NotFound,
        n.node_get_volume_stats(stats(&pods)).await,
    );
    t.code(
        &case("node_get_volume_stats__relative_path"),
        NotFound,
        n.node_get_volume_stats(stats("some/path")).await,
    );

    let expand = ControllerExpandVolumeRequest {
        volume_id: id.clone(),
        capacity_range: capacity_range(96 * MIB, 0),
        volume_capability: Some(cap.clone()),
        ..Default::default()
    };
    let [grown, _] = t
        .twice(
            run.twice("controller_expand_volume", "grows"),
            expand,
            async |r| c.controller_expand_volume(r).await,
        )
        .await;
    let grown = grown.map(tonic::Response::into_inner);
    t.check(
        &case("controller_expand_volume__capacity_and_node_expansion_required"),
        grown
            .as_ref()
            .is_some_and(|g| g.capacity_bytes >= 96 * MIB && g.node_expansion_required),
        format!(
            "{grown:?}: external-resizer calls NodeExpandVolume only when node_expansion_required"
        ),
    );
    let node_expand = NodeExpandVolumeRequest {
        volume_id: id.clone(),
        volume_path: target.clone(),
        staging_target_path: staging.clone(),
        capacity_range: capacity_range(96 * MIB, 0),
        volume_capability: Some(cap.clone()),
        ..Default::default()
    };
    let [grown, _] = t
        .twice(
            run.twice("node_expand_volume", "grows"),
            node_expand,
            async |r| n.node_expand_volume(r).await,
        )
        .await;
    t.check(
        &case("node_expand_volume__capacity_bytes"),
        grown.is_some_and(|g| g.into_inner().capacity_bytes >= 96 * MIB),
        "",
    );

    if run.sources {
        super::sources::sources(t, d, run, &id, &create).await;
    }

    let unpublish = NodeUnpublishVolumeRequest {
        volume_id: id.clone(),
        target_path: target.clone(),
    };
    t.twice(
        run.twice("node_unpublish_volume", "done"),
        unpublish,
        async |r| n.node_unpublish_volume(r).await,
    )
    .await;
    t.code(
        &case("node_get_volume_stats__unpublished_target_path"),
        NotFound,
        n.node_get_volume_stats(stats(&target)).await,
    );
    let unstage = NodeUnstageVolumeRequest {
        volume_id: id.clone(),
        staging_target_path: staging.clone(),
    };
    t.twice(
        run.twice("node_unstage_volume", "done"),
        unstage,
        async |r| n.node_unstage_volume(r).await,
    )
    .await;
    let unpublish = ControllerUnpublishVolumeRequest {
        volume_id: id.clone(),
        node_id: node_id.clone(),
        ..Default::default()
    };
    t.twice(
        run.twice("controller_unpublish_volume", "done"),
        unpublish,
        async |r| c.controller_unpublish_volume(r).await,
    )
    .await;
    let delete = DeleteVolumeRequest {
        volume_id: id.clone(),
        ..Default::default()
    };
    t.twice(run.twice("delete_volume", "done"), delete, async |r| {
        c.delete_volume(r).await
    })
    .await;
    t.code(
        &case("controller_get_volume__deleted_volume_not_found"),
        NotFound,
        c.controller_get_volume(get).await,
    );
}
