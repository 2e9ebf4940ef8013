//! Helpers the generated `Serialize` derives call (see `build/serialize.rs`): the JSON view of
//! responses that `carvectl --json` prints.
//!
//! Invariant: only messages a response reaches implement `Serialize`; no request does, so no
//! secret can be serialized (the build fails if a response ever reaches a secret field).

use serde::Serializer;

/// An enum value: its proto name (`SINGLE_NODE_WRITER`), or the number if this build does not
/// know it.
pub(crate) fn enumeration<S: Serializer>(
    value: i32,
    name: Option<&str>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match name {
        Some(name) => s.serialize_str(name),
        None => s.serialize_i32(value),
    }
}

/// A timestamp as RFC 3339 (`2025-12-01T00:00:00.123456789Z`); unset as `null`.
#[allow(clippy::ref_option)] // the signature serde's `serialize_with` calls
pub(crate) fn timestamp<S: Serializer>(
    value: &Option<prost_types::Timestamp>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(t) => s.collect_str(t),
        None => s.serialize_none(),
    }
}
