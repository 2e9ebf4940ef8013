use super::*;
use crate::lvm::LvRow;
use crate::ops::{
    capability::mount,
    testing::{
        FakeHost, NODE1, NODE2, carve_tags, linear_row, lv_row, publication_tags,
        publish_request as req,
    },
};
use csi_common::{
    Kind,
    contract::{CHAP_MUTUAL_PASSWORD, CHAP_MUTUAL_USERNAME, CHAP_PASSWORD, CHAP_USERNAME},
    testing::refused,
};
use csi_proto::v1::volume_capability::{self, access_mode::Mode};

/// Publish of "csi-v-1" to `node`: ext4, single-node writer, read-write, no secrets.
async fn publish_rw(ctx: &Ctx, node: &str) -> csi_common::Result<Published> {
    let cap = mount("ext4", Mode::SingleNodeWriter);
    publish(ctx, req(node, &cap, false, &HashMap::new())).await
}

/// Publishing "csi-v-1" to `node` is FAILED_PRECONDITION, naming `holder`.
async fn assert_held_by(host: &FakeHost, node: &str, holder: &str) {
    let err = refused(publish_rw(&host.ctx, node).await, Kind::FailedPrecondition);
    assert!(err.message().contains(holder), "{err}");
}

/// The read and the one lvchange of the first publication of the linear `row` ("csi-v-1"): it
/// is marked used and tagged `carve.pub=<publication>`.
fn expect_first_publication(host: &FakeHost, row: LvRow, publication: &str) {
    host.expect_lvs_one("csi-v-1", &[row]);
    host.expect_retag(
        "csi-v-1",
        &[],
        &["carve.used", &format!("carve.pub={publication}")],
    );
}

#[tokio::test]
async fn tags_then_acl_for_that_initiator_only() {
    let host = FakeHost::new();
    let row = host.export_linear("csi-v-1", &carve_tags("v")).await;
    expect_first_publication(&host, row, &format!("rw:{NODE1}"));
    let target = publish_rw(&host.ctx, NODE1).await.unwrap();
    assert!(target.blank, "a linear volume never published is blank");
    assert!(!target.readonly);
    assert_eq!(target.target.iqn, host.target("csi-v-1"));
    assert_eq!(target.target.lun, 0);
    assert_eq!(host.acls("csi-v-1"), [NODE1]);
    let ctx = target.to_context();
    assert!(!ctx.values().any(|v| v.contains("secret")));
    host.finish();
}

#[tokio::test]
async fn a_publication_that_fails_half_way_still_reaches_saveconfig() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("saveconfig.json");
    let host = FakeHost::new().with_saver(&path);
    let row = host.export_linear("csi-v-1", &carve_tags("v")).await;
    // LUN 0 lost its mapping, and the ACL cannot be made (a file where its directory goes):
    // publish maps the LUN again, then fails.
    let tpg = host
        .root
        .join(format!("iscsi/{}/tpgt_1", host.target("csi-v-1")));
    for link in std::fs::read_dir(tpg.join("lun/lun_0")).unwrap() {
        std::fs::remove_file(link.unwrap().path()).unwrap();
    }
    std::fs::create_dir_all(tpg.join("acls")).unwrap();
    std::fs::write(tpg.join("acls").join(NODE1), "").unwrap();
    expect_first_publication(&host, row, &format!("rw:{NODE1}"));
    publish_rw(&host.ctx, NODE1).await.unwrap_err();
    host.ctx.lio_saved().await.unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        saved["targets"][0]["tpgs"][0]["luns"][0]["storage_object"], "/backstores/block/csi-v-1",
        "the LUN the failed call mapped again is in the file"
    );
    host.finish();
}

#[tokio::test]
async fn a_full_lvm_metadata_area_refuses_the_publication_as_internal_before_any_acl() {
    let host = FakeHost::new();
    let row = host.export_linear("csi-v-1", &carve_tags("v")).await;
    host.expect_lvs_one("csi-v-1", &[row]);
    // What LVM 2.03.16 printed (tests/fixtures/controller/capture-metadata-full.sh).
    let stderr =
        include_str!("../../../../tests/fixtures/controller/lvchange-metadata-full.stderr");
    let publication = format!("carve.pub=rw:{NODE1}");
    host.expect_retag_fails("csi-v-1", &[], &["carve.used", &publication], stderr);
    // Not RESOURCE_EXHAUSTED: for ControllerPublish that means too many volumes on the node.
    let err = refused(publish_rw(&host.ctx, NODE1).await, Kind::Internal);
    assert!(err.message().contains("--metadatasize"), "{err}");
    assert!(host.acls("csi-v-1").is_empty(), "no ACL without its record");
    host.finish();
}

#[tokio::test]
async fn republish_same_node_is_ok_and_other_node_is_refused_naming_it() {
    let host = FakeHost::new();
    let row = host.published_linear("csi-v-1", "v", NODE1).await;
    let cap = mount("ext4", Mode::SingleNodeWriter);
    let none = HashMap::new();
    host.expect_lvs_one("csi-v-1", std::slice::from_ref(&row));
    host.expect_retag("csi-v-1", &[], &["carve.used"]);
    let again = publish_rw(&host.ctx, NODE1).await.unwrap();
    assert!(!again.blank, "published before: may hold data");
    host.expect_lvs_one("csi-v-1", std::slice::from_ref(&row));
    assert_held_by(&host, NODE2, NODE1).await;
    assert_eq!(host.acls("csi-v-1"), [NODE1], "node2 got nothing");
    host.expect_lvs_one("csi-v-1", &[row]);
    let readonly = publish(&host.ctx, req(NODE1, &cap, true, &none)).await;
    refused(readonly, Kind::AlreadyExists);
    host.finish();
}

#[tokio::test]
async fn acl_alone_also_blocks_another_node() {
    let host = FakeHost::new();
    let row = host.export_linear("csi-v-1", &carve_tags("v")).await;
    host.add_acl("csi-v-1", NODE2).await;
    host.expect_lvs_one("csi-v-1", &[row]);
    assert_held_by(&host, NODE1, NODE2).await;
    host.finish();
}

#[tokio::test]
async fn readonly_and_mutual_chap_reach_configfs_without_newlines() {
    let host = FakeHost::new();
    let row = host.export_linear("csi-v-1", &carve_tags("v")).await;
    let cap = mount("ext4", Mode::SingleNodeReaderOnly);
    let secrets: HashMap<String, String> = [
        (CHAP_USERNAME, "user1"),
        (CHAP_PASSWORD, "secretpass12"),
        (CHAP_MUTUAL_USERNAME, "tuser"),
        (CHAP_MUTUAL_PASSWORD, "mutualpass34"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    expect_first_publication(&host, row, &format!("ro.chap:{NODE1}"));
    let published = publish(&host.ctx, req(NODE1, &cap, false, &secrets))
        .await
        .unwrap();
    assert!(published.readonly, "reader-only capability");
    assert_eq!(published.to_context()["readonly"], "true");
    let tpg = host.lio.layout().tpg(host.target("csi-v-1").as_str());
    let read = |p: &str| std::fs::read_to_string(tpg.join(p)).unwrap();
    let acl = format!("acls/{NODE1}");
    assert_eq!(read(&format!("{acl}/auth/userid")), "user1");
    assert_eq!(read(&format!("{acl}/auth/password")), "secretpass12");
    assert_eq!(read(&format!("{acl}/auth/userid_mutual")), "tuser");
    assert_eq!(read(&format!("{acl}/auth/password_mutual")), "mutualpass34");
    assert_eq!(read(&format!("{acl}/lun_0/write_protect")), "1");
    assert_eq!(read("attrib/authentication"), "1");
    assert_eq!(read("attrib/generate_node_acls"), "0");
    host.finish();
}

#[tokio::test]
async fn unknown_volume_or_node_is_not_found_and_bad_input_invalid() {
    let host = FakeHost::new();
    let cap = mount("ext4", Mode::SingleNodeWriter);
    let none = HashMap::new();
    host.expect_lvs_one("csi-v-1", &[]);
    refused(publish_rw(&host.ctx, NODE1).await, Kind::NotFound);
    let err = refused(publish_rw(&host.ctx, "worker-1").await, Kind::NotFound);
    assert!(err.message().contains("initiator IQN"));
    refused(publish_rw(&host.ctx, "").await, Kind::InvalidArgument);
    let mut missing_cap = req(NODE1, &cap, false, &none);
    missing_cap.capability = None;
    refused(publish(&host.ctx, missing_cap).await, Kind::InvalidArgument);
    let rwx = mount("ext4", Mode::MultiNodeMultiWriter);
    refused(
        publish(&host.ctx, req(NODE1, &rwx, false, &none)).await,
        Kind::InvalidArgument,
    );
    let half = HashMap::from([(CHAP_USERNAME.to_string(), "u".to_string())]);
    refused(
        publish(&host.ctx, req(NODE1, &cap, false, &half)).await,
        Kind::InvalidArgument,
    );
    host.finish();
}

#[tokio::test]
async fn a_tag_without_acl_still_blocks_another_node_and_chap_change_rewrites_the_tag() {
    let host = FakeHost::new();
    let tags = publication_tags("v", &format!("rw.chap:{NODE1}"));
    let row = host.export_linear("csi-v-1", &tags).await;
    host.expect_lvs_one("csi-v-1", std::slice::from_ref(&row));
    refused(publish_rw(&host.ctx, NODE2).await, Kind::FailedPrecondition);
    host.expect_lvs_one("csi-v-1", &[row]);
    host.expect_retag(
        "csi-v-1",
        &[&format!("carve.pub=rw.chap:{NODE1}")],
        &["carve.used", &format!("carve.pub=rw:{NODE1}")],
    );
    publish_rw(&host.ctx, NODE1).await.unwrap();
    assert_eq!(host.acls("csi-v-1"), [NODE1]);
    host.finish();
}

/// spec.md ControllerPublishVolume Errors, "Max volumes attached": one more than the limit is
/// RESOURCE_EXHAUSTED; what the node already holds is still OK; another node has its own room.
#[tokio::test]
async fn one_more_than_the_attach_limit_is_resource_exhausted() {
    let host = FakeHost::new();
    let ctx = host.ctx.clone().with_attach_limit(2);
    let cap = mount("ext4", Mode::SingleNodeWriter);
    let none = HashMap::new();
    let a = linear_row("csi-a-1", &carve_tags("a"));
    let b = linear_row("csi-b-1", &carve_tags("b"));
    let v = linear_row("csi-v-1", &carve_tags("v"));
    for row in [&a, &b, &v] {
        host.export(row).await;
    }
    host.add_acl("csi-a-1", NODE1).await;
    host.add_acl("csi-b-1", NODE1).await;
    host.expect_lvs_one("csi-v-1", std::slice::from_ref(&v));
    refused(publish_rw(&ctx, NODE1).await, Kind::ResourceExhausted);
    assert!(host.acls("csi-v-1").is_empty(), "nothing granted");
    // A request wrong in itself (raw block on a filesystem volume) is refused for that, not as
    // a full node: detaching a volume would not make it succeed.
    let block = VolumeCapability {
        access_type: Some(volume_capability::AccessType::Block(Default::default())),
        access_mode: Some(volume_capability::AccessMode {
            mode: Mode::SingleNodeWriter as i32,
        }),
    };
    host.expect_lvs_one("csi-v-1", std::slice::from_ref(&v));
    refused(
        publish(&ctx, req(NODE1, &block, false, &none)).await,
        Kind::InvalidArgument,
    );

    // A linear LV is marked used in the same command, before its first ACL.
    expect_first_publication(&host, v, &format!("rw:{NODE2}"));
    publish_rw(&ctx, NODE2).await.expect("node2 has room");

    let mut at_limit = carve_tags("v");
    at_limit.push(format!("carve.pub=rw:{NODE2}"));
    at_limit.push("carve.used".into());
    let v2 = linear_row("csi-v-1", &at_limit);
    let ctx1 = host.ctx.clone().with_attach_limit(1);
    host.add_acl("csi-a-1", NODE2).await; // node2 is now past a limit of 1
    host.expect_lvs_one("csi-v-1", &[v2]);
    publish_rw(&ctx1, NODE2)
        .await
        .expect("a repeat past the limit is still OK: the node already holds the volume");

    // A publication tag without its ACL (an interrupted publish) holds no room yet: granting
    // it would take node2 past the limit.
    let mut tagged = carve_tags("w");
    tagged.push(format!("carve.pub=rw:{NODE2}"));
    tagged.push("carve.used".into());
    let w = host.export_linear("csi-w-1", &tagged).await;
    host.expect_lvs_one("csi-w-1", &[w]);
    refused(
        publish(
            &ctx1,
            Publish {
                volume_id: "csi-w-1",
                ..req(NODE2, &cap, false, &none)
            },
        )
        .await,
        Kind::ResourceExhausted,
    );
    assert!(host.acls("csi-w-1").is_empty(), "nothing granted");
    host.finish();
}

#[tokio::test]
async fn blank_only_for_thin_volumes_with_no_mapped_data_and_no_source() {
    let host = FakeHost::new();
    let mut row = lv_row("csi-v-1", 8 << 20, Some("pool"), &carve_tags("v"));
    host.export(&row).await;
    for (percent, want) in [(Some(0.0), true), (Some(0.01), false), (None, false)] {
        row.data_percent = percent;
        host.expect_lvs_one("csi-v-1", std::slice::from_ref(&row));
        if percent.is_none() {
            // No data count: read from LVM again before deciding (the ledger's case).
            host.expect_lvs_one("csi-v-1", std::slice::from_ref(&row));
        }
        host.expect_retag("csi-v-1", &[], &[&format!("carve.pub=rw:{NODE1}")]);
        let got = publish_rw(&host.ctx, NODE1).await.unwrap();
        assert_eq!(got.blank, want, "data_percent {percent:?}");
        assert_eq!(got.to_context()["blank"], want.to_string());
    }
    let mut vol = volume::Volume::from_row(row).unwrap().unwrap();
    vol.lv.data_percent = Some(0.0);
    vol.record.content_source = "snapshot:s".into();
    assert!(!provably_blank(&vol), "a clone holds its source's data");
    vol.record.content_source.clear();
    vol.lv.pool = None;
    assert!(provably_blank(&vol));
    vol.record.used = true;
    assert!(!provably_blank(&vol), "a linear volume published before");
    host.finish();
}

#[tokio::test]
async fn a_capability_unlike_the_recorded_one_is_refused_with_the_spec_code() {
    let host = FakeHost::new();
    let record = crate::lvm::tags::VolumeRecord {
        name: "v".into(),
        required_bytes: 1,
        capabilities: "block/SINGLE_NODE_WRITER".into(),
        ..Default::default()
    };
    let row = linear_row("csi-v-1", &record.creation_tags());
    host.export(&row).await;
    let as_mount = mount("ext4", Mode::SingleNodeWriter);
    let none = HashMap::new();
    // Not published yet: an unsupported capability for this volume.
    host.expect_lvs_one("csi-v-1", std::slice::from_ref(&row));
    let err = refused(
        publish(&host.ctx, req(NODE1, &as_mount, false, &none)).await,
        Kind::InvalidArgument,
    );
    assert!(err.message().contains("block/SINGLE_NODE_WRITER"), "{err}");
    assert!(host.acls("csi-v-1").is_empty(), "nothing granted");
    // Published to that node already: incompatible with the publication.
    let mut tags = record.creation_tags();
    tags.push(format!("carve.pub=rw:{NODE1}"));
    let published = linear_row("csi-v-1", &tags);
    host.add_acl("csi-v-1", NODE1).await;
    host.expect_lvs_one("csi-v-1", &[published]);
    refused(
        publish(&host.ctx, req(NODE1, &as_mount, false, &none)).await,
        Kind::AlreadyExists,
    );
    host.finish();
}

#[tokio::test]
async fn a_first_publish_whose_grant_fails_takes_its_records_back_and_the_retry_is_blank() {
    let host = FakeHost::new();
    let row = host.export_linear("csi-v-1", &carve_tags("v")).await;
    let obstacle = host.fail_grants("csi-v-1");
    expect_first_publication(&host, row.clone(), &format!("rw:{NODE1}"));
    // Taken back once the ACL is gone: the used marker and the publication.
    host.expect_retag(
        "csi-v-1",
        &["carve.used", &format!("carve.pub=rw:{NODE1}")],
        &[],
    );
    publish_rw(&host.ctx, NODE1).await.unwrap_err();
    assert!(host.acls("csi-v-1").is_empty(), "no ACL left");
    // The retry, the obstacle gone: a first publication again, so still blank.
    std::fs::remove_dir(&obstacle).unwrap();
    expect_first_publication(&host, row, &format!("rw:{NODE1}"));
    let again = publish_rw(&host.ctx, NODE1).await.unwrap();
    assert!(
        again.blank,
        "no node could have written: the new volume is still blank"
    );
    assert_eq!(host.acls("csi-v-1"), [NODE1]);
    host.finish();
}
