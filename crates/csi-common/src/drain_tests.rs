//! Shutdown through [`crate::serve::serve`] (unix socket) and [`crate::serve::serve_mtls`]: a
//! client that holds its connection open and never answers does not keep the server up; a call
//! in flight is answered first.

use crate::{
    command::BoxFuture,
    drain::LINGER,
    endpoint::Endpoint,
    identity::{IdentityService, Readiness},
    serve::{serve, serve_mtls},
    testing::tls::Ca,
};
use csi_proto::v1::{
    GetPluginInfoRequest, ProbeRequest, identity_client::IdentityClient,
    identity_server::IdentityServer,
};
use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

/// Long enough for any healthy shutdown here; a server still waiting on the idle connection
/// after it has not drained (the failure this file is about waits until SIGKILL).
const SHUTDOWN_WITHIN: Duration = Duration::from_secs(20);

/// Ready after `delay`, telling `started` (once) that a Probe has begun and setting `finished`
/// when one has ended.
#[derive(Debug)]
struct SlowReady {
    delay: Duration,
    started: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    finished: Arc<AtomicBool>,
}

impl Readiness for SlowReady {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if let Some(tx) = self.started.lock().unwrap().take() {
                let _ = tx.send(());
            }
            tokio::time::sleep(self.delay).await;
            self.finished.store(true, Ordering::SeqCst);
            Ok(())
        })
    }
}

/// Serves an Identity service on `socket` until `stop` is sent or dropped.
fn spawn_server(socket: PathBuf, readiness: SlowReady) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let identity = IdentityService::new("carve.test", "0", Vec::new(), Arc::new(readiness));
    let routes = tonic::service::Routes::new(IdentityServer::new(identity));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        serve(
            &Endpoint::Unix(socket),
            routes,
            Duration::from_secs(5),
            async {
                let _ = stopped.await;
            },
        )
        .await
        .unwrap();
    });
    (stop, server)
}

async fn channel(socket: PathBuf) -> Channel {
    for _ in 0..200 {
        let path = socket.clone();
        let channel = tonic::transport::Endpoint::from_static("http://[::]:50051")
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await;
        if let Ok(channel) = channel {
            return channel;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("server at {} never answered", socket.display());
}

fn quick() -> SlowReady {
    SlowReady {
        delay: Duration::ZERO,
        started: std::sync::Mutex::new(None),
        finished: Arc::default(),
    }
}

/// Makes one call through the channel `connect` opens, on a runtime of its own that is never
/// polled again, as a stopped or stuck peer: its connection stays open and never answers GOAWAY
/// or PING. Then asks the server to stop (`stop`) and checks that it ends (`server`).
async fn a_silent_peer_does_not_hold(
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
    connect: impl FnOnce() -> BoxFuture<'static, Channel> + Send + 'static,
) {
    let (called, was_called) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = runtime.block_on(async {
            let mut client = IdentityClient::new(connect().await);
            client
                .get_plugin_info(GetPluginInfoRequest {})
                .await
                .unwrap();
            client
        });
        called.send(()).unwrap();
        let _ = released.recv();
        drop(client);
    });
    tokio::task::spawn_blocking(move || was_called.recv().unwrap())
        .await
        .unwrap();
    stop.send(()).unwrap();
    let ended = tokio::time::timeout(SHUTDOWN_WITHIN, server).await;
    release.send(()).unwrap();
    peer.join().unwrap();
    ended
        .expect("serve returned although a connection is still open")
        .unwrap();
}

#[tokio::test]
async fn a_client_that_never_answers_does_not_hold_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("csi.sock");
    let (stop, server) = spawn_server(socket.clone(), quick());
    a_silent_peer_does_not_hold(stop, server, move || {
        Box::pin(async move { channel(socket).await })
    })
    .await;
    assert!(
        !dir.path().join("csi.sock").exists(),
        "the socket is removed"
    );
}

#[tokio::test]
async fn a_client_that_never_answers_does_not_hold_mtls_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("carve link CA");
    let server_files = ca.files(&dir.path().join("agent"), &["localhost"], &ca);
    let client_files = ca.files(&dir.path().join("controller"), &["controller"], &ca);
    let mtls = server_files.load().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let identity = IdentityService::new("carve.test", "0", Vec::new(), Arc::new(quick()));
    let routes = tonic::service::Routes::new(IdentityServer::new(identity));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        serve_mtls(listener, routes, Duration::from_secs(5), &mtls, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    a_silent_peer_does_not_hold(stop, server, move || {
        Box::pin(async move {
            let mtls = client_files.load().unwrap();
            crate::mtls::connect(&format!("localhost:{port}"), "localhost", &mtls)
                .await
                .unwrap()
        })
    })
    .await;
}

#[tokio::test]
async fn a_call_in_flight_is_answered_before_shutdown_ends() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("csi.sock");
    let (started, has_started) = oneshot::channel();
    let finished = Arc::new(AtomicBool::new(false));
    // Longer than the linger, so that a drain that did not wait for the call would end first.
    let readiness = SlowReady {
        delay: LINGER * 4,
        started: std::sync::Mutex::new(Some(started)),
        finished: finished.clone(),
    };
    let (stop, server) = spawn_server(socket.clone(), readiness);
    let mut client = IdentityClient::new(channel(socket).await);
    let call = tokio::spawn(async move { client.probe(ProbeRequest {}).await });
    has_started.await.unwrap();
    stop.send(()).unwrap();
    tokio::time::timeout(SHUTDOWN_WITHIN, server)
        .await
        .expect("serve returned after the call")
        .unwrap();
    assert!(
        finished.load(Ordering::SeqCst),
        "serve returned while a call was in flight"
    );
    let answer = call.await.unwrap().expect("the call in flight is answered");
    assert_eq!(answer.into_inner().ready, Some(true));
}
