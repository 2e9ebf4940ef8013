use super::*;
use crate::ops::testing::{Lab, carve_tags, lv_row};

#[tokio::test]
async fn advertises_exactly_what_works() {
    let lab = Lab::new();
    let svc = ControllerService::new(lab.ctx.clone());
    let caps = svc
        .controller_get_capabilities(Request::new(ControllerGetCapabilitiesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .capabilities;
    let rpcs: Vec<i32> = caps
        .iter()
        .filter_map(|c| match &c.r#type {
            Some(controller_service_capability::Type::Rpc(r)) => Some(r.r#type),
            _ => None,
        })
        .collect();
    assert_eq!(
        rpcs,
        CAPABILITIES.iter().map(|r| *r as i32).collect::<Vec<_>>()
    );
    for present in [
        Rpc::ExpandVolume,
        Rpc::CreateDeleteSnapshot,
        Rpc::ListSnapshots,
        Rpc::GetSnapshot,
        Rpc::CloneVolume,
    ] {
        assert!(rpcs.contains(&(present as i32)), "{present:?}");
    }
    assert!(!rpcs.contains(&(Rpc::ModifyVolume as i32)));
    let err = svc
        .controller_modify_volume(Request::new(ControllerModifyVolumeRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
}

#[tokio::test]
async fn an_operation_in_flight_makes_the_next_one_aborted() {
    let lab = Lab::new();
    let svc = ControllerService::new(lab.ctx.clone());
    let held = svc.volumes.try_acquire("csi-v-1").unwrap();
    let req = DeleteVolumeRequest {
        volume_id: "csi-v-1".into(),
        ..Default::default()
    };
    let err = svc
        .delete_volume(Request::new(req.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Aborted);
    drop(held);
    lab.expect_lvs_one("csi-v-1", &[]);
    svc.delete_volume(Request::new(req))
        .await
        .expect("runs once the guard is free");
    lab.finish();
}

#[tokio::test]
async fn create_volume_answers_the_volume_with_its_context() {
    let lab = Lab::new();
    let svc = ControllerService::new(lab.ctx.clone());
    let lv = csi_common::ids::LvName::for_volume("v");
    lab.expect_survey(
        10 << 30,
        4 << 20,
        &[lv_row(lv.as_str(), 8 << 20, None, &carve_tags("v"))],
    );
    let cap = crate::ops::capability::mount(
        "ext4",
        volume_capability::access_mode::Mode::SingleNodeWriter,
    );
    let req = CreateVolumeRequest {
        name: "v".into(),
        volume_capabilities: vec![cap],
        ..Default::default()
    };
    let volume = svc
        .create_volume(Request::new(req))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(volume.volume_id, lv.as_str());
    assert_eq!(volume.capacity_bytes, 8 << 20);
    assert_eq!(
        volume.volume_context["targetIqn"],
        lab.target(lv.as_str()).as_str()
    );
    assert_eq!(volume.volume_context["contentSource"], "");
    lab.finish();
}
