//! The `targetcli` LIO backend: one batch per operation fed on stdin, the state verified after.
//!
//! Invariants: never two targetcli processes at once in this process (one static queue; across
//! processes targetcli's own flock on /var/run/targetcli.lock serialises); each batch holds only
//! the steps the current state lacks (computed from configfs), so it is idempotent; because a
//! batch exits 0 even when a command in it failed, the state is read back and verified after
//! every batch, and one follow-up batch fixes what a first one could not know (e.g. the default
//! 0.0.0.0 portal targetcli adds to a new target); CHAP credentials travel on stdin marked
//! secret, never in argv or a log line.

use super::{
    AclSpec, ExportSpec, Lio, LioState, TargetState,
    layout::Layout,
    state::{read_state, read_volume_state},
    verify_acl, verify_export,
};
use csi_common::{
    Error, Result,
    command::{BoxFuture, Cmd, CommandRunner},
    ids::Iqn,
};
use std::{fmt::Write as _, path::PathBuf, sync::Arc, time::Duration};
use tracing::info;

/// The one targetcli queue of this process.
static QUEUE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// [`Lio`] over targetcli batches.
#[derive(Debug, Clone)]
pub struct TargetcliLio {
    runner: Arc<dyn CommandRunner>,
    program: PathBuf,
    timeout: Duration,
    layout: Layout,
}

/// The batch lines that bring `state` to the export `spec`.
pub fn export_plan(state: &LioState, spec: &ExportSpec) -> Vec<String> {
    let name = &spec.storage_object;
    let iqn = spec.target.as_str();
    let tpg = format!("/iscsi/{iqn}/tpg1");
    let mut plan = Vec::new();
    let object = state.storage_object(name);
    if object.is_none() {
        plan.push(format!(
            "/backstores/block create name={name} dev={} wwn={}",
            spec.device.display(),
            spec.serial
        ));
    }
    if spec.thin && !object.is_some_and(|o| o.emulate_tpu) {
        plan.push(format!(
            "/backstores/block/{name} set attribute emulate_tpu=1"
        ));
    }
    let target = state.target(iqn);
    if target.is_none_or(|t| !t.has_tpg) {
        plan.push(format!("/iscsi create {iqn}"));
    }
    let wanted: Vec<String> = spec.portals.iter().map(ToString::to_string).collect();
    let existing = target.map(|t| t.portals.clone()).unwrap_or_default();
    for portal in existing.iter().filter(|p| !wanted.contains(p)) {
        if let Some((ip, port)) = portal.rsplit_once(':') {
            plan.push(format!(
                "{tpg}/portals delete {} {port}",
                ip.trim_matches(['[', ']'])
            ));
        }
    }
    for portal in spec
        .portals
        .iter()
        .filter(|p| !existing.contains(&p.to_string()))
    {
        plan.push(format!(
            "{tpg}/portals create {} {}",
            portal.ip(),
            portal.port()
        ));
    }
    if target.is_none_or(|t| t.lun0_object.is_none()) {
        plan.push(format!(
            "{tpg}/luns create /backstores/block/{name} lun=0 add_mapped_luns=false"
        ));
    }
    let new_target = TargetState::default();
    let parameters: Vec<String> = target
        .unwrap_or(&new_target)
        .parameters_missing()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    if !parameters.is_empty() {
        plan.push(format!("{tpg} set parameter {}", parameters.join(" ")));
    }
    if target.is_none_or(|t| !t.enabled) {
        plan.push(format!(
            "{tpg} set attribute generate_node_acls=0 authentication=0"
        ));
        plan.push(format!("{tpg} enable"));
    } else if target.is_some_and(|t| t.generate_node_acls) {
        plan.push(format!("{tpg} set attribute generate_node_acls=0"));
    }
    plan
}

fn targetcli_safe(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && !"\"'`#=;\\".contains(c))
}

/// The batch lines that give `acl` to `target`, and the secret values the batch carries.
pub fn acl_plan(
    state: &LioState,
    target: &Iqn,
    acl: &AclSpec,
) -> Result<(Vec<String>, Vec<String>)> {
    let tpg = format!("/iscsi/{target}/tpg1");
    let node = acl.initiator.as_str();
    let found = state
        .target(target.as_str())
        .and_then(|t| t.acls.iter().find(|a| a.initiator == node));
    let mut plan = Vec::new();
    if found.is_none() {
        plan.push(format!("{tpg}/acls create {node} add_mapped_luns=false"));
    }
    let mut secrets = Vec::new();
    if let Some(chap) = &acl.chap {
        let mut values = vec![chap.username.as_str(), chap.password.as_str()];
        if let Some((u, p)) = &chap.mutual {
            values.extend([u.as_str(), p.as_str()]);
        }
        if !values.iter().all(|v| targetcli_safe(v)) {
            return Err(Error::invalid_argument(
                "CHAP credentials for the targetcli backend must not contain quotes, '#', '=', ';' or '\\'",
            ));
        }
        let mut line = format!(
            "{tpg}/acls/{node} set auth userid={} password={}",
            chap.username, chap.password
        );
        if let Some((u, p)) = &chap.mutual {
            let _ = write!(line, " mutual_userid={u} mutual_password={p}");
        }
        plan.push(line);
        secrets.push(chap.password.clone());
        secrets.extend(chap.mutual.as_ref().map(|(_, p)| p.clone()));
    }
    let authentication = state
        .target(target.as_str())
        .is_some_and(|t| t.authentication);
    if authentication != acl.chap.is_some() {
        plan.push(format!(
            "{tpg} set attribute authentication={}",
            u8::from(acl.chap.is_some())
        ));
    }
    // LUN 0 last: CHAP is set and enforced before the ACL reaches any data, as the configfs
    // backend does (a new TPG has authentication=0: mapped first, an initiator claiming the
    // node's IQN could log in without CHAP and keep the LUN).
    let wp = u8::from(acl.readonly);
    match found {
        Some(a) if a.mapped_lun0 && a.write_protect == acl.readonly => {}
        Some(a) if a.mapped_lun0 => {
            plan.push(format!("{tpg}/acls/{node} delete 0"));
            plan.push(format!(
                "{tpg}/acls/{node} create mapped_lun=0 tpg_lun_or_backstore=0 write_protect={wp}"
            ));
        }
        _ => plan.push(format!(
            "{tpg}/acls/{node} create mapped_lun=0 tpg_lun_or_backstore=0 write_protect={wp}"
        )),
    }
    Ok((plan, secrets))
}

/// Replaces every secret in `text` (targetcli echoes `Parameter password is now '…'`).
pub fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_string(), |acc, s| {
            acc.replace(s.as_str(), csi_common::command::REDACTED)
        })
}

/// The targetcli invocation running `lines` as one batch on stdin (secret when it holds CHAP).
pub fn batch_command(
    program: &std::path::Path,
    lines: &[String],
    secret: bool,
    timeout: Duration,
) -> Cmd {
    let mut script = lines.join("\n");
    script.push_str("\nexit\n");
    let cmd = Cmd::new(program.display().to_string()).timeout(timeout);
    if secret {
        cmd.secret_stdin(script)
    } else {
        cmd.stdin(script)
    }
}

impl TargetcliLio {
    /// The backend running `program`, each batch limited to `timeout`, reading state under `root`.
    pub fn new(
        runner: Arc<dyn CommandRunner>,
        program: PathBuf,
        timeout: Duration,
        root: PathBuf,
    ) -> Self {
        Self {
            runner,
            program,
            timeout,
            layout: Layout::new(root),
        }
    }

    fn read(&self) -> Result<LioState> {
        read_state(&self.layout)
    }

    fn read_volume(&self, target: &Iqn, object: &str) -> LioState {
        read_volume_state(&self.layout, target.as_str(), object)
    }

    async fn batch(&self, lines: &[String], secrets: &[String]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let cmd = batch_command(&self.program, lines, !secrets.is_empty(), self.timeout);
        let _turn = QUEUE.lock().await;
        let out = self.runner.run(&cmd).await?;
        let stdout = scrub(&out.stdout, secrets);
        if !out.success() {
            return Err(Error::internal(format!(
                "{}: exit code {:?}: {}",
                out.command,
                out.code,
                scrub(out.stderr.trim(), secrets)
            )));
        }
        info!(commands = lines.len(), "ran targetcli batch");
        tracing::debug!(stdout = %stdout, "targetcli batch output");
        Ok(())
    }

    async fn ensure_export_now(&self, spec: &ExportSpec) -> Result<()> {
        let read = || self.read_volume(&spec.target, &spec.storage_object);
        for _ in 0..2 {
            let plan = export_plan(&read(), spec);
            self.batch(&plan, &[]).await?;
            if verify_export(&read(), spec).is_ok() {
                return Ok(());
            }
        }
        verify_export(&read(), spec)
    }

    async fn ensure_acl_now(&self, target: &Iqn, acl: &AclSpec) -> Result<()> {
        let read = || self.read_volume(target, "");
        for _ in 0..2 {
            let (plan, secrets) = acl_plan(&read(), target, acl)?;
            self.batch(&plan, &secrets).await?;
            if verify_acl(&read(), target, acl).is_ok() {
                return Ok(());
            }
        }
        verify_acl(&read(), target, acl)
    }

    async fn remove_export_now(&self, target: &Iqn, object: &str) -> Result<bool> {
        let state = self.read_volume(target, object);
        let mut plan = Vec::new();
        if state.target(target.as_str()).is_some() {
            plan.push(format!("/iscsi delete {target}"));
        }
        if state.storage_object(object).is_some() {
            plan.push(format!("/backstores/block delete {object}"));
        }
        self.batch(&plan, &[]).await?;
        let after = self.read_volume(target, object);
        if after.target(target.as_str()).is_some() || after.storage_object(object).is_some() {
            return Err(Error::internal(format!(
                "targetcli left target {target} or storage object {object} behind"
            )));
        }
        Ok(!plan.is_empty())
    }

    async fn remove_acl_now(&self, target: &Iqn, initiator: &Iqn) -> Result<bool> {
        let has = |s: &LioState| {
            s.target(target.as_str())
                .is_some_and(|t| t.acls.iter().any(|a| a.initiator == initiator.as_str()))
        };
        if !has(&self.read_volume(target, "")) {
            return Ok(false);
        }
        self.batch(
            &[format!("/iscsi/{target}/tpg1/acls delete {initiator}")],
            &[],
        )
        .await?;
        if has(&self.read_volume(target, "")) {
            return Err(Error::internal(format!(
                "targetcli left the ACL of {initiator} on {target}"
            )));
        }
        Ok(true)
    }
}

impl Lio for TargetcliLio {
    /// The reads go to configfs directly (targetcli is only for changes), on the blocking pool.
    fn state(&self) -> BoxFuture<'_, Result<LioState>> {
        let me = self.clone();
        Box::pin(super::blocking(move || me.read()))
    }

    fn target_names(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        let layout = self.layout.clone();
        Box::pin(super::blocking(move || {
            Ok(super::state::target_names(&layout))
        }))
    }

    fn volume_state<'a>(
        &'a self,
        target: &'a Iqn,
        storage_object: &'a str,
    ) -> BoxFuture<'a, Result<LioState>> {
        let (me, target, object) = (self.clone(), target.clone(), storage_object.to_string());
        Box::pin(super::blocking(
            move || Ok(me.read_volume(&target, &object)),
        ))
    }

    fn ensure_export<'a>(&'a self, spec: &'a ExportSpec) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.ensure_export_now(spec))
    }

    fn remove_export<'a>(
        &'a self,
        target: &'a Iqn,
        storage_object: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.remove_export_now(target, storage_object))
    }

    fn ensure_acl<'a>(&'a self, target: &'a Iqn, acl: &'a AclSpec) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.ensure_acl_now(target, acl))
    }

    fn remove_acl<'a>(
        &'a self,
        target: &'a Iqn,
        initiator: &'a Iqn,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.remove_acl_now(target, initiator))
    }
}

#[cfg(test)]
#[path = "targetcli_tests.rs"]
mod tests;
