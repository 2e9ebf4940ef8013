//! Helpers for the workspace's unit tests (compiled for tests and the `testing` feature only,
//! never into a release binary).

use std::collections::HashMap;

/// A CSI string map (parameters, contexts, secrets, topology segments) from literal pairs.
pub fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}
