use super::*;
use crate::lio::{
    configfs::ConfigfsLio,
    state::{AclState, TargetState},
};
use csi_common::{
    Kind,
    command::{Expectation, ScriptedRunner},
    contract::Chap,
    testing::refused,
};

const IQN: &str = "iqn.2024-01.dev.carve.csi.lvm-iscsi:csi-thin-4567";
const NODE1: &str = "iqn.2024-01.dev.carve:node1";

fn spec() -> ExportSpec {
    ExportSpec {
        target: Iqn::parse(IQN).unwrap(),
        storage_object: "csi-thin-4567".into(),
        device: "/dev/carvevg/csi-thin-4567".into(),
        serial: "01234567-89ab-cdef-0123-456789abcdef".into(),
        portals: vec!["127.0.0.1:3260".parse().unwrap()],
        thin: true,
    }
}

#[test]
fn export_plan_from_nothing_uses_the_commands_proven_in_the_guest() {
    let plan = export_plan(&LioState::default(), &spec());
    let tpg = format!("/iscsi/{IQN}/tpg1");
    assert_eq!(
        plan,
        [
            "/backstores/block create name=csi-thin-4567 dev=/dev/carvevg/csi-thin-4567 wwn=01234567-89ab-cdef-0123-456789abcdef".to_string(),
            "/backstores/block/csi-thin-4567 set attribute emulate_tpu=1".to_string(),
            format!("/iscsi create {IQN}"),
            format!("{tpg}/portals create 127.0.0.1 3260"),
            format!("{tpg}/luns create /backstores/block/csi-thin-4567 lun=0 add_mapped_luns=false"),
            format!("{tpg} set parameter InitialR2T=No ImmediateData=Yes MaxRecvDataSegmentLength=262144 FirstBurstLength=262144 MaxBurstLength=1048576"),
            format!("{tpg} set attribute generate_node_acls=0 authentication=0"),
            format!("{tpg} enable"),
        ]
    );
    let captured =
        include_str!("../../../../tests/fixtures/controller/targetcli-batch-export.stdout");
    assert!(
        captured.contains(
            "Created block storage object csi-thin-4567 using /dev/carvevg/csi-thin-4567."
        )
    );
}

#[tokio::test]
async fn complete_export_needs_no_batch_and_default_portal_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let configfs = ConfigfsLio::plain_directory(dir.path());
    configfs.ensure_export(&spec()).await.unwrap();
    let mut state = configfs.state().await.unwrap();
    assert!(export_plan(&state, &spec()).is_empty());
    state.targets[0].portals.push("0.0.0.0:3260".into());
    assert_eq!(
        export_plan(&state, &spec()),
        [format!("/iscsi/{IQN}/tpg1/portals delete 0.0.0.0 3260")]
    );
}

#[tokio::test]
async fn batch_exit_zero_is_not_trusted_state_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Arc::new(ScriptedRunner::new());
    let mut script = export_plan(&LioState::default(), &spec()).join("\n");
    script.push_str("\nexit\n");
    let captured_error =
        include_str!("../../../../tests/fixtures/controller/targetcli-batch-error.stdout");
    for _ in 0..2 {
        runner.expect(
            Expectation::new(["targetcli"])
                .stdin(script.clone())
                .stdout(captured_error),
        );
    }
    let lio = TargetcliLio::new(
        runner.clone(),
        "targetcli".into(),
        Duration::from_secs(5),
        dir.path().into(),
    );
    let err = refused(lio.ensure_export(&spec()).await, Kind::Internal);
    assert!(err.message().contains("incomplete"), "{err}");
    runner.finish();
}

fn state_with_acl(write_protect: bool) -> LioState {
    LioState {
        targets: vec![TargetState {
            iqn: IQN.into(),
            has_tpg: true,
            enabled: true,
            acls: vec![AclState {
                initiator: NODE1.into(),
                mapped_lun0: true,
                write_protect,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn acl_plans_create_update_and_carry_chap_as_secret() {
    let target = Iqn::parse(IQN).unwrap();
    let tpg = format!("/iscsi/{IQN}/tpg1");
    let acl = AclSpec {
        initiator: Iqn::parse(NODE1).unwrap(),
        readonly: false,
        chap: None,
    };
    let (plan, secrets) = acl_plan(&LioState::default(), &target, &acl).unwrap();
    assert!(secrets.is_empty());
    assert_eq!(
        plan,
        [
            format!("{tpg}/acls create {NODE1} add_mapped_luns=false"),
            format!(
                "{tpg}/acls/{NODE1} create mapped_lun=0 tpg_lun_or_backstore=0 write_protect=0"
            ),
        ]
    );
    assert!(
        acl_plan(&state_with_acl(false), &target, &acl)
            .unwrap()
            .0
            .is_empty()
    );
    let ro = AclSpec {
        readonly: true,
        ..acl.clone()
    };
    let (plan, _) = acl_plan(&state_with_acl(false), &target, &ro).unwrap();
    assert_eq!(plan[0], format!("{tpg}/acls/{NODE1} delete 0"));
    let chap = Chap {
        username: "user1".into(),
        password: "secretpass12".into(),
        mutual: None,
    };
    let with_chap = AclSpec {
        chap: Some(chap.clone()),
        ..acl.clone()
    };
    let (plan, secrets) = acl_plan(&state_with_acl(false), &target, &with_chap).unwrap();
    assert_eq!(secrets, ["secretpass12"]);
    assert_eq!(
        plan[0],
        format!("{tpg}/acls/{NODE1} set auth userid=user1 password=secretpass12")
    );
    assert_eq!(plan[1], format!("{tpg} set attribute authentication=1"));
    // A new CHAP ACL: its CHAP is set and enforced before LUN 0 is mapped to it, so no
    // initiator can reach the data without CHAP in between.
    let (plan, _) = acl_plan(&LioState::default(), &target, &with_chap).unwrap();
    assert_eq!(
        plan,
        [
            format!("{tpg}/acls create {NODE1} add_mapped_luns=false"),
            format!("{tpg}/acls/{NODE1} set auth userid=user1 password=secretpass12"),
            format!("{tpg} set attribute authentication=1"),
            format!(
                "{tpg}/acls/{NODE1} create mapped_lun=0 tpg_lun_or_backstore=0 write_protect=0"
            ),
        ]
    );
    let hostile = AclSpec {
        chap: Some(Chap {
            password: "abc#defghijkl".into(),
            ..chap
        }),
        ..acl
    };
    assert_eq!(
        acl_plan(&state_with_acl(false), &target, &hostile)
            .unwrap_err()
            .kind(),
        Kind::InvalidArgument
    );
}

#[test]
fn chap_batch_goes_on_secret_stdin_never_argv() {
    let target = Iqn::parse(IQN).unwrap();
    let chap = Chap {
        username: "user1".into(),
        password: "secretpass12".into(),
        mutual: None,
    };
    let acl = AclSpec {
        initiator: Iqn::parse(NODE1).unwrap(),
        readonly: false,
        chap: Some(chap),
    };
    let (plan, secrets) = acl_plan(&LioState::default(), &target, &acl).unwrap();
    let cmd = batch_command(
        std::path::Path::new("targetcli"),
        &plan,
        !secrets.is_empty(),
        Duration::from_secs(5),
    );
    assert_eq!(cmd.arg_values().count(), 0);
    assert!(cmd.stdin_value().unwrap().contains("password=secretpass12"));
    assert_eq!(cmd.redacted(), "targetcli <<< <redacted>");
    let echoed =
        include_str!("../../../../tests/fixtures/controller/targetcli-batch-export.stdout");
    assert!(
        echoed.contains("secretpass12"),
        "targetcli echoes the password"
    );
    let scrubbed = scrub(echoed, &secrets);
    assert!(
        !scrubbed.contains("secretpass12")
            && scrubbed.contains("Parameter password is now '<redacted>'.")
    );
}
