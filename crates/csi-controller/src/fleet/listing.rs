//! ListVolumes and ListSnapshots across agents, one page at a time (spec.md, ListVolumes,
//! ListSnapshots: `max_entries`, `starting_token`, `next_token`).
//!
//! Agents are listed one after another in [`Backends::agents`]' order, each in its own order (by
//! local id); `next_token` is the CSI id of the first entry of the next page, so a token is valid
//! on whichever host it points into, stays valid while volumes come and go, and is an id of
//! today's form on the default agent. A token naming no configured agent is `Aborted` (spec).
//!
//! Invariants: an agent that cannot answer makes the whole call fail (UNAVAILABLE), never a
//! shorter list. external-attacher's ListVolumes sync (kubernetes-csi/external-attacher,
//! pkg/controller/csi_handler.go, `ReconcileVA`) takes a volume missing from the list as
//! published to no node (`found := slices.Contains(published[volumeHandle], nodeID)`) and
//! force-resyncs every VolumeAttachment whose state differs; a failed ListVolumes makes it change
//! nothing. So a partial list would re-drive the attachments of every volume of the missing host
//! (and record their failures on VolumeAttachments in use), where an error leaves them be.

use super::{Agent, Backend, Backends, remote};
use crate::ops::snapshot::list::ListSnapshots;
use csi_common::{Error, Result};
use csi_proto::v1::{
    ListSnapshotsRequest, ListSnapshotsResponse, ListVolumesRequest, ListVolumesResponse,
    list_snapshots_response, list_volumes_response,
};
use std::{future::Future, sync::Arc};

/// One agent's page: each entry with its local id, and the local id the next page starts at
/// (`""`: none).
type AgentPage<E> = (Vec<(String, E)>, String);

/// The agents to list from `token` on (`Aborted` for a token naming none), and where to start
/// on the first of them.
fn start(agents: &[Arc<Agent>], backends: &Backends, token: &str) -> Result<(usize, String)> {
    if token.is_empty() {
        return Ok((0, String::new()));
    }
    let bad = || Error::aborted(format!("starting_token {token:?} is not valid"));
    let resolved = backends
        .resolve(token, "starting_token")
        .map_err(|_| bad())?
        .ok_or_else(bad)?;
    let Backend::Agent(agent) = resolved.backend else {
        return Err(bad());
    };
    let index = agents
        .iter()
        .position(|a| Arc::ptr_eq(a, &agent))
        .ok_or_else(bad)?;
    Ok((index, resolved.local))
}

/// A page of at most `max_entries` (0: all) across `agents`, from `token` (a previous
/// `next_token`); `list` asks one agent for one page (max entries, local starting token).
async fn page<E, Fut>(
    agents: &[Arc<Agent>],
    backends: &Backends,
    max_entries: i32,
    token: &str,
    list: impl Fn(Arc<Agent>, i32, String) -> Fut,
) -> Result<(Vec<E>, String)>
where
    Fut: Future<Output = Result<AgentPage<E>>>,
{
    if max_entries < 0 {
        return Err(Error::invalid_argument("max_entries must not be negative"));
    }
    let (first, mut local) = start(agents, backends, token)?;
    let limit = usize::try_from(max_entries).unwrap_or(0);
    let mut entries = Vec::new();
    for agent in &agents[first..] {
        if limit != 0 && entries.len() == limit {
            // Full: the next page starts at this agent's first entry, if it has one.
            let (peek, _) = list(Arc::clone(agent), 1, String::new()).await?;
            match peek.first() {
                Some((id, _)) => return Ok((entries, agent.id(id))),
                None => continue,
            }
        }
        let room = if limit == 0 { 0 } else { limit - entries.len() };
        let (got, next) = list(
            Arc::clone(agent),
            i32::try_from(room).unwrap_or(i32::MAX),
            std::mem::take(&mut local),
        )
        .await?;
        entries.extend(got.into_iter().map(|(_, e)| e));
        if !next.is_empty() {
            return Ok((entries, agent.id(&next)));
        }
    }
    Ok((entries, String::new()))
}

/// ListVolumes across the agents of `backends`.
pub async fn list_volumes(
    backends: &Backends,
    req: &ListVolumesRequest,
) -> Result<ListVolumesResponse> {
    let agents = backends.agent_list("listing across hosts")?;
    let (entries, next_token) = page(
        agents,
        backends,
        req.max_entries,
        &req.starting_token,
        |agent, max, token| async move {
            let got = agent.client.list_volumes(max, &token).await?;
            let entries = got
                .entries
                .iter()
                .map(|s| {
                    let (volume, published_node_ids, condition) = remote::status(&agent, s);
                    let entry = list_volumes_response::Entry {
                        volume: Some(volume),
                        status: Some(list_volumes_response::VolumeStatus {
                            published_node_ids,
                            volume_condition: Some(condition),
                        }),
                    };
                    (s.volume.id.clone(), entry)
                })
                .collect();
            Ok((entries, got.next_token))
        },
    )
    .await?;
    Ok(ListVolumesResponse {
        entries,
        next_token,
    })
}

/// ListSnapshots across the agents of `backends`: a `snapshot_id` or `source_volume_id` filter
/// lists only the agent it names (none configured, or the two naming different agents: an empty
/// list, as for any id Carve could not have issued).
pub async fn list_snapshots(
    backends: &Backends,
    req: &ListSnapshotsRequest,
) -> Result<ListSnapshotsResponse> {
    let agents = backends.agent_list("listing across hosts")?;
    let mut only: Option<Arc<Agent>> = None;
    let (mut snapshot_id, mut source_volume_id) = (String::new(), String::new());
    for (raw, local) in [
        (&req.snapshot_id, &mut snapshot_id),
        (&req.source_volume_id, &mut source_volume_id),
    ] {
        if raw.is_empty() {
            continue;
        }
        let agent = match backends.resolve(raw, "id")? {
            Some(super::Resolved {
                backend: Backend::Agent(agent),
                local: id,
            }) => {
                *local = id;
                agent
            }
            _ => return Ok(ListSnapshotsResponse::default()),
        };
        if only.as_ref().is_some_and(|o| !Arc::ptr_eq(o, &agent)) {
            return Ok(ListSnapshotsResponse::default());
        }
        only = Some(agent);
    }
    let listed: Vec<Arc<Agent>> = match &only {
        Some(agent) => vec![Arc::clone(agent)],
        None => agents.to_vec(),
    };
    let (snapshot_id, source_volume_id) = (&snapshot_id, &source_volume_id);
    let (entries, next_token) = page(
        &listed,
        backends,
        req.max_entries,
        &req.starting_token,
        |agent, max, token| async move {
            let op = ListSnapshots {
                max_entries: max,
                starting_token: &token,
                source_volume_id,
                snapshot_id,
            };
            let got = agent.client.list_snapshots(op).await?;
            let entries = got
                .entries
                .iter()
                .map(|s| {
                    let entry = list_snapshots_response::Entry {
                        snapshot: Some(remote::snapshot(&agent, s)),
                    };
                    (s.id.clone(), entry)
                })
                .collect();
            Ok((entries, got.next_token))
        },
    )
    .await?;
    Ok(ListSnapshotsResponse {
        entries,
        next_token,
    })
}
