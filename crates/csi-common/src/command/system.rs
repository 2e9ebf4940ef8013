//! The real [`CommandRunner`]: tokio processes in their own process group.
//!
//! Invariants: no shell; `LC_ALL=C` and `LANG=C`; stdin closed unless given; on timeout the
//! whole process group gets SIGKILL and is reaped; every run logs one debug line and records
//! `carve_command_duration_seconds{program}`.

use super::{BoxFuture, Cmd, CommandError, CommandRunner, Output};
use std::{process::Stdio, time::Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs commands on this machine, optionally behind a prefix such as `nsenter -t 1 -m --`.
#[derive(Debug, Clone, Default)]
pub struct SystemRunner {
    prefix: Vec<String>,
}

impl SystemRunner {
    /// A runner with no prefix.
    pub fn new() -> Self {
        Self::default()
    }

    /// A runner that runs `prefix... program args...`.
    pub fn with_prefix(prefix: Vec<String>) -> Self {
        Self { prefix }
    }

    /// The argv actually executed: prefix, program, args.
    fn argv<'a>(&'a self, cmd: &'a Cmd) -> (&'a str, Vec<&'a str>) {
        match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut args: Vec<&str> = rest.iter().map(String::as_str).collect();
                args.push(cmd.program());
                args.extend(cmd.arg_values());
                (first.as_str(), args)
            }
            None => (cmd.program(), cmd.arg_values().collect()),
        }
    }

    async fn run_inner(&self, cmd: &Cmd) -> Result<Output, CommandError> {
        let shown = if self.prefix.is_empty() {
            cmd.redacted()
        } else {
            format!("{} {}", self.prefix.join(" "), cmd.redacted())
        };
        let (program, args) = self.argv(cmd);
        let mut child = tokio::process::Command::new(program)
            .args(&args)
            .env("LC_ALL", "C")
            .env("LANG", "C")
            .stdin(if cmd.stdin_value().is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => CommandError::NotFound {
                    program: program.to_string(),
                },
                _ => CommandError::Spawn {
                    command: shown.clone(),
                    reason: e.to_string(),
                },
            })?;

        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let out_reader = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf).await;
            buf
        });
        let err_reader = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf).await;
            buf
        });
        if let (Some(input), Some(mut pipe)) = (cmd.stdin_value(), child.stdin.take()) {
            // A child that exits without reading stdin closes the pipe: not our error.
            let _ = pipe.write_all(input.as_bytes()).await;
            drop(pipe);
        }

        let status =
            if let Ok(status) = tokio::time::timeout(cmd.timeout_value(), child.wait()).await {
                status.map_err(|e| CommandError::Spawn {
                    command: shown.clone(),
                    reason: e.to_string(),
                })?
            } else {
                kill_group(child.id());
                let _ = child.wait().await;
                return Err(CommandError::TimedOut {
                    command: shown,
                    timeout: cmd.timeout_value(),
                });
            };
        let stdout = cmd.scrub(&String::from_utf8_lossy(
            &out_reader.await.unwrap_or_default(),
        ));
        let stderr = cmd.scrub(&String::from_utf8_lossy(
            &err_reader.await.unwrap_or_default(),
        ));
        let code = status.code();
        if code == Some(127) && !self.prefix.is_empty() && stderr.contains("No such file") {
            return Err(CommandError::NotFound {
                program: cmd.program().to_string(),
            });
        }
        Ok(Output {
            command: shown,
            code,
            stdout,
            stderr,
        })
    }
}

/// SIGKILL to the process group led by `pid` (a child spawned with `process_group(0)`);
/// nothing when `pid` is `None` (already reaped) or out of range. Errors (the group gone) are
/// ignored: the caller reaps the child next.
pub fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

impl CommandRunner for SystemRunner {
    fn run<'a>(&'a self, cmd: &'a Cmd) -> BoxFuture<'a, Result<Output, CommandError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.run_inner(cmd).await;
            let elapsed = started.elapsed();
            metrics::histogram!("carve_command_duration_seconds", "program" => program_label(cmd.program()))
                .record(elapsed.as_secs_f64());
            let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            match &result {
                Ok(out) if out.success() => {
                    tracing::debug!(program = cmd.program(), argv = %out.command, code = 0, duration_ms = ms, "ran command");
                }
                Ok(out) => tracing::debug!(
                    program = cmd.program(), argv = %out.command, code = ?out.code, duration_ms = ms,
                    stderr = %out.stderr.trim(), "ran command"
                ),
                Err(error) => {
                    tracing::debug!(program = cmd.program(), argv = %cmd.redacted(), duration_ms = ms, %error, "command failed");
                }
            }
            result
        })
    }
}

/// The metric label for a program: its file name, so paths do not explode cardinality.
fn program_label(program: &str) -> String {
    program.rsplit('/').next().unwrap_or(program).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn runs_argv_without_a_shell() {
        let runner = SystemRunner::new();
        // If a shell were involved, `$(echo pwned)` would be expanded.
        let out = runner
            .run(&Cmd::new("echo").arg("$(echo pwned);").arg("a b"))
            .await
            .unwrap();
        assert_eq!(out.stdout, "$(echo pwned); a b\n");
        assert!(out.success());
    }

    #[tokio::test]
    async fn sets_the_c_locale() {
        let out = SystemRunner::new().run(&Cmd::new("env")).await.unwrap();
        assert!(
            out.stdout.lines().any(|l| l == "LC_ALL=C"),
            "{}",
            out.stdout
        );
    }

    #[tokio::test]
    async fn timeout_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        // A child that spawns a grandchild; both must die with the group.
        let script = format!("sleep 3 & sleep 3; touch {}", marker.display());
        let cmd = Cmd::new("bash")
            .arg("-c")
            .arg(script)
            .timeout(Duration::from_millis(300));
        let started = Instant::now();
        let err = SystemRunner::new().run(&cmd).await.unwrap_err();
        assert!(matches!(err, CommandError::TimedOut { .. }), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "killed promptly"
        );
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!marker.exists(), "the command went on after its timeout");
    }

    #[tokio::test]
    async fn missing_program_is_not_found() {
        let err = SystemRunner::new()
            .run(&Cmd::new("carve-no-such-tool"))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            CommandError::NotFound {
                program: "carve-no-such-tool".into()
            }
        );
    }

    #[tokio::test]
    async fn prefix_runs_before_the_program() {
        let runner = SystemRunner::with_prefix(vec!["env".into(), "CARVE_PREFIXED=1".into()]);
        let out = runner.run(&Cmd::new("env")).await.unwrap();
        assert!(out.stdout.contains("CARVE_PREFIXED=1"));
        assert!(
            out.command.starts_with("env CARVE_PREFIXED=1 env"),
            "{}",
            out.command
        );
    }

    #[tokio::test]
    async fn secrets_are_fed_on_stdin_and_scrubbed_from_output() {
        let cmd = Cmd::new("cat").secret_stdin("the-password");
        let out = SystemRunner::new().run(&cmd).await.unwrap();
        assert_eq!(out.stdout, "<redacted>", "echoed secret is scrubbed");
        assert!(!out.command.contains("the-password"));
    }

    #[tokio::test]
    async fn nonzero_exit_is_an_output_not_an_error() {
        let out = SystemRunner::new().run(&Cmd::new("false")).await.unwrap();
        assert_eq!(out.code, Some(1));
        assert!(out.ok().is_err());
    }
}
