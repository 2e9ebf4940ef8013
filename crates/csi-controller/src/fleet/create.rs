//! CreateVolume and GetCapacity across agents: which agents a StorageClass allows
//! ([`STORAGE_HOSTS`], [`POOL`]), which of them a request's topology reaches, where a new volume
//! goes, and where a retried one already is.
//!
//! Placement (spec.md, CreateVolume, `accessibility_requirements`): the candidates are the agents
//! the parameters allow whose topology lies within one `requisite` topology (none given: all);
//! they are ranked (when there are several) by the first `preferred` topology they lie within (earlier first; none: after
//! every preferred one), then by free capacity for this request (their GetCapacity, largest
//! first), then by name; the first with room for the requested bytes gets the volume, and when
//! none has room the one with the most does, so its agent answers why (RESOURCE_EXHAUSTED,
//! OUT_OF_RANGE) in its own words. A volume from a source goes to the source's agent or nowhere.
//!
//! Idempotency by name: before placing, every agent is asked for the LV the name derives to
//! ([`LvName::for_volume`], the name every host uses); one that has it gets the request again
//! (it answers the existing volume, or ALREADY_EXISTS when incompatible). A candidate that cannot
//! answer makes CreateVolume UNAVAILABLE: a timed-out earlier attempt may have left the volume
//! there, and a second volume elsewhere would be a wrong answer. Agents the request excludes are
//! asked too, but one that cannot answer is only logged (it cannot have got this request).
//!
//! GetCapacity (spec.md, GetCapacity): the sum of the capacity of every allowed agent serving the
//! requested topology; `maximum_volume_size` the largest of them (a volume lives on one host);
//! an agent that cannot answer makes the answer UNAVAILABLE, never a smaller sum.

use super::{Agent, Backend, Backends, POOL, STORAGE_HOSTS, remote};
use crate::{
    agent::{Made, RemoteVolume},
    host::DEFAULT_CAPACITY,
    ops::{create_volume::CreateVolume, request, topology},
};
use csi_common::{Error, Kind, Result, ids::LvName};
use csi_proto::v1::{
    CreateVolumeRequest, GetCapacityRequest, GetCapacityResponse,
    volume_content_source::Type as SourceType,
};
use std::{collections::HashMap, future::Future, sync::Arc};

/// Why `parameters` exclude `agent` (not in `storageHosts`, another `pool`), if they do.
pub fn excluded(agent: &Agent, parameters: &HashMap<String, String>) -> Option<String> {
    if let Some(hosts) = parameters.get(STORAGE_HOSTS)
        && !hosts.split(',').any(|h| h.trim() == agent.name())
    {
        return Some(format!(
            "storage host {} is not in {STORAGE_HOSTS} {hosts:?}",
            agent.name()
        ));
    }
    match parameters.get(POOL) {
        Some(pool) if *pool != agent.config.pool => Some(format!(
            "storage host {} serves volume group {}, not {POOL} {pool:?}",
            agent.name(),
            agent.config.pool
        )),
        _ => None,
    }
}

/// The agents `parameters` allow; a `storageHosts` entry naming no agent is `InvalidArgument`.
fn allowed(agents: &[Arc<Agent>], parameters: &HashMap<String, String>) -> Result<Vec<Arc<Agent>>> {
    if let Some(hosts) = parameters.get(STORAGE_HOSTS) {
        for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            if !agents.iter().any(|a| a.name() == host) {
                return Err(Error::invalid_argument(format!(
                    "{STORAGE_HOSTS} names {host:?}, which is not a configured storage host"
                )));
            }
        }
    }
    Ok(agents
        .iter()
        .filter(|a| excluded(a, parameters).is_none())
        .cloned()
        .collect())
}

/// Runs `call` on every agent at once; each agent with its answer, in `agents`' order.
pub(super) async fn each<T, Fut>(
    agents: &[Arc<Agent>],
    call: impl Fn(Arc<Agent>) -> Fut,
) -> Vec<(Arc<Agent>, Result<T>)>
where
    T: Send + 'static,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let running: Vec<_> = agents
        .iter()
        .map(|a| (Arc::clone(a), tokio::spawn(call(Arc::clone(a)))))
        .collect();
    let mut answers = Vec::with_capacity(running.len());
    for (agent, task) in running {
        let answer = task
            .await
            .unwrap_or_else(|e| Err(Error::internal(format!("agent {}: {e}", agent.name()))));
        answers.push((agent, answer));
    }
    answers
}

/// The agent already holding the volume `name`, if one does (see the module's idempotency).
async fn holder(
    agents: &[Arc<Agent>],
    candidates: &[Arc<Agent>],
    name: &str,
) -> Result<Option<Arc<Agent>>> {
    let lv = LvName::for_volume(name).to_string();
    let answers = each(agents, |agent| {
        let lv = lv.clone();
        async move { agent.client.get_volume(&lv).await.map(|_| ()) }
    })
    .await;
    let mut found = None;
    for (agent, answer) in answers {
        match answer {
            Ok(()) if found.is_none() => found = Some(agent),
            Ok(()) => {
                tracing::warn!(agent = agent.name(), lv = %lv, "the volume's LV exists on a second storage host");
            }
            Err(e) if e.kind() == Kind::NotFound => {}
            Err(e) if candidates.iter().any(|c| Arc::ptr_eq(c, &agent)) => {
                return Err(e.context(format!(
                    "cannot tell whether storage host {} already holds volume {name:?}",
                    agent.name()
                )));
            }
            Err(e) => {
                tracing::warn!(agent = agent.name(), error = %e, "storage host excluded by the request did not answer whether it holds the volume");
            }
        }
    }
    Ok(found)
}

/// Bytes the new volume needs: the required bytes, else the default capacity within the limit.
fn needed(req: &CreateVolumeRequest) -> u64 {
    let range = req.capacity_range.unwrap_or_default();
    let (required, limit) = (
        range.required_bytes.max(0).cast_unsigned(),
        range.limit_bytes.max(0).cast_unsigned(),
    );
    match (required, limit) {
        (0, 0) => DEFAULT_CAPACITY,
        (0, limit) => DEFAULT_CAPACITY.min(limit),
        (required, _) => required,
    }
}

/// The rank of `agent` among `preferred` topologies: the index of the first it lies within.
fn rank(agent: &Agent, preferred: &[HashMap<String, String>]) -> usize {
    preferred
        .iter()
        .position(|p| topology::serves(agent.topology(), Some(p)))
        .unwrap_or(preferred.len())
}

/// CreateVolume over `backends`' agents: the agent that holds the volume now, and what it did.
pub async fn create_volume(
    backends: &Backends,
    req: &CreateVolumeRequest,
) -> Result<(Arc<Agent>, Made<RemoteVolume>)> {
    let agents = backends.agent_list("placement")?;
    request::check_name(&req.name)?;
    let requirements = req.accessibility_requirements.clone().unwrap_or_default();
    let requisite: Vec<_> = requirements
        .requisite
        .iter()
        .map(|t| t.segments.clone())
        .collect();
    let preferred: Vec<_> = requirements
        .preferred
        .iter()
        .map(|t| t.segments.clone())
        .collect();
    let source = req
        .volume_content_source
        .as_ref()
        .filter(|s| s.r#type.is_some());
    let (source_agent, local_source) = match source {
        Some(s) => {
            let (agent, local) = source_on(backends, s)?;
            (Some(agent), Some(local))
        }
        None => (None, None),
    };
    let allowed = allowed(agents, &req.parameters)?;
    let reachable = |a: &Arc<Agent>| topology::unmet(a.topology(), &requisite).is_none();
    let mut candidates: Vec<_> = allowed.iter().filter(|a| reachable(a)).cloned().collect();
    if let Some(agent) = &source_agent {
        if let Some(why) = excluded(agent, &req.parameters) {
            return Err(Error::invalid_argument(format!(
                "the content source is on storage host {}, which the parameters exclude: {why}",
                agent.name()
            )));
        }
        candidates.retain(|c| Arc::ptr_eq(c, agent));
    }
    if candidates.is_empty() {
        // Refused before any agent is asked: a request no agent can serve is refused alike
        // whether or not one holds the name.
        return Err(nowhere(&allowed, &requisite));
    }
    let forwarded = remote::forwarded(&req.parameters);
    let op = CreateVolume {
        name: &req.name,
        capacity: req.capacity_range.as_ref(),
        capabilities: &req.volume_capabilities,
        parameters: &forwarded,
        requisite: &[],
    };
    if let Some(agent) = holder(agents, &candidates, &req.name).await? {
        if !candidates.iter().any(|c| Arc::ptr_eq(c, &agent)) {
            return Err(Error::already_exists(format!(
                "volume {:?} already exists on storage host {}, which this request does not allow (storageHosts, pool, topology or content source)",
                req.name,
                agent.name()
            )));
        }
        let made = agent
            .client
            .create_volume(op, local_source.as_ref())
            .await?;
        return Ok((agent, made));
    }
    let chosen = place(&candidates, &preferred, req, &forwarded, needed(req)).await?;
    tracing::info!(agent = chosen.name(), name = %req.name, "placing volume");
    let made = chosen
        .client
        .create_volume(op, local_source.as_ref())
        .await?;
    Ok((chosen, made))
}

/// Why no agent can take a new volume.
fn nowhere(allowed: &[Arc<Agent>], requisite: &[HashMap<String, String>]) -> Error {
    if allowed.is_empty() {
        return Error::invalid_argument(format!(
            "no configured storage host matches the parameters {STORAGE_HOSTS} and {POOL}"
        ));
    }
    let why: Vec<String> = allowed
        .iter()
        .filter_map(|a| topology::unmet(a.topology(), requisite))
        .map(|why| why.replacen("this storage host", "a storage host", 1))
        .collect();
    // spec.md, CreateVolume errors: "Unable to provision in `accessible_topology`".
    Error::resource_exhausted(format!("no storage host is reachable: {}", why.join("; ")))
}

/// The agent and local id of a content source; `NotFound` when no configured agent holds it.
fn source_on(
    backends: &Backends,
    source: &csi_proto::v1::VolumeContentSource,
) -> Result<(Arc<Agent>, csi_proto::v1::VolumeContentSource)> {
    let (raw, what) = match &source.r#type {
        Some(SourceType::Snapshot(s)) => (&s.snapshot_id, "snapshot"),
        Some(SourceType::Volume(v)) => (&v.volume_id, "volume"),
        None => return Err(Error::invalid_argument("content source names nothing")),
    };
    let field = format!("content source {what} id");
    let Some(resolved) = backends.resolve(raw, &field)? else {
        return Err(Backends::unresolved(raw, &format!("source {what}")));
    };
    let Backend::Agent(agent) = resolved.backend else {
        return Err(Error::internal(
            "an agent's source resolved to the local host",
        ));
    };
    let mut local = source.clone();
    match &mut local.r#type {
        Some(SourceType::Snapshot(s)) => s.snapshot_id = resolved.local,
        Some(SourceType::Volume(v)) => v.volume_id = resolved.local,
        None => {}
    }
    Ok((agent, local))
}

/// The candidate a new volume goes to (see the module's placement).
async fn place(
    candidates: &[Arc<Agent>],
    preferred: &[HashMap<String, String>],
    req: &CreateVolumeRequest,
    forwarded: &HashMap<String, String>,
    needed: u64,
) -> Result<Arc<Agent>> {
    if let [only] = candidates {
        // No choice to make: its agent answers whether the volume fits.
        return Ok(Arc::clone(only));
    }
    let caps = req.volume_capabilities.clone();
    let answers = each(candidates, |agent| {
        let (caps, params) = (caps.clone(), forwarded.clone());
        async move { agent.client.get_capacity(&caps, &params).await }
    })
    .await;
    let mut first_error = None;
    let mut ranked = Vec::new();
    for (agent, answer) in answers {
        match answer {
            Ok(capacity) => ranked.push((rank(&agent, preferred), capacity.available, agent)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    ranked.sort_by(|a, b| (a.0, b.1, a.2.name()).cmp(&(b.0, a.1, b.2.name())));
    let roomiest = ranked
        .iter()
        .max_by_key(|(_, free, _)| *free)
        .map(|r| Arc::clone(&r.2));
    ranked
        .into_iter()
        .find(|(_, free, _)| *free >= needed)
        .map(|(_, _, agent)| agent)
        .or(roomiest)
        .ok_or_else(|| first_error.unwrap_or_else(|| Error::internal("no candidate answered")))
}

/// GetCapacity over `backends`' agents (see the module).
pub async fn get_capacity(
    backends: &Backends,
    req: &GetCapacityRequest,
) -> Result<GetCapacityResponse> {
    let agents = backends.agent_list("capacity across hosts")?;
    let wanted = req.accessible_topology.as_ref().map(|t| &t.segments);
    let serving: Vec<_> = allowed(agents, &req.parameters)?
        .into_iter()
        .filter(|a| topology::serves(a.topology(), wanted))
        .collect();
    let caps = req.volume_capabilities.clone();
    let params = remote::forwarded(&req.parameters);
    let answers = each(&serving, |agent| {
        let (caps, params) = (caps.clone(), params.clone());
        async move { agent.client.get_capacity(&caps, &params).await }
    })
    .await;
    let (mut total, mut largest, mut minimum) = (0u64, 0u64, None::<u64>);
    for (_, answer) in answers {
        let capacity = answer?;
        total = total.saturating_add(capacity.available);
        largest = largest.max(capacity.available);
        minimum = Some(minimum.map_or(capacity.minimum_volume_size, |m| {
            m.min(capacity.minimum_volume_size)
        }));
    }
    let bytes = |b: u64| i64::try_from(b).unwrap_or(i64::MAX);
    Ok(GetCapacityResponse {
        available_capacity: bytes(total),
        maximum_volume_size: (!serving.is_empty()).then(|| bytes(largest)),
        minimum_volume_size: minimum.map(bytes),
    })
}
