//! The agent over a real mutual-TLS connection on loopback, driving csi-controller's fake
//! storage host (scripted LVM, configfs LIO in a tempdir): a volume's whole life with every
//! retry idempotent, the codes of bad ids and names, and State.

mod support;

use carve_agent::proto::{
    self, Capability, CapacityRange, CreateVolumeRequest, DeleteVolumeRequest, PublishRequest,
    UnpublishRequest,
    agent_client::AgentClient,
    capability::{AccessMode, AccessType},
};
use csi_controller::ops::testing::{FakeHost, NODE1, NODE2, VG};
use std::collections::HashMap;
use support::{Connected, Script, connected};
use tonic::{Code, transport::Channel};

const MIB: u64 = 1 << 20;

fn ext4_writer() -> Capability {
    Capability {
        access_type: AccessType::Mount as i32,
        fs_type: "ext4".into(),
        access_mode: AccessMode::SingleNodeWriter as i32,
    }
}

fn create_request(name: &str) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(CapacityRange {
            required_bytes: (5 * MIB).cast_signed(),
            limit_bytes: 0,
        }),
        capabilities: vec![ext4_writer()],
        ..Default::default()
    }
}

fn publish_request(volume_id: &str, node_id: &str) -> PublishRequest {
    PublishRequest {
        volume_id: volume_id.into(),
        node_id: node_id.into(),
        capability: Some(ext4_writer()),
        ..Default::default()
    }
}

/// A fake storage host, and a client of an agent serving it (which stops when the third value
/// is dropped).
async fn serving_fake_host() -> (FakeHost, AgentClient<Channel>, Connected) {
    let host = FakeHost::new();
    let served = connected(&host).await;
    (host, served.agent.clone(), served)
}

/// The publish context Publish answers for `volume_id` on `node_id`.
async fn publish_context(
    agent: &mut AgentClient<Channel>,
    volume_id: &str,
    node_id: &str,
) -> HashMap<String, String> {
    let request = publish_request(volume_id, node_id);
    let answer = agent.publish(request).await.unwrap();
    answer.into_inner().publish_context
}

/// The code of a refused call (panics on an answer).
fn code<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match result {
        Ok(response) => panic!("answered {response:?}"),
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn create_publish_unpublish_delete_each_twice() {
    let (host, mut agent, _served) = serving_fake_host().await;
    let script = Script::new("pvc-1");

    // CreateVolume: one report, one lvcreate, an export; the retry finds it in the report.
    script.expect_create(&host);
    let first = agent
        .create_volume(create_request("pvc-1"))
        .await
        .unwrap()
        .into_inner();
    assert!(first.created);
    let volume = first.volume.unwrap();
    let id = volume.volume_id.as_str();
    assert_eq!(id, script.lv.as_str());
    assert_eq!(volume.capacity_bytes, 8 * MIB);
    assert_eq!(volume.volume_context["targetIqn"], host.target(id).as_str());
    assert_eq!(volume.content_source, None);
    host.expect_survey(10 << 30, 4 * MIB, &[script.row(&[])]);
    let again = agent
        .create_volume(create_request("pvc-1"))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created, "the retry answers the existing volume");
    assert_eq!(again.volume.as_ref(), Some(&volume));

    // Publish: the publication tag, then NODE1's ACL; the retry changes nothing.
    script.expect_publish(&host);
    let context = publish_context(&mut agent, id, NODE1).await;
    assert_eq!(context["targetIqn"], volume.volume_context["targetIqn"]);
    assert_eq!(
        (context["readonly"].as_str(), context["blank"].as_str()),
        ("false", "true")
    );
    assert_eq!(host.acls(id), [NODE1]);
    host.expect_lvs_one(id, &[script.published()]);
    let repeat = publish_context(&mut agent, id, NODE1).await;
    assert_eq!(repeat["targetIqn"], context["targetIqn"]);
    assert_eq!(
        repeat["blank"], "false",
        "published before: it may hold data"
    );
    assert_eq!(host.acls(id), [NODE1]);

    // Another node while NODE1 holds it: refused, naming NODE1.
    host.expect_lvs_one(id, &[script.published()]);
    let busy = agent.publish(publish_request(id, NODE2)).await.unwrap_err();
    assert_eq!(busy.code(), Code::FailedPrecondition, "{busy:?}");
    assert!(busy.message().contains(NODE1), "{busy:?}");

    // Unpublish: the tag, then the ACL; the retry has nothing left to revoke.
    script.expect_unpublish(&host);
    let unpublish = UnpublishRequest {
        volume_id: id.into(),
        node_id: NODE1.into(),
    };
    let revoked = agent.unpublish(unpublish.clone()).await.unwrap();
    assert!(revoked.into_inner().revoked);
    assert!(host.acls(id).is_empty());
    host.expect_lvs_one(id, &[script.unpublished()]);
    let revoked = agent.unpublish(unpublish).await.unwrap();
    assert!(!revoked.into_inner().revoked);

    // DeleteVolume: export gone, the linear LV renamed into quarantine; the retry finds nothing.
    script.expect_delete(&host);
    let delete = DeleteVolumeRequest {
        volume_id: id.into(),
    };
    let deleted = agent.delete_volume(delete.clone()).await.unwrap();
    assert!(deleted.into_inner().deleted);
    assert!(host.configfs_is_empty(), "{:?}", host.configfs_tree());
    host.expect_lvs_one(id, &[]);
    let deleted = agent.delete_volume(delete).await.unwrap();
    assert!(!deleted.into_inner().deleted);
    host.finish();
}

#[tokio::test]
async fn bad_ids_and_names_answer_not_found_or_invalid_argument() {
    let (host, mut agent, _served) = serving_fake_host().await;

    // Names: required, at most 128 bytes. Both refused before any LVM command.
    let no_caps = CreateVolumeRequest {
        capabilities: Vec::new(),
        ..create_request("pvc-2")
    };
    let long = "x".repeat(129);
    for request in [create_request(""), create_request(&long), no_caps] {
        let refused = code(agent.create_volume(request.clone()).await);
        assert_eq!(refused, Code::InvalidArgument, "{request:?}");
    }

    // Ids: empty is INVALID_ARGUMENT; one Carve never issued, or a node that is no IQN,
    // NOT_FOUND without asking LVM; a well-formed volume LVM does not have, NOT_FOUND.
    for (volume_id, node_id, expected) in [
        ("", NODE1, Code::InvalidArgument),
        (NODE1, NODE1, Code::NotFound),
        ("csi-v-1", "worker-1", Code::NotFound),
    ] {
        let refused = code(agent.publish(publish_request(volume_id, node_id)).await);
        assert_eq!(refused, expected, "{volume_id:?} on {node_id:?}");
    }
    host.expect_lvs_one("csi-nope-1", &[]);
    let unknown = agent.publish(publish_request("csi-nope-1", NODE1)).await;
    assert_eq!(code(unknown), Code::NotFound);
    let no_volume = agent.delete_volume(DeleteVolumeRequest::default()).await;
    assert_eq!(code(no_volume), Code::InvalidArgument);
    let snapshot = proto::DeleteSnapshotRequest::default();
    let no_snapshot = agent.delete_snapshot(snapshot).await;
    assert_eq!(code(no_snapshot), Code::InvalidArgument);
    let get = proto::GetVolumeRequest {
        volume_id: "not-a-volume".into(),
    };
    assert_eq!(code(agent.get_volume(get).await), Code::NotFound);
    host.finish();
}

#[tokio::test]
async fn state_reports_readiness_and_the_volume_groups_counters() {
    let (host, mut agent, _served) = serving_fake_host().await;
    host.expect_vgs(3 << 30, 4 * MIB);
    let state = agent
        .state(proto::StateRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(state.ready, "{state:?}");
    assert_eq!(state.not_ready, "");
    assert_eq!(state.volume_group, VG);
    assert_eq!(state.thin_pool, "pool");
    assert_eq!(state.vg_free_bytes, 3 << 30);
    assert_eq!(state.extent_size_bytes, 4 * MIB);
    assert_eq!(state.portals, ["127.0.0.1:3260"]);
    host.finish();
}

#[tokio::test]
async fn chap_secrets_reach_the_acl_and_no_answer() {
    let (host, mut agent, _served) = serving_fake_host().await;
    let tags = csi_controller::lvm::testing::carve_tags("v");
    let row = host.export_linear("csi-v-1", &tags).await;
    host.expect_lvs_one("csi-v-1", &[row]);
    host.expect_retag(
        "csi-v-1",
        &[],
        &["carve.used", &format!("carve.pub=rw.chap:{NODE1}")],
    );
    let secret = "s3cr3t-SENTINEL";
    let request = PublishRequest {
        chap: Some(proto::Chap {
            secrets: HashMap::from([
                ("chapUsername".to_string(), "node1".to_string()),
                ("chapPassword".to_string(), secret.to_string()),
            ]),
        }),
        ..publish_request("csi-v-1", NODE1)
    };
    assert!(!format!("{request:?}").contains(secret));
    let context = agent
        .publish(request)
        .await
        .unwrap()
        .into_inner()
        .publish_context;
    assert!(!context.values().any(|v| v.contains(secret)), "{context:?}");
    assert_eq!(host.acls("csi-v-1"), [NODE1]);
    host.finish();
}
