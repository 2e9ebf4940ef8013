//! One csi-controller over several carve-agents (issue 19): the CSI Controller service with the
//! backends of an agents file, each agent a real Agent service over a [`FakeHost`] served with
//! mutual TLS on loopback. Each host's LVM script says what reached it, so a request that went
//! to the wrong host fails twice: an unexpected command there, an unconsumed one here.

#[path = "../support/mod.rs"]
mod support;

mod failures;
mod guards;
mod ids;
mod listing;
mod partition;
mod placement;
mod secrets;
mod validate;

use csi_common::{mtls::MtlsFiles, testing::tls::Ca};
use csi_controller::{
    fleet::{Agent, Backends, config},
    ops::testing::{FakeHost, VG},
    service::ControllerService,
};
use csi_proto::v1::{
    CreateVolumeRequest, Topology, TopologyRequirement, Volume, VolumeCapability,
    controller_server::Controller,
    volume_capability::{AccessMode, AccessType, MountVolume, access_mode::Mode},
};
use std::{collections::HashMap, time::Duration};
use support::AGENT_NAME;
use tokio::sync::oneshot;
use tonic::{Code, Request};

/// The topology key the agents' segments use.
pub const ZONE: &str = "topology.carve.dev/zone";
/// Bytes in a MiB.
pub const MIB: u64 = 1 << 20;

/// One agent of the fleet.
#[derive(Debug)]
pub struct Member {
    /// Its name in the agents file.
    pub name: &'static str,
    /// Its storage host.
    pub host: FakeHost,
    /// Its address.
    pub address: String,
    /// The proxy the controller reaches it through, if any ([`fleet_proxied`]).
    pub proxy: Option<partition::Proxy>,
    stop: Option<oneshot::Sender<()>>,
}

/// A controller over agents, and the agents.
#[derive(Debug)]
pub struct Fleet {
    /// The controller's CSI service.
    pub svc: ControllerService,
    /// The agents, as listed.
    pub members: Vec<Member>,
    /// The controller's client certificate.
    pub files: MtlsFiles,
    backends: Backends,
    _dir: tempfile::TempDir,
}

/// An agent to start: its name, its zone (`""`: none), whether it is the default one.
pub type Spec = (&'static str, &'static str, bool);

/// The agents file entry of `spec` at `address`.
fn entry((name, zone, default): Spec, address: &str) -> String {
    let segments = match zone {
        "" => String::new(),
        zone => format!(r#", "segments": {{"{ZONE}": "{zone}"}}"#),
    };
    format!(
        r#"{{"name": "{name}", "address": "https://{address}", "serverName": "{AGENT_NAME}", "pools": ["{VG}"], "default": {default}{segments}}}"#
    )
}

/// A fleet of `specs`, all started.
pub async fn fleet(specs: &[Spec]) -> Fleet {
    fleet_with(specs, &[]).await
}

/// A fleet of `specs`, and in its agents file also `extra` (spec, `host:port`): addresses no
/// agent of this fleet serves ([`silent`]).
pub async fn fleet_with(specs: &[Spec], extra: &[(Spec, &str)]) -> Fleet {
    build(specs, extra, false).await
}

/// A fleet of `specs`, the controller reaching each agent through a [`partition::Proxy`].
pub async fn fleet_proxied(specs: &[Spec]) -> Fleet {
    build(specs, &[], true).await
}

async fn build(specs: &[Spec], extra: &[(Spec, &str)], proxied: bool) -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("carve link CA");
    let mut members = Vec::new();
    let mut entries = Vec::new();
    for spec in specs {
        let host = FakeHost::new();
        let (address, stop) =
            support::serve(support::service(&host.ctx), &ca, &dir.path().join(spec.0)).await;
        let proxy = if proxied {
            Some(partition::Proxy::to(address.clone()).await)
        } else {
            None
        };
        let dialled = proxy.as_ref().map_or(&address, |p| &p.address);
        entries.push(entry(*spec, dialled));
        members.push(Member {
            name: spec.0,
            host,
            address,
            proxy,
            stop: Some(stop),
        });
    }
    for (spec, address) in extra {
        entries.push(entry(*spec, address));
    }
    let files = ca.files(&dir.path().join("controller"), &["controller"], &ca);
    let text = format!(r#"{{"agents": [{}]}}"#, entries.join(","));
    let mtls = files.load().unwrap();
    let agents = config::parse(&text)
        .unwrap()
        .into_iter()
        .map(|c| Agent::connect(c, &mtls).unwrap())
        .collect();
    let backends = Backends::agents(agents);
    Fleet {
        svc: ControllerService::over(backends.clone()),
        members,
        files,
        backends,
        _dir: dir,
    }
}

impl Fleet {
    /// The storage host of the agent `name`.
    pub fn host(&self, name: &str) -> &FakeHost {
        &self.members.iter().find(|m| m.name == name).unwrap().host
    }

    /// The proxy in front of the agent `name` ([`fleet_proxied`]).
    pub fn proxy(&self, name: &str) -> &partition::Proxy {
        let member = self.members.iter().find(|m| m.name == name).unwrap();
        member.proxy.as_ref().expect("a proxied fleet")
    }

    /// A second controller over the same agents, with guards of its own: the controller as it
    /// is after a restart (or a leader change) while an earlier call may still run on an agent.
    pub fn restarted(&self) -> ControllerService {
        ControllerService::over(self.backends.clone())
    }

    /// Every host's script was used up, and nothing else ran.
    pub fn finish(&self) {
        for m in &self.members {
            m.host.finish();
        }
    }

    /// Stops the agent `name` and waits until it no longer accepts connections and has closed
    /// the ones it had.
    pub async fn stop(&mut self, name: &str) {
        let member = self.members.iter_mut().find(|m| m.name == name).unwrap();
        drop(member.stop.take());
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(&member.address)
                .await
                .is_err()
            {
                // Connections idle at shutdown close within the drain's grace (500 ms).
                tokio::time::sleep(Duration::from_millis(700)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("agent {name} still listens");
    }
}

/// A peer that accepts connections and never says a word (a hung process, or another service
/// on the agent's port): its address, listening until the task is aborted.
pub async fn silent() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (address, task)
}

/// An ext4 single-node-writer capability.
pub fn ext4() -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: "ext4".into(),
            ..Default::default()
        })),
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeWriter as i32,
        }),
    }
}

/// The topology `{ZONE: zone}`.
pub fn zone(zone: &str) -> Topology {
    Topology {
        segments: HashMap::from([(ZONE.to_string(), zone.to_string())]),
    }
}

/// CreateVolume of `name` for 5 MiB (the [`support::Script`] volume) with `parameters`.
pub fn create_request(name: &str, parameters: &[(&str, &str)]) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(csi_proto::v1::CapacityRange {
            required_bytes: (5 * MIB).cast_signed(),
            limit_bytes: 0,
        }),
        volume_capabilities: vec![ext4()],
        parameters: parameters
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
        ..Default::default()
    }
}

/// `req` with these requisite and preferred zones.
pub fn in_zones(
    mut req: CreateVolumeRequest,
    requisite: &[&str],
    preferred: &[&str],
) -> CreateVolumeRequest {
    req.accessibility_requirements = Some(TopologyRequirement {
        requisite: requisite.iter().map(|z| zone(z)).collect(),
        preferred: preferred.iter().map(|z| zone(z)).collect(),
    });
    req
}

/// The volume CreateVolume answers, or its error's code and message.
pub async fn create(
    svc: &ControllerService,
    req: CreateVolumeRequest,
) -> Result<Volume, (Code, String)> {
    svc.create_volume(Request::new(req))
        .await
        .map(|r| r.into_inner().volume.unwrap())
        .map_err(|s| (s.code(), s.message().to_string()))
}

/// The LV (and local id) of the volume named `name`.
pub fn lv(name: &str) -> String {
    csi_common::ids::LvName::for_volume(name).to_string()
}

/// Every host in `names` is asked whether it holds the volume `name`, and does not.
pub fn expect_absent(fleet: &Fleet, names: &[&str], name: &str) {
    for n in names {
        fleet.host(n).expect_lvs_one(&lv(name), &[]);
    }
}

/// The answer of an RPC that must succeed (panics with the status otherwise).
pub async fn ok<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> T {
    call.await.unwrap_or_else(|s| panic!("{s:?}")).into_inner()
}
