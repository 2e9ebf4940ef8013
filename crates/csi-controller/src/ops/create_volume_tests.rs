use super::*;
use crate::{
    lvm::argv,
    ops::{
        capability::mount,
        testing::{FakeHost, VG, carve_tags, lv_row, pool_row},
    },
};
use csi_common::{Kind, command::Expectation};
use csi_proto::v1::volume_capability::access_mode::Mode;
use std::time::Duration;

const MIB: u64 = 1 << 20;

fn request<'a>(
    name: &'a str,
    caps: &'a [VolumeCapability],
    range: Option<&'a CapacityRange>,
    params: &'a HashMap<String, String>,
) -> CreateVolume<'a> {
    CreateVolume {
        name,
        capacity: range,
        capabilities: caps,
        parameters: params,
        requisite: &[],
    }
}

fn argv_of(cmd: &csi_common::command::Cmd) -> Vec<String> {
    std::iter::once(cmd.program().to_string())
        .chain(cmd.arg_values().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn creates_a_thin_volume_rounded_to_extents_and_exports_it() {
    let host = FakeHost::new();
    let name = "pvc-1; $(reboot) --force";
    let lv = LvName::for_volume(name);
    let caps = [mount("ext4", Mode::SingleNodeWriter)];
    let range = CapacityRange {
        required_bytes: 5 * MIB.cast_signed(),
        limit_bytes: 0,
    };
    let params = HashMap::from([("thin".to_string(), "true".to_string())]);
    host.expect_survey(10 << 30, 4 * MIB, &[pool_row(8 << 30)]);
    let record = VolumeRecord {
        name: name.into(),
        required_bytes: 5 * MIB,
        capabilities: "mount/ext4/SINGLE_NODE_WRITER".into(),
        ..Default::default()
    };
    let thin = Allocation::Thin {
        pool: "pool".into(),
    };
    let create = argv::lvcreate(
        VG,
        &lv,
        8 * MIB,
        &thin,
        &record.creation_tags(),
        Duration::from_secs(5),
    );
    host.expect(Expectation::new(argv_of(&create)));
    let created = create_volume(&host.ctx, request(name, &caps, Some(&range), &params))
        .await
        .unwrap();
    let Created::Created(volume) = created else {
        panic!("not created: {created:?}")
    };
    assert_eq!(volume.lv.size, 8 * MIB);
    assert_eq!(volume.record.name, name);
    // What it answers is what LVM would report for the LV it just made.
    let row = lv_row(lv.as_str(), 8 * MIB, Some("pool"), &record.creation_tags());
    assert_eq!(volume, Volume::from_row(row).unwrap().unwrap());
    let state = crate::lio::state::read_state(host.lio.layout()).unwrap();
    let spec = volume.export_spec(&host.ctx, VG);
    crate::lio::verify_export(&state, &spec).unwrap();
    let so = state.storage_object(lv.as_str()).unwrap();
    assert!(so.emulate_tpu, "thin LV advertises UNMAP");
    let ctx = volume.volume_context(&host.ctx);
    assert_eq!(ctx["contentSource"], "");
    assert_eq!(ctx["lun"], "0");
    assert_eq!(ctx["portals"], "127.0.0.1:3260");
    assert_eq!(ctx["serial"], volume.id.unit_serial());
    assert!(
        !ctx.contains_key("pvcName") && !ctx.contains_key("pvcNamespace"),
        "no claim recorded without --extra-create-metadata: {ctx:?}"
    );
    host.finish();
}

#[tokio::test]
async fn provisioner_metadata_is_recorded_in_tags_and_shown_in_volume_context() {
    let host = FakeHost::new();
    let name = "pvc-0b7c9a";
    let lv = LvName::for_volume(name);
    let caps = [mount("ext4", Mode::SingleNodeWriter)];
    let params = HashMap::from([
        ("thin".to_string(), "false".to_string()),
        (
            "csi.storage.k8s.io/pvc/namespace".to_string(),
            "team-a".to_string(),
        ),
        (
            "csi.storage.k8s.io/pvc/name".to_string(),
            "db data/名".to_string(),
        ),
        ("csi.storage.k8s.io/pv/name".to_string(), name.to_string()),
    ]);
    host.expect_survey(10 << 30, 4 * MIB, &[]);
    let record = VolumeRecord {
        name: name.into(),
        required_bytes: 8 * MIB,
        capabilities: "mount/ext4/SINGLE_NODE_WRITER".into(),
        claim: crate::lvm::tags::ClaimRef {
            pvc_namespace: "team-a".into(),
            pvc_name: "db data/名".into(),
            pv_name: name.into(),
        },
        ..Default::default()
    };
    let create = argv::lvcreate(
        VG,
        &lv,
        8 * MIB,
        &Allocation::Linear,
        &record.creation_tags(),
        Duration::from_secs(5),
    );
    let args = argv_of(&create);
    for tag in [
        "carve.pvcns.0=team-a",
        "carve.pvcname.0=db#20data#2F#E5#90#8D",
        "carve.pvname.0=pvc-0b7c9a",
    ] {
        assert!(args.iter().any(|a| a == tag), "{tag} not in {args:?}");
    }
    host.expect(Expectation::new(args));
    let range = CapacityRange {
        required_bytes: 8 * MIB.cast_signed(),
        limit_bytes: 0,
    };
    let created = create_volume(&host.ctx, request(name, &caps, Some(&range), &params))
        .await
        .unwrap();
    let volume = created.volume().clone();
    let ctx = volume.volume_context(&host.ctx);
    assert_eq!(ctx["pvcNamespace"], "team-a");
    assert_eq!(ctx["pvcName"], "db data/名");
    assert_eq!(ctx["pvName"], name);
    // ListVolumes reads the same record back from what LVM reports.
    let row = lv_row(lv.as_str(), 8 * MIB, None, &record.creation_tags());
    let listed = Volume::from_row(row).unwrap().unwrap();
    assert_eq!(listed.volume_context(&host.ctx), ctx);
    host.finish();
}

#[tokio::test]
async fn an_overlong_claim_name_is_refused_before_lvm_is_asked() {
    let host = FakeHost::new();
    let caps = [mount("ext4", Mode::SingleNodeWriter)];
    let params = HashMap::from([("csi.storage.k8s.io/pvc/name".to_string(), "x".repeat(300))]);
    let err = create_volume(&host.ctx, request("v", &caps, None, &params))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidArgument);
    host.finish();
}

#[tokio::test]
async fn same_name_compatible_is_the_same_volume_and_incompatible_is_already_exists() {
    let host = FakeHost::new();
    let lv = LvName::for_volume("v");
    let row = lv_row(lv.as_str(), 8 * MIB, None, &carve_tags("v"));
    let caps = [mount("", Mode::SingleNodeWriter)];
    let none = HashMap::new();
    let ok = CapacityRange {
        required_bytes: 8 * MIB.cast_signed(),
        limit_bytes: 0,
    };
    host.expect_survey(10 << 30, 4 * MIB, std::slice::from_ref(&row));
    let again = create_volume(&host.ctx, request("v", &caps, Some(&ok), &none))
        .await
        .unwrap();
    assert!(matches!(again, Created::AlreadyExisted(_)));
    let bigger = CapacityRange {
        required_bytes: 16 * MIB.cast_signed(),
        limit_bytes: 0,
    };
    host.expect_survey(10 << 30, 4 * MIB, std::slice::from_ref(&row));
    let err = create_volume(&host.ctx, request("v", &caps, Some(&bigger), &none))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::AlreadyExists);
    let thin = HashMap::from([("thin".to_string(), "true".to_string())]);
    host.expect_survey(10 << 30, 4 * MIB, &[row]);
    let err = create_volume(&host.ctx, request("v", &caps, Some(&ok), &thin))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::AlreadyExists);
    host.finish();
}

#[tokio::test]
async fn a_requisite_topology_the_host_does_not_serve_is_refused_and_creates_nothing() {
    let mut host = FakeHost::new();
    host.ctx.settings.accessible_topology =
        vec![csi_common::topology::Segments::parse("topology.carve.dev/zone=a").unwrap()];
    let caps = [mount("ext4", Mode::SingleNodeWriter)];
    let none = HashMap::new();
    let zone = |z: &str| HashMap::from([("topology.carve.dev/zone".to_string(), z.to_string())]);
    let elsewhere = [zone("b"), zone("c")];

    // A new volume: RESOURCE_EXHAUSTED (spec.md), and the scripted runner proves no lvcreate ran.
    host.expect_survey(10 << 30, 4 * MIB, &[]);
    let mut req = request("fresh", &caps, None, &none);
    req.requisite = &elsewhere;
    let err = create_volume(&host.ctx, req).await.unwrap_err();
    assert_eq!(err.kind(), Kind::ResourceExhausted, "{err}");
    assert!(err.message().contains("zone=a"), "{err}");
    assert!(host.configfs_is_empty(), "nothing exported");

    // The same name again, existing: incompatible, ALREADY_EXISTS; compatible when served.
    let lv = LvName::for_volume("v");
    let row = lv_row(lv.as_str(), 8 * MIB, None, &carve_tags("v"));
    host.expect_survey(10 << 30, 4 * MIB, std::slice::from_ref(&row));
    let mut req = request("v", &caps, None, &none);
    req.requisite = &elsewhere;
    let err = create_volume(&host.ctx, req).await.unwrap_err();
    assert_eq!(err.kind(), Kind::AlreadyExists, "{err}");
    let here = [zone("b"), zone("a")];
    host.expect_survey(10 << 30, 4 * MIB, &[row]);
    let mut req = request("v", &caps, None, &none);
    req.requisite = &here;
    let again = create_volume(&host.ctx, req).await.unwrap();
    assert!(matches!(again, Created::AlreadyExisted(_)));
    host.finish();
}

#[tokio::test]
async fn invalid_requests_are_refused_before_touching_lvm() {
    let host = FakeHost::new();
    let caps = [mount("ext4", Mode::SingleNodeWriter)];
    let none = HashMap::new();
    let long = "x".repeat(129);
    for (name, caps, kind) in [
        ("", &caps[..], Kind::InvalidArgument),
        (long.as_str(), &caps[..], Kind::InvalidArgument),
        ("v", &[][..], Kind::InvalidArgument),
    ] {
        let err = create_volume(&host.ctx, request(name, caps, None, &none))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{name}");
    }
    let bad = HashMap::from([("fstype".to_string(), "ext4".to_string())]);
    let err = create_volume(&host.ctx, request("v", &caps, None, &bad))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidArgument);
    host.finish();
}

#[tokio::test]
async fn capacity_errors_out_of_range_and_resource_exhausted() {
    let host = FakeHost::new();
    let xfs = [mount("xfs", Mode::SingleNodeWriter)];
    let none = HashMap::new();
    let small = CapacityRange {
        required_bytes: MIB.cast_signed(),
        limit_bytes: 100 * MIB.cast_signed(),
    };
    host.expect_survey(10 << 30, 4 * MIB, &[]);
    let err = create_volume(&host.ctx, request("v", &xfs, Some(&small), &none))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::OutOfRange);
    let huge = CapacityRange {
        required_bytes: 20 << 30,
        limit_bytes: 0,
    };
    host.expect_survey(10 << 30, 4 * MIB, &[]);
    let err = create_volume(&host.ctx, request("v", &xfs, Some(&huge), &none))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::ResourceExhausted);
    host.finish();
}

#[tokio::test]
async fn lvcreate_out_of_space_is_resource_exhausted() {
    let host = FakeHost::new();
    let lv = LvName::for_volume("v");
    let caps = [mount("ext4", Mode::SingleNodeWriter)];
    let none = HashMap::new();
    let range = CapacityRange {
        required_bytes: 8 * MIB.cast_signed(),
        limit_bytes: 0,
    };
    host.expect_survey(10 << 30, 4 * MIB, &[]);
    let record = VolumeRecord {
        name: "v".into(),
        required_bytes: 8 * MIB,
        capabilities: "mount/ext4/SINGLE_NODE_WRITER".into(),
        ..Default::default()
    };
    let create = argv::lvcreate(
        VG,
        &lv,
        8 * MIB,
        &Allocation::Linear,
        &record.creation_tags(),
        Duration::from_secs(5),
    );
    let stderr = include_str!("../../../../tests/fixtures/controller/lvcreate-nospace.stderr");
    host.expect(Expectation::new(argv_of(&create)).fails(5, stderr));
    let err = create_volume(&host.ctx, request("v", &caps, Some(&range), &none))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::ResourceExhausted, "{err}");
    host.finish();
}

#[tokio::test]
async fn without_volume_group_or_portal_the_reason_is_clear() {
    let host = FakeHost::new();
    let caps = [mount("ext4", Mode::SingleNodeWriter)];
    let none = HashMap::new();
    let mut ctx = host.ctx.clone();
    ctx.settings.portals.clear();
    let err = create_volume(&ctx, request("v", &caps, None, &none))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::FailedPrecondition);
    assert!(err.message().contains("--portal"));
    let no_vg = Ctx::new(None, host.lio.clone(), host.ctx.settings.clone(), None);
    let err = create_volume(&no_vg, request("v", &caps, None, &none))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::FailedPrecondition);
    assert!(err.message().contains("--volume-group"));
    host.finish();
}
