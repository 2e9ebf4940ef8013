//! csi-controller's client side ([`AgentBackend`]) against the real agent service on loopback
//! with mutual TLS: each call answers what the local operation answers on an identical host
//! (results and errors alike), and an agent that cannot be reached is `Unavailable`.

mod support;

use csi_common::{Error, Kind, Result, command::Expectation, ids::LvName, mtls::MtlsFiles};
use csi_controller::{
    agent::{AgentBackend, Made},
    lvm::{Allocation, LvRow, argv, quarantine, tags::VolumeRecord},
    ops::{
        self,
        create_volume::{CreateVolume, Created},
        publish::Publish,
        testing::{FakeHost, NODE1, VG},
    },
};
use csi_proto::v1::{
    CapacityRange, VolumeCapability,
    volume_capability::{AccessMode, AccessType, MountVolume, access_mode::Mode},
};
use std::{collections::HashMap, time::Duration};
use support::{AGENT_NAME, Ca, serve, service};

const MIB: u64 = 1 << 20;

fn mount(mode: Mode) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: "ext4".into(),
            ..Default::default()
        })),
        access_mode: Some(AccessMode { mode: mode as i32 }),
    }
}

/// A backend connected to an agent over `remote`, presenting a certificate `ca` signed.
async fn backend(remote: &FakeHost, ca: &Ca, dir: &std::path::Path) -> (AgentBackend, impl Drop) {
    let (address, stop) = serve(service(&remote.ctx), ca, dir).await;
    let files = ca.files(&dir.join("controller"), &["controller"], ca);
    let backend = AgentBackend::connect_lazy(&address, AGENT_NAME, &files.load().unwrap()).unwrap();
    (backend, Stop(Some(stop)))
}

/// Stops a served agent when dropped.
struct Stop(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for Stop {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            let _ = stop.send(());
        }
    }
}

/// Both hosts get the same script, so the local and the remote call see the same LVM.
fn both(hosts: [&FakeHost; 2], script: impl Fn(&FakeHost)) {
    for host in hosts {
        script(host);
    }
}

fn lvrename(lv: &LvName) -> Expectation {
    let cmd = argv::lvrename(VG, lv, &quarantine::name_for(lv, 0), Duration::from_secs(5));
    Expectation::new(
        std::iter::once(cmd.program().to_string())
            .chain(cmd.arg_values().map(str::to_string))
            .collect::<Vec<_>>(),
    )
}

fn same_error<L: std::fmt::Debug, R: std::fmt::Debug>(
    local: Result<L>,
    remote: Result<R>,
) -> Error {
    let (local, remote) = (local.unwrap_err(), remote.unwrap_err());
    assert_eq!(remote, local, "the remote call fails as the local one");
    remote
}

#[tokio::test]
async fn every_step_answers_what_the_local_operation_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (local, remote) = (FakeHost::new(), FakeHost::new());
    let ca = Ca::new("carve link CA");
    let (agent, _stop) = backend(&remote, &ca, dir.path()).await;
    let hosts = [&local, &remote];

    let caps = [mount(Mode::SingleNodeWriter)];
    let range = CapacityRange {
        required_bytes: (5 * MIB).cast_signed(),
        limit_bytes: 0,
    };
    let params = HashMap::new();
    let create = CreateVolume {
        name: "pvc-1",
        capacity: Some(&range),
        capabilities: &caps,
        parameters: &params,
        requisite: &[],
    };
    let lv = LvName::for_volume("pvc-1");
    let tags = VolumeRecord {
        name: "pvc-1".into(),
        required_bytes: 5 * MIB,
        capabilities: "mount/ext4/SINGLE_NODE_WRITER".into(),
        ..Default::default()
    }
    .creation_tags();
    both(hosts, |h| {
        h.expect_survey(10 << 30, 4 * MIB, &[]);
        h.expect_lvcreate(&lv, 8 * MIB, &Allocation::Linear, &tags);
    });
    let Created::Created(expected) = ops::create_volume::create_volume(&local.ctx, create)
        .await
        .unwrap()
    else {
        panic!("not created")
    };
    let Made::Created(volume) = agent.create_volume(create, None).await.unwrap() else {
        panic!("not created")
    };
    assert_eq!(volume.id, expected.id.as_str());
    assert_eq!(volume.capacity, expected.lv.size);
    assert_eq!(volume.volume_context, expected.volume_context(&local.ctx));
    assert_eq!(volume.content_source, None);

    let row = LvRow::fresh(lv.as_str(), 8 * MIB, None, tags.clone());
    let none = HashMap::new();
    let publish = Publish {
        volume_id: lv.as_str(),
        node_id: NODE1,
        capability: Some(&caps[0]),
        readonly: false,
        secrets: &none,
    };
    let publication = format!("carve.pub=rw:{NODE1}");
    both(hosts, |h| {
        h.expect_lvs_one(lv.as_str(), std::slice::from_ref(&row));
        h.expect_retag(lv.as_str(), &[], &["carve.used", &publication]);
    });
    let granted = ops::publish::publish(&local.ctx, publish).await.unwrap();
    assert_eq!(agent.publish(publish).await.unwrap(), granted);
    assert!(granted.blank);

    let mut published_tags = tags.clone();
    published_tags.extend(["carve.used".to_string(), publication.clone()]);
    let published = LvRow::fresh(lv.as_str(), 8 * MIB, None, published_tags);
    both(hosts, |h| {
        h.expect_lvs_one(lv.as_str(), std::slice::from_ref(&published));
        h.expect_tag(lv.as_str(), &publication, false);
    });
    let revoked = ops::unpublish::unpublish(&local.ctx, lv.as_str(), NODE1)
        .await
        .unwrap();
    assert_eq!(agent.unpublish(lv.as_str(), NODE1).await.unwrap(), revoked);
    assert!(revoked);

    let mut unpublished_tags = tags.clone();
    unpublished_tags.push("carve.used".into());
    let unpublished = LvRow::fresh(lv.as_str(), 8 * MIB, None, unpublished_tags);
    both(hosts, |h| {
        h.expect_lvs_one(lv.as_str(), std::slice::from_ref(&unpublished));
        h.expect_lvs(std::slice::from_ref(&unpublished));
        h.expect(lvrename(&lv));
        h.expect_lvs_one(lv.as_str(), &[]);
    });
    for _ in 0..2 {
        let deleted = ops::delete_volume::delete_volume(&local.ctx, lv.as_str())
            .await
            .unwrap();
        assert_eq!(agent.delete_volume(lv.as_str()).await.unwrap(), deleted);
    }
    assert!(remote.configfs_is_empty(), "{:?}", remote.configfs_tree());
    local.finish();
    remote.finish();
}

#[tokio::test]
async fn refusals_carry_the_local_kind_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let (local, remote) = (FakeHost::new(), FakeHost::new());
    let ca = Ca::new("carve link CA");
    let (agent, _stop) = backend(&remote, &ca, dir.path()).await;
    let none = HashMap::new();
    let writer = mount(Mode::SingleNodeWriter);
    let multi = mount(Mode::MultiNodeMultiWriter);
    for (volume_id, node_id, cap, kind) in [
        ("", NODE1, &writer, Kind::InvalidArgument),
        ("csi-v-1", "worker-1", &writer, Kind::NotFound),
        ("not-a-volume", NODE1, &writer, Kind::NotFound),
        ("csi-v-1", NODE1, &multi, Kind::InvalidArgument),
    ] {
        let publish = Publish {
            volume_id,
            node_id,
            capability: Some(cap),
            readonly: false,
            secrets: &none,
        };
        let error = same_error(
            ops::publish::publish(&local.ctx, publish).await,
            agent.publish(publish).await,
        );
        assert_eq!(error.kind(), kind, "{volume_id} {node_id}: {error}");
    }
    let create = CreateVolume {
        name: "",
        capacity: None,
        capabilities: std::slice::from_ref(&writer),
        parameters: &none,
        requisite: &[],
    };
    let error = same_error(
        ops::create_volume::create_volume(&local.ctx, create).await,
        agent.create_volume(create, None).await,
    );
    assert_eq!(error.kind(), Kind::InvalidArgument);
    let error = same_error(
        ops::delete_volume::delete_volume(&local.ctx, "").await,
        agent.delete_volume("").await,
    );
    assert_eq!(error.kind(), Kind::InvalidArgument);
    local.finish();
    remote.finish();
}

/// A client of `address` presenting `files`' certificate (for a server named [`AGENT_NAME`]).
fn client_of(address: &str, files: &MtlsFiles) -> AgentBackend {
    AgentBackend::connect_lazy(address, AGENT_NAME, &files.load().unwrap()).unwrap()
}

#[tokio::test]
async fn an_agent_that_cannot_be_reached_or_trusted_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("carve link CA");
    let files = ca.files(&dir.path().join("controller"), &["controller"], &ca);

    // Nothing listens there any more.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap().to_string();
    drop(closed);
    let error = client_of(&address, &files).state().await.unwrap_err();
    assert_eq!(error.kind(), Kind::Unavailable, "{error}");
    assert!(
        error.message().contains(&address),
        "names the agent: {error}"
    );

    // An agent whose certificate another CA signed: the handshake fails, nothing is asked.
    let host = FakeHost::new();
    let foreign = Ca::new("someone else");
    let (impostor, _stop) = serve(service(&host.ctx), &foreign, dir.path()).await;
    let error = client_of(&impostor, &files)
        .delete_volume("csi-v-1")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), Kind::Unavailable, "{error}");
    host.finish();
}
