//! Multipath stages against the fakes: every portal logged in and verified, one map assembled
//! and used by WWID, torn down map first; `--multipath off`; a WWID that does not match; a
//! portal down at stage time and brought back by the self-heal round; a map that will not go.

use super::{Harness, SERIAL, VOL, ext4, harness, rpc};
use crate::{
    device::matcher::expected_wwid,
    filesystem::Probe,
    multipath::{Mode, conf::PATH_REPLACEMENT_TIMEOUT_S},
    ops::{capability::block_cap, heal, testing::*},
};
use csi_common::{Kind, guard::OperationGuards};
use csi_proto::v1::{
    NodeGetVolumeStatsRequest, NodeStageVolumeRequest,
    volume_capability::access_mode::Mode as AccessMode,
};

const TWO: &str = "127.0.0.1:3260,127.0.0.2:3260";

fn two_portals(req: &mut NodeStageVolumeRequest) {
    req.publish_context.insert("portals".into(), TWO.into());
}

/// A block stage request of VOL through both portals of [`TWO`].
fn two_portal_block(h: &Harness) -> NodeStageVolumeRequest {
    let mut req = h.stage_req(block_cap(AccessMode::SingleNodeWriter));
    two_portals(&mut req);
    req
}

fn wwid() -> String {
    expected_wwid(SERIAL).unwrap()
}

#[tokio::test]
async fn two_portals_are_logged_in_verified_assembled_mounted_by_wwid_and_torn_down_map_first() {
    let h = harness(Ok(Probe::Empty));
    let node = format!("/dev/disk/by-id/dm-uuid-mpath-{}", wwid());
    h.expect_mkfs_ext4(&node);
    let mut req = h.stage_req(ext4());
    two_portals(&mut req);
    rpc::stage(&h.core, req.clone()).await.unwrap();
    rpc::stage(&h.core, req).await.expect("idempotent");
    h.runner.finish();
    let calls = h.init.calls.lock().unwrap().clone();
    let iqn = format!("iqn.2024-01.dev.carve:{VOL}");
    assert!(calls.contains(&format!("login {iqn}")), "{calls:?}");
    assert!(
        calls.contains(&format!("login {iqn} at 127.0.0.2:3260")),
        "{calls:?}"
    );
    assert_eq!(
        *h.init.replacement_timeouts.lock().unwrap(),
        [Some(PATH_REPLACEMENT_TIMEOUT_S); 2],
        "paths of a map fail over fast"
    );
    assert_eq!(
        *h.mp.maps.lock().unwrap(),
        [(wwid(), vec![DISK.to_string(), DISK2.to_string()])]
    );
    assert_eq!(
        h.mp.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with("assemble"))
            .count(),
        1,
        "the second stage found the map complete"
    );
    assert_eq!(h.mount_calls()[0], format!("mount_fs {node} /stage ext4 "));
    let record = h.record().unwrap();
    assert_eq!(record.multipath, Some(wwid()));
    assert_eq!(record.portals.len(), 2);
    assert_eq!(record.device.as_deref(), Some("dm-7"));

    rpc::unstage(&h.core, h.unstage_req()).await.unwrap();
    rpc::unstage(&h.core, h.unstage_req())
        .await
        .expect("idempotent");
    assert!(h.mp.maps.lock().unwrap().is_empty());
    assert_eq!(
        h.mp.calls.lock().unwrap()[3..],
        [format!("remove_map {}", wwid()), format!("forget {DISK}")]
    );
    // The map is flushed, never its paths (their I/O goes through the map).
    assert_eq!(
        *h.devs.calls.lock().unwrap(),
        ["flush dm-7", "delete sdb", "delete sdc"]
    );
    assert!(h.init.sessions.lock().unwrap().is_empty());
    assert!(h.init.records.lock().unwrap().is_empty());
    assert!(h.init.other_records.lock().unwrap().is_empty());
}

#[tokio::test]
async fn with_multipath_off_only_the_first_portal_is_used_as_before() {
    let mut h = harness(Ok(Probe::Empty));
    h.core.multipath_mode = Mode::Off;
    rpc::stage(&h.core, two_portal_block(&h)).await.unwrap();
    let sessions = h.init.sessions.lock().unwrap().clone();
    assert_eq!(sessions.len(), 1);
    assert!(h.mp.calls.lock().unwrap().is_empty(), "no multipath at all");
    assert_eq!(*h.init.replacement_timeouts.lock().unwrap(), [None]);
    let record = h.record().unwrap();
    assert_eq!((record.multipath, record.portals.len()), (None, 0));
    // A later flag change does not change a staged volume: the record decides.
    h.core.multipath_mode = Mode::On;
    rpc::unstage(&h.core, h.unstage_req()).await.unwrap();
    assert!(h.mp.calls.lock().unwrap().is_empty());
    assert!(h.init.sessions.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_path_whose_wwid_differs_is_refused_before_multipathd_hears_of_it() {
    let h = harness(Ok(Probe::Empty));
    *h.devs.wwid.lock().unwrap() = Some("36001405ffffffffffffffffffffffffff".into());
    let err = rpc::stage(&h.core, two_portal_block(&h)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::FailedPrecondition, "{err}");
    assert!(err.message().contains("WWID"), "{err}");
    let calls = h.mp.calls.lock().unwrap().clone();
    assert!(
        !calls.iter().any(|c| c.starts_with("assemble")),
        "nothing assembled: {calls:?}"
    );
    assert!(
        h.init.sessions.lock().unwrap().is_empty(),
        "logins rolled back"
    );
    assert!(h.init.other_records.lock().unwrap().is_empty());
    assert!(!h.staged());
}

#[tokio::test]
async fn a_portal_down_at_stage_time_is_logged_in_and_rejoined_by_self_heal() {
    let h = harness(Ok(Probe::Empty));
    let second = "127.0.0.2:3260".parse().unwrap();
    h.init.down.lock().unwrap().push(second);
    rpc::stage(&h.core, two_portal_block(&h))
        .await
        .expect("one path is enough to stage");
    assert_eq!(
        *h.mp.maps.lock().unwrap(),
        [(wwid(), vec![DISK.to_string()])]
    );
    let stats_req = NodeGetVolumeStatsRequest {
        volume_id: VOL.into(),
        volume_path: h.p("stage"),
        ..Default::default()
    };
    std::fs::create_dir_all(h.root.join("stage")).unwrap();
    let condition = rpc::stats(&h.core, stats_req.clone())
        .unwrap()
        .volume_condition
        .unwrap();
    assert!(condition.abnormal);
    assert!(
        condition.message.contains("no iSCSI session")
            && condition.message.contains("127.0.0.2:3260"),
        "names the missing path: {}",
        condition.message
    );

    // The failed login dropped its node record: self-heal cannot log in without one.
    let guards = OperationGuards::new("volume");
    let round = heal::heal(&h.core, &guards).await;
    assert!(round.restored.is_empty(), "{round:?}");
    assert!(round.degraded[0].contains("no node record"), "{round:?}");

    // With the record back (an operator, or a stage retry) and the portal up, one round logs
    // in, the next verifies the disk and puts it into the map.
    h.init.down.lock().unwrap().clear();
    h.init
        .other_records
        .lock()
        .unwrap()
        .push((format!("iqn.2024-01.dev.carve:{VOL}"), second));
    let round = heal::heal(&h.core, &guards).await;
    assert_eq!(
        round.restored,
        [format!("{VOL} at 127.0.0.2:3260: login")],
        "{round:?}"
    );
    let round = heal::heal(&h.core, &guards).await;
    assert_eq!(
        round.restored,
        [format!("{VOL} at 127.0.0.2:3260: map_path")],
        "{round:?}"
    );
    assert_eq!(
        *h.mp.maps.lock().unwrap(),
        [(wwid(), vec![DISK.to_string(), DISK2.to_string()])]
    );
    let reads = || {
        h.init
            .session_reads
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = reads();
    let round = heal::heal(&h.core, &guards).await;
    assert_eq!(round, heal::Heal::default(), "healthy: nothing to do");
    assert_eq!(
        reads() - before,
        1,
        "a healthy round reads the sessions once, not per path"
    );
    let condition = rpc::stats(&h.core, stats_req)
        .unwrap()
        .volume_condition
        .unwrap();
    assert!(!condition.abnormal, "{}", condition.message);

    // The round's reading says the second path is healthy but out of its map; its session went
    // away after that reading: nothing is put into the map from the stale reading.
    let current = h.init.sessions.lock().unwrap().clone();
    *h.init.stale_reading.lock().unwrap() = Some(current);
    h.mp.maps.lock().unwrap()[0].1.retain(|d| d != DISK2);
    h.init
        .sessions
        .lock()
        .unwrap()
        .retain(|s| s.portal != Some(second));
    let round = heal::heal(&h.core, &guards).await;
    assert_eq!(
        round,
        heal::Heal::default(),
        "acted on a stale reading: {round:?}"
    );
    assert_eq!(
        *h.mp.maps.lock().unwrap(),
        [(wwid(), vec![DISK.to_string()])]
    );
    // The next round sees the session gone and logs in again.
    let round = heal::heal(&h.core, &guards).await;
    assert_eq!(round.restored, [format!("{VOL} at 127.0.0.2:3260: login")]);
    let round = heal::heal(&h.core, &guards).await;
    assert_eq!(
        round.restored,
        [format!("{VOL} at 127.0.0.2:3260: map_path")]
    );

    // A volume with an RPC in flight is left alone.
    h.init
        .sessions
        .lock()
        .unwrap()
        .retain(|s| s.portal != Some(second));
    let busy = guards.try_acquire(VOL).unwrap();
    assert_eq!(heal::heal(&h.core, &guards).await, heal::Heal::default());
    drop(busy);
    let round = heal::heal(&h.core, &guards).await;
    assert_eq!(round.restored, [format!("{VOL} at 127.0.0.2:3260: login")]);
}

#[tokio::test]
async fn a_map_that_will_not_go_fails_unstage_loudly_and_a_retry_finishes() {
    let h = harness(Ok(Probe::Empty));
    rpc::stage(&h.core, two_portal_block(&h)).await.unwrap();
    *h.mp.remove_error.lock().unwrap() =
        Some(csi_common::Error::internal("multipath -f: map in use"));
    let err = rpc::unstage(&h.core, h.unstage_req()).await.unwrap_err();
    assert!(err.message().contains("map in use"), "{err}");
    assert_eq!(h.init.sessions.lock().unwrap().len(), 2, "no path detached");
    assert!(h.staged());
    rpc::unstage(&h.core, h.unstage_req()).await.unwrap();
    assert!(h.mp.maps.lock().unwrap().is_empty());
    assert!(h.init.sessions.lock().unwrap().is_empty());
    assert!(!h.staged());
}

#[tokio::test]
async fn without_multipathd_a_multipath_stage_fails_unavailable_and_rolls_its_logins_back() {
    let h = harness(Ok(Probe::Empty));
    *h.mp.down.lock().unwrap() = true;
    let err = rpc::stage(&h.core, two_portal_block(&h)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Unavailable, "retryable: {err}");
    assert!(h.init.sessions.lock().unwrap().is_empty());
    assert!(h.init.records.lock().unwrap().is_empty());
    assert!(h.init.other_records.lock().unwrap().is_empty());
    assert!(!h.staged());
}
