//! `carvectl`: a CSI v1.12 command-line client (like gocsi's `csc`) and the library behind it,
//! for operators, the demo script and integration tests.
//!
//! - [`connect`], [`connect_with_retry`], [`Client`]: a tonic channel to a unix or tcp endpoint
//!   and the Identity/Controller/Node clients over it.
//! - [`parse`]: `k=v` maps, sizes (`1Gi`, `100M`), access-mode names, secrets files.
//! - [`request`]: volume capabilities, capacity ranges, topologies, content sources.
//! - [`ToJson`] and [`render`]: the JSON and human forms of every response.
//! - [`orphans`]: the orphan report (volumes no PersistentVolume names).
//! - [`run`], [`run_captured`]: the whole command line as a function returning the exit
//!   status ([`status`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use carvectl::csi_proto::v1::{CreateVolumeRequest, volume_capability::access_mode::Mode};
//! use carvectl::{Client, Endpoint, parse, request};
//!
//! let endpoint: Endpoint = "unix:///csi/csi.sock".parse()?;
//! let client = Client::wait_until_ready(&endpoint, std::time::Duration::from_secs(30)).await?;
//! let mut controller = client.controller.clone();
//! let created = controller
//!     .create_volume(CreateVolumeRequest {
//!         name: "pvc-1".into(),
//!         capacity_range: request::capacity_range(parse::parse_size("1Gi")?, 0),
//!         volume_capabilities: vec![request::mount_capability(Mode::SingleNodeWriter, "ext4", &[], "")],
//!         ..Default::default()
//!     })
//!     .await?
//!     .into_inner();
//!
//! // Or drive the command line itself:
//! let out = carvectl::run_captured(["carvectl", "--endpoint", "unix:///csi/csi.sock", "--json", "node", "info"]).await;
//! assert_eq!(out.code, 0, "{}", out.stderr);
//! let node_id = out.json()?["node_id"].as_str().unwrap_or_default().to_string();
//! # let _ = (created, node_id);
//! # Ok(()) }
//! ```
//!
//! Invariant: secrets are never printed; requests are only shown through their redacting
//! `Debug` (`--verbose`), and responses (which carry none) are what gets rendered.

mod cli;
pub mod connect;
pub mod json;
pub mod orphans;
pub mod parse;
pub mod render;
pub mod request;
pub mod status;

pub use cli::{DEFAULT_ENDPOINT, RunOutput, run, run_captured};
pub use connect::{Client, ConnectError, connect, connect_timeout, connect_with_retry};
pub use csi_common::endpoint::Endpoint;
pub use csi_proto;
pub use json::ToJson;
pub use status::code_name;

/// Runs the command line with the process arguments on a current-thread runtime; for `main`.
pub fn main_with_process_args() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::from(status::EXIT_TRANSPORT);
        }
    };
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let code = runtime.block_on(run(std::env::args_os(), &mut stdout, &mut stderr));
    std::process::ExitCode::from(code)
}
