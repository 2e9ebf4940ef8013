//! Helpers for the workspace's unit tests (compiled for tests and the `testing` feature only,
//! never into a release binary).

pub mod logs;
pub mod tls;

use crate::{
    command::{BoxFuture, Cmd},
    error::{Error, Kind},
    identity::Readiness,
};
use std::{collections::HashMap, fmt::Debug};

/// A CSI string map (parameters, contexts, secrets, topology segments) from literal pairs.
pub fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// The argv `cmd` runs, program first, secrets included (what the scripted runner matches).
pub fn argv(cmd: &Cmd) -> Vec<String> {
    std::iter::once(cmd.program().to_string())
        .chain(cmd.arg_values().map(str::to_string))
        .collect()
}

/// The error in `result`, which must be of `kind` (the assertion names the error).
///
/// # Panics
/// When `result` is `Ok`, or its error is of another kind.
#[track_caller]
pub fn refused<T: Debug>(result: Result<T, Error>, kind: Kind) -> Error {
    let err = result.unwrap_err();
    assert_eq!(err.kind(), kind, "{err}");
    err
}

/// A [`Readiness`] that is always ready.
#[derive(Debug)]
pub struct Ready;

impl Readiness for Ready {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}
