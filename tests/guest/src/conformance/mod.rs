//! Carve's own CSI conformance tier: tables of cases, each named after the spec.md row it checks
//! (`<rpc>__<condition>`), run against the real services over gRPC.
//!
//! [`stateless`] needs no storage (ids Carve never issued, missing fields, identity and
//! capabilities, the sidecars' view of NodeGetInfo); the in-process tier
//! (`tests/inproc/tests/conformance.rs`) runs it against the real routes with a command runner
//! that allows no tool at all, and the guest tier (`tests/guest/tests/conformance.rs`) runs it
//! against the real binaries, followed by [`lifecycle`] on real LVM, LIO and open-iscsi (mount
//! and block). A [`Table`] records every case and fails once, listing each case that answered
//! other than the spec wants.

mod controller;
pub mod lifecycle;
mod node;
mod sources;
pub mod stateless;

pub use lifecycle::lifecycle;
pub use stateless::stateless;

use csi_proto::v1::{
    ControllerGetCapabilitiesResponse, NodeGetCapabilitiesResponse,
    controller_service_capability::Type as CtrlCap, node_service_capability::Type as NodeCap,
};
use std::fmt::Write;
use tonic::{Code, Response, Status};

/// An id in no format Carve issues (the outside suite's kind of id).
pub const FOREIGN_VOLUME: &str = "fake-vol-id-3c6105c0-f";
/// A snapshot id in no format Carve issues.
pub const FOREIGN_SNAPSHOT: &str = "fake-snap-id-3c6105c0-f";
/// A volume id in Carve's format that names no volume.
pub const ABSENT_VOLUME: &str = "csi-absent-000000000000000000000000";

/// The results of a run of cases.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<(String, bool, String)>,
}

impl Table {
    /// Records that `case` answered `got` where the spec wants `want` (`Code::Ok`: success);
    /// returns the answer on success.
    pub fn code<T>(&mut self, case: &str, want: Code, got: Result<T, Status>) -> Option<T> {
        let (code, detail, value) = match got {
            Ok(v) => (Code::Ok, String::new(), Some(v)),
            Err(s) => (s.code(), s.message().to_string(), None),
        };
        self.check(
            case,
            code == want,
            format!("want {want:?}, got {code:?} {detail}"),
        );
        value
    }

    /// Records `case` with the outcome of a check on an answer.
    pub fn check(&mut self, case: &str, ok: bool, detail: impl Into<String>) {
        self.rows.push((case.to_string(), ok, detail.into()));
    }

    /// Records the cases `first` and `repeat`: `request` sent twice through `call`, each time
    /// wanting success (spec.md: "This operation MUST be idempotent"); both answers.
    pub async fn twice<R: Clone, T>(
        &mut self,
        [first, repeat]: [String; 2],
        request: R,
        mut call: impl AsyncFnMut(R) -> Result<T, Status>,
    ) -> [Option<T>; 2] {
        let answer = call(request.clone()).await;
        let first = self.code(&first, Code::Ok, answer);
        let answer = call(request).await;
        [first, self.code(&repeat, Code::Ok, answer)]
    }

    /// Records `<rpc>__answers` for a GetCapabilities `answer`, then a case `<rpc>__<name>` for
    /// each `(name, value)` of `wanted` (an RPC type's name and value): whether the RPC types
    /// the answer lists hold it (none without an answer).
    pub fn capabilities<A: RpcTypes>(
        &mut self,
        rpc: &str,
        answer: Result<Response<A>, Status>,
        wanted: &[(&str, i32)],
    ) {
        let answer = self.code(&format!("{rpc}__answers"), Code::Ok, answer);
        let listed = answer
            .map(|a| a.into_inner().rpc_types())
            .unwrap_or_default();
        for (name, value) in wanted {
            let case = format!("{rpc}__{}", name.to_lowercase());
            self.check(&case, listed.contains(value), format!("{listed:?}"));
        }
    }

    /// Whether every case so far answered as the spec wants.
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|(_, ok, _)| *ok)
    }

    /// The names of the cases run so far.
    pub fn cases(&self) -> Vec<&str> {
        self.rows.iter().map(|(c, _, _)| c.as_str()).collect()
    }

    /// Prints every case (`ok`/`FAIL`) and panics listing the failures, if any.
    pub fn finish(self, tier: &str) {
        let mut report = String::new();
        let mut failed = Vec::new();
        for (case, ok, detail) in &self.rows {
            let _ = writeln!(report, "{} {case}", if *ok { "ok  " } else { "FAIL" });
            if !ok {
                failed.push(format!("{case}: {detail}"));
            }
        }
        println!(
            "conformance ({tier}): {} cases, {} failed\n{report}",
            self.rows.len(),
            failed.len()
        );
        assert!(self.rows.len() > 1, "no case ran");
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }
}

/// A GetCapabilities answer of a service whose capabilities are all RPC types.
pub trait RpcTypes {
    /// The values of the RPC types it lists.
    fn rpc_types(self) -> Vec<i32>;
}

impl RpcTypes for ControllerGetCapabilitiesResponse {
    fn rpc_types(self) -> Vec<i32> {
        let types = self.capabilities.into_iter().filter_map(|c| c.r#type);
        types.map(|CtrlCap::Rpc(r)| r.r#type).collect()
    }
}

impl RpcTypes for NodeGetCapabilitiesResponse {
    fn rpc_types(self) -> Vec<i32> {
        let types = self.capabilities.into_iter().filter_map(|c| c.r#type);
        types.map(|NodeCap::Rpc(r)| r.r#type).collect()
    }
}
