//! [`LvmShell`]: LVM's own commands run as lines of long-lived `lvm` shells (lvm(8), "an
//! interactive shell when run without a command") instead of one process each; every other
//! command goes to the runner it wraps.
//!
//! Why: in the lab guest `lvchange --addtag` took 580-770 ms as a process and 190-290 ms as a
//! line of a shell, `lvs vg/lv` 620-770 ms against 100-200 ms: the process start, dynamic
//! linking and LVM's set-up (configuration, command table, device cache) are paid once per
//! shell. Each command still scans devices and reads the metadata afresh (LVM 2.03 drops its
//! cache at the end of every command, `lvm_run_command` in lvm2 tools/lvmcmdline.c), re-reads
//! lvm.conf when it changed, and takes and releases its own locks, as a process does.
//!
//! Protocol, lvmdbusd's (lvm2 `daemons/lvmdbusd/lvm_shell_proxy.py`):
//! - the shell runs with `LVM_COMMAND_PROFILE=`[`PROFILE`] (lvm2 `conf/lvmdbusd.profile`,
//!   installed with LVM in `/etc/lvm/profile`). Its `log/report_command_log=1` makes the shell
//!   print, after each command, one JSON document whose `log` array holds the command's status
//!   row (`log_context` "shell", `log_type` "status", `log_ret_code` 1 for success, else the
//!   exit code a process would have had). That document is the end of the answer, and the
//!   answer is that document alone: on a pipe Debian's editline build prints no prompt, a
//!   readline build prints `lvm> ` (lvm2 commit b3d13c50d), which is skipped ([`PROMPT`]);
//! - after a failure, `lastlog` answers the command's whole log: its `error`, `fatal` and `warn`
//!   rows are the messages a process prints on stderr, and stand in for it;
//! - the shell rewrites `$HOME/.lvm_history` after every line (`_write_history`, tools/lvm.c),
//!   names and tags included; it runs with `HOME=/dev/null`, where that file cannot exist;
//! - the shell splits a line on white space and honours a quote only at an argument's start
//!   (`lvm_split`, tools/lvmcmdline.c): a command it could not carry exactly ([`shell_line`]),
//!   or one with stdin or secrets, runs as a process instead.
//!
//! Invariants: one command at a time per shell, its line written only after the previous answer;
//! a shell whose answer times out or cannot be read has its process group killed and is never
//! used again; a new shell must answer `version` before it takes a command, and when one cannot,
//! LVM's commands run as processes for [`RETRY_AFTER`] (logged), so a host without the profile
//! loses speed, never a command.

use csi_common::command::{BoxFuture, Cmd, CommandError, CommandRunner, Output};
use serde::de::IgnoredAny;
use serde_json::Value;
use std::{
    fmt::Write as _,
    ops::Range,
    process::Stdio,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    process::{Child, ChildStdin, ChildStdout},
};

/// The command profile the shells run with: lvm2's own profile for its D-Bus daemon, which
/// drives the same shell the same way.
pub const PROFILE: &str = "lvmdbusd";

/// Idle shells kept for the next commands; a busy moment may run more, closed after.
pub const MAX_IDLE: usize = 4;

/// How long LVM's commands run as processes after a shell could not be started.
pub const RETRY_AFTER: Duration = Duration::from_mins(5);

/// The longest a new shell may take to answer `version`.
const START_TIMEOUT: Duration = Duration::from_mins(1);

/// The prompt a readline build of `lvm` prints before each line, even on a pipe.
const PROMPT: &[u8] = b"lvm>";

/// The most of a shell's answer an error message quotes (an answer can be a whole VG's report).
const EXCERPT: usize = 1024;

/// Arguments per line: the shell refuses a line of 64 words or more (`MAX_ARGS`,
/// tools/lvm.c), the command's name included.
const MAX_ARGS: usize = 62;

/// LVM's commands that may run in a shell: the ones Carve runs ([`super::argv::LVM_COMMANDS`]).
fn shell_command(cmd: &Cmd) -> bool {
    super::argv::LVM_COMMANDS.contains(&cmd.program())
}

/// The shell's line for `cmd`, or `None` when the shell could not carry it exactly: a program
/// other than one of LVM's commands by its bare name, stdin or a secret, too many arguments, or
/// an argument with a control or non-ASCII character, or one that needs quoting and holds both
/// quote characters. An argument with a space, or starting with a quote or `#`, is quoted.
pub fn shell_line(cmd: &Cmd) -> Option<String> {
    if !shell_command(cmd) || cmd.stdin_value().is_some() || cmd.secrets().next().is_some() {
        return None;
    }
    let args: Vec<&str> = cmd.arg_values().collect();
    if args.len() > MAX_ARGS {
        return None;
    }
    let mut line = cmd.program().to_string();
    for arg in args {
        if !arg.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
            return None;
        }
        let plain = !arg.is_empty() && !arg.contains(' ') && !arg.starts_with(['"', '\'', '#']);
        line.push(' ');
        if plain {
            line.push_str(arg);
        } else if !arg.contains('"') {
            let _ = write!(line, "\"{arg}\"");
        } else if !arg.contains('\'') {
            let _ = write!(line, "'{arg}'");
        } else {
            return None;
        }
    }
    Some(line)
}

/// Runs LVM's commands in `lvm` shells, everything else through the wrapped runner.
#[derive(Debug)]
pub struct LvmShell {
    inner: Arc<dyn CommandRunner>,
    argv: Vec<String>,
    idle: Mutex<Vec<Shell>>,
    unavailable_until: Mutex<Option<Instant>>,
}

impl LvmShell {
    /// Shells of `prefix... lvm` (the prefix as the wrapped runner's, e.g. `nsenter -t 1 -m
    /// --`); `inner` runs everything else, and LVM's commands while no shell can start.
    pub fn new(inner: Arc<dyn CommandRunner>, prefix: &[String]) -> Self {
        let mut argv = prefix.to_vec();
        argv.push("lvm".to_string());
        Self {
            inner,
            argv,
            idle: Mutex::new(Vec::new()),
            unavailable_until: Mutex::new(None),
        }
    }

    /// The same with another shell program (tests).
    pub fn with_program(mut self, program: impl Into<String>) -> Self {
        if let Some(last) = self.argv.last_mut() {
            *last = program.into();
        }
        self
    }

    fn unavailable(&self) -> bool {
        let mut until = self
            .unavailable_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match *until {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                *until = None;
                false
            }
            None => false,
        }
    }

    /// An idle shell still running (one that exited while idle, killed by hand or by the OOM
    /// killer, is dropped: a command written to it would fail without having run), or a new
    /// one that answered `version`.
    /// A new shell gets at most `timeout` (the command's own, when shorter than
    /// [`START_TIMEOUT`]) to answer.
    async fn take(&self, timeout: Duration) -> Result<Shell, String> {
        loop {
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let Some(mut shell) = idle else { break };
            if matches!(shell.child.try_wait(), Ok(None)) {
                return Ok(shell);
            }
        }
        let mut shell = Shell::spawn(&self.argv)?;
        let timeout = timeout.min(START_TIMEOUT);
        match tokio::time::timeout(timeout, shell.exchange("version")).await {
            Ok(Ok(answer)) if answer.code == Some(0) => Ok(shell),
            Ok(Ok(answer)) => {
                shell.kill().await;
                Err(format!("`version` failed: {}", answer.stderr.trim()))
            }
            Ok(Err(reason)) => {
                let stderr = shell.stderr_text();
                shell.kill().await;
                Err(format!("{reason}; stderr: {}", stderr.trim()))
            }
            Err(_) => {
                shell.kill().await;
                Err(format!("no answer to `version` in {timeout:?}"))
            }
        }
    }

    fn give_back(&self, shell: Shell) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(shell);
        }
        // Else dropped: its stdin closes and the shell exits at the end of its input.
    }

    async fn run_in_shell(&self, cmd: &Cmd, line: &str) -> Option<Result<Output, CommandError>> {
        if self.unavailable() {
            return None;
        }
        let mut shell = match self.take(cmd.timeout_value()).await {
            Ok(shell) => shell,
            Err(reason) => {
                *self
                    .unavailable_until
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + RETRY_AFTER);
                tracing::warn!(
                    shell = %self.argv.join(" "),
                    profile = PROFILE,
                    %reason,
                    retry_after_s = RETRY_AFTER.as_secs(),
                    "no LVM shell: LVM's commands run as processes for now"
                );
                return None;
            }
        };
        let command = cmd.redacted();
        let answer = tokio::time::timeout(cmd.timeout_value(), shell.exchange(line)).await;
        Some(match answer {
            Ok(Ok(answer)) => {
                if shell.broken {
                    shell.kill().await;
                } else {
                    self.give_back(shell);
                }
                Ok(Output {
                    command,
                    code: answer.code,
                    stdout: answer.stdout,
                    stderr: answer.stderr,
                })
            }
            Ok(Err(reason)) => {
                // The command's outcome is unknown, as for a process killed by a signal.
                let stderr = shell.stderr_text();
                shell.kill().await;
                Ok(Output {
                    command,
                    code: None,
                    stdout: String::new(),
                    stderr: format!("LVM shell: {reason}\n{stderr}"),
                })
            }
            Err(_) => {
                shell.kill().await;
                Err(CommandError::TimedOut {
                    command,
                    timeout: cmd.timeout_value(),
                })
            }
        })
    }
}

impl CommandRunner for LvmShell {
    fn run<'a>(&'a self, cmd: &'a Cmd) -> BoxFuture<'a, Result<Output, CommandError>> {
        Box::pin(async move {
            let Some(line) = shell_line(cmd) else {
                return self.inner.run(cmd).await;
            };
            let started = Instant::now();
            let Some(result) = self.run_in_shell(cmd, &line).await else {
                return self.inner.run(cmd).await;
            };
            let elapsed = started.elapsed();
            metrics::histogram!("carve_command_duration_seconds", "program" => cmd.program().to_string())
                .record(elapsed.as_secs_f64());
            let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            match &result {
                Ok(out) => tracing::debug!(
                    program = cmd.program(), argv = %out.command, code = ?out.code, duration_ms = ms,
                    stderr = %out.stderr.trim(), shell = true, "ran command"
                ),
                Err(error) => tracing::debug!(
                    program = cmd.program(), argv = %cmd.redacted(), duration_ms = ms, %error,
                    shell = true, "command failed"
                ),
            }
            result
        })
    }
}

/// One command's answer.
#[derive(Debug)]
struct Answer {
    /// The exit code a process would have had.
    code: Option<i32>,
    /// The JSON document (a report's rows under `report`, the log under `log`).
    stdout: String,
    /// The error rows of the command's log, then whatever the shell wrote on stderr.
    stderr: String,
}

/// One running `lvm` shell.
#[derive(Debug)]
struct Shell {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    stderr: Arc<Mutex<String>>,
    /// Out of step with its input (its `lastlog` went unanswered): killed, not reused.
    broken: bool,
}

impl Shell {
    fn spawn(argv: &[String]) -> Result<Self, String> {
        let (program, args) = argv.split_first().ok_or("no shell program")?;
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .env("LC_ALL", "C")
            .env("LANG", "C")
            .env("LVM_COMMAND_PROFILE", PROFILE)
            .env("HOME", "/dev/null")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut err = child.stderr.take().ok_or("no stderr")?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = err.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        Ok(Self {
            child,
            stdin,
            stdout,
            stderr,
            broken: false,
        })
    }

    /// What the shell wrote on stderr since the last call.
    fn stderr_text(&self) -> String {
        std::mem::take(&mut *self.stderr.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs one line and reads its answer; after a failure, `lastlog` for its messages. What
    /// the shell wrote on stderr before the line (while idle) is logged, not given to it.
    async fn exchange(&mut self, line: &str) -> Result<Answer, String> {
        let stale = self.stderr_text();
        if !stale.trim().is_empty() {
            tracing::debug!(stderr = %stale.trim(), "LVM shell: stderr between commands");
        }
        let stdout = self.ask(line).await?;
        let code = status_code(&stdout).ok_or_else(|| {
            format!(
                "no status row in the shell's answer: {}",
                excerpt(stdout.as_bytes())
            )
        })?;
        let mut stderr = String::new();
        if code != 0 {
            // The code is known; a `lastlog` that fails loses only the messages.
            match self.ask("lastlog").await {
                Ok(log) => stderr = message_lines(&log),
                Err(reason) => {
                    self.broken = true;
                    stderr = format!("LVM shell: no log of the failure: {reason}\n");
                }
            }
        }
        stderr.push_str(&self.stderr_text());
        Ok(Answer {
            code: Some(code),
            stdout,
            stderr,
        })
    }

    /// Writes `line` and reads until one whole JSON document has come; answers that document
    /// alone (a prompt, an echo or `version`'s lines before it are dropped).
    async fn ask(&mut self, line: &str) -> Result<String, String> {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| format!("writing to the shell: {e}"))?;
        self.stdin
            .flush()
            .await
            .map_err(|e| format!("writing to the shell: {e}"))?;
        let mut text = Vec::with_capacity(4096);
        loop {
            let n = self
                .stdout
                .read_buf(&mut text)
                .await
                .map_err(|e| format!("reading the shell: {e}"))?;
            if n == 0 {
                return Err(format!("the shell exited: {}", excerpt(&text)));
            }
            if let Some(span) = document_span(&text)? {
                return Ok(String::from_utf8_lossy(&text[span]).into_owned());
            }
        }
    }

    async fn kill(&mut self) {
        csi_common::command::kill_group(self.child.id());
        let _ = self.child.wait().await;
    }
}

/// Where the JSON document of an answer starts: the first `{` with nothing before it on its
/// line but blanks and prompts (`version` prints its lines before it; a readline build prints
/// `lvm> ` and may echo the line, whose `{` follows other words).
fn document_start(text: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in text.iter().enumerate() {
        match b {
            b'\n' => line_start = i + 1,
            b'{' if only_prompts(&text[line_start..i]) => return Some(i),
            _ => {}
        }
    }
    None
}

/// Whether `prefix` holds nothing but blanks and prompts.
fn only_prompts(prefix: &[u8]) -> bool {
    let mut rest = prefix.trim_ascii();
    while let Some(after) = rest.strip_prefix(PROMPT) {
        rest = after.trim_ascii_start();
    }
    rest.is_empty()
}

/// Where the first whole JSON document in `text` lies; `None` while it has not all come, an
/// error when it can never be one.
fn document_span(text: &[u8]) -> Result<Option<Range<usize>>, String> {
    let Some(start) = document_start(text) else {
        return Ok(None);
    };
    let mut documents =
        serde_json::Deserializer::from_slice(&text[start..]).into_iter::<IgnoredAny>();
    match documents.next() {
        Some(Ok(_)) => Ok(Some(start..start + documents.byte_offset())),
        Some(Err(e)) if e.is_eof() => Ok(None),
        Some(Err(e)) => Err(format!(
            "unreadable answer from the shell ({e}): {}",
            excerpt(text)
        )),
        None => Ok(None),
    }
}

/// At most [`EXCERPT`] bytes of `text`, for an error message.
fn excerpt(text: &[u8]) -> String {
    let mut quoted = String::from_utf8_lossy(&text[..text.len().min(EXCERPT)]).into_owned();
    if text.len() > EXCERPT {
        let _ = write!(quoted, "… ({} bytes in all)", text.len());
    }
    quoted
}

/// The JSON document of an answer.
fn document(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok()
}

/// The rows of an answer's command log.
fn log_rows(text: &str) -> Vec<Value> {
    match document(text).as_ref().and_then(|d| d.get("log")) {
        Some(Value::Array(rows)) => rows.clone(),
        _ => Vec::new(),
    }
}

fn field<'a>(row: &'a Value, name: &str) -> &'a str {
    row.get(name).and_then(Value::as_str).unwrap_or("")
}

/// The exit code a process would have had, from the shell's status row: `log_ret_code` 1
/// (`ECMD_PROCESSED`) is 0, any other is itself (lvm2 `lvm_return_code`); `None` when the answer
/// has no status row with a numeric code.
fn status_code(text: &str) -> Option<i32> {
    let rows = log_rows(text);
    let status = rows.iter().rev().find(|r| {
        field(r, "log_type") == "status"
            && field(r, "log_context") == "shell"
            && field(r, "log_object_type") == "cmd"
    })?;
    let code = field(status, "log_ret_code").parse::<i32>().ok()?;
    Some(if code == 1 { 0 } else { code })
}

/// The `error`, `fatal` and `warn` rows of a `lastlog` answer (what a process prints on
/// stderr), one per line, indented as LVM prints them.
fn message_lines(text: &str) -> String {
    log_rows(text)
        .iter()
        .filter(|r| matches!(field(r, "log_type"), "error" | "fatal" | "warn"))
        .fold(String::new(), |mut lines, r| {
            let _ = writeln!(lines, "  {}", field(r, "log_message"));
            lines
        })
}

#[cfg(test)]
#[path = "shell_tests.rs"]
mod tests;
