//! The data-service RPCs of the Controller service (ControllerExpandVolume, CreateSnapshot,
//! DeleteSnapshot, ListSnapshots, GetSnapshot): thin translation to `ops`, kept apart from
//! [`super`] (`service.rs`).
//!
//! Invariants: as in `service.rs`: ids on the RPC span first; mutating RPCs hold a guard
//! (ControllerExpandVolume: the volume's; CreateSnapshot and DeleteSnapshot: the snapshot's
//! resolved id, which CreateSnapshot derives from the name and its source's backend, keyed as
//! [`crate::fleet::Resolved::guard_key`] keys it) in a spawned task that owns it, so a client
//! timeout never cancels an LVM change halfway and a second call in flight is ABORTED.

use super::ControllerService;
use crate::fleet::{self, Backend, Backends, Resolved, remote};
use crate::ops::{
    self,
    snapshot::{
        create::{CreateSnapshot, SnapshotCreated, id_for},
        list::ListSnapshots,
    },
};
use csi_common::Result;
use csi_proto::v1::{
    ControllerExpandVolumeRequest, ControllerExpandVolumeResponse, CreateSnapshotRequest,
    CreateSnapshotResponse, DeleteSnapshotRequest, DeleteSnapshotResponse, GetSnapshotRequest,
    GetSnapshotResponse, ListSnapshotsRequest, ListSnapshotsResponse, list_snapshots_response,
};

impl ControllerService {
    pub(super) async fn expand(
        &self,
        req: ControllerExpandVolumeRequest,
    ) -> Result<ControllerExpandVolumeResponse> {
        let expanded = self
            .on_volume(req.volume_id.clone(), None, move |target| async move {
                let (range, cap) = (req.capacity_range.as_ref(), req.volume_capability.as_ref());
                match target.backend {
                    Backend::Local(ctx) => {
                        ops::expand_volume::expand_volume(&ctx, &target.local, range, cap).await
                    }
                    Backend::Agent(agent) => {
                        agent.client.expand_volume(&target.local, range, cap).await
                    }
                }
            })
            .await?;
        Ok(ControllerExpandVolumeResponse {
            capacity_bytes: i64::try_from(expanded.capacity).unwrap_or(i64::MAX),
            node_expansion_required: expanded.node_expansion_required,
        })
    }

    pub(super) async fn take_snapshot(
        &self,
        req: CreateSnapshotRequest,
    ) -> Result<CreateSnapshotResponse> {
        let source = self.volume_target(
            &req.source_volume_id,
            None,
            "source_volume_id",
            "source volume",
        )?;
        // The guard of the snapshot's resolved id, the key DeleteSnapshot takes.
        let key = Resolved {
            backend: source.backend.clone(),
            local: id_for(&req.name).to_string(),
        }
        .guard_key();
        let snapshot = match source.backend {
            Backend::Local(_) => {
                let created = self
                    .guarded(&self.snapshots, &key, move |ctx| async move {
                        let op = CreateSnapshot {
                            name: &req.name,
                            source_volume_id: &req.source_volume_id,
                            parameters: &req.parameters,
                        };
                        ops::snapshot::create::create_snapshot(&ctx, op).await
                    })
                    .await?;
                if let SnapshotCreated::AlreadyExisted(s) = &created {
                    tracing::info!(snapshot = %s.id, "snapshot already existed");
                }
                created.snapshot().to_csi()
            }
            Backend::Agent(agent) => {
                let Backends::Agents(agents) = self.backends.clone() else {
                    return Err(csi_common::Error::internal("an agent without agents"));
                };
                let on = std::sync::Arc::clone(&agent);
                let made = self
                    .snapshots
                    .run(&key, async move {
                        let op = CreateSnapshot {
                            name: &req.name,
                            source_volume_id: &source.local,
                            parameters: &req.parameters,
                        };
                        fleet::snapshots::create_snapshot(&agents, &on, op).await
                    })
                    .await?;
                let snapshot = remote::snapshot(&agent, made.get());
                if let crate::agent::Made::AlreadyExisted(_) = made {
                    tracing::info!(snapshot = %snapshot.snapshot_id, "snapshot already existed");
                }
                snapshot
            }
        };
        Ok(CreateSnapshotResponse {
            snapshot: Some(snapshot),
        })
    }

    pub(super) async fn remove_snapshot(
        &self,
        req: DeleteSnapshotRequest,
    ) -> Result<DeleteSnapshotResponse> {
        tracing::debug!(snapshot = %req.snapshot_id, "deleting snapshot");
        let key = req.snapshot_id.clone();
        let Some(target) = self.backends.resolve(&key, "snapshot_id")? else {
            // As DeleteVolume (service.rs): unknown is OK, a host not configured is NotFound.
            if Backends::names_a_host(&key) {
                return Err(Backends::unresolved(&key, "snapshot"));
            }
            return Ok(DeleteSnapshotResponse {});
        };
        self.snapshots
            .run(&target.guard_key(), async move {
                match target.backend {
                    Backend::Local(ctx) => {
                        ops::snapshot::delete::delete_snapshot(&ctx, &target.local).await?;
                    }
                    Backend::Agent(agent) => {
                        agent.client.delete_snapshot(&target.local).await?;
                    }
                }
                Ok(())
            })
            .await?;
        Ok(DeleteSnapshotResponse {})
    }

    pub(super) async fn snapshots(
        &self,
        req: ListSnapshotsRequest,
    ) -> Result<ListSnapshotsResponse> {
        let op = ListSnapshots {
            max_entries: req.max_entries,
            starting_token: &req.starting_token,
            source_volume_id: &req.source_volume_id,
            snapshot_id: &req.snapshot_id,
        };
        let ctx = match &self.backends {
            Backends::Local(ctx) => ctx,
            Backends::Agents(_) => {
                return fleet::listing::list_snapshots(&self.backends, &req).await;
            }
        };
        let page = ops::snapshot::list::list_snapshots(ctx, op).await?;
        Ok(ListSnapshotsResponse {
            entries: page
                .entries
                .iter()
                .map(|s| list_snapshots_response::Entry {
                    snapshot: Some(s.to_csi()),
                })
                .collect(),
            next_token: page.next_token,
        })
    }

    pub(super) async fn snapshot(&self, req: GetSnapshotRequest) -> Result<GetSnapshotResponse> {
        let target = self.resolve(&req.snapshot_id, "snapshot_id", "snapshot")?;
        let snapshot = match target.backend {
            Backend::Local(ctx) => ops::snapshot::list::get_snapshot(&ctx, &target.local)
                .await?
                .to_csi(),
            Backend::Agent(agent) => {
                remote::get_snapshot(&agent, &target.local, &req.snapshot_id).await?
            }
        };
        Ok(GetSnapshotResponse {
            snapshot: Some(snapshot),
        })
    }
}
