//! Probe for the node: iscsiadm is runnable and iscsid answers; with multipath in use
//! (`--multipath auto|on`), multipathd answers too.

use csi_common::{
    command::{BoxFuture, Cmd, CommandRunner, run_for_reason},
    identity::Readiness,
};
use std::{sync::Arc, time::Duration};

/// Checks iscsiadm and iscsid on every Probe.
#[derive(Debug)]
pub struct NodeReadiness {
    runner: Arc<dyn CommandRunner>,
    iscsiadm: String,
    multipathd: Option<String>,
}

impl NodeReadiness {
    /// Readiness using `iscsiadm` through `runner`; with `multipathd` (its program), also ask
    /// multipathd.
    pub fn new(
        runner: Arc<dyn CommandRunner>,
        iscsiadm: impl Into<String>,
        multipathd: Option<String>,
    ) -> Self {
        Self {
            runner,
            iscsiadm: iscsiadm.into(),
            multipathd,
        }
    }

    async fn check_now(&self) -> Result<(), String> {
        let timeout = Duration::from_secs(20);
        let version = Cmd::new(&self.iscsiadm).arg("--version").timeout(timeout);
        run_for_reason(&*self.runner, &version, "iscsiadm is not runnable")
            .await?
            .ok_or_reason("iscsiadm is not runnable")?;
        // `-m session` asks iscsid over its socket: exit 0 (sessions) or 21 (none) means it
        // answered; anything else (e.g. 20, "could not connect to iscsid") means it did not.
        let session = Cmd::new(&self.iscsiadm)
            .args(["-m", "session"])
            .timeout(timeout);
        let out = run_for_reason(&*self.runner, &session, "cannot query iscsid").await?;
        match out.code {
            Some(0 | 21) => {}
            _ => return Err(format!("iscsid is not reachable: {}", out.stderr.trim())),
        }
        let Some(multipathd) = &self.multipathd else {
            return Ok(());
        };
        // multipathd(8) `show daemon` answers over its socket (`pid N idle|running`); the CLI
        // exits 1 when it cannot connect.
        let daemon = Cmd::new(multipathd)
            .args(["show", "daemon"])
            .timeout(timeout);
        let out = run_for_reason(&*self.runner, &daemon, "multipathd is not runnable").await?;
        if out.success() && out.stdout.trim_start().starts_with("pid ") {
            Ok(())
        } else {
            Err(format!(
                "multipathd is not answering (--multipath needs it; --multipath off does not): {}{}",
                out.stdout.trim(),
                out.stderr.trim()
            ))
        }
    }
}

impl Readiness for NodeReadiness {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.check_now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use csi_common::command::{Expectation, ScriptedRunner};

    /// iscsiadm runs, and `-m session` exits `code` with `stderr` (21: iscsid answered, no
    /// sessions; 20: iscsid is down).
    fn expect_iscsiadm(fake: &ScriptedRunner, code: i32, stderr: &str) {
        fake.expect(Expectation::new(["iscsiadm", "--version"]).stdout("iscsiadm version 2.1.8\n"));
        fake.expect(Expectation::new(["iscsiadm", "-m", "session"]).fails(code, stderr));
    }

    #[tokio::test]
    async fn ready_when_iscsid_answers_with_no_sessions() {
        let fake = Arc::new(ScriptedRunner::new());
        expect_iscsiadm(&fake, 21, "iscsiadm: No active sessions.\n");
        let readiness = NodeReadiness::new(fake.clone(), "iscsiadm", None);
        assert_eq!(readiness.check().await, Ok(()));
        fake.finish();
    }

    #[tokio::test]
    async fn with_multipath_not_ready_until_multipathd_answers() {
        let fake = Arc::new(ScriptedRunner::new());
        expect_iscsiadm(&fake, 21, "");
        fake.expect(
            Expectation::new(["multipathd", "show", "daemon"])
                .fails(1, "ux_socket_connect: No such file or directory\n"),
        );
        let readiness = NodeReadiness::new(fake.clone(), "iscsiadm", Some("multipathd".into()));
        let reason = readiness.check().await.unwrap_err();
        assert!(reason.contains("multipathd is not answering"), "{reason}");
        expect_iscsiadm(&fake, 21, "");
        fake.expect(Expectation::new(["multipathd", "show", "daemon"]).stdout("pid 229 idle\n"));
        assert_eq!(readiness.check().await, Ok(()));
        fake.finish();
    }

    #[tokio::test]
    async fn not_ready_when_iscsid_is_down() {
        let fake = Arc::new(ScriptedRunner::new());
        expect_iscsiadm(
            &fake,
            20,
            "iscsiadm: can not connect to iSCSI daemon (111)!\n",
        );
        let reason = NodeReadiness::new(fake.clone(), "iscsiadm", Some("multipathd".into()))
            .check()
            .await
            .unwrap_err();
        assert!(reason.contains("iscsid is not reachable"), "{reason}");
        fake.finish();
    }
}
