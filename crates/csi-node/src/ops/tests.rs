//! Every RPC's idempotency and error cases against the fakes.

use super::{
    NodeCore,
    capability::{block_cap, mount_cap},
    fakes::*,
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

mod expand;
mod holds;
mod multipath;
mod safety;
mod unknown;

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

    fn unstage_req(&self) -> NodeUnstageVolumeRequest {
        NodeUnstageVolumeRequest {
            volume_id: VOL.into(),
            staging_target_path: self.p("stage"),
        }
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

#[tokio::test]
async fn a_session_without_its_disk_is_rescanned_once_before_stage_gives_up() {
    let h = harness(Ok(Probe::Empty));
    let cap = block_cap(Mode::SingleNodeWriter);
    *h.devs.lun_hidden.lock().unwrap() = true;
    super::stage::stage(&h.core, h.stage_req(cap.clone()))
        .await
        .expect("the rescan finds the disk");
    let calls = h.init.calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("rescan")).count(),
        1,
        "{calls:?}"
    );
    assert_eq!(*h.devs.calls.lock().unwrap(), ["wait timed out"]);
    super::unstage::unstage(&h.core, h.unstage_req())
        .await
        .unwrap();

    // The LUN is really gone: one rescan, then a loud failure and the login rolled back.
    let h = harness(Ok(Probe::Empty));
    *h.devs.lun_hidden.lock().unwrap() = true;
    *h.init.rescan_blind.lock().unwrap() = true;
    let err = super::stage::stage(&h.core, h.stage_req(cap))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::DeadlineExceeded, "{err}");
    assert!(
        err.message()
            .contains("even after a rescan of session 1 (host1)"),
        "{err}"
    );
    let calls = h.init.calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("rescan")).count(),
        1,
        "{calls:?}"
    );
    assert!(
        h.init.sessions.lock().unwrap().is_empty(),
        "logged out again: {calls:?}"
    );
    assert!(h.init.records.lock().unwrap().is_empty(), "{calls:?}");
    assert_eq!(
        *h.devs.calls.lock().unwrap(),
        ["wait timed out", "wait timed out"]
    );
}

#[tokio::test]
async fn new_volume_is_formatted_mounted_published_and_torn_down() {
    let h = harness(Ok(Probe::Empty));
    h.runner.expect(Expectation::new([
        "mkfs.ext4",
        "-q",
        "-E",
        "nodiscard",
        "-m",
        "0",
        "/dev/sdb",
    ]));
    super::stage::stage(&h.core, h.stage_req(ext4()))
        .await
        .unwrap();
    super::stage::stage(&h.core, h.stage_req(ext4()))
        .await
        .expect("idempotent: no second mkfs");
    h.runner.finish();
    super::publish::publish(&h.core, h.publish_req(ext4(), "pods/a", false))
        .await
        .unwrap();
    super::publish::publish(&h.core, h.publish_req(ext4(), "pods/a", false))
        .await
        .expect("idempotent");
    let err = super::publish::publish(&h.core, h.publish_req(ext4(), "pods/a", true))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::AlreadyExists);
    super::publish::publish(&h.core, h.publish_req(ext4(), "pods/b", true))
        .await
        .unwrap();
    let busy = super::unstage::unstage(&h.core, h.unstage_req())
        .await
        .unwrap_err();
    assert_eq!(
        busy.kind(),
        Kind::FailedPrecondition,
        "still published: {busy}"
    );
    for t in ["pods/a", "pods/b"] {
        let req = NodeUnpublishVolumeRequest {
            volume_id: VOL.into(),
            target_path: h.p(t),
        };
        super::unpublish::unpublish(&h.core, req.clone())
            .await
            .unwrap();
        super::unpublish::unpublish(&h.core, req)
            .await
            .expect("gone is OK");
        assert!(!h.root.join(t).exists());
    }
    super::unstage::unstage(&h.core, h.unstage_req())
        .await
        .unwrap();
    super::unstage::unstage(&h.core, h.unstage_req())
        .await
        .expect("idempotent");
    assert_eq!(
        h.mount_calls(),
        [
            "mount_fs /dev/sdb /stage ext4 ",
            "bind /stage /pods/a rw",
            "bind /stage /pods/b ro",
            "unmount /pods/a",
            "unmount /pods/b",
            "unmount /stage",
        ]
    );
    assert_eq!(*h.devs.calls.lock().unwrap(), ["flush sdb", "delete sdb"]);
    let calls = h.init.calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("login")).count(),
        1,
        "{calls:?}"
    );
    assert!(calls.ends_with(&[
        format!("logout iqn.2024-01.dev.carve:{VOL}"),
        format!("delete_record iqn.2024-01.dev.carve:{VOL}")
    ]));
    assert!(
        h.init.sessions.lock().unwrap().is_empty() && h.init.records.lock().unwrap().is_empty()
    );
    assert!(h.mounts.table.lock().unwrap().is_empty());
    assert_eq!(
        h.core
            .records
            .load(&csi_common::ids::VolumeId::parse(VOL).unwrap())
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn restage_elsewhere_or_incompatibly_is_already_exists() {
    let h = harness(Ok(Probe::Filesystem("ext4".into())));
    h.runner
        .expect(Expectation::new(["e2fsck", "-p", "/dev/sdb"]));
    h.runner.expect(Expectation::new(["resize2fs", "/dev/sdb"])); // an existing fs fills its disk
    super::stage::stage(&h.core, h.stage_req(ext4()))
        .await
        .unwrap();
    h.runner.finish();
    let mut other = h.stage_req(ext4());
    other.staging_target_path = h.p("pods");
    assert_eq!(
        super::stage::stage(&h.core, other)
            .await
            .unwrap_err()
            .kind(),
        Kind::AlreadyExists
    );
    let xfs = h.stage_req(mount_cap("xfs", Mode::SingleNodeWriter));
    assert_eq!(
        super::stage::stage(&h.core, xfs).await.unwrap_err().kind(),
        Kind::AlreadyExists
    );
    let block = h.stage_req(block_cap(Mode::SingleNodeWriter));
    assert_eq!(
        super::stage::stage(&h.core, block)
            .await
            .unwrap_err()
            .kind(),
        Kind::AlreadyExists
    );
}

#[tokio::test]
async fn never_formats_when_anything_is_in_doubt_and_rolls_back() {
    for (probe, read_ok, content, serial) in [
        (Ok(Probe::PartitionTable("dos".into())), true, "", SERIAL),
        (
            Ok(Probe::Other("LVM2_member (raid)".into())),
            true,
            "",
            SERIAL,
        ),
        (Ok(Probe::Filesystem("xfs".into())), true, "", SERIAL),
        (Err("blkid: I/O error".to_string()), true, "", SERIAL),
        (Ok(Probe::Empty), false, "", SERIAL),
        (Ok(Probe::Empty), true, "snapshot:snap-x", SERIAL),
        (
            Ok(Probe::Empty),
            true,
            "",
            "5a0c1e00-0000-4000-8000-000000000bad",
        ),
    ] {
        let h = harness(probe.clone());
        *h.probe.read_ok.lock().unwrap() = read_ok;
        *h.devs.serial.lock().unwrap() = serial.into();
        let mut req = h.stage_req(ext4());
        req.volume_context
            .insert(CONTENT_SOURCE.into(), content.into());
        let err = super::stage::stage(&h.core, req).await.unwrap_err();
        assert_eq!(err.kind(), Kind::FailedPrecondition, "{probe:?}: {err}");
        h.runner.finish(); // no mkfs, no fsck ran
        assert!(h.mount_calls().is_empty(), "{probe:?}");
        assert!(
            h.init.sessions.lock().unwrap().is_empty(),
            "login rolled back for {probe:?}"
        );
        assert!(h.init.records.lock().unwrap().is_empty());
        assert!(
            std::fs::read_dir(h.root.join("state"))
                .unwrap()
                .next()
                .is_none(),
            "stage record removed"
        );
    }
}

#[tokio::test]
async fn block_volume_is_never_probed_formatted_or_mounted_at_staging() {
    let h = harness(Err("the probe must not run".into()));
    let cap = block_cap(Mode::SingleNodeSingleWriter);
    super::stage::stage(&h.core, h.stage_req(cap.clone()))
        .await
        .unwrap();
    assert!(h.mount_calls().is_empty());
    super::publish::publish(&h.core, h.publish_req(cap.clone(), "pods/dev", false))
        .await
        .unwrap();
    super::publish::publish(&h.core, h.publish_req(cap.clone(), "pods/dev", false))
        .await
        .unwrap();
    assert!(
        h.root.join("pods/dev").is_file(),
        "a file to bind the device node onto"
    );
    let second = super::publish::publish(&h.core, h.publish_req(cap.clone(), "pods/dev2", false))
        .await
        .unwrap_err();
    assert_eq!(
        second.kind(),
        Kind::FailedPrecondition,
        "single writer: {second}"
    );
    let req = NodeGetVolumeStatsRequest {
        volume_id: VOL.into(),
        volume_path: h.p("pods/dev"),
        staging_target_path: String::new(),
    };
    let stats = super::stats::stats(&h.core, req.clone()).await.unwrap();
    assert_eq!(stats.usage[0].total, 64 << 20);
    assert!(!stats.volume_condition.unwrap().abnormal);
    h.init.sessions.lock().unwrap().clear();
    let sick = super::stats::stats(&h.core, req)
        .await
        .unwrap()
        .volume_condition
        .unwrap();
    assert!(
        sick.abnormal && sick.message.contains("no iSCSI session"),
        "{sick:?}"
    );
    assert_eq!(h.mount_calls(), ["bind /dev/sdb /pods/dev rw"]);
}

#[tokio::test]
async fn chap_and_login_failures() {
    let h = harness(Ok(Probe::Empty));
    *h.init.login_error.lock().unwrap() = Some(csi_common::Error::failed_precondition(
        "authorization failure",
    ));
    let mut req = h.stage_req(block_cap(Mode::SingleNodeWriter));
    req.secrets = HashMap::from([
        (CHAP_USERNAME.into(), "u".into()),
        (CHAP_PASSWORD.into(), "a-long-secret-1".into()),
    ]);
    let err = super::stage::stage(&h.core, req.clone()).await.unwrap_err();
    assert_eq!(err.kind(), Kind::FailedPrecondition);
    assert!(!err.message().contains("a-long-secret-1"));
    assert!(
        h.init.records.lock().unwrap().is_empty(),
        "node record holding CHAP deleted"
    );
    super::stage::stage(&h.core, req).await.unwrap();
    assert_eq!(
        *h.init.records.lock().unwrap(),
        [(format!("iqn.2024-01.dev.carve:{VOL}"), true)]
    );
}

#[tokio::test]
async fn argument_errors() {
    let h = harness(Ok(Probe::Empty));
    let mut bad = h.stage_req(ext4());
    bad.volume_id = "../etc".into();
    assert_eq!(
        super::stage::stage(&h.core, bad).await.unwrap_err().kind(),
        Kind::NotFound,
        "an id Carve never issued names no volume"
    );
    let mut nocap = h.stage_req(ext4());
    nocap.volume_capability = None;
    assert_eq!(
        super::stage::stage(&h.core, nocap)
            .await
            .unwrap_err()
            .kind(),
        Kind::InvalidArgument
    );
    let mut noctx = h.stage_req(ext4());
    noctx.publish_context.clear();
    assert_eq!(
        super::stage::stage(&h.core, noctx)
            .await
            .unwrap_err()
            .kind(),
        Kind::InvalidArgument
    );
    let unstaged = super::publish::publish(&h.core, h.publish_req(ext4(), "pods/a", false))
        .await
        .unwrap_err();
    assert_eq!(unstaged.kind(), Kind::NotFound);
    let mut nostage = h.publish_req(ext4(), "pods/a", false);
    nostage.staging_target_path.clear();
    assert_eq!(
        super::publish::publish(&h.core, nostage)
            .await
            .unwrap_err()
            .kind(),
        Kind::FailedPrecondition
    );
    let hostile = h.publish_req(ext4(), "pods/../../etc", false);
    assert_eq!(
        super::publish::publish(&h.core, hostile)
            .await
            .unwrap_err()
            .kind(),
        Kind::InvalidArgument
    );
    std::os::unix::fs::symlink("/etc", h.root.join("pods/link")).unwrap();
    let link = NodeUnpublishVolumeRequest {
        volume_id: VOL.into(),
        target_path: h.p("pods/link"),
    };
    assert_eq!(
        super::unpublish::unpublish(&h.core, link)
            .await
            .unwrap_err()
            .kind(),
        Kind::InvalidArgument
    );
    let stats = NodeGetVolumeStatsRequest {
        volume_id: VOL.into(),
        volume_path: h.p("nowhere"),
        staging_target_path: String::new(),
    };
    assert_eq!(
        super::stats::stats(&h.core, stats)
            .await
            .unwrap_err()
            .kind(),
        Kind::NotFound
    );
    super::unstage::unstage(&h.core, h.unstage_req())
        .await
        .expect("never staged: OK");
    let info = super::info::info(&h.core);
    assert_eq!(info.node_id, "iqn.2024-01.dev.carve:node1");
    assert_eq!(info.max_volumes_per_node, 10);
    assert!(info.accessible_topology.is_none());
    assert_eq!(super::info::capabilities().capabilities.len(), 5);
}

#[tokio::test]
async fn an_existing_filesystem_is_grown_and_a_failed_grow_leaves_no_mount() {
    let h = harness(Ok(Probe::Filesystem("ext4".into())));
    h.runner
        .expect(Expectation::new(["e2fsck", "-p", "/dev/sdb"]));
    h.runner.expect(
        Expectation::new(["resize2fs", "/dev/sdb"])
            .fails(1, "resize2fs: Permission denied to resize filesystem"),
    );
    let err = super::stage::stage(&h.core, h.stage_req(ext4()))
        .await
        .unwrap_err();
    assert!(err.message().contains("resize2fs"), "{err}");
    assert!(
        h.mounts.table.lock().unwrap().is_empty(),
        "the staging mount is undone so that the retry grows again"
    );
    // The retry mounts and grows.
    h.runner
        .expect(Expectation::new(["e2fsck", "-p", "/dev/sdb"]));
    h.runner.expect(Expectation::new(["resize2fs", "/dev/sdb"]));
    super::stage::stage(&h.core, h.stage_req(ext4()))
        .await
        .unwrap();
    assert_eq!(h.mounts.table.lock().unwrap().len(), 1);
    h.runner.finish();
}

#[tokio::test]
async fn upkeep_removes_only_unowned_unused_sessions_and_records_of_carve_targets() {
    use super::upkeep::{own_volume, sweep};
    use crate::iscsi::Session;
    use csi_common::{guard::OperationGuards, ids::Iqn};
    let h = harness(Ok(Probe::Empty));
    let prefix = Iqn::parse("iqn.2024-01.dev.carve").unwrap();
    assert!(own_volume(&prefix, "iqn.2024-01.dev.carve:csi-v1").is_some());
    assert!(
        own_volume(&prefix, "iqn.2024-01.dev.carve:lun1").is_none(),
        "not a volume id"
    );
    assert!(own_volume(&prefix, "iqn.2024-01.dev.carvex:csi-v1").is_none());
    assert!(own_volume(&prefix, "iqn.2024-01.org.other:csi-v1").is_none());

    super::stage::stage(&h.core, h.stage_req(block_cap(Mode::SingleNodeWriter)))
        .await
        .unwrap();
    let session = |sid, target: &str, disk: &str| Session {
        sid,
        target: target.into(),
        iface: "default".into(),
        state: "LOGGED_IN".into(),
        portal: Some("127.0.0.1:3260".parse().unwrap()),
        disks: vec![(0, disk.into())],
    };
    {
        let mut sessions = h.init.sessions.lock().unwrap();
        sessions.push(session(2, "iqn.2024-01.dev.carve:csi-stale", "sdc"));
        sessions.push(session(3, "iqn.2024-01.dev.carve:csi-held", "sdd"));
        sessions.push(session(4, "iqn.2024-01.org.other:csi-x", "sde"));
        sessions.push(session(5, "iqn.2024-01.dev.carve:csi-busy", "sdf"));
        let mut records = h.init.records.lock().unwrap();
        for t in ["csi-stale", "csi-held", "csi-busy", "csi-orphan"] {
            records.push((format!("iqn.2024-01.dev.carve:{t}"), true));
        }
        records.push(("iqn.2024-01.org.other:csi-x".into(), false));
    }
    // sdd is held by a stacked device; csi-busy has an RPC in flight.
    std::fs::create_dir_all(h.root.join("sys/class/block/sdd/holders/dm-3")).unwrap();
    let guards = OperationGuards::new("volume");
    let busy = guards.try_acquire("csi-busy").unwrap();

    let done = sweep(&h.core, &guards, &prefix).await;
    assert_eq!(
        done.sessions_removed,
        ["iqn.2024-01.dev.carve:csi-stale at 127.0.0.1:3260"]
    );
    assert_eq!(
        done.records_removed,
        ["iqn.2024-01.dev.carve:csi-orphan at 127.0.0.1:3260"]
    );
    assert_eq!(done.in_use.len(), 1, "{done:?}");
    assert!(done.in_use[0].contains("held by dm-3"), "{done:?}");
    assert_eq!(*h.devs.calls.lock().unwrap(), ["flush sdc", "delete sdc"]);
    let left: Vec<String> = h
        .init
        .sessions
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.target.clone())
        .collect();
    assert_eq!(
        left,
        [
            format!("iqn.2024-01.dev.carve:{VOL}"),
            "iqn.2024-01.dev.carve:csi-held".into(),
            "iqn.2024-01.org.other:csi-x".into(),
            "iqn.2024-01.dev.carve:csi-busy".into(),
        ],
        "the staged volume, the held disk, another prefix and a volume in flight stay"
    );
    let records: Vec<String> = h
        .init
        .records
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.0.clone())
        .collect();
    assert!(
        !records
            .iter()
            .any(|r| r.ends_with("csi-stale") || r.ends_with("csi-orphan")),
        "{records:?}"
    );
    assert!(
        records.iter().any(|r| r.ends_with(VOL)),
        "the staged volume's record stays"
    );

    drop(busy);
    std::fs::remove_dir_all(h.root.join("sys/class/block/sdd/holders/dm-3")).unwrap();
    let done = sweep(&h.core, &guards, &prefix).await;
    let mut removed = done.sessions_removed.clone();
    removed.sort();
    assert_eq!(
        removed,
        [
            "iqn.2024-01.dev.carve:csi-busy at 127.0.0.1:3260",
            "iqn.2024-01.dev.carve:csi-held at 127.0.0.1:3260"
        ]
    );
    let done = sweep(&h.core, &guards, &prefix).await;
    assert_eq!(done, Default::default(), "nothing left to do");
}

#[tokio::test]
async fn upkeep_never_flushes_the_disk_of_a_stale_session_that_is_not_logged_in() {
    use super::upkeep::sweep;
    use crate::iscsi::Session;
    use csi_common::{guard::OperationGuards, ids::Iqn};
    let h = harness(Ok(Probe::Empty));
    h.init.sessions.lock().unwrap().push(Session {
        sid: 7,
        target: "iqn.2024-01.dev.carve:csi-fenced".into(),
        iface: "default".into(),
        state: "FAILED".into(),
        portal: Some("127.0.0.1:3260".parse().unwrap()),
        disks: vec![(0, "sdh".into())],
    });
    let prefix = Iqn::parse("iqn.2024-01.dev.carve").unwrap();
    let done = sweep(&h.core, &OperationGuards::new("volume"), &prefix).await;
    assert_eq!(
        done.sessions_removed,
        ["iqn.2024-01.dev.carve:csi-fenced at 127.0.0.1:3260"]
    );
    assert_eq!(
        *h.devs.calls.lock().unwrap(),
        ["delete sdh"],
        "deleted, never flushed (the flush would block until iscsid gives up)"
    );
    assert!(h.init.sessions.lock().unwrap().is_empty());
}
