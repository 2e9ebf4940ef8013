//! Loopback plumbing for the agent's tests: CAs and certificates ([`Ca`], csi-common's), an Agent
//! service served with mutual TLS on 127.0.0.1 by [`csi_common::testing::tls::serve`], clients
//! connected by [`csi_common::mtls::connect`], and the fake host's LVM script of one volume's
//! life ([`Script`]).

#![allow(dead_code)] // each test binary uses its own part

use carve_agent::{proto, service::AgentService};
pub use csi_common::testing::tls::Ca;
use csi_common::{
    command::Expectation,
    ids::LvName,
    mtls::{MtlsFiles, connect},
    testing::{Ready, tls},
};
use csi_controller::{
    lvm::{Allocation, LvRow, argv, quarantine, tags::VolumeRecord},
    ops::testing::{FakeHost, NODE1, VG},
};
use proto::{agent_client::AgentClient, agent_server::AgentServer};
use std::{path::Path, sync::Arc, time::Duration};
use tokio::sync::oneshot;
use tonic::{service::Routes, transport::Channel};

/// The name the agent's certificate carries and clients check.
pub const AGENT_NAME: &str = "agent.carve.test";

/// `service` served on loopback with a certificate for [`AGENT_NAME`] that `ca` signs.
pub async fn serve(service: AgentService, ca: &Ca, dir: &Path) -> (String, oneshot::Sender<()>) {
    let files = ca.files(&dir.join("agent"), &[AGENT_NAME], ca);
    let routes = Routes::new(AgentServer::new(service));
    tls::serve(routes, files.load().unwrap()).await
}

/// A client of the agent at `address`, presenting the certificate in `files`.
pub async fn client(
    address: &str,
    files: &MtlsFiles,
) -> Result<AgentClient<Channel>, tonic::transport::Error> {
    let channel = connect(address, AGENT_NAME, &files.load().unwrap()).await?;
    Ok(AgentClient::new(channel))
}

/// The service over `ctx`, always ready.
pub fn service(ctx: &csi_controller::ops::Ctx) -> AgentService {
    AgentService::new(ctx.clone(), Arc::new(Ready))
}

/// An agent serving `host` with a certificate a fresh CA signed, and a client of it presenting
/// a certificate the same CA signed. The agent stops when this is dropped: keep it bound.
#[must_use]
pub struct Connected {
    /// The client.
    pub agent: AgentClient<Channel>,
    /// The agent's address.
    pub address: String,
    /// The client's certificate, key and CA.
    pub files: MtlsFiles,
    /// Where the certificates are.
    pub dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

/// [`Connected`] to an agent over `host`.
pub async fn connected(host: &FakeHost) -> Connected {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("carve link CA");
    let (address, stop) = serve(service(&host.ctx), &ca, dir.path()).await;
    let files = ca.files(&dir.path().join("controller"), &["controller"], &ca);
    let agent = client(&address, &files).await.unwrap();
    Connected {
        agent,
        address,
        files,
        dir,
        _stop: stop,
    }
}

const MIB: u64 = 1 << 20;

/// What LVM does and reports through the life of the linear ext4 volume `name` asked for with
/// 5 MiB (8 MiB: two 4 MiB extents), published read-write to [`NODE1`].
pub struct Script {
    /// Its LV (and volume id).
    pub lv: LvName,
    /// The tags `lvcreate` writes.
    pub tags: Vec<String>,
}

impl Script {
    /// The script of volume `name`.
    pub fn new(name: &str) -> Self {
        let record = VolumeRecord {
            name: name.into(),
            required_bytes: 5 * MIB,
            capabilities: "mount/ext4/SINGLE_NODE_WRITER".into(),
            ..Default::default()
        };
        Self {
            lv: LvName::for_volume(name),
            tags: record.creation_tags(),
        }
    }

    /// The publication tag of [`NODE1`].
    pub fn publication() -> String {
        format!("carve.pub=rw:{NODE1}")
    }

    /// The LV's row with its creation tags and `extra`.
    pub fn row(&self, extra: &[String]) -> LvRow {
        let tags = self.tags.iter().chain(extra).cloned().collect();
        LvRow::fresh(self.lv.as_str(), 8 * MIB, None, tags)
    }

    /// The row once published (used, and the publication recorded).
    pub fn published(&self) -> LvRow {
        self.row(&["carve.used".into(), Self::publication()])
    }

    /// The row once unpublished (used).
    pub fn unpublished(&self) -> LvRow {
        self.row(&["carve.used".into()])
    }

    /// CreateVolume of a new volume: one report of an empty VG, one `lvcreate`.
    pub fn expect_create(&self, host: &FakeHost) {
        host.expect_survey(10 << 30, 4 * MIB, &[]);
        host.expect_lvcreate(&self.lv, 8 * MIB, &Allocation::Linear, &self.tags);
    }

    /// The first publish to [`NODE1`]: the LV read, then one `lvchange` of its tags.
    pub fn expect_publish(&self, host: &FakeHost) {
        host.expect_lvs_one(self.lv.as_str(), &[self.row(&[])]);
        host.expect_retag(self.lv.as_str(), &[], &["carve.used", &Self::publication()]);
    }

    /// Unpublish from [`NODE1`]: the LV read, then its publication tag removed.
    pub fn expect_unpublish(&self, host: &FakeHost) {
        host.expect_lvs_one(self.lv.as_str(), &[self.published()]);
        host.expect_tag(self.lv.as_str(), &Self::publication(), false);
    }

    /// DeleteVolume of the unpublished volume: the LV read, the VG listed (no snapshots), the
    /// LV renamed into quarantine for wiping.
    pub fn expect_delete(&self, host: &FakeHost) {
        host.expect_lvs_one(self.lv.as_str(), &[self.unpublished()]);
        host.expect_lvs(&[self.unpublished()]);
        let quarantined = quarantine::name_for(&self.lv, 0);
        let timeout = Duration::from_secs(5);
        host.expect(Expectation::of(&argv::lvrename(
            VG,
            &self.lv,
            &quarantined,
            timeout,
        )));
    }
}
