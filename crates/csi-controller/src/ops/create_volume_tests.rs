use super::*;
use crate::{
    lvm::argv,
    ops::{
        capability::mount,
        testing::{
            FakeHost, VG, carve_tags, create_request as request, ext4_record, lv_row, pool_row,
            range, thin_pool,
        },
    },
};
use csi_common::{Kind, command::Expectation, testing::refused};
use csi_proto::v1::{
    VolumeCapability,
    volume_capability::{AccessMode, AccessType, BlockVolume, access_mode::Mode},
};
use std::time::Duration;

const MIB: u64 = 1 << 20;
const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn creates_a_thin_volume_rounded_to_extents_and_exports_it() {
    let host = FakeHost::new();
    let name = "pvc-1; $(reboot) --force";
    let lv = LvName::for_volume(name);
    let caps = [mount("ext4", Mode::SingleNodeWriter)];
    let range = range(5 * MIB, 0);
    let params = HashMap::from([("thin".to_string(), "true".to_string())]);
    host.expect_survey(10 << 30, 4 * MIB, &[pool_row(8 << 30)]);
    let record = ext4_record(name, 5 * MIB);
    host.expect_lvcreate(&lv, 8 * MIB, &thin_pool(), &record.creation_tags());
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
        T,
    );
    let args = csi_common::testing::argv(&create);
    for tag in [
        "carve.pvcns.0=team-a",
        "carve.pvcname.0=db#20data#2F#E5#90#8D",
        "carve.pvname.0=pvc-0b7c9a",
    ] {
        assert!(args.iter().any(|a| a == tag), "{tag} not in {args:?}");
    }
    host.expect(Expectation::new(args));
    let range = range(8 * MIB, 0);
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
    let overlong = create_volume(&host.ctx, request("v", &caps, None, &params)).await;
    refused(overlong, Kind::InvalidArgument);
    host.finish();
}

#[tokio::test]
async fn same_name_compatible_is_the_same_volume_and_incompatible_is_already_exists() {
    let host = FakeHost::new();
    let lv = LvName::for_volume("v");
    let row = lv_row(lv.as_str(), 8 * MIB, None, &carve_tags("v"));
    let caps = [mount("", Mode::SingleNodeWriter)];
    let none = HashMap::new();
    let ok = range(8 * MIB, 0);
    host.expect_survey(10 << 30, 4 * MIB, std::slice::from_ref(&row));
    let again = create_volume(&host.ctx, request("v", &caps, Some(&ok), &none))
        .await
        .unwrap();
    assert!(matches!(again, Created::AlreadyExisted(_)));
    let bigger = range(16 * MIB, 0);
    let thin = HashMap::from([("thin".to_string(), "true".to_string())]);
    for (range, params) in [(&bigger, &none), (&ok, &thin)] {
        host.expect_survey(10 << 30, 4 * MIB, std::slice::from_ref(&row));
        let incompatible = create_volume(&host.ctx, request("v", &caps, Some(range), params)).await;
        refused(incompatible, Kind::AlreadyExists);
    }
    // Created as a filesystem volume: the same name asked as raw block is another volume
    // (spec.md, CreateVolume errors: incompatible with the specified `volume_capabilities`).
    let block = [VolumeCapability {
        access_type: Some(AccessType::Block(BlockVolume {})),
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeWriter as i32,
        }),
    }];
    host.expect_survey(10 << 30, 4 * MIB, std::slice::from_ref(&row));
    let as_block = create_volume(&host.ctx, request("v", &block, Some(&ok), &none)).await;
    let why = refused(as_block, Kind::AlreadyExists);
    assert!(why.message().contains("mount//SINGLE_NODE_WRITER"), "{why}");
    host.finish();
}

#[tokio::test]
async fn a_requisite_topology_the_host_does_not_serve_is_refused_and_creates_nothing() {
    let host = FakeHost::in_topology("topology.carve.dev/zone=a");
    let caps = [mount("ext4", Mode::SingleNodeWriter)];
    let none = HashMap::new();
    let zone = |z: &str| HashMap::from([("topology.carve.dev/zone".to_string(), z.to_string())]);
    let elsewhere = [zone("b"), zone("c")];

    // A new volume: RESOURCE_EXHAUSTED (spec.md), and the scripted runner proves no lvcreate ran.
    host.expect_survey(10 << 30, 4 * MIB, &[]);
    let mut req = request("fresh", &caps, None, &none);
    req.requisite = &elsewhere;
    let err = refused(create_volume(&host.ctx, req).await, Kind::ResourceExhausted);
    assert!(err.message().contains("zone=a"), "{err}");
    assert!(host.configfs_is_empty(), "nothing exported");

    // The same name again, existing: incompatible, ALREADY_EXISTS; compatible when served.
    let lv = LvName::for_volume("v");
    let row = lv_row(lv.as_str(), 8 * MIB, None, &carve_tags("v"));
    host.expect_survey(10 << 30, 4 * MIB, std::slice::from_ref(&row));
    let mut req = request("v", &caps, None, &none);
    req.requisite = &elsewhere;
    refused(create_volume(&host.ctx, req).await, Kind::AlreadyExists);
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
    let bad = create_volume(&host.ctx, request("v", &caps, None, &bad)).await;
    refused(bad, Kind::InvalidArgument);
    host.finish();
}

#[tokio::test]
async fn capacity_errors_out_of_range_and_resource_exhausted() {
    let host = FakeHost::new();
    let xfs = [mount("xfs", Mode::SingleNodeWriter)];
    let none = HashMap::new();
    // xfs needs more than a MiB; 20 GiB is more than the VG has.
    for (range, kind) in [
        (range(MIB, 100 * MIB), Kind::OutOfRange),
        (range(20 << 30, 0), Kind::ResourceExhausted),
    ] {
        host.expect_survey(10 << 30, 4 * MIB, &[]);
        refused(
            create_volume(&host.ctx, request("v", &xfs, Some(&range), &none)).await,
            kind,
        );
    }
    host.finish();
}

/// lvcreate refused for room, in the VG (no free extents) or in its metadata area: each is
/// RESOURCE_EXHAUSTED, the latter naming the remedy (`--metadatasize`).
#[tokio::test]
async fn lvcreate_out_of_space_or_metadata_room_is_resource_exhausted() {
    let host = FakeHost::new();
    let lv = LvName::for_volume("v");
    let caps = [mount("ext4", Mode::SingleNodeWriter)];
    let none = HashMap::new();
    let range = range(8 * MIB, 0);
    let tags = ext4_record("v", 8 * MIB).creation_tags();
    let create = argv::lvcreate(VG, &lv, 8 * MIB, &Allocation::Linear, &tags, T);
    // What LVM 2.03.16 printed (capture.sh, capture-metadata-full.sh); LVM 2.02 (older storage
    // hosts) words a full area as its lib/format_text/format-text.c does.
    let cases = [
        (
            include_str!("../../../../tests/fixtures/controller/lvcreate-nospace.stderr"),
            None,
        ),
        (
            include_str!("../../../../tests/fixtures/controller/lvcreate-metadata-full.stderr"),
            Some("--metadatasize"),
        ),
        (
            "  VG carvevg metadata on /dev/sdb (530000 bytes) too large for circular buffer \
             (1043968 bytes with 521000 used)\n  Failed to write VG carvevg.\n",
            Some("--metadatasize"),
        ),
    ];
    for (stderr, remedy) in cases {
        host.expect_survey(10 << 30, 4 * MIB, &[]);
        host.expect(Expectation::of(&create).fails(5, stderr));
        let result = create_volume(&host.ctx, request("v", &caps, Some(&range), &none)).await;
        let err = refused(result, Kind::ResourceExhausted);
        if let Some(remedy) = remedy {
            assert!(
                err.message().contains("metadata area") && err.message().contains(remedy),
                "{err}"
            );
        }
    }
    host.finish();
}

#[tokio::test]
async fn without_volume_group_or_portal_the_reason_is_clear() {
    let host = FakeHost::new();
    let caps = [mount("ext4", Mode::SingleNodeWriter)];
    let none = HashMap::new();
    let mut ctx = host.ctx.clone();
    ctx.settings.portals.clear();
    let no_vg = Ctx::new(None, host.lio.clone(), host.ctx.settings.clone(), None);
    for (ctx, flag) in [(&ctx, "--portal"), (&no_vg, "--volume-group")] {
        let err = refused(
            create_volume(ctx, request("v", &caps, None, &none)).await,
            Kind::FailedPrecondition,
        );
        assert!(err.message().contains(flag));
    }
    host.finish();
}
