//! An agent's answers as CSI's messages: every id the agent reports (volume, snapshot, content
//! source, a snapshot's source volume) becomes the CSI id naming that agent ([`Agent::id`]), and
//! every volume carries the agent's topology; and the few RPCs the agent protocol has no call for
//! (ValidateVolumeCapabilities, GetSnapshot), answered from the calls it has.
//!
//! Invariants: an id the agent reports never leaves here unplaced (a CO given a bare LV name of a
//! non-default agent would later send it to the default backend); the controller-only parameters
//! ([`STORAGE_HOSTS`], [`POOL`]) never reach an agent, which refuses unknown parameters.

use super::{Agent, POOL, STORAGE_HOSTS};
use crate::{
    agent::{RemoteSnapshot, RemoteVolume, RemoteVolumeStatus},
    ops::{capability, params, snapshot::list::ListSnapshots, validate::Validation},
};
use csi_common::{Error, Result};
use csi_proto::v1::{
    Snapshot, Topology, Volume, VolumeCapability, VolumeCondition, VolumeContentSource,
    volume_content_source::{SnapshotSource, Type as SourceType, VolumeSource},
};
use std::collections::HashMap;

/// `parameters` without the controller's own keys: what an agent is sent.
pub fn forwarded(parameters: &HashMap<String, String>) -> HashMap<String, String> {
    parameters
        .iter()
        .filter(|(k, _)| k.as_str() != STORAGE_HOSTS && k.as_str() != POOL)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The CSI topologies of `agent`'s volumes.
pub fn topology(agent: &Agent) -> Vec<Topology> {
    agent
        .topology()
        .iter()
        .map(|s| Topology {
            segments: s.to_map(),
        })
        .collect()
}

/// The CSI volume of `v` on `agent`.
pub fn volume(agent: &Agent, v: &RemoteVolume) -> Volume {
    let content_source = v.content_source.as_ref().map(|s| VolumeContentSource {
        r#type: s.r#type.as_ref().map(|t| match t {
            SourceType::Snapshot(s) => SourceType::Snapshot(SnapshotSource {
                snapshot_id: agent.id(&s.snapshot_id),
            }),
            SourceType::Volume(v) => SourceType::Volume(VolumeSource {
                volume_id: agent.id(&v.volume_id),
            }),
        }),
    });
    Volume {
        capacity_bytes: i64::try_from(v.capacity).unwrap_or(i64::MAX),
        volume_id: agent.id(&v.id),
        volume_context: v.volume_context.clone(),
        content_source,
        accessible_topology: topology(agent),
    }
}

/// The CSI volume, published nodes and condition of `s` on `agent`.
pub fn status(agent: &Agent, s: &RemoteVolumeStatus) -> (Volume, Vec<String>, VolumeCondition) {
    (
        volume(agent, &s.volume),
        s.published_nodes.clone(),
        crate::service::volume_condition(s.abnormal.as_deref()),
    )
}

/// The CSI snapshot of `s` on `agent`.
pub fn snapshot(agent: &Agent, s: &RemoteSnapshot) -> Snapshot {
    Snapshot {
        size_bytes: i64::try_from(s.size).unwrap_or(i64::MAX),
        snapshot_id: agent.id(&s.id),
        source_volume_id: agent.id(&s.source_volume_id),
        creation_time: Some(s.creation_time),
        ready_to_use: s.ready,
        group_snapshot_id: String::new(),
    }
}

/// GetSnapshot of `local` on `agent` (a ListSnapshots filtered by id): `NotFound` when it has
/// none; `raw` is the id the CO sent, for the message.
pub async fn get_snapshot(agent: &Agent, local: &str, raw: &str) -> Result<Snapshot> {
    let page = agent
        .client
        .list_snapshots(ListSnapshots {
            snapshot_id: local,
            ..Default::default()
        })
        .await?;
    page.entries
        .first()
        .map(|s| snapshot(agent, s))
        .ok_or_else(|| Error::not_found(format!("snapshot {raw:?} does not exist")))
}

/// ValidateVolumeCapabilities of `local` on `agent`, as [`crate::ops::validate`] answers it
/// locally: the volume must exist (ControllerGetVolume), the capabilities be served and the
/// volume large enough for the filesystem; `storageHosts` and `pool` must include this agent and
/// its volume group; the `thin` parameter (absent: linear) must say what the agent reports of
/// the LV ([`thin_mismatch`]).
pub async fn validate(
    agent: &Agent,
    local: &str,
    capabilities: &[VolumeCapability],
    parameters: &HashMap<String, String>,
) -> Result<Validation> {
    if capabilities.is_empty() {
        return Err(Error::invalid_argument("volume_capabilities is required"));
    }
    let found = agent.client.get_volume(local).await?;
    let caps = match capability::parse_all(capabilities) {
        Ok(caps) => caps,
        Err(e) => return Ok(Validation::Unconfirmed(e.message().to_string())),
    };
    if let Some(why) = super::create::excluded(agent, parameters) {
        return Ok(Validation::Unconfirmed(why));
    }
    let rest = forwarded(parameters);
    let wanted = match params::parse(&rest, Some("")) {
        Ok(p) => p.thin,
        Err(e) => return Ok(Validation::Unconfirmed(e.message().to_string())),
    };
    if let Some(why) = thin_mismatch(found.volume.thin, wanted, agent.name()) {
        return Ok(Validation::Unconfirmed(why));
    }
    Ok(crate::ops::validate::by_size(found.volume.capacity, &caps))
}

/// Why a volume the agent `agent` reports as `reported` (thin or not; `None`: an agent older than
/// `Volume.thin` did not say) does not confirm the parameters asking for `wanted`, as the local
/// host answers (crate::ops::validate, where no `thin` parameter means linear). Unknown is never
/// confirmed, whatever was asked: it is not guessed.
pub fn thin_mismatch(reported: Option<bool>, wanted: bool, agent: &str) -> Option<String> {
    match reported {
        Some(thin) if thin != wanted => Some(format!(
            "the volume is {}thin",
            if thin { "" } else { "not " }
        )),
        Some(_) => None,
        None => Some(format!(
            "whether the volume is thin or linear cannot be confirmed through agent {agent} \
             (it does not report it: older than carve.agent.v1 Volume.thin)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::thin_mismatch;

    #[test]
    fn thin_is_confirmed_only_when_the_agent_reports_the_same() {
        assert_eq!(thin_mismatch(Some(true), true, "a"), None);
        assert_eq!(thin_mismatch(Some(false), false, "a"), None);
        assert_eq!(
            thin_mismatch(Some(true), false, "a").as_deref(),
            Some("the volume is thin")
        );
        assert_eq!(
            thin_mismatch(Some(false), true, "a").as_deref(),
            Some("the volume is not thin")
        );
        for wanted in [true, false] {
            let why = thin_mismatch(None, wanted, "store-a").expect("unknown is not confirmed");
            assert!(why.contains("agent store-a"), "{why}");
        }
    }
}
