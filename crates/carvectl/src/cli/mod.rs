//! The `carvectl` command line: global flags, the `identity`/`controller`/`node` groups, and
//! [`run`], the whole program as a testable function returning the exit status.
//!
//! Invariant: stdout carries only results (one JSON object per response with `--json`);
//! errors and `--verbose` request traces go to stderr; requests are only ever printed through
//! their redacting `Debug`.

/// `send!(controller, list_volumes)`: the closure [`Session::call`] sends a request with.
macro_rules! send {
    ($service:ident, $method:ident) => {
        |mut client, request| async move { client.$service.$method(request).await }
    };
}

/// `rpc!(session, controller, create_volume, request)`: send through [`Session::call`], `?` on
/// error.
macro_rules! rpc {
    ($session:expr, $service:ident, $method:ident, $request:expr) => {
        $session.call($request, send!($service, $method)).await?
    };
}

mod args;
mod controller;
mod identity;
mod node;
mod orphans;
mod pages;

use std::ffi::OsString;
use std::fmt::Debug;
use std::future::Future;
use std::io::Write;
use std::time::Duration;

use clap::{Parser, Subcommand};
use csi_common::endpoint::Endpoint;
use serde_json::Value;

use crate::connect::{Client, DEFAULT_CONNECT_TIMEOUT, connect_timeout};
use crate::json::ToJson;
use crate::render;
use crate::status::{self, EXIT_OK, EXIT_STATUS_HELP, EXIT_TRANSPORT, EXIT_USAGE};

/// The endpoint used when neither `--endpoint` nor `CSI_ENDPOINT` is set: the socket
/// csi-controller and csi-node serve by default and the Helm chart uses in both pods, so
/// `kubectl exec ... -- carvectl identity probe` needs no flag.
pub const DEFAULT_ENDPOINT: &str = "unix:///csi/csi.sock";

/// A CSI command-line client: calls one Identity, Controller or Node RPC and prints the answer.
#[derive(Parser)]
#[command(name = "carvectl", version, after_help = EXIT_STATUS_HELP, propagate_version = true)]
pub(crate) struct Cli {
    /// CSI endpoint: unix:///path/to/csi.sock or tcp://host:port
    #[arg(long, short = 'e', env = "CSI_ENDPOINT", default_value = DEFAULT_ENDPOINT, global = true, help_heading = "Global options", value_name = "EP", hide_env_values = true)]
    endpoint: Endpoint,
    /// Print each response as one JSON object on one line (field names as in the CSI proto)
    #[arg(long, global = true, help_heading = "Global options")]
    json: bool,
    /// Give up on connecting and on each RPC after this many seconds (0: connect within 10s,
    /// no RPC deadline)
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "SECS",
        default_value_t = 60
    )]
    timeout: u64,
    /// Print each request (secrets redacted) to stderr before sending it
    #[arg(long, short = 'v', global = true, help_heading = "Global options")]
    verbose: bool,
    #[command(subcommand)]
    group: Group,
}

#[derive(Subcommand)]
enum Group {
    /// Identity service: plugin info, capabilities, probe
    #[command(subcommand)]
    Identity(identity::IdentityCmd),
    /// Controller service: volumes, snapshots, attach/detach
    #[command(subcommand)]
    Controller(controller::ControllerCmd),
    /// Node service: stage/unstage, publish/unpublish, stats, expand, info
    #[command(subcommand)]
    Node(node::NodeCmd),
    /// Orphan report: volumes no PersistentVolume names, PersistentVolumes without their volume
    /// (ListVolumes against `kubectl get pv -o json`; read-only)
    Orphans(orphans::OrphansArgs),
}

/// Why a command failed; decides the exit status.
#[derive(Debug)]
pub(crate) enum CliError {
    /// Bad input found after clap parsing.
    Usage(String),
    /// No connection.
    Transport(String),
    /// The RPC returned an error status.
    Rpc(tonic::Status),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Transport(_) => EXIT_TRANSPORT,
            CliError::Rpc(status) => status::exit_code_for(status.code()),
        }
    }

    fn message(&self) -> String {
        match self {
            CliError::Usage(message) | CliError::Transport(message) => message.clone(),
            CliError::Rpc(status) => {
                let message = if status.message().is_empty() {
                    status.code().description()
                } else {
                    status.message()
                };
                format!("{}: {message}", status::code_name(status.code()))
            }
        }
    }
}

/// What a command prints, and its exit status when it succeeded.
pub(crate) struct Output {
    json: Value,
    human: String,
    status: u8,
}

impl Output {
    /// The response in both forms, human as the generic outline.
    fn of(response: &impl ToJson) -> Self {
        Output {
            json: response.to_json(),
            human: render::render_human(response),
            status: EXIT_OK,
        }
    }

    /// The response as JSON, with a custom human form (a confirmation line, a table).
    fn with_human(response: &impl ToJson, human: impl Into<String>) -> Self {
        let mut human = human.into();
        if !human.is_empty() && !human.ends_with('\n') {
            human.push('\n');
        }
        Output {
            json: response.to_json(),
            human,
            status: EXIT_OK,
        }
    }
}

/// One run's connection to the plugin and the settings every RPC of that run is sent with
/// (deadline, request trace). Commands send through [`Session::call`] (the `rpc!` macro).
pub(crate) struct Session<'a> {
    client: Client,
    timeout: Option<Duration>,
    trace: Option<&'a mut dyn Write>,
}

impl Session<'_> {
    /// Sends one RPC: traces the request (redacted `Debug`), applies the deadline, and returns
    /// the response message.
    async fn call<Req, Resp, F, Fut>(&mut self, request: Req, send: F) -> Result<Resp, CliError>
    where
        Req: Debug,
        F: FnOnce(Client, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        if let Some(trace) = self.trace.as_mut() {
            let _ = writeln!(trace, "> {request:?}");
        }
        let mut request = tonic::Request::new(request);
        let Some(timeout) = self.timeout else {
            let result = send(self.client.clone(), request).await;
            return result
                .map(tonic::Response::into_inner)
                .map_err(CliError::Rpc);
        };
        // grpc-timeout tells the plugin; tonic's client also enforces it, answering CANCELLED
        // "Timeout expired". The local timer is a backstop should neither side act.
        request.set_timeout(timeout);
        let started = std::time::Instant::now();
        let expired = || {
            tonic::Status::deadline_exceeded(format!("no answer within {timeout:?} (--timeout)"))
        };
        let result = tokio::time::timeout(
            timeout + Duration::from_millis(500),
            send(self.client.clone(), request),
        )
        .await
        .unwrap_or_else(|_| Err(expired()));
        match result {
            Ok(response) => Ok(response.into_inner()),
            Err(status)
                if status.code() == tonic::Code::Cancelled && started.elapsed() >= timeout =>
            {
                Err(CliError::Rpc(expired()))
            }
            Err(status) => Err(CliError::Rpc(status)),
        }
    }
}

/// Runs `carvectl` with `args` (including the program name), writing results to `stdout` and
/// errors to `stderr`; returns the exit status (see [`crate::status`]).
pub async fn run<I, T>(args: I, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let text = error.render().to_string();
            return if error.use_stderr() {
                let _ = write!(stderr, "{text}");
                EXIT_USAGE
            } else {
                let _ = write!(stdout, "{text}");
                EXIT_OK
            };
        }
    };
    let result = execute(cli, stdout, stderr).await;
    match result {
        Ok(status) => status,
        Err(error) => {
            let _ = writeln!(stderr, "error: {}", error.message());
            error.exit_code()
        }
    }
}

/// What [`run_captured`] saw: the exit status and both output streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// The exit status (see [`crate::status`]).
    pub code: u8,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

impl RunOutput {
    /// stdout parsed as the JSON object a `--json` run prints.
    pub fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.stdout)
    }
}

/// [`run`] with stdout and stderr captured; for tests and scripts written in Rust:
/// `run_captured(["carvectl", "--endpoint", ep, "--json", "node", "info"]).await.json()?`.
pub async fn run_captured<I, T>(args: I) -> RunOutput
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let code = run(args, &mut stdout, &mut stderr).await;
    RunOutput {
        code,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

async fn execute(cli: Cli, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Result<u8, CliError> {
    let timeout = (cli.timeout > 0).then(|| Duration::from_secs(cli.timeout));
    let channel = connect_timeout(&cli.endpoint, timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
        .await
        .map_err(|e| CliError::Transport(error_chain(&e)))?;
    let trace: Option<&mut dyn Write> = if cli.verbose { Some(stderr) } else { None };
    let mut session = Session {
        client: Client::from_channel(channel),
        timeout,
        trace,
    };
    let output = match cli.group {
        Group::Identity(cmd) => cmd.run(&mut session).await?,
        Group::Controller(cmd) => cmd.run(&mut session).await?,
        Group::Node(cmd) => cmd.run(&mut session).await?,
        Group::Orphans(cmd) => cmd.run(&mut session).await?,
    };
    // A closed stdout (`| head`) is not worth an error.
    let _ = if cli.json {
        writeln!(stdout, "{}", output.json)
    } else {
        write!(stdout, "{}", output.human)
    };
    let _ = stdout.flush();
    Ok(output.status)
}

/// An error and its sources, joined with `: `, skipping repeats.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    /// Every flag of every subcommand carries help text.
    #[test]
    fn every_flag_is_documented() {
        fn walk(command: &clap::Command, path: &str) {
            for arg in command.get_arguments() {
                if arg.get_id() == "help" || arg.get_id() == "version" {
                    continue;
                }
                let id = arg.get_id().as_str();
                assert!(arg.get_help().is_some(), "{path} --{id} has no help");
                // Flag order in a struct decides headings: keep each flag under the right one.
                let expected = match id {
                    "fs_type" | "block" | "mount_flags" | "mount_group" | "access_mode"
                    | "access_modes" => Some("Volume capability"),
                    "secrets" | "secrets_file" => Some("Secrets"),
                    "endpoint" | "json" | "timeout" | "verbose" => Some("Global options"),
                    _ => None,
                };
                assert_eq!(
                    arg.get_help_heading(),
                    expected,
                    "{path} --{id} under the wrong heading"
                );
            }
            for sub in command.get_subcommands() {
                assert!(
                    sub.get_about().is_some(),
                    "{path} {} has no about",
                    sub.get_name()
                );
                walk(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        walk(&Cli::command(), "carvectl");
    }

    #[test]
    fn errors_pick_exit_codes() {
        let rpc = CliError::Rpc(tonic::Status::not_found("no volume vol-9"));
        assert_eq!(rpc.exit_code(), 15);
        assert_eq!(rpc.message(), "NOT_FOUND: no volume vol-9");
        assert_eq!(
            CliError::Rpc(tonic::Status::new(tonic::Code::Internal, "")).message(),
            "INTERNAL: Internal error"
        );
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
        assert_eq!(CliError::Transport("x".into()).exit_code(), 1);
    }
}
