//! csi-controller's client side ([`AgentBackend`]) against the real agent service on loopback
//! with mutual TLS: each call answers what the local operation answers on an identical host
//! (results and errors alike), and an agent that cannot be reached is `Unavailable`.

mod support;

use csi_common::{Error, Kind, Result, mtls::MtlsFiles};
use csi_controller::{
    agent::{AgentBackend, Made},
    ops::{
        self,
        create_volume::{CreateVolume, Created},
        publish::Publish,
        testing::{FakeHost, NODE1},
    },
};
use csi_proto::v1::{
    CapacityRange, VolumeCapability,
    volume_capability::{AccessMode, AccessType, MountVolume, access_mode::Mode},
};
use std::collections::HashMap;
use support::{AGENT_NAME, Ca, Connected, Script, connected, serve, service};

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

/// A backend connected to an agent over `remote` (served while the second value lives).
async fn backend(remote: &FakeHost) -> (AgentBackend, Connected) {
    let connected = connected(remote).await;
    (client_of(&connected.address, &connected.files), connected)
}

/// Both hosts get the same script, so the local and the remote call see the same LVM.
fn both(hosts: [&FakeHost; 2], script: impl Fn(&FakeHost)) {
    for host in hosts {
        script(host);
    }
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
    let (local, remote) = (FakeHost::new(), FakeHost::new());
    let (agent, _served) = backend(&remote).await;
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
    let script = Script::new("pvc-1");
    let id = script.lv.as_str();
    both(hosts, |h| script.expect_create(h));
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

    let none = HashMap::new();
    let publish = Publish {
        volume_id: id,
        node_id: NODE1,
        capability: Some(&caps[0]),
        readonly: false,
        secrets: &none,
    };
    both(hosts, |h| script.expect_publish(h));
    let granted = ops::publish::publish(&local.ctx, publish).await.unwrap();
    assert_eq!(agent.publish(publish).await.unwrap(), granted);
    assert!(granted.blank);

    both(hosts, |h| script.expect_unpublish(h));
    let revoked = ops::unpublish::unpublish(&local.ctx, id, NODE1)
        .await
        .unwrap();
    assert_eq!(agent.unpublish(id, NODE1).await.unwrap(), revoked);
    assert!(revoked);

    both(hosts, |h| {
        script.expect_delete(h);
        h.expect_lvs_one(id, &[]);
    });
    for _ in 0..2 {
        let deleted = ops::delete_volume::delete_volume(&local.ctx, id)
            .await
            .unwrap();
        assert_eq!(agent.delete_volume(id).await.unwrap(), deleted);
    }
    assert!(remote.configfs_is_empty(), "{:?}", remote.configfs_tree());
    local.finish();
    remote.finish();
}

#[tokio::test]
async fn refusals_carry_the_local_kind_and_message() {
    let (local, remote) = (FakeHost::new(), FakeHost::new());
    let (agent, _served) = backend(&remote).await;
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
    AgentBackend::connect_lazy("test", address, AGENT_NAME, &files.load().unwrap()).unwrap()
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
