//! Generates Carve's agent API from `proto/carve/agent/v1/agent.proto`: messages, the `agent_server`
//! and `agent_client` modules, compiled by protox like CSI (no system `protoc`).
//!
//! The one message that carries secrets, `Chap`, gets no derived `Debug`: `src/agent.rs`
//! writes one that prints its keys and never a value.

use prost::Message;
use std::{fs, path::Path};

/// Messages whose `Debug` is written by hand because they hold secret values.
const SECRET_MESSAGES: &[&str] = &[".carve.agent.v1.Chap"];

/// Compiles the agent proto found under `proto_dir` into `out`.
pub fn compile(proto_dir: &Path, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let proto = proto_dir.join("carve/agent/v1/agent.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let descriptors = out.join("carve.agent.fds");
    let set = protox::compile([&proto], [proto_dir])?;
    fs::write(&descriptors, set.encode_to_vec())?;
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptors)
        .skip_protoc_run()
        .build_server(true)
        .build_client(true)
        .skip_debug(SECRET_MESSAGES.iter().copied())
        .compile_protos(&[&proto], &[&proto_dir.to_path_buf()])?;
    Ok(())
}
