//! [`Initiator`] on open-iscsi: `iscsiadm` argv builders and the exit codes that matter, node
//! record auth written by [`super::record`], sessions read by [`super::sysfs`].
//!
//! Exit codes (open-iscsi 2.1.8, captured in tests/fixtures/node/iscsiadm-*.txt): 15 session
//! exists, 20 cannot reach iscsid, 21 no records / no sessions, 24 login authorization failure;
//! 6 (ISCSI_ERR_IDBM, iscsi_err.h) a node-database failure.
//!
//! Concurrency: every `iscsiadm -m node -T … -p …` walks the whole node database
//! (`/etc/iscsi/nodes`, idbm_for_each_rec) without a lock, so a record created or deleted beside
//! the walk fails it with "iface iter could not stat …" and exit code 6 (seen with 20 NodeUnstage
//! at once). This process's own record changes (`-o new` and the auth written after it,
//! `-o delete`) therefore take turns ([`NODE_DB`]), and a node-mode call that still meets a
//! database failure (a walk of a login beside a delete, or another program's iscsiadm) is tried
//! again, [`IDBM_RETRIES`] times with a doubling pause from 100 ms: each of them either did
//! nothing or is idempotent (a login that did happen answers "session exists" on the retry).

use super::{Initiator, Login, RecordSpec, Removal, Session, record, sysfs};
use csi_common::{
    Error, Result,
    command::{BoxFuture, Cmd, CommandRunner, Output},
    ids::Iqn,
};
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

/// Session already present.
pub const RC_SESSION_EXISTS: i32 = 15;
/// Cannot connect to iscsid.
pub const RC_ISCSID_NOTCONN: i32 = 20;
/// No records / no matching sessions.
pub const RC_NO_OBJS_FOUND: i32 = 21;
/// Login failed: authorization (wrong CHAP, not in ACL).
pub const RC_LOGIN_AUTH_FAILED: i32 = 24;
/// The node database failed (a record vanished or appeared during the walk).
pub const RC_IDBM: i32 = 6;

/// Retries of a node-mode call that failed with [`RC_IDBM`].
pub const IDBM_RETRIES: u32 = 3;

/// Turns for this process's changes to the node database: records are host-wide, so the lock
/// is process-wide, not per [`OpenIscsi`] value.
static NODE_DB: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// open-iscsi through `iscsiadm` and the node record files.
#[derive(Debug, Clone)]
pub struct OpenIscsi {
    /// Runs iscsiadm.
    pub runner: Arc<dyn CommandRunner>,
    /// The iscsiadm program.
    pub iscsiadm: String,
    /// The iscsiadm iface used for every record and session.
    pub iface: String,
    /// The node record directory (`/etc/iscsi/nodes`).
    pub nodes_dir: PathBuf,
    /// The sysfs root (`/sys`).
    pub sys: PathBuf,
    /// Timeout of each iscsiadm call.
    pub timeout: Duration,
}

/// `iscsiadm -m node -T IQN -p PORTAL -I IFACE` followed by `extra`.
pub fn node_argv(target: &Iqn, portal: SocketAddr, iface: &str, extra: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = ["-m", "node", "-T", target.as_str()]
        .into_iter()
        .map(str::to_string)
        .collect();
    argv.extend([
        "-p".into(),
        portal.to_string(),
        "-I".into(),
        iface.to_string(),
    ]);
    argv.extend(extra.iter().map(std::string::ToString::to_string));
    argv
}

impl OpenIscsi {
    /// Runs a node-mode call (see the module documentation for its turns and retries).
    async fn node(&self, target: &Iqn, portal: SocketAddr, extra: &[&str]) -> Result<Output> {
        let _turn = if extra.first() == Some(&"-o") {
            Some(NODE_DB.lock().await)
        } else {
            None
        };
        self.node_unlocked(target, portal, extra).await
    }

    async fn node_unlocked(
        &self,
        target: &Iqn,
        portal: SocketAddr,
        extra: &[&str],
    ) -> Result<Output> {
        let cmd = Cmd::new(&self.iscsiadm)
            .args(node_argv(target, portal, &self.iface, extra))
            .timeout(self.timeout);
        let mut pause = Duration::from_millis(100);
        let mut retries = 0;
        loop {
            let out = self.runner.run(&cmd).await?;
            if out.code != Some(RC_IDBM) || retries == IDBM_RETRIES {
                return Ok(out);
            }
            retries += 1;
            tracing::debug!(target = %target, %portal, retries, stderr = %out.stderr.trim(), "iscsiadm node database failure; trying again");
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }

    fn failure(out: &Output, what: &str) -> Error {
        let message = format!("{what}: {}", out.clone().ok().unwrap_err());
        match out.code {
            Some(RC_ISCSID_NOTCONN) => Error::unavailable(message),
            Some(RC_LOGIN_AUTH_FAILED) => Error::failed_precondition(format!(
                "{message} (check the CHAP secret and that the target's ACL allows this initiator)"
            )),
            _ => Error::internal(message),
        }
    }

    async fn prepare_inner(&self, spec: RecordSpec<'_>) -> Result<()> {
        let (target, portal) = (spec.target, spec.portal);
        // The record and the auth written into it, in one turn.
        let _turn = NODE_DB.lock().await;
        let out = self.node_unlocked(target, portal, &["-o", "new"]).await?;
        if !out.success() {
            return Err(Self::failure(&out, "create node record"));
        }
        let path = record::locate(&self.nodes_dir, target, portal, &self.iface)?;
        record::write_auth(
            &path,
            target,
            portal,
            &self.iface,
            spec.chap,
            spec.replacement_timeout,
        )
    }

    async fn login_inner(&self, target: &Iqn, portal: SocketAddr) -> Result<Login> {
        let out = self.node(target, portal, &["--login"]).await?;
        match out.code {
            Some(0) => Ok(Login::LoggedIn),
            Some(RC_SESSION_EXISTS) => Ok(Login::AlreadyLoggedIn),
            _ => Err(Self::failure(&out, "iscsi login")),
        }
    }

    async fn removal(
        &self,
        target: &Iqn,
        portal: SocketAddr,
        extra: &[&str],
        what: &str,
    ) -> Result<Removal> {
        let out = self.node(target, portal, extra).await?;
        match out.code {
            Some(0) => Ok(Removal::Removed),
            Some(RC_NO_OBJS_FOUND) => Ok(Removal::NotFound),
            _ => Err(Self::failure(&out, what)),
        }
    }
}

/// The sessions made through `iface`: those are this plugin's (another iface is another
/// initiator identity, whose session to the same target is not ours to reuse or report).
pub fn own_sessions(sessions: Vec<Session>, iface: &str) -> Vec<Session> {
    sessions.into_iter().filter(|s| s.iface == iface).collect()
}

impl Initiator for OpenIscsi {
    fn prepare<'a>(&'a self, spec: RecordSpec<'a>) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.prepare_inner(spec))
    }

    fn login<'a>(&'a self, target: &'a Iqn, portal: SocketAddr) -> BoxFuture<'a, Result<Login>> {
        Box::pin(self.login_inner(target, portal))
    }

    fn logout<'a>(&'a self, target: &'a Iqn, portal: SocketAddr) -> BoxFuture<'a, Result<Removal>> {
        Box::pin(self.removal(target, portal, &["--logout"], "iscsi logout"))
    }

    fn delete_record<'a>(
        &'a self,
        target: &'a Iqn,
        portal: SocketAddr,
    ) -> BoxFuture<'a, Result<Removal>> {
        Box::pin(self.removal(target, portal, &["-o", "delete"], "delete node record"))
    }

    fn sessions(&self) -> Vec<Session> {
        own_sessions(sysfs::sessions(&self.sys), &self.iface)
    }

    fn records(&self) -> Vec<(String, SocketAddr)> {
        record::list(&self.nodes_dir, &self.iface)
    }

    fn rescan_session(&self, sid: u32) -> BoxFuture<'_, Result<String>> {
        let sys = self.sys.clone();
        Box::pin(async move {
            // The kernel scans synchronously inside the write: keep it off the async threads.
            tokio::task::spawn_blocking(move || sysfs::scan_session(&sys, sid))
                .await
                .map_err(|e| Error::internal(format!("session rescan task: {e}")))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use csi_common::{
        Kind,
        command::{Expectation, ScriptedRunner},
    };

    const T: &str = "iqn.2024-01.dev.carve:cap1";
    const P: &str = "127.0.0.1:3260";

    fn fixture(name: &str) -> (i32, String) {
        let path = format!(
            "{}/../../tests/fixtures/node/iscsiadm-{name}.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).unwrap();
        let code = text
            .lines()
            .next()
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|c| c.parse().ok())
            .unwrap();
        let stderr = text.split("## stderr\n").nth(1).unwrap_or("").to_string();
        (code, stderr)
    }

    fn argv(extra: &[&str]) -> Vec<String> {
        let mut v = vec!["iscsiadm".to_string()];
        v.extend(node_argv(
            &Iqn::parse(T).unwrap(),
            P.parse().unwrap(),
            "default",
            extra,
        ));
        v
    }

    fn iscsi(fake: Arc<ScriptedRunner>, nodes: PathBuf) -> OpenIscsi {
        OpenIscsi {
            runner: fake,
            iscsiadm: "iscsiadm".into(),
            iface: "default".into(),
            nodes_dir: nodes,
            sys: PathBuf::from("/nonexistent"),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn only_sessions_of_our_iface_are_ours() {
        let session = |sid, iface: &str| Session {
            sid,
            target: T.into(),
            iface: iface.into(),
            state: "LOGGED_IN".into(),
            portal: Some(P.parse().unwrap()),
            disks: vec![(0, format!("sd{sid}"))],
        };
        let all = vec![session(1, "default"), session(2, "node2")];
        assert_eq!(own_sessions(all.clone(), "node2"), [session(2, "node2")]);
        assert_eq!(own_sessions(all, "default"), [session(1, "default")]);
    }

    #[test]
    fn node_argv_has_no_discovery_and_names_the_iface() {
        assert_eq!(
            argv(&["--login"]).join(" "),
            format!("iscsiadm -m node -T {T} -p {P} -I default --login")
        );
    }

    #[tokio::test]
    async fn exit_codes_become_outcomes_or_the_right_error_kinds() {
        let fake = Arc::new(ScriptedRunner::new());
        let (again, again_err) = fixture("login-again");
        let (auth, auth_err) = fixture("login-wrongchap");
        let (gone, gone_err) = fixture("logout-again");
        let (norec, norec_err) = fixture("delete-record-again");
        assert_eq!((again, auth, gone, norec), (15, 24, 21, 21));
        fake.expect(Expectation::new(argv(&["--login"])));
        fake.expect(Expectation::new(argv(&["--login"])).fails(again, again_err));
        fake.expect(Expectation::new(argv(&["--login"])).fails(auth, auth_err));
        fake.expect(
            Expectation::new(argv(&["--login"]))
                .fails(20, "iscsiadm: can not connect to iSCSI daemon (111)!"),
        );
        fake.expect(Expectation::new(argv(&["--logout"])).fails(gone, gone_err));
        fake.expect(Expectation::new(argv(&["-o", "delete"])).fails(norec, norec_err));
        // A database failure is tried again: once it clears, the call's own answer counts;
        // one that lasts past the retries is an error.
        fake.expect(Expectation::new(argv(&["-o", "delete"])).fails(
            6,
            "iscsiadm: iface iter could not stat /etc/iscsi/nodes/x.\niscsiadm: Could not execute operation on all records: encountered iSCSI database failure",
        ));
        fake.expect(Expectation::new(argv(&["-o", "delete"])));
        for _ in 0..=IDBM_RETRIES {
            fake.expect(
                Expectation::new(argv(&["-o", "delete"])).fails(6, "iscsiadm: database failure"),
            );
        }
        let i = iscsi(fake.clone(), PathBuf::from("/nonexistent"));
        let (t, p) = (Iqn::parse(T).unwrap(), P.parse().unwrap());
        assert_eq!(i.login(&t, p).await.unwrap(), Login::LoggedIn);
        assert_eq!(i.login(&t, p).await.unwrap(), Login::AlreadyLoggedIn);
        let denied = i.login(&t, p).await.unwrap_err();
        assert_eq!(denied.kind(), Kind::FailedPrecondition);
        assert!(
            denied.message().contains("authorization failure"),
            "{denied}"
        );
        assert_eq!(i.login(&t, p).await.unwrap_err().kind(), Kind::Unavailable);
        assert_eq!(i.logout(&t, p).await.unwrap(), Removal::NotFound);
        assert_eq!(i.delete_record(&t, p).await.unwrap(), Removal::NotFound);
        assert_eq!(i.delete_record(&t, p).await.unwrap(), Removal::Removed);
        assert_eq!(
            i.delete_record(&t, p).await.unwrap_err().kind(),
            Kind::Internal
        );
        fake.finish();
    }

    /// Counts the record changes (`-o …`) running at once.
    #[derive(Debug, Default)]
    struct Overlap {
        now: std::sync::atomic::AtomicUsize,
        most: std::sync::atomic::AtomicUsize,
    }

    impl CommandRunner for Overlap {
        fn run<'a>(
            &'a self,
            cmd: &'a Cmd,
        ) -> BoxFuture<'a, std::result::Result<Output, csi_common::command::CommandError>> {
            use std::sync::atomic::Ordering::SeqCst;
            Box::pin(async move {
                let change = cmd.arg_values().any(|a| a == "-o");
                if change {
                    let now = self.now.fetch_add(1, SeqCst) + 1;
                    self.most.fetch_max(now, SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                if change {
                    self.now.fetch_sub(1, SeqCst);
                }
                Ok(Output {
                    command: String::new(),
                    code: Some(0),
                    stdout: String::new(),
                    stderr: String::new(),
                })
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn record_changes_take_turns() {
        let overlap = Arc::new(Overlap::default());
        let mut i = iscsi(
            Arc::new(ScriptedRunner::new()),
            PathBuf::from("/nonexistent"),
        );
        i.runner = overlap.clone();
        let i = Arc::new(i);
        let t = Iqn::parse(T).unwrap();
        let tasks: Vec<_> = (0..8u16)
            .map(|n| {
                let (i, t) = (Arc::clone(&i), t.clone());
                tokio::spawn(async move {
                    let p = SocketAddr::from(([127, 0, 0, 1], 3260 + n));
                    i.delete_record(&t, p).await.unwrap();
                    i.login(&t, p).await.unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            overlap.most.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "record changes never overlap"
        );
    }

    #[tokio::test]
    async fn prepare_writes_chap_into_the_record_and_never_into_argv() {
        let nodes = tempfile::tempdir().unwrap();
        let dir = nodes.path().join(T);
        std::fs::create_dir_all(&dir).unwrap();
        let default = std::fs::read_to_string(format!(
            "{}/../../tests/fixtures/node/node-record-default.txt",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        std::fs::write(dir.join("127.0.0.1,3260"), default).unwrap();
        let fake = Arc::new(ScriptedRunner::new());
        fake.expect(Expectation::new(argv(&["-o", "new"])));
        let chap = csi_common::contract::Chap {
            username: "u".into(),
            password: "very-secret-password".into(),
            mutual: None,
        };
        let i = iscsi(fake.clone(), nodes.path().to_path_buf());
        i.prepare(RecordSpec {
            target: &Iqn::parse(T).unwrap(),
            portal: P.parse().unwrap(),
            chap: Some(&chap),
            replacement_timeout: None,
        })
        .await
        .unwrap();
        fake.finish();
        assert!(
            fake.ran()
                .iter()
                .flatten()
                .all(|a| !a.contains("very-secret"))
        );
        let text = std::fs::read_to_string(dir.join("127.0.0.1,3260")).unwrap();
        assert_eq!(
            record::field(&text, "node.session.auth.password"),
            Some("very-secret-password")
        );
    }
}
