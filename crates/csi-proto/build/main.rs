//! Generates the CSI code from `proto/csi.proto` twice:
//! - `csi.v1.rs`: the real types, server and client. Messages with a `csi_secret` field get no
//!   derived `Debug`; `redacted_debug.rs` gives them one that masks those fields.
//! - `mirror/csi.v1.rs`: plain messages with derived `Debug`, used only to print a redacted copy,
//!   so every non-secret field still shows up in logs.
//!
//! Secret fields are found by reading the proto for `(csi_secret) = true`, so a new secret field
//! in a later spec version is covered without touching this file.
//!
//! The proto is compiled by `protox`, a pure-Rust protobuf compiler that carries Google's
//! well-known types (`descriptor.proto`, `timestamp.proto`, `wrappers.proto`) in the crate, into a
//! `FileDescriptorSet` that tonic-prost-build reads instead of running `protoc`. So the build needs
//! no system `protoc` and no `libprotobuf-dev`: the same inputs give the same code on any machine.
//!
//! The real types that a response reaches also derive `Serialize` ([`serialize`]), with the
//! generated `enum_json.rs` naming their enum values.
//!
//! Carve's own agent API (`proto/carve/agent/v1/agent.proto`) is compiled the same way by
//! [`agent`], into `carve.agent.v1.rs`.

mod agent;
mod serialize;

use std::{env, fmt::Write as _, fs, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let proto = proto_dir.join("csi.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let text = fs::read_to_string(&proto)?;
    let secrets = secret_fields(&text);
    assert!(
        !secrets.is_empty(),
        "no csi_secret fields found in {}",
        proto.display()
    );

    let out = PathBuf::from(env::var("OUT_DIR")?);
    let descriptors = out.join("csi.fds");
    let set = protox::compile([&proto], [&proto_dir])?;
    fs::write(&descriptors, set.encode_to_vec())?;

    let mut real = tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptors)
        .skip_protoc_run()
        .build_server(true)
        .build_client(true);
    for (message, _) in &secrets {
        real = real.skip_debug([format!(".csi.v1.{message}")]);
    }
    let secret_messages: Vec<&str> = secrets.iter().map(|(m, _)| m.as_str()).collect();
    let (real, enum_fns) = serialize::configure(real, &set, "csi.v1", &secret_messages);
    fs::write(
        out.join("enum_json.rs"),
        format!(
            "/// Enum fields by proto name, for `Serialize`.\npub(crate) mod enum_json {{\n{enum_fns}}}\n"
        ),
    )?;
    real.compile_protos(&[&proto], &[&proto_dir])?;

    let mirror = out.join("mirror");
    fs::create_dir_all(&mirror)?;
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptors)
        .skip_protoc_run()
        .build_server(false)
        .build_client(false)
        .out_dir(&mirror)
        .compile_protos(&[&proto], &[&proto_dir])?;

    let mut impls = String::new();
    for (message, fields) in &secrets {
        let redact = fields.iter().fold(String::new(), |mut out, f| {
            let _ = write!(out, "crate::redact_map(&mut copy.{f});");
            out
        });
        let _ = write!(
            impls,
            "impl ::core::fmt::Debug for {message} {{\n\
             fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {{\n\
             let mut copy = self.clone();\n{redact}\n\
             crate::mirror_debug::<mirror::{message}>(&copy, f)\n}}\n}}\n"
        );
        let _ = writeln!(impls, "impl crate::HasSecrets for {message} {{}}");
    }
    fs::write(out.join("redacted_debug.rs"), impls)?;
    agent::compile(&proto_dir, &out)
}

/// (message, [secret field names]) for every top-level message with a `csi_secret` field.
fn secret_fields(proto: &str) -> Vec<(String, Vec<String>)> {
    let mut found: Vec<(String, Vec<String>)> = Vec::new();
    let mut message = String::new();
    let mut pending = String::new();
    for line in proto.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("message ") {
            message = rest.trim_end_matches('{').trim().to_string();
            continue;
        }
        if line.starts_with("//") {
            continue;
        }
        // A field declaration may span lines; join until ';'.
        pending.push_str(line);
        pending.push(' ');
        if !line.ends_with(';') {
            continue;
        }
        let decl = std::mem::take(&mut pending);
        if decl.contains("(csi_secret) = true") {
            let name = decl
                .split('=')
                .next()
                .and_then(|lhs| lhs.split_whitespace().last())
                .expect("field name")
                .to_string();
            match found.iter_mut().find(|(m, _)| *m == message) {
                Some((_, fields)) => fields.push(name),
                None => found.push((message.clone(), vec![name])),
            }
        }
    }
    found
}
