use super::*;
use csi_common::contract::Chap;

fn spec() -> ExportSpec {
    ExportSpec {
        target: Iqn::parse("iqn.2024-01.dev.carve:csi-v-1").unwrap(),
        storage_object: "csi-v-1".into(),
        device: "/dev/carvevg/csi-v-1".into(),
        serial: "0123abcd-0000-4000-8000-000000000001".into(),
        portals: vec![
            "127.0.0.1:3260".parse().unwrap(),
            "[fd00::1]:3260".parse().unwrap(),
        ],
        thin: true,
    }
}

/// A LIO in a new plain directory (kept as long as the `TempDir` lives).
fn plain_lio() -> (tempfile::TempDir, ConfigfsLio) {
    let dir = tempfile::tempdir().unwrap();
    let lio = ConfigfsLio::plain_directory(dir.path());
    (dir, lio)
}

fn read(root: &Path, path: &str) -> String {
    fs::read_to_string(root.join(path)).unwrap()
}

#[tokio::test]
async fn export_writes_rtslib_layout_without_trailing_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("core/iblock_0/other")).unwrap();
    let lio = ConfigfsLio::plain_directory(root);
    lio.ensure_export(&spec()).await.unwrap();
    let so = "core/iblock_1/csi-v-1";
    assert_eq!(
        read(root, &format!("{so}/udev_path")),
        "/dev/carvevg/csi-v-1"
    );
    assert_eq!(read(root, &format!("{so}/control")), "readonly=0");
    assert_eq!(read(root, &format!("{so}/enable")), "1");
    assert_eq!(
        read(root, &format!("{so}/wwn/vpd_unit_serial")),
        spec().serial
    );
    assert_eq!(read(root, &format!("{so}/attrib/emulate_tpu")), "1");
    let tpg = "iscsi/iqn.2024-01.dev.carve:csi-v-1/tpgt_1";
    assert_eq!(read(root, &format!("{tpg}/attrib/generate_node_acls")), "0");
    assert_eq!(read(root, &format!("{tpg}/attrib/authentication")), "0");
    assert_eq!(read(root, &format!("{tpg}/enable")), "1");
    assert!(root.join(format!("{tpg}/np/127.0.0.1:3260")).is_dir());
    assert!(root.join(format!("{tpg}/np/[fd00::1]:3260")).is_dir());
    let link = link_in(&root.join(format!("{tpg}/lun/lun_0"))).unwrap();
    assert_eq!(link, ("iblock_1".to_string(), "csi-v-1".to_string()));
    // idempotent: a second call changes nothing and still verifies
    lio.ensure_export(&spec()).await.unwrap();
    assert_eq!(entries(&root.join("core")), ["iblock_0", "iblock_1"]);
}

#[tokio::test]
async fn partial_export_is_completed_and_stray_portals_removed() {
    let (dir, lio) = plain_lio();
    let root = dir.path();
    fs::create_dir_all(root.join("core/iblock_0/csi-v-1")).unwrap();
    fs::create_dir_all(root.join("iscsi/iqn.2024-01.dev.carve:csi-v-1/tpgt_1/np/0.0.0.0:3260"))
        .unwrap();
    lio.ensure_export(&spec()).await.unwrap();
    let np = entries(&root.join("iscsi/iqn.2024-01.dev.carve:csi-v-1/tpgt_1/np"));
    assert_eq!(np, ["127.0.0.1:3260", "[fd00::1]:3260"]);
    assert_eq!(read(root, "core/iblock_0/csi-v-1/enable"), "1");
}

#[tokio::test]
async fn acl_with_chap_then_removal_and_full_unexport() {
    let (dir, lio) = plain_lio();
    let root = dir.path();
    lio.ensure_export(&spec()).await.unwrap();
    let chap = Chap {
        username: "u1".into(),
        password: "secretpass12".into(),
        mutual: None,
    };
    let node = Iqn::parse("iqn.2024-01.dev.carve:node1").unwrap();
    let acl = AclSpec {
        initiator: node.clone(),
        readonly: true,
        chap: Some(chap),
    };
    lio.ensure_acl(&spec().target, &acl).await.unwrap();
    let base = "iscsi/iqn.2024-01.dev.carve:csi-v-1/tpgt_1";
    let acl_dir = format!("{base}/acls/iqn.2024-01.dev.carve:node1");
    assert_eq!(
        read(root, &format!("{acl_dir}/auth/password")),
        "secretpass12"
    );
    assert_eq!(read(root, &format!("{acl_dir}/lun_0/write_protect")), "1");
    assert_eq!(read(root, &format!("{base}/attrib/authentication")), "1");
    assert!(lio.remove_acl(&spec().target, &node).await.unwrap());
    assert!(!lio.remove_acl(&spec().target, &node).await.unwrap());
    lio.ensure_acl(&spec().target, &acl).await.unwrap();
    assert!(lio.remove_export(&spec().target, "csi-v-1").await.unwrap());
    assert!(entries(&root.join("iscsi")).is_empty());
    assert!(
        entries(&root.join("core")).is_empty(),
        "HBA removed with its object"
    );
    assert!(!lio.remove_export(&spec().target, "csi-v-1").await.unwrap());
}

#[tokio::test]
async fn acl_on_missing_target_is_an_error_and_lun_mismatch_is_refused() {
    let (_dir, lio) = plain_lio();
    let node = Iqn::parse("iqn.2024-01.dev.carve:node1").unwrap();
    let acl = AclSpec {
        initiator: node,
        readonly: false,
        chap: None,
    };
    assert!(lio.ensure_acl(&spec().target, &acl).await.is_err());
    lio.ensure_export(&spec()).await.unwrap();
    let other = ExportSpec {
        storage_object: "csi-w-1".into(),
        ..spec()
    };
    let err = lio.ensure_export(&other).await.unwrap_err();
    assert!(err.message().contains("LUN 0 maps"), "{err}");
}

#[tokio::test]
async fn session_parameters_are_set_and_an_export_made_with_lio_defaults_is_converged() {
    let (dir, lio) = plain_lio();
    let root = dir.path();
    lio.ensure_export(&spec()).await.unwrap();
    let tpg = "iscsi/iqn.2024-01.dev.carve:csi-v-1/tpgt_1";
    for (name, value) in SESSION_PARAMETERS {
        assert_eq!(read(root, &format!("{tpg}/param/{name}")), *value);
    }
    // An export made before (LIO's defaults, with the kernel's trailing newline) fails the
    // verification and is brought to Carve's values by the next ensure_export.
    fs::write(root.join(format!("{tpg}/param/InitialR2T")), "Yes\n").unwrap();
    fs::write(
        root.join(format!("{tpg}/param/MaxRecvDataSegmentLength")),
        "8192\n",
    )
    .unwrap();
    let state = read_volume_state(&lio.layout, "iqn.2024-01.dev.carve:csi-v-1", "csi-v-1");
    let err = verify_export(&state, &spec()).unwrap_err();
    assert!(err.message().contains("InitialR2T"), "{err}");
    lio.ensure_export(&spec()).await.unwrap();
    assert_eq!(read(root, &format!("{tpg}/param/InitialR2T")), "No");
    assert_eq!(
        read(root, &format!("{tpg}/param/MaxRecvDataSegmentLength")),
        "262144"
    );
}

#[tokio::test]
async fn volume_state_reads_one_export_only() {
    let (dir, lio) = plain_lio();
    let root = dir.path();
    let mut other = spec();
    other.target = Iqn::parse("iqn.2024-01.dev.carve:csi-w-2").unwrap();
    other.storage_object = "csi-w-2".into();
    lio.ensure_export(&other).await.unwrap();
    lio.ensure_export(&spec()).await.unwrap();
    let full = lio.state().await.unwrap();
    assert_eq!((full.storage_objects.len(), full.targets.len()), (2, 2));
    let one = lio
        .volume_state(&spec().target, &spec().storage_object)
        .await
        .unwrap();
    assert_eq!(
        one.storage_objects,
        [full.storage_object("csi-v-1").unwrap().clone()]
    );
    assert_eq!(
        one.targets,
        [full
            .target("iqn.2024-01.dev.carve:csi-v-1")
            .unwrap()
            .clone()]
    );
    // The object is reached through the target's LUN 0 link, not by a scan of every HBA: a
    // stray directory of the same name under another HBA is not even looked at.
    fs::create_dir_all(root.join("core/iblock_99/csi-v-1")).unwrap();
    let linked = lio
        .volume_state(&spec().target, &spec().storage_object)
        .await
        .unwrap();
    assert_eq!(linked, one);
    // Without a target (a partial export), the object is found by looking under each HBA.
    let unlinked = Iqn::parse("iqn.2024-01.dev.carve:csi-none").unwrap();
    let found = lio.volume_state(&unlinked, "csi-w-2").await.unwrap();
    assert_eq!(found.storage_objects.len(), 1);
    assert!(found.targets.is_empty());
    let target_only = lio.volume_state(&spec().target, "").await.unwrap();
    assert!(target_only.storage_objects.is_empty());
    assert_eq!(target_only.targets.len(), 1);
    let absent = Iqn::parse("iqn.2024-01.dev.carve:csi-x-3").unwrap();
    assert_eq!(
        lio.volume_state(&absent, "csi-x-3").await.unwrap(),
        LioState::default()
    );
}

#[tokio::test]
async fn targets_with_acl_agree_with_the_whole_state() {
    let (dir, lio) = plain_lio();
    let root = dir.path();
    let node = Iqn::parse("iqn.2024-01.dev.carve:node1").unwrap();
    let other = Iqn::parse("iqn.2024-01.dev.carve:node2").unwrap();
    let mut want = Vec::new();
    for (i, initiator) in [&node, &other, &node].into_iter().enumerate() {
        let mut s = spec();
        s.target = Iqn::parse(&format!("iqn.2024-01.dev.carve:csi-v-{i}")).unwrap();
        s.storage_object = format!("csi-v-{i}");
        lio.ensure_export(&s).await.unwrap();
        let acl = AclSpec {
            initiator: initiator.clone(),
            readonly: false,
            chap: None,
        };
        lio.ensure_acl(&s.target, &acl).await.unwrap();
        if initiator == &node {
            want.push(s.target.to_string());
        }
    }
    // A target outside the prefix with an ACL for the node is not counted.
    fs::create_dir_all(root.join(format!("iscsi/iqn.2003-01.org.other:x/tpgt_1/acls/{node}")))
        .unwrap();
    let prefix = "iqn.2024-01.dev.carve:";
    let cheap = lio.targets_with_acl(prefix, node.as_str()).await.unwrap();
    assert_eq!(cheap, want);
    let whole: Vec<String> = lio
        .state()
        .await
        .unwrap()
        .targets
        .into_iter()
        .filter(|t| t.iqn.starts_with(prefix))
        .filter(|t| t.acls.iter().any(|a| a.initiator == node.as_str()))
        .map(|t| t.iqn)
        .collect();
    assert_eq!(cheap, whole);
}

fn spec_for(name: &str) -> ExportSpec {
    ExportSpec {
        target: Iqn::parse(&format!("iqn.2024-01.dev.carve:{name}")).unwrap(),
        storage_object: name.into(),
        device: format!("/dev/carvevg/{name}").into(),
        ..spec()
    }
}

/// The HBA index is a cache of configfs: an HBA made behind the backend's back is skipped,
/// never shared; an object removed behind its back is made again; after a resync an object
/// made by hand is found, not duplicated.
#[tokio::test]
async fn the_hba_index_never_shares_an_hba_and_follows_changes_made_by_hand() {
    let (dir, lio) = plain_lio();
    let root = dir.path();
    lio.ensure_export(&spec_for("csi-a-1")).await.unwrap();
    // Someone (targetcli, by hand) takes the next index: the index does not know it yet.
    fs::create_dir_all(root.join("core/iblock_1/theirs")).unwrap();
    lio.ensure_export(&spec_for("csi-b-1")).await.unwrap();
    assert_eq!(
        entries(&root.join("core/iblock_1")),
        ["theirs"],
        "never shared"
    );
    assert_eq!(entries(&root.join("core/iblock_2")), ["csi-b-1"]);
    // csi-a's object vanishes (a partial wipe): the stale entry is noticed and it is made again.
    lio.remove_export(&spec_for("csi-a-1").target, "")
        .await
        .unwrap();
    fs::remove_dir_all(root.join("core/iblock_0")).unwrap();
    lio.ensure_export(&spec_for("csi-a-1")).await.unwrap();
    assert_eq!(entries(&root.join("core/iblock_0")), ["csi-a-1"]);
    // An object made by hand is seen after a resync.
    fs::create_dir_all(root.join("core/iblock_7/csi-c-1")).unwrap();
    lio.resync();
    lio.ensure_export(&spec_for("csi-c-1")).await.unwrap();
    let state = lio.state().await.unwrap();
    let c: Vec<_> = state
        .storage_objects
        .iter()
        .filter(|o| o.name == "csi-c-1")
        .map(|o| o.hba.as_str())
        .collect();
    assert_eq!(c, ["iblock_7"], "found, not duplicated");
    assert!(
        lio.remove_export(&spec_for("csi-c-1").target, "csi-c-1")
            .await
            .unwrap()
    );
    assert!(!root.join("core/iblock_7").exists());
    lio.ensure_export(&spec_for("csi-d-1")).await.unwrap();
    assert!(
        root.join("core/iblock_3/csi-d-1").is_dir(),
        "lowest free index"
    );
}

/// The attach limit's count comes from the ACL index: once read, counting costs no configfs
/// operation, and grants, revocations and removed exports keep it exact.
#[tokio::test]
async fn targets_with_acl_answer_from_the_index_kept_with_the_acls() {
    use crate::lio::counted::tally;
    let (dir, lio) = plain_lio();
    let root = dir.path();
    let node = Iqn::parse("iqn.2024-01.dev.carve:node1").unwrap();
    let acl = AclSpec {
        initiator: node.clone(),
        readonly: false,
        chap: None,
    };
    let prefix = "iqn.2024-01.dev.carve:csi-";
    let (a, b) = (spec_for("csi-a-1"), spec_for("csi-b-1"));
    lio.ensure_export(&a).await.unwrap();
    lio.ensure_acl(&a.target, &acl).await.unwrap();
    let count = || async { lio.targets_with_acl(prefix, node.as_str()).await.unwrap() };
    assert_eq!(count().await, [a.target.to_string()]);
    lio.ensure_export(&b).await.unwrap();
    let before = tally::under(root);
    lio.ensure_acl(&b.target, &acl).await.unwrap();
    let granting = tally::under(root) - before;
    let before = tally::under(root);
    assert_eq!(count().await, [a.target.to_string(), b.target.to_string()]);
    assert_eq!(tally::under(root) - before, 0, "no configfs work to count");
    assert!(granting > 0);
    lio.remove_acl(&a.target, &node).await.unwrap();
    assert_eq!(count().await, [b.target.to_string()]);
    lio.remove_export(&b.target, "csi-b-1").await.unwrap();
    assert!(count().await.is_empty());
    // An ACL made by hand is counted after a resync.
    fs::create_dir_all(root.join(format!("iscsi/{}/tpgt_1/acls/{node}", a.target))).unwrap();
    assert!(count().await.is_empty());
    lio.resync();
    assert_eq!(count().await, [a.target.to_string()]);
}
