//! The controller's per-volume and per-snapshot guards hold a volume, not a spelling of its id:
//! the default agent's volumes answer to their bare id and to `AGENT:VG:LOCAL`, and a second
//! operation in flight under either spelling is ABORTED by the controller, as under one (the
//! agent's own guard covers only the part of an operation that runs on the agent); CreateSnapshot
//! (which knows the snapshot by its name) and DeleteSnapshot (by its id) take the same guard.

use super::{fleet, fleet_with, silent};
use csi_common::{command::Expectation, ids::LvName};
use csi_controller::{
    lvm::argv,
    ops::testing::{FakeHost, VG},
};
use csi_proto::v1::{
    CreateSnapshotRequest, DeleteSnapshotRequest, DeleteVolumeRequest,
    controller_server::Controller,
};
use std::time::Duration;
use tonic::{Code, Request};

/// `lvs vg/lv` on `host`, answering LVM's "not found" only after 2 s: a second operation
/// arrives meanwhile.
fn slow_absent(host: &FakeHost, lv: &str) {
    let lv = LvName::parse(lv).unwrap();
    let missing = include_str!("../../../../tests/fixtures/controller/lvs-one-missing.stderr");
    host.expect(
        Expectation::of(&argv::lvs_one(VG, &lv, Duration::from_secs(5)))
            .fails(5, missing.replace("csi-nope", lv.as_str()))
            .delay(Duration::from_secs(2)),
    );
}

/// Waits until `host` has started a command after the `before` it had run.
async fn started(host: &FakeHost, before: usize) {
    while host.runner.ran().len() <= before {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The code of an RPC's answer (`Ok`: none).
fn code<T>(answer: &Result<T, tonic::Status>) -> Option<Code> {
    answer.as_ref().err().map(tonic::Status::code)
}

/// The default agent does not answer (its TLS handshake hangs for agent::CONNECT_TIMEOUT), so
/// only the controller's guard can refuse the second spelling: DeleteVolume of `csi-x` and of
/// `a:VG:csi-x` at once, one is ABORTED and the other UNAVAILABLE, whichever came first.
#[tokio::test]
async fn both_spellings_of_a_default_agents_volume_take_one_guard() {
    let (address, listener) = silent().await;
    let f = fleet_with(&[("b", "", false)], &[(("a", "", true), &address)]).await;
    let local = LvName::for_volume("v").to_string();
    let delete = |id: String| {
        let svc = f.svc.clone();
        tokio::spawn(async move {
            let req = DeleteVolumeRequest {
                volume_id: id,
                ..Default::default()
            };
            svc.delete_volume(Request::new(req)).await
        })
    };
    let bare = delete(local.clone());
    let placed = delete(format!("a:{VG}:{local}"));
    let mut codes = [code(&bare.await.unwrap()), code(&placed.await.unwrap())];
    codes.sort_by_key(|c| c.map(|c| c as i32));
    assert_eq!(codes, [Some(Code::Aborted), Some(Code::Unavailable)]);
    listener.abort();
    f.finish();
}

/// CreateSnapshot holds the snapshot's guard while it asks the other agent whether the name is
/// taken there; DeleteSnapshot of that snapshot meanwhile is ABORTED: on a non-default agent
/// (the only spelling), and on the default one by the placed spelling of its bare id.
#[tokio::test]
async fn create_snapshot_and_delete_snapshot_take_one_guard() {
    let f = fleet(&[("a", "", true), ("b", "", false)]).await;
    let snap = LvName::for_snapshot("s").to_string();
    for (on, other, source) in [
        ("b", "a", format!("b:{VG}:csi-v-1")),
        ("a", "b", "csi-v-1".to_string()),
    ] {
        slow_absent(f.host(other), &snap);
        f.host(on).expect_lvs_one(&snap, &[]);
        f.host(on).expect_lvs_one("csi-v-1", &[]);
        let before = f.host(other).runner.ran().len();
        let running = {
            let svc = f.svc.clone();
            let req = CreateSnapshotRequest {
                name: "s".into(),
                source_volume_id: source,
                ..Default::default()
            };
            tokio::spawn(async move { svc.create_snapshot(Request::new(req)).await })
        };
        started(f.host(other), before).await;
        let req = DeleteSnapshotRequest {
            snapshot_id: format!("{on}:{VG}:{snap}"),
            ..Default::default()
        };
        let refused = f.svc.delete_snapshot(Request::new(req)).await;
        assert_eq!(code(&refused), Some(Code::Aborted), "{on}: {refused:?}");
        let created = running.await.unwrap();
        assert_eq!(
            code(&created),
            Some(Code::NotFound),
            "no source: {created:?}"
        );
        f.finish();
    }
}
