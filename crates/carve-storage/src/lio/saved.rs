//! A [`Lio`] that tells the saveconfig writer about every export it changes, so whoever calls
//! a mutation (an RPC, reconciliation, a future caller) cannot forget to: the changed export is
//! read again by the next save ([`SaveHandle::request_volume`]).
//!
//! Invariants: the request follows the mutation, whether it succeeded or not (a call that
//! failed half-way may have changed LIO: a TPG disabled, ACLs removed, a LUN mapped); reads
//! pass straight through.

use super::{AclSpec, ExportSpec, Lio, LioState, saver::SaveHandle};
use csi_common::{Result, command::BoxFuture, ids::Iqn};
use std::sync::Arc;

/// `inner`, with every mutation reported to `saver` (which reads through `inner`).
#[derive(Debug)]
pub struct SavedLio {
    inner: Arc<dyn Lio>,
    saver: SaveHandle,
}

impl SavedLio {
    /// Wraps `inner`; `saver` should read LIO through `inner` itself.
    pub fn new(inner: Arc<dyn Lio>, saver: SaveHandle) -> Self {
        Self { inner, saver }
    }

    /// Runs `mutation`, then asks for `target` and `object` to be read again by the next save.
    async fn changing<T>(
        &self,
        target: &Iqn,
        object: &str,
        mutation: BoxFuture<'_, Result<T>>,
    ) -> Result<T> {
        let result = mutation.await;
        self.saver.request_volume(target, object);
        result
    }
}

impl Lio for SavedLio {
    fn state(&self) -> BoxFuture<'_, Result<LioState>> {
        self.inner.state()
    }

    fn volume_state<'a>(
        &'a self,
        target: &'a Iqn,
        storage_object: &'a str,
    ) -> BoxFuture<'a, Result<LioState>> {
        self.inner.volume_state(target, storage_object)
    }

    fn target_names(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        self.inner.target_names()
    }

    fn targets_with_acl<'a>(
        &'a self,
        prefix: &'a str,
        initiator: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        self.inner.targets_with_acl(prefix, initiator)
    }

    fn resync(&self) {
        self.inner.resync();
    }

    fn ensure_export<'a>(&'a self, spec: &'a ExportSpec) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.changing(
            &spec.target,
            &spec.storage_object,
            self.inner.ensure_export(spec),
        ))
    }

    fn remove_export<'a>(
        &'a self,
        target: &'a Iqn,
        storage_object: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.changing(
            target,
            storage_object,
            self.inner.remove_export(target, storage_object),
        ))
    }

    fn ensure_acl<'a>(&'a self, target: &'a Iqn, acl: &'a AclSpec) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.changing(target, "", self.inner.ensure_acl(target, acl)))
    }

    fn remove_acl<'a>(
        &'a self,
        target: &'a Iqn,
        initiator: &'a Iqn,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.changing(target, "", self.inner.remove_acl(target, initiator)))
    }
}
