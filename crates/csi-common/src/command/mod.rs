//! The seam through which every external program runs.
//!
//! Invariants: argv only, never a shell; `LC_ALL=C`; a timeout that kills the whole process
//! group; an optional prefix (e.g. `nsenter -t 1 -m --`); arguments and stdin marked secret are
//! replaced by `<redacted>` in every log line and error, and their values are scrubbed from the
//! captured stdout/stderr before anyone sees them. One structured debug line per command.

#[cfg(any(test, feature = "testing"))]
mod fake;
mod system;

/// The scripted fake (tests only: the `testing` feature, which the other crates enable as a
/// dev-dependency, so no release binary carries it).
#[cfg(any(test, feature = "testing"))]
pub use fake::{Expectation, ScriptedRunner};
pub use system::{SystemRunner, kill_group};

use crate::error::{Error, Kind};
use std::{fmt, future::Future, pin::Pin, time::Duration};

/// A boxed future, so the runner can be used as `Arc<dyn CommandRunner>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What every external program is run through.
pub trait CommandRunner: Send + Sync + fmt::Debug {
    /// Runs `cmd` to completion (or its timeout). A non-zero exit is not an error here: use
    /// [`Output::ok`] when any failure should be one.
    fn run<'a>(&'a self, cmd: &'a Cmd) -> BoxFuture<'a, Result<Output, CommandError>>;
}

/// Runs `cmd` for a readiness check, whose reasons are text: a command that cannot run at all
/// is `"{cannot}: {error}"`.
///
/// # Errors
/// That reason, when the runner could not run `cmd`.
pub async fn run_for_reason(
    runner: &dyn CommandRunner,
    cmd: &Cmd,
    cannot: &str,
) -> Result<Output, String> {
    runner.run(cmd).await.map_err(|e| format!("{cannot}: {e}"))
}

/// The default timeout for a command that does not set one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_mins(1);

/// The text that replaces a secret wherever a command is shown.
pub const REDACTED: &str = "<redacted>";

/// One argument: shown as is, or a secret shown as [`REDACTED`].
#[derive(Clone, PartialEq, Eq)]
pub enum Arg {
    /// An ordinary argument.
    Plain(String),
    /// An argument that must never be shown.
    Secret(String),
}

impl Arg {
    /// The real value, for the process only.
    pub fn value(&self) -> &str {
        match self {
            Arg::Plain(v) | Arg::Secret(v) => v,
        }
    }

    fn shown(&self) -> &str {
        match self {
            Arg::Plain(v) => v,
            Arg::Secret(_) => REDACTED,
        }
    }
}

impl fmt::Debug for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.shown())
    }
}

/// A command to run: program, argv, optional stdin and a timeout.
#[derive(Clone, PartialEq, Eq)]
pub struct Cmd {
    program: String,
    args: Vec<Arg>,
    stdin: Option<Arg>,
    timeout: Duration,
}

impl Cmd {
    /// A command running `program` with no arguments and the default timeout.
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Appends one plain argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(Arg::Plain(arg.into()));
        self
    }

    /// Appends plain arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args
            .extend(args.into_iter().map(|a| Arg::Plain(a.into())));
        self
    }

    /// Inserts plain arguments before every argument already given: for options that must come
    /// before a `--` the command already carries.
    #[must_use]
    pub fn prepend_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut all: Vec<Arg> = args.into_iter().map(|a| Arg::Plain(a.into())).collect();
        all.append(&mut self.args);
        self.args = all;
        self
    }

    /// Appends an argument that is never shown. Prefer [`Cmd::secret_stdin`]: argv is visible
    /// to every user of the host through /proc.
    #[must_use]
    pub fn secret_arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(Arg::Secret(arg.into()));
        self
    }

    /// Feeds `input` on stdin.
    #[must_use]
    pub fn stdin(mut self, input: impl Into<String>) -> Self {
        self.stdin = Some(Arg::Plain(input.into()));
        self
    }

    /// Feeds `input` on stdin and never shows it.
    #[must_use]
    pub fn secret_stdin(mut self, input: impl Into<String>) -> Self {
        self.stdin = Some(Arg::Secret(input.into()));
        self
    }

    /// Sets how long the command may run before its process group is killed.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The program name or path.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The arguments, secrets included (for the process and for the fake's matching).
    pub fn arg_values(&self) -> impl Iterator<Item = &str> {
        self.args.iter().map(Arg::value)
    }

    /// The stdin input, if any.
    pub fn stdin_value(&self) -> Option<&str> {
        self.stdin.as_ref().map(Arg::value)
    }

    /// The timeout.
    pub fn timeout_value(&self) -> Duration {
        self.timeout
    }

    /// Every secret value this command carries, to scrub from its output.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.args
            .iter()
            .chain(self.stdin.iter())
            .filter_map(|a| match a {
                Arg::Secret(v) if !v.is_empty() => Some(v.as_str()),
                _ => None,
            })
    }

    /// The command line with secrets replaced, for logs and error messages.
    pub fn redacted(&self) -> String {
        let mut out = self.program.clone();
        for arg in &self.args {
            out.push(' ');
            out.push_str(&shell_quote(arg.shown()));
        }
        if let Some(Arg::Secret(_)) = &self.stdin {
            out.push_str(" <<< ");
            out.push_str(REDACTED);
        }
        out
    }

    /// Replaces every secret of this command found in `text`.
    pub fn scrub(&self, text: &str) -> String {
        self.secrets()
            .fold(text.to_string(), |acc, s| acc.replace(s, REDACTED))
    }
}

impl fmt::Debug for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Quotes an argument for display only (commands never pass through a shell).
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+<>".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// What a finished command left behind; output already scrubbed of the command's secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The redacted command line, for messages.
    pub command: String,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl Output {
    /// Whether the command exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// This output if the command exited 0, else the readiness reason `"{failed}: {stderr}"`.
    ///
    /// # Errors
    /// That reason, when the command did not exit 0.
    pub fn ok_or_reason(self, failed: &str) -> Result<Output, String> {
        if self.success() {
            Ok(self)
        } else {
            Err(format!("{failed}: {}", self.stderr.trim()))
        }
    }

    /// This output if the command exited 0, else [`CommandError::Failed`].
    pub fn ok(self) -> Result<Output, CommandError> {
        if self.success() {
            Ok(self)
        } else {
            Err(CommandError::Failed {
                command: self.command,
                code: self.code,
                stderr: self.stderr,
            })
        }
    }
}

/// Why a command did not produce an [`Output`] (or produced a failing one, via [`Output::ok`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The program (or the prefix's program) does not exist.
    #[error("{program}: command not found")]
    NotFound {
        /// The missing program.
        program: String,
    },
    /// The command ran past its timeout and was killed.
    #[error("{command}: timed out after {timeout:?} and was killed")]
    TimedOut {
        /// The redacted command line.
        command: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The command could not be started.
    #[error("{command}: could not start: {reason}")]
    Spawn {
        /// The redacted command line.
        command: String,
        /// The OS error.
        reason: String,
    },
    /// The command exited non-zero.
    #[error("{command}: exit code {}: {}", code.map_or("killed".to_string(), |c| c.to_string()), stderr.trim())]
    Failed {
        /// The redacted command line.
        command: String,
        /// The exit code, `None` if killed by a signal.
        code: Option<i32>,
        /// Scrubbed stderr.
        stderr: String,
    },
}

impl From<CommandError> for Error {
    fn from(error: CommandError) -> Self {
        let kind = match &error {
            CommandError::NotFound { .. } => Kind::Unavailable,
            CommandError::TimedOut { .. } => Kind::DeadlineExceeded,
            CommandError::Spawn { .. } | CommandError::Failed { .. } => Kind::Internal,
        };
        Error::new(kind, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secret_args_and_stdin() {
        let cmd = Cmd::new("iscsiadm")
            .args(["-m", "node", "-v"])
            .secret_arg("hunter2")
            .secret_stdin("password=hunter2\n");
        let shown = cmd.redacted();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(shown, "iscsiadm -m node -v <redacted> <<< <redacted>");
        assert!(!format!("{cmd:?}").contains("hunter2"));
        assert_eq!(
            cmd.scrub("login failed for hunter2"),
            "login failed for <redacted>"
        );
    }

    #[test]
    fn quotes_hostile_arguments_for_display_only() {
        let cmd = Cmd::new("lvcreate")
            .arg("a b")
            .arg("$(rm -rf /)")
            .arg("it's");
        assert_eq!(cmd.redacted(), r"lvcreate 'a b' '$(rm -rf /)' 'it'\''s'");
        let values: Vec<_> = cmd.arg_values().collect();
        assert_eq!(
            values,
            ["a b", "$(rm -rf /)", "it's"],
            "argv itself is untouched"
        );
    }

    #[test]
    fn failing_output_becomes_an_internal_error_with_argv_and_stderr() {
        let out = Output {
            command: "lvs vg".into(),
            code: Some(5),
            stdout: String::new(),
            stderr: "Volume group not found\n".into(),
        };
        let err: Error = out.ok().unwrap_err().into();
        assert_eq!(err.kind(), Kind::Internal);
        assert_eq!(err.message(), "lvs vg: exit code 5: Volume group not found");
    }

    #[test]
    fn missing_tool_is_unavailable_and_timeout_is_deadline_exceeded() {
        let missing: Error = CommandError::NotFound {
            program: "targetcli".into(),
        }
        .into();
        assert_eq!(missing.kind(), Kind::Unavailable);
        let slow: Error = CommandError::TimedOut {
            command: "x".into(),
            timeout: Duration::from_secs(1),
        }
        .into();
        assert_eq!(slow.kind(), Kind::DeadlineExceeded);
    }
}
