//! One agent stopped: only its volumes' RPCs answer UNAVAILABLE, the other agent's keep
//! working; what needs every agent (ListVolumes, capacity across them, CreateVolume where the
//! stopped one is a candidate) is UNAVAILABLE, never an answer that leaves the stopped host out.

use super::{MIB, create, create_request, expect_absent, fleet, lv, zone};
use crate::support::Script;
use csi_controller::ops::testing::{NODE1, VG};
use csi_proto::v1::{
    ControllerGetVolumeRequest, ControllerPublishVolumeRequest, CreateSnapshotRequest,
    DeleteVolumeRequest, GetCapacityRequest, ListVolumesRequest, controller_server::Controller,
};
use tonic::{Code, Request};

/// The code of a refusal.
fn code<T>(answer: Result<T, tonic::Status>) -> Code {
    answer.map(drop).unwrap_err().code()
}

#[tokio::test]
async fn a_stopped_agent_makes_only_its_volumes_unavailable() {
    let mut f = fleet(&[("a", "a", false), ("b", "b", false)]).await;
    let (on_a, on_b) = (format!("a:{VG}:{}", lv("v")), format!("b:{VG}:{}", lv("w")));
    f.stop("b").await;

    let get = |id: &str| ControllerGetVolumeRequest {
        volume_id: id.into(),
    };
    let err = f
        .svc
        .controller_get_volume(Request::new(get(&on_b)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let address = &f.members.iter().find(|m| m.name == "b").unwrap().address;
    assert!(
        err.message().contains(&format!("agent b ({address})")),
        "names the agent and its address: {}",
        err.message()
    );
    f.host("a").expect_lookup(&Script::new("v").row(&[]));
    let got = f
        .svc
        .controller_get_volume(Request::new(get(&on_a)))
        .await
        .unwrap();
    assert_eq!(got.into_inner().volume.unwrap().volume_id, on_a);

    let publish = ControllerPublishVolumeRequest {
        volume_id: on_b.clone(),
        node_id: NODE1.into(),
        volume_capability: Some(super::ext4()),
        ..Default::default()
    };
    let delete = DeleteVolumeRequest {
        volume_id: on_b.clone(),
        ..Default::default()
    };
    let snapshot = CreateSnapshotRequest {
        name: "s".into(),
        source_volume_id: on_b.clone(),
        ..Default::default()
    };
    // CreateSnapshot first asks a whether the name is taken there (it is not).
    f.host("a")
        .expect_lvs_one(csi_common::ids::LvName::for_snapshot("s").as_str(), &[]);
    let on_b_answers = [
        (
            "ControllerPublishVolume",
            code(f.svc.controller_publish_volume(Request::new(publish)).await),
        ),
        (
            "DeleteVolume",
            code(f.svc.delete_volume(Request::new(delete)).await),
        ),
        (
            "CreateSnapshot",
            code(f.svc.create_snapshot(Request::new(snapshot)).await),
        ),
    ];
    for (rpc, answer) in on_b_answers {
        assert_eq!(
            answer,
            Code::Unavailable,
            "{rpc} of a volume on the stopped agent"
        );
    }

    // A listing without b would tell external-attacher b's volumes are attached nowhere.
    f.host("a")
        .expect_survey(10 << 30, 4 * MIB, &[Script::new("v").row(&[])]);
    let list = f
        .svc
        .list_volumes(Request::new(ListVolumesRequest::default()))
        .await;
    assert_eq!(code(list), Code::Unavailable);

    // Capacity: everywhere needs b; zone a does not.
    let capacity = |topology| GetCapacityRequest {
        volume_capabilities: vec![super::ext4()],
        accessible_topology: topology,
        ..Default::default()
    };
    f.host("a").expect_survey(1 << 30, 4 * MIB, &[]);
    assert_eq!(
        code(f.svc.get_capacity(Request::new(capacity(None))).await),
        Code::Unavailable
    );
    f.host("a").expect_survey(1 << 30, 4 * MIB, &[]);
    let zone_a = f
        .svc
        .get_capacity(Request::new(capacity(Some(zone("a")))))
        .await
        .unwrap();
    assert_eq!(zone_a.into_inner().available_capacity, 1 << 30);

    // CreateVolume: b may hold the name from an earlier attempt when it is a candidate; when the
    // request excludes b, a serves.
    expect_absent(&f, &["a"], "n1");
    let (status, message) = create(&f.svc, create_request("n1", &[])).await.unwrap_err();
    assert_eq!(status, Code::Unavailable, "{message}");
    assert!(message.contains("storage host b"), "{message}");
    expect_absent(&f, &["a"], "n2");
    Script::new("n2").expect_create(f.host("a"));
    let v = create(&f.svc, create_request("n2", &[("storageHosts", "a")]))
        .await
        .unwrap();
    assert_eq!(v.volume_id, format!("a:{VG}:{}", lv("n2")));
    f.finish();
}

#[tokio::test]
async fn an_agent_that_accepts_and_never_answers_is_unavailable_not_a_hang() {
    use std::time::Duration;
    let (address, silent) = super::silent().await;
    let f = super::fleet_with(&[("a", "", false)], &[(("c", "", false), &address)]).await;
    let bounded = Duration::from_secs(20);

    // c's own volume: UNAVAILABLE once the handshake times out, not an RPC that never ends
    // (holding the volume's guard all the while).
    let get = ControllerGetVolumeRequest {
        volume_id: format!("c:{VG}:{}", lv("v")),
    };
    let answer = tokio::time::timeout(bounded, f.svc.controller_get_volume(Request::new(get)))
        .await
        .expect("ControllerGetVolume of a silent agent's volume must end");
    assert_eq!(code(answer), Code::Unavailable);

    // A request that excludes c is served by a: c's silence is only logged.
    expect_absent(&f, &["a"], "n");
    Script::new("n").expect_create(f.host("a"));
    let made = tokio::time::timeout(
        bounded,
        create(&f.svc, create_request("n", &[("storageHosts", "a")])),
    )
    .await
    .expect("CreateVolume must not wait forever for an agent the request excludes");
    assert_eq!(made.unwrap().volume_id, format!("a:{VG}:{}", lv("n")));
    silent.abort();
    f.finish();
}
