//! Every RPC's idempotency and error cases against the fakes: the harness here, the cases by
//! subject in `tests/`.

use super::{
    NodeCore,
    capability::{block_cap, mount_cap},
    testing::*,
};
use crate::{
    filesystem::{Probe, mkfs::Formatter},
    records::StateDir,
};
use csi_common::{
    Kind,
    command::{Expectation, ScriptedRunner},
    contract::{CHAP_PASSWORD, CHAP_USERNAME, CONTENT_SOURCE},
    ids::NodeId,
};
use csi_proto::v1::{volume_capability::access_mode::Mode, *};
use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

const VOL: &str = "csi-v1";
const SERIAL: &str = "5a0c1e00-0000-4000-8000-00000000c0de";

mod arguments;
mod expand;
mod formatting;
mod holds;
mod lifecycle;
mod multipath;
mod safety;
mod unknown;
mod upkeep;

struct Harness {
    core: NodeCore,
    init: Arc<FakeInitiator>,
    devs: Arc<FakeDevices>,
    probe: Arc<FakeProbe>,
    mounts: Arc<RecordingMounter>,
    mp: Arc<FakeMultipath>,
    runner: Arc<ScriptedRunner>,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

/// sysfs, procfs and /dev trees under `root`: our own mount namespace only, no disks.
fn fake_host(root: &std::path::Path) -> crate::host::HostView {
    let proc = root.join("proc");
    std::fs::create_dir_all(proc.join("self/ns")).unwrap();
    std::os::unix::fs::symlink("mnt:[1]", proc.join("self/ns/mnt")).unwrap();
    std::fs::create_dir_all(root.join("dev")).unwrap();
    crate::host::HostView {
        sys: root.join("sys"),
        proc,
        dev: root.join("dev"),
    }
}

fn harness(probe: Result<Probe, String>) -> Harness {
    let (dir, root) = dirs();
    let devs = Arc::new(FakeDevices::new(SERIAL));
    let init = Arc::new(FakeInitiator {
        lun_hidden: devs.lun_hidden.clone(),
        ..FakeInitiator::default()
    });
    let probe = Arc::new(FakeProbe::new(probe));
    let mounts = Arc::new(RecordingMounter::default());
    let runner = Arc::new(ScriptedRunner::new());
    let mp = Arc::new(FakeMultipath::new(
        &crate::device::matcher::expected_wwid(SERIAL).unwrap(),
    ));
    let core = NodeCore {
        node_id: NodeId::parse("iqn.2024-01.dev.carve:node1").unwrap(),
        max_volumes: 10,
        topology: Default::default(),
        initiator: init.clone(),
        devices: devs.clone(),
        probe: probe.clone(),
        mounter: mounts.clone(),
        formatter: Formatter {
            runner: runner.clone(),
            timeout: Duration::from_secs(5),
        },
        records: StateDir::new(root.join("state")),
        mkfs_permits: Arc::new(tokio::sync::Semaphore::new(1)),
        device_timeout: Duration::from_secs(1),
        host: fake_host(&root),
        kubelet_dir: root.clone(),
        multipath: mp.clone(),
        multipath_mode: crate::multipath::Mode::Auto,
    };
    Harness {
        core,
        init,
        devs,
        probe,
        mounts,
        mp,
        runner,
        root,
        _dir: dir,
    }
}

impl Harness {
    fn p(&self, rel: &str) -> String {
        self.root.join(rel).to_string_lossy().into_owned()
    }

    fn stage_req(&self, cap: VolumeCapability) -> NodeStageVolumeRequest {
        let ctx = HashMap::from([
            (
                "targetIqn".to_string(),
                format!("iqn.2024-01.dev.carve:{VOL}"),
            ),
            ("portals".to_string(), "127.0.0.1:3260".to_string()),
            ("lun".to_string(), "0".to_string()),
            ("serial".to_string(), SERIAL.to_string()),
            ("blank".to_string(), "true".to_string()),
        ]);
        NodeStageVolumeRequest {
            volume_id: VOL.into(),
            publish_context: ctx,
            staging_target_path: self.p("stage"),
            volume_capability: Some(cap),
            ..Default::default()
        }
    }

    fn publish_req(
        &self,
        cap: VolumeCapability,
        target: &str,
        readonly: bool,
    ) -> NodePublishVolumeRequest {
        NodePublishVolumeRequest {
            volume_id: VOL.into(),
            staging_target_path: self.p("stage"),
            target_path: self.p(target),
            volume_capability: Some(cap),
            readonly,
            ..Default::default()
        }
    }

    /// Stages `cap`, then publishes it read-write at `target` (relative to the root).
    async fn stage_and_publish(&self, cap: &VolumeCapability, target: &str) {
        rpc::stage(&self.core, self.stage_req(cap.clone()))
            .await
            .unwrap();
        rpc::publish(&self.core, self.publish_req(cap.clone(), target, false))
            .await
            .unwrap();
    }

    /// The runner expects what staging the existing ext4 on /dev/sdb runs: `e2fsck -p`, then
    /// `resize2fs` (an existing filesystem fills its disk).
    fn expect_existing_ext4(&self) {
        self.runner
            .expect(Expectation::new(["e2fsck", "-p", "/dev/sdb"]))
            .expect(Expectation::new(["resize2fs", "/dev/sdb"]));
    }

    /// The node's stage record of VOL, if it keeps one.
    fn record(&self) -> Option<crate::records::StageRecord> {
        self.core
            .records
            .load(&csi_common::placed::VolumeHandle::parse(VOL).unwrap())
            .unwrap()
    }

    /// Whether the node keeps a stage record of VOL.
    fn staged(&self) -> bool {
        self.record().is_some()
    }

    fn unstage_req(&self) -> NodeUnstageVolumeRequest {
        NodeUnstageVolumeRequest {
            volume_id: VOL.into(),
            staging_target_path: self.p("stage"),
        }
    }

    /// The runner expects the mkfs of a new ext4 volume on `device` (the argv of `mkfs_cmd`,
    /// which its own test pins).
    fn expect_mkfs_ext4(&self, device: &str) {
        let mkfs = crate::filesystem::mkfs::mkfs_cmd("ext4", std::path::Path::new(device)).unwrap();
        self.runner.expect(Expectation::of(&mkfs));
    }

    fn mount_calls(&self) -> Vec<String> {
        let root = self.root.to_string_lossy().into_owned();
        self.mounts
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.replace(&root, ""))
            .collect()
    }
}

fn ext4() -> VolumeCapability {
    mount_cap("ext4", Mode::SingleNodeWriter)
}

/// The operations as `service` calls them: a CSI request in (through `service`'s conversion to
/// the operation's domain request), a CSI response out, so that these tests check what a CO gets.
#[allow(
    clippy::needless_pass_by_value,
    reason = "each takes its request by value, as the gRPC service receives it"
)]
mod rpc {
    use crate::ops::{self, NodeCore};
    use csi_common::Result;
    use csi_proto::v1::*;

    pub async fn stage(core: &NodeCore, req: NodeStageVolumeRequest) -> Result<()> {
        ops::stage::stage(core, (&req).into()).await
    }

    pub async fn unstage(core: &NodeCore, req: NodeUnstageVolumeRequest) -> Result<()> {
        ops::unstage::unstage(core, (&req).into()).await
    }

    pub async fn publish(core: &NodeCore, req: NodePublishVolumeRequest) -> Result<()> {
        ops::publish::publish(core, (&req).into()).await
    }

    pub async fn unpublish(core: &NodeCore, req: NodeUnpublishVolumeRequest) -> Result<()> {
        ops::unpublish::unpublish(core, (&req).into()).await
    }

    pub fn stats(
        core: &NodeCore,
        req: NodeGetVolumeStatsRequest,
    ) -> Result<NodeGetVolumeStatsResponse> {
        ops::stats::stats(core, (&req).into()).map(Into::into)
    }

    pub async fn expand(
        core: &NodeCore,
        req: NodeExpandVolumeRequest,
    ) -> Result<NodeExpandVolumeResponse> {
        ops::expand::expand(core, (&req).into())
            .await
            .map(Into::into)
    }
}
