//! The backends a controller serves volumes from, and which one an id names: the local storage
//! host ([`Backend::Local`], a single-host controller: today's ids, today's code path) or the
//! carve-agents of the agents file ([`Backend::Agent`], issue 19). [`Backends::resolve`] reads an
//! untrusted volume or snapshot id ([`csi_common::placed`]); `create`, `listing` and `remote` do
//! what needs several agents (placement, idempotency by name, paging across hosts) or turns an
//! agent's answer into CSI's messages (its ids placed, its topology attached).
//!
//! Invariants: a controller has either the local host or agents, never both; an id without a
//! host name is the default backend's (the local host, or the agent marked `default`), and a
//! placed id resolves only to a configured agent serving that volume group, so no id ever reaches
//! a host it was not issued for; an agent's volumes answer with that agent's topology only; the
//! controller's guards hold a resolved volume ([`Resolved::guard_key`]), never one spelling of
//! its id.

pub mod config;
pub mod create;
pub mod listing;
pub mod remote;
pub mod snapshots;

use crate::{agent::AgentBackend, ops::Ctx};
use config::AgentConfig;
use csi_common::{Error, Result, mtls::Mtls, placed::Placed, topology::Segments};
use std::sync::Arc;

/// StorageClass parameter: the agents a new volume may go to (comma-separated names).
pub const STORAGE_HOSTS: &str = "storageHosts";
/// StorageClass parameter: the volume group a new volume must come from.
pub const POOL: &str = "pool";

/// One storage host behind its carve-agent.
#[derive(Debug)]
pub struct Agent {
    /// What the agents file says of it.
    pub config: AgentConfig,
    /// The client.
    pub client: AgentBackend,
}

impl Agent {
    /// The agent of `config`, connected lazily with `mtls`.
    pub fn connect(config: AgentConfig, mtls: &Mtls) -> Result<Self> {
        let client =
            AgentBackend::connect_lazy(&config.name, &config.address, &config.server_name, mtls)
                .map_err(|e| e.context(format!("agent {}", config.name)))?;
        Ok(Self { config, client })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The CSI id of the volume or snapshot `local` on this agent: `local` itself on the default
    /// agent, else placed ([`csi_common::placed::format`]).
    pub fn id(&self, local: &str) -> String {
        if self.config.default {
            local.to_string()
        } else {
            csi_common::placed::format(&self.config.name, &self.config.pool, local)
        }
    }

    /// The canonical id of `local` on this agent, `AGENT:VG:LOCAL` even on the default agent:
    /// the one spelling of every id of this agent's volumes and snapshots, which the
    /// controller's guards are keyed by ([`Resolved::guard_key`]).
    pub fn canonical(&self, local: &str) -> String {
        csi_common::placed::format(&self.config.name, &self.config.pool, local)
    }

    /// The topologies its volumes are reachable from (none: everywhere).
    pub fn topology(&self) -> &[Segments] {
        if self.config.segments.is_empty() {
            &[]
        } else {
            std::slice::from_ref(&self.config.segments)
        }
    }
}

/// One backend.
#[derive(Debug, Clone)]
pub enum Backend {
    /// This controller's own storage host.
    Local(Box<Ctx>),
    /// A storage host behind its agent.
    Agent(Arc<Agent>),
}

/// An id resolved: its backend and the id that backend knows it by.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The backend.
    pub backend: Backend,
    /// The backend's own id (the LV name).
    pub local: String,
}

impl Resolved {
    /// The key the controller's per-volume and per-snapshot guards take for it: the local id on
    /// the local host (exactly the id sent, as a single-host controller always keyed them), the
    /// canonical placed id on an agent ([`Agent::canonical`]), so both spellings of a default
    /// agent's id (`csi-x`, `AGENT:VG:csi-x`) are one volume to the guards.
    pub fn guard_key(&self) -> String {
        match &self.backend {
            Backend::Local(_) => self.local.clone(),
            Backend::Agent(agent) => agent.canonical(&self.local),
        }
    }
}

/// Every backend of a controller.
#[derive(Debug, Clone)]
pub enum Backends {
    /// The local host only (no agents file).
    Local(Box<Ctx>),
    /// The agents of the agents file, the default one (if any) first, then by name.
    Agents(Arc<[Arc<Agent>]>),
}

impl Backends {
    /// The agents, for `what` (an operation across hosts); `Internal` in single-host mode,
    /// where the service never calls it.
    pub fn agent_list(&self, what: &str) -> Result<&[Arc<Agent>]> {
        match self {
            Self::Agents(agents) => Ok(agents),
            Self::Local(_) => Err(Error::internal(format!("{what} needs agents"))),
        }
    }

    /// The agents `agents`, in listing order.
    pub fn agents(mut agents: Vec<Agent>) -> Self {
        agents.sort_by(|a, b| (!a.config.default, a.name()).cmp(&(!b.config.default, b.name())));
        Self::Agents(agents.into_iter().map(Arc::new).collect())
    }

    /// The backends in listing order.
    pub fn all(&self) -> Vec<Backend> {
        match self {
            Self::Local(ctx) => vec![Backend::Local(ctx.clone())],
            Self::Agents(agents) => agents.iter().cloned().map(Backend::Agent).collect(),
        }
    }

    /// The agent named `name`.
    pub fn agent(&self, name: &str) -> Option<&Arc<Agent>> {
        match self {
            Self::Local(_) => None,
            Self::Agents(agents) => agents.iter().find(|a| a.name() == name),
        }
    }

    /// The backend of an untrusted volume or snapshot id (request field `field`), or `None`
    /// when no configured backend can hold it. On the local host every id without a host name
    /// goes to the operations as it is (they answer empty and foreign ids as they always have);
    /// with agents, an empty id is `InvalidArgument`.
    pub fn resolve(&self, raw: &str, field: &str) -> Result<Option<Resolved>> {
        let resolved = |backend: Backend, local: &str| {
            Some(Resolved {
                backend,
                local: local.to_string(),
            })
        };
        match (self, Placed::parse(raw)) {
            (Self::Local(ctx), Placed::Default(local)) => {
                Ok(resolved(Backend::Local(ctx.clone()), local))
            }
            (Self::Agents(_), Placed::Default("")) => {
                Err(Error::invalid_argument(format!("{field} is required")))
            }
            (Self::Agents(agents), Placed::Default(local)) => Ok(agents
                .iter()
                .find(|a| a.config.default)
                .and_then(|a| resolved(Backend::Agent(Arc::clone(a)), local))),
            (_, Placed::Agent { agent, vg, local }) => Ok(self
                .agent(agent)
                .filter(|a| a.config.pool == vg)
                .and_then(|a| resolved(Backend::Agent(Arc::clone(a)), local))),
            (_, Placed::Foreign) => Ok(None),
        }
    }

    /// Why `raw` resolved to nothing: `NotFound`, naming the host it names if it names one.
    pub fn unresolved(raw: &str, what: &str) -> Error {
        match Placed::parse(raw) {
            Placed::Agent { agent, vg, .. } => Error::not_found(format!(
                "{what} {raw:?} does not exist here: no storage host {agent:?} serving volume group {vg:?} is configured"
            )),
            _ => Error::not_found(format!("{what} {raw:?} does not exist")),
        }
    }

    /// Whether an id that resolved to nothing may still name a volume on a host this controller
    /// cannot reach (a placed id, or a Carve-shaped id without a default agent): DeleteVolume and
    /// DeleteSnapshot answer `NotFound` then rather than OK, so the CO keeps its object (and
    /// says why) instead of forgetting storage that may still hold data.
    pub fn names_a_host(raw: &str) -> bool {
        match Placed::parse(raw) {
            Placed::Agent { .. } => true,
            Placed::Default(local) => csi_common::ids::LvName::parse(local).is_ok(),
            Placed::Foreign => false,
        }
    }

    /// Whether any backend's volumes are reachable from only some topologies (the plugin then
    /// advertises VOLUME_ACCESSIBILITY_CONSTRAINTS).
    pub fn constrained(&self) -> bool {
        match self {
            Self::Local(ctx) => !ctx.settings.accessible_topology.is_empty(),
            Self::Agents(agents) => agents.iter().any(|a| !a.topology().is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::FakeHost;

    /// Single-host mode: every id without a host name reaches the operations exactly as sent
    /// (they answer empty and foreign ids as they always have), and is its guards' key; placed
    /// ids reach nothing.
    #[test]
    fn the_local_host_takes_every_id_as_it_is() {
        let host = FakeHost::new();
        let backends = Backends::Local(Box::new(host.ctx.clone()));
        for raw in ["csi-v-1", "snap-s-1", "", "fake-vol-id", "名"] {
            let resolved = backends.resolve(raw, "volume_id").unwrap().unwrap();
            assert!(matches!(resolved.backend, Backend::Local(_)));
            assert_eq!(resolved.local, raw);
            assert_eq!(
                resolved.guard_key(),
                raw,
                "guards keyed as they always were"
            );
        }
        for placed in ["a:vg0:csi-v-1", "a::b"] {
            assert!(backends.resolve(placed, "volume_id").unwrap().is_none());
        }
        assert!(!backends.constrained());
    }

    #[test]
    fn only_ids_that_may_name_a_volume_somewhere_are_kept_from_ok() {
        assert!(Backends::names_a_host("a:vg0:csi-v-1"));
        assert!(Backends::names_a_host("csi-v-1"));
        assert!(Backends::names_a_host("snap-s-1"));
        for never in ["fake-vol-id", "a::b", "", "CSI-V"] {
            assert!(!Backends::names_a_host(never), "{never:?}");
        }
        let error = Backends::unresolved("zz:vg0:csi-v-1", "volume");
        assert_eq!(error.kind(), csi_common::Kind::NotFound);
        assert!(error.message().contains("\"zz\""), "{error}");
    }
}
