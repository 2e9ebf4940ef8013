//! A storage host behind its carve-agent, as a backend of the operations: [`AgentBackend`]
//! calls carve.agent.v1 over mutual TLS and answers with the operations' own results
//! ([`Deleted`], [`Expanded`], [`Published`], [`Capacity`], revoked or not) and errors, so a
//! remote host fails exactly as the local one would (the agent's answers go through
//! `csi_common::error`'s one table and come back through its inverse, [`Error::from_status`]).
//! Volumes and snapshots come back as [`RemoteVolume`] and [`RemoteSnapshot`]: what the agent
//! reports of them (the LV rows and tag records stay on the host).
//!
//! Invariants: the channel connects lazily, so an agent down at start is no start-up error;
//! connecting (TCP and the TLS handshake) is bounded by [`CONNECT_TIMEOUT`], and a peer that
//! stops answering once connected is noticed by HTTP/2 keepalive within [`KEEPALIVE_INTERVAL`] +
//! [`KEEPALIVE_TIMEOUT`] (no call is capped: a live agent answers PINGs during a slow command);
//! every failure to reach the agent (refused connection, TLS handshake, a peer that is not an
//! agent) is `Unavailable`, never a wrong answer; capabilities are checked here with the same
//! [`crate::ops::capability::parse`] the local operations use, so an unsupported one gets the
//! local message; CHAP secrets travel only inside the TLS channel, in [`proto::Chap`], whose
//! `Debug` prints no value. The CSI service reaches it through [`crate::fleet`].

pub mod convert;

use crate::ops::{
    capability, create_volume::CreateVolume, delete_volume::Deleted, expand_volume::Expanded,
    get_capacity::Capacity, publish::Publish, publish::Published, snapshot::create::CreateSnapshot,
    snapshot::list::ListSnapshots,
};
use csi_common::{
    Error, Result,
    contract::{BLANK, IscsiTarget, READONLY},
    mtls::Mtls,
};
use csi_proto::{
    agent::v1::{self as proto, agent_client::AgentClient},
    v1::{CapacityRange, VolumeCapability, VolumeContentSource},
};
use std::{collections::HashMap, time::Duration};
use tonic::transport::{Channel, Endpoint};

/// How long a connection attempt to an agent may take: the TCP connect, and then the TLS
/// handshake (a peer that accepts and never speaks, such as a hung process or another service on
/// the agent's port, would otherwise hold the call, and the guard it runs under, forever).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the agent channel may go without receiving a frame before it sends an HTTP/2 PING,
/// while calls are in flight and while idle. A live agent answers a PING from its HTTP/2 layer
/// whatever its calls are doing, so a slow LVM command is never cut short by it.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// How long the answer to that PING may take before the connection is closed and every call on
/// it fails `Unavailable` (a partition or a frozen host after the TLS session was up, which TCP
/// alone would notice only after many minutes). A dead peer thus ends a call, and frees the
/// guard it runs under, within [`KEEPALIVE_INTERVAL`] + `KEEPALIVE_TIMEOUT` (10 s), inside the
/// CSI sidecars' default 15 s timeout, so their retry finds the volume's guard free.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A volume as its agent reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteVolume {
    /// The volume id on its host (the LV name).
    pub id: String,
    /// Its size in bytes.
    pub capacity: u64,
    /// CSI's volume_context (target, portals, LUN, serial, content source, claim).
    pub volume_context: HashMap<String, String>,
    /// The source it was made from (`None`: an empty volume).
    pub content_source: Option<VolumeContentSource>,
    /// Whether the LV is thin (`None`: an agent older than the field did not say).
    pub thin: Option<bool>,
}

/// A volume with what LIO says about it, as its agent reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteVolumeStatus {
    /// The volume.
    pub volume: RemoteVolume,
    /// Initiators holding an ACL on its target.
    pub published_nodes: Vec<String>,
    /// Why it is not usable, if it is not.
    pub abnormal: Option<String>,
}

/// A snapshot as its agent reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSnapshot {
    /// The snapshot id on its host (the LV name).
    pub id: String,
    /// The volume it was taken of.
    pub source_volume_id: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was taken.
    pub creation_time: prost_types::Timestamp,
    /// It can be a volume's source now.
    pub ready: bool,
}

/// What a creating call did, as the local operations' `Created`/`SnapshotCreated` say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Made<T> {
    /// Made by this call.
    Created(T),
    /// The compatible object of that name existed already (a retry).
    AlreadyExisted(T),
}

impl<T> Made<T> {
    /// The object, either way.
    pub fn get(&self) -> &T {
        match self {
            Made::Created(t) | Made::AlreadyExisted(t) => t,
        }
    }

    fn new(created: bool, t: T) -> Self {
        if created {
            Made::Created(t)
        } else {
            Made::AlreadyExisted(t)
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The entries.
    pub entries: Vec<T>,
    /// The token of the next page (empty: the last).
    pub next_token: String,
}

/// A storage host's state, as its agent reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    /// Probe's verdict on the host: `Err` says why it cannot serve.
    pub ready: std::result::Result<(), String>,
    /// Its volume group (empty: none configured).
    pub volume_group: String,
    /// Its thin pool (empty: none).
    pub thin_pool: String,
    /// The volume group's size in bytes.
    pub vg_size: u64,
    /// The volume group's free bytes.
    pub vg_free: u64,
    /// The volume group's extent size in bytes.
    pub extent_size: u64,
    /// Its iSCSI portals.
    pub portals: Vec<String>,
    /// The agent's version.
    pub version: String,
}

/// What a deleting call did, from the agent's `deleted` flag.
fn deleted(flag: bool) -> Deleted {
    if flag {
        Deleted::Deleted
    } else {
        Deleted::NotFound
    }
}

/// One storage host reached through its agent.
#[derive(Debug, Clone)]
pub struct AgentBackend {
    name: String,
    client: AgentClient<Channel>,
}

impl AgentBackend {
    /// The agent at `address` (`host:port`), whose certificate must name `server_name` and chain
    /// to `mtls`'s CA; this end presents `mtls`'s certificate. Connects on first use; PINGs it
    /// while idle too, so a connection that died unused is replaced before a call waits on it.
    /// Errors that never reached it name it `name (address)`.
    pub fn connect_lazy(name: &str, address: &str, server_name: &str, mtls: &Mtls) -> Result<Self> {
        let endpoint = Endpoint::from_shared(format!("https://{address}"))
            .and_then(|e| e.tls_config(mtls.client(server_name).timeout(CONNECT_TIMEOUT)))
            .map_err(|e| Error::invalid_argument(format!("agent address {address:?}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        Ok(Self::from_channel(
            format!("{name} ({address})"),
            endpoint.connect_lazy(),
        ))
    }

    /// The agent behind `channel`, named `name` in errors.
    pub fn from_channel(name: impl Into<String>, channel: Channel) -> Self {
        Self {
            name: name.into(),
            client: AgentClient::new(channel),
        }
    }

    /// The answer of one call, its error as the operations'. A failure that never reached the
    /// agent (the status carries the transport's error as its source, or a code the agent never
    /// answers) is `Unavailable` and names the agent.
    fn answer<T>(
        &self,
        result: std::result::Result<tonic::Response<T>, tonic::Status>,
    ) -> Result<T> {
        result.map(tonic::Response::into_inner).map_err(|status| {
            let error = Error::from_status(&status);
            let answered = std::error::Error::source(&status).is_none()
                && csi_common::error::kind_for(status.code()).is_some();
            if answered {
                error
            } else {
                Error::unavailable(error.message()).context(format!("agent {}", self.name))
            }
        })
    }

    /// The host's readiness and counters.
    pub async fn state(&self) -> Result<HostState> {
        let s = self.answer(self.client.clone().state(proto::StateRequest {}).await)?;
        Ok(HostState {
            ready: if s.ready { Ok(()) } else { Err(s.not_ready) },
            volume_group: s.volume_group,
            thin_pool: s.thin_pool,
            vg_size: s.vg_size_bytes,
            vg_free: s.vg_free_bytes,
            extent_size: s.extent_size_bytes,
            portals: s.portals,
            version: s.version,
        })
    }

    /// CreateVolume on the host, from `source` when set. `req.requisite` is not sent: choosing a
    /// host that serves the requisite topology is the caller's placement.
    pub async fn create_volume(
        &self,
        req: CreateVolume<'_>,
        source: Option<&VolumeContentSource>,
    ) -> Result<Made<RemoteVolume>> {
        for cap in req.capabilities {
            capability::parse(cap)?;
        }
        let request = proto::CreateVolumeRequest {
            name: req.name.to_string(),
            capacity_range: req.capacity.map(convert::to_capacity_range),
            capabilities: req
                .capabilities
                .iter()
                .map(convert::to_capability)
                .collect(),
            parameters: req.parameters.clone(),
            content_source: convert::to_content_source(source),
        };
        let r = self.answer(self.client.clone().create_volume(request).await)?;
        let volume = convert::from_volume(r.volume.unwrap_or_default());
        Ok(Made::new(r.created, volume))
    }

    /// DeleteVolume on the host.
    pub async fn delete_volume(&self, volume_id: &str) -> Result<Deleted> {
        let request = proto::DeleteVolumeRequest {
            volume_id: volume_id.to_string(),
        };
        let r = self.answer(self.client.clone().delete_volume(request).await)?;
        Ok(deleted(r.deleted))
    }

    /// ControllerExpandVolume on the host.
    pub async fn expand_volume(
        &self,
        volume_id: &str,
        range: Option<&CapacityRange>,
        cap: Option<&VolumeCapability>,
    ) -> Result<Expanded> {
        if let Some(cap) = cap {
            capability::parse(cap)?;
        }
        let request = proto::ExpandVolumeRequest {
            volume_id: volume_id.to_string(),
            capacity_range: range.map(convert::to_capacity_range),
            capability: cap.map(convert::to_capability),
        };
        let r = self.answer(self.client.clone().expand_volume(request).await)?;
        Ok(Expanded {
            capacity: r.capacity_bytes,
            node_expansion_required: r.node_expansion_required,
        })
    }

    /// ControllerGetVolume on the host.
    pub async fn get_volume(&self, volume_id: &str) -> Result<RemoteVolumeStatus> {
        let request = proto::GetVolumeRequest {
            volume_id: volume_id.to_string(),
        };
        let r = self.answer(self.client.clone().get_volume(request).await)?;
        Ok(convert::from_volume_status(r.status.unwrap_or_default()))
    }

    /// ListVolumes on the host.
    pub async fn list_volumes(
        &self,
        max_entries: i32,
        starting_token: &str,
    ) -> Result<Page<RemoteVolumeStatus>> {
        let request = proto::ListVolumesRequest {
            max_entries,
            starting_token: starting_token.to_string(),
        };
        let r = self.answer(self.client.clone().list_volumes(request).await)?;
        Ok(Page {
            entries: r
                .entries
                .into_iter()
                .map(convert::from_volume_status)
                .collect(),
            next_token: r.next_token,
        })
    }

    /// GetCapacity on the host (unsupported capabilities: nothing available, as locally).
    pub async fn get_capacity(
        &self,
        capabilities: &[VolumeCapability],
        parameters: &HashMap<String, String>,
    ) -> Result<Capacity> {
        let request = proto::GetCapacityRequest {
            capabilities: capabilities.iter().map(convert::to_capability).collect(),
            parameters: parameters.clone(),
        };
        let r = self.answer(self.client.clone().get_capacity(request).await)?;
        Ok(Capacity {
            available: r.available_bytes,
            minimum_volume_size: r.minimum_volume_bytes,
        })
    }

    /// ControllerPublishVolume on the host: what it granted, read back from the publish context.
    pub async fn publish(&self, req: Publish<'_>) -> Result<Published> {
        if let Some(cap) = req.capability {
            capability::parse(cap)?;
        }
        let request = proto::PublishRequest {
            volume_id: req.volume_id.to_string(),
            node_id: req.node_id.to_string(),
            capability: req.capability.map(convert::to_capability),
            readonly: req.readonly,
            chap: (!req.secrets.is_empty()).then(|| proto::Chap {
                secrets: req.secrets.clone(),
            }),
        };
        let context = self
            .answer(self.client.clone().publish(request).await)?
            .publish_context;
        let target = IscsiTarget::from_contexts(&context, &HashMap::new())
            .map_err(|e| Error::internal(format!("agent {}: publish_context: {e}", self.name)))?;
        let flag = |key: &str| context.get(key).is_some_and(|v| v == "true");
        Ok(Published {
            target,
            readonly: flag(READONLY),
            blank: flag(BLANK),
        })
    }

    /// ControllerUnpublishVolume on the host; `true` if some access was revoked.
    pub async fn unpublish(&self, volume_id: &str, node_id: &str) -> Result<bool> {
        let request = proto::UnpublishRequest {
            volume_id: volume_id.to_string(),
            node_id: node_id.to_string(),
        };
        Ok(self
            .answer(self.client.clone().unpublish(request).await)?
            .revoked)
    }

    /// CreateSnapshot on the host.
    pub async fn create_snapshot(&self, req: CreateSnapshot<'_>) -> Result<Made<RemoteSnapshot>> {
        let request = convert::to_create_snapshot(&req);
        let r = self.answer(self.client.clone().create_snapshot(request).await)?;
        let snapshot = convert::from_snapshot(r.snapshot.unwrap_or_default());
        Ok(Made::new(r.created, snapshot))
    }

    /// DeleteSnapshot on the host.
    pub async fn delete_snapshot(&self, snapshot_id: &str) -> Result<Deleted> {
        let request = proto::DeleteSnapshotRequest {
            snapshot_id: snapshot_id.to_string(),
        };
        let r = self.answer(self.client.clone().delete_snapshot(request).await)?;
        Ok(deleted(r.deleted))
    }

    /// ListSnapshots on the host.
    pub async fn list_snapshots(&self, req: ListSnapshots<'_>) -> Result<Page<RemoteSnapshot>> {
        let request = convert::to_list_snapshots(&req);
        let r = self.answer(self.client.clone().list_snapshots(request).await)?;
        Ok(Page {
            entries: r.entries.into_iter().map(convert::from_snapshot).collect(),
            next_token: r.next_token,
        })
    }
}
