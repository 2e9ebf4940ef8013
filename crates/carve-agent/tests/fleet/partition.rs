//! A storage host that stops answering after its TLS session is up (a network partition, a
//! frozen host): the controller's HTTP/2 keepalive (agent::KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT)
//! ends a call to it UNAVAILABLE within interval + timeout, releasing the volume's guard; a
//! slow command on a live agent, which keeps answering PINGs, outlasts that bound and succeeds.

use super::{fleet_proxied, lv};
use csi_common::{command::Expectation, ids::LvName};
use csi_controller::{
    agent::{KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT},
    lvm::argv,
    ops::testing::VG,
};
use csi_proto::v1::{
    ControllerGetVolumeRequest, DeleteVolumeRequest, controller_server::Controller,
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp},
};
use tonic::{Code, Request};

/// A TCP proxy on loopback to one agent, forwarding both ways until [`Proxy::cut`]: from then
/// on every byte either way is dropped and no connection closes, as across a partition.
#[derive(Debug)]
pub struct Proxy {
    /// The address to dial instead of the agent's.
    pub address: String,
    cut: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy to `upstream` (`host:port`).
    pub async fn to(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let cut = Arc::clone(&cut);
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    let Ok(outbound) = TcpStream::connect(&upstream).await else {
                        continue;
                    };
                    let (from_client, to_client) = inbound.into_split();
                    let (from_agent, to_agent) = outbound.into_split();
                    tokio::spawn(pipe(from_client, to_agent, Arc::clone(&cut)));
                    tokio::spawn(pipe(from_agent, to_client, Arc::clone(&cut)));
                }
            }
        });
        Self { address, cut, task }
    }

    /// Stops forwarding, both ways, on every connection, present and future.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` until `cut`; then drops what arrives and never closes `to`.
async fn pipe(mut from: tcp::OwnedReadHalf, mut to: tcp::OwnedWriteHalf, cut: Arc<AtomicBool>) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await.unwrap_or(0);
        if cut.load(Ordering::SeqCst) {
            if n == 0 {
                std::future::pending::<()>().await;
            }
            continue;
        }
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The longest a call to a peer that stopped answering may run: the keepalive's bound, and
/// scheduling slack.
fn bound() -> Duration {
    KEEPALIVE_INTERVAL + KEEPALIVE_TIMEOUT + Duration::from_secs(3)
}

fn delete(id: &str) -> Request<DeleteVolumeRequest> {
    Request::new(DeleteVolumeRequest {
        volume_id: id.into(),
        ..Default::default()
    })
}

#[tokio::test]
async fn a_peer_that_stops_answering_fails_the_call_unavailable_within_the_keepalive_bound() {
    let f = fleet_proxied(&[("a", "", false)]).await;
    let id = format!("a:{VG}:{}", lv("v"));
    f.host("a").expect_lvs_one(&lv("v"), &[]);
    let req = ControllerGetVolumeRequest {
        volume_id: id.clone(),
    };
    let code = f.svc.controller_get_volume(Request::new(req)).await;
    assert_eq!(
        code.unwrap_err().code(),
        Code::NotFound,
        "the session is up"
    );

    f.proxy("a").cut();
    let start = Instant::now();
    let answer = tokio::time::timeout(bound(), f.svc.delete_volume(delete(&id)))
        .await
        .unwrap_or_else(|_| panic!("still waiting on a silent peer after {:?}", bound()));
    let status = answer.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("agent"), "{status:?}");
    assert!(
        start.elapsed() >= KEEPALIVE_TIMEOUT,
        "{:?}",
        start.elapsed()
    );

    // The guard went with the call: a retry is not ABORTED (it cannot reach the agent either).
    let retry = tokio::time::timeout(bound(), f.svc.delete_volume(delete(&id)))
        .await
        .expect("the retry ends");
    assert_eq!(retry.unwrap_err().code(), Code::Unavailable);
    f.finish();
}

#[tokio::test]
async fn a_slow_command_on_a_live_agent_outlasts_the_keepalive_bound() {
    let f = fleet_proxied(&[("a", "", false)]).await;
    let slow = KEEPALIVE_INTERVAL + KEEPALIVE_TIMEOUT + Duration::from_secs(2);
    let local = LvName::for_volume("v");
    let missing = include_str!("../../../../tests/fixtures/controller/lvs-one-missing.stderr");
    f.host("a").expect(
        Expectation::of(&argv::lvs_one(VG, &local, Duration::from_secs(5)))
            .fails(5, missing.replace("csi-nope", local.as_str()))
            .delay(slow),
    );
    let start = Instant::now();
    let id = format!("a:{VG}:{local}");
    f.svc
        .delete_volume(delete(&id))
        .await
        .expect("a live agent's slow answer");
    assert!(start.elapsed() >= slow, "{:?}", start.elapsed());
    f.finish();
}
