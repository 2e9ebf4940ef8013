//! The configfs backend's index of ACLs: for each initiator, the targets with an ACL for it
//! (what the attach limit counts), read from configfs once and then kept up to date as the
//! backend grants and revokes ACLs and removes targets, so a publish counts a node's volumes
//! without listing every target.
//!
//! Invariants: read and changed only under the backend's ACL-index lock, the read happening
//! whole inside one hold of it, so a change made meanwhile is either seen by the read or
//! applied to its result; it is a cache of configfs: the backend drops it after any failed ACL
//! change and on a resync (SIGHUP, `--lvm-resync-interval`), which is how ACLs made or removed
//! by hand are seen.

use super::{counted::is_dir, layout::Layout, state::entries};
use std::collections::{BTreeSet, HashMap};

/// Targets by initiator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclIndex {
    by_initiator: HashMap<String, BTreeSet<String>>,
}

impl AclIndex {
    /// Reads `iscsi/`: one listing of it and one of each target's `tpgt_1/acls`.
    pub fn read(layout: &Layout) -> Self {
        let mut index = Self::default();
        for iqn in entries(&layout.iscsi()) {
            for initiator in entries(&layout.tpg(&iqn).join("acls")) {
                if is_dir(&layout.acl(&iqn, &initiator)) {
                    index.granted(&iqn, &initiator);
                }
            }
        }
        index
    }

    /// The targets whose IQN starts with `prefix` that have an ACL for `initiator`.
    pub fn targets(&self, prefix: &str, initiator: &str) -> Vec<String> {
        self.by_initiator
            .get(initiator)
            .into_iter()
            .flatten()
            .filter(|t| t.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// `target` now has an ACL for `initiator`.
    pub fn granted(&mut self, target: &str, initiator: &str) {
        self.by_initiator
            .entry(initiator.to_string())
            .or_default()
            .insert(target.to_string());
    }

    /// `target` no longer has an ACL for `initiator`.
    pub fn revoked(&mut self, target: &str, initiator: &str) {
        if let Some(targets) = self.by_initiator.get_mut(initiator) {
            targets.remove(target);
        }
    }

    /// `target` is gone, its ACLs with it.
    pub fn target_removed(&mut self, target: &str) {
        for targets in self.by_initiator.values_mut() {
            targets.remove(target);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_targets_acls_and_follows_changes() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        for (target, initiator) in [
            ("iqn.x:a", "iqn.n:1"),
            ("iqn.x:b", "iqn.n:1"),
            ("iqn.x:b", "iqn.n:2"),
        ] {
            std::fs::create_dir_all(layout.acl(target, initiator)).unwrap();
        }
        let mut index = AclIndex::read(&layout);
        assert_eq!(index.targets("iqn.x:", "iqn.n:1"), ["iqn.x:a", "iqn.x:b"]);
        assert_eq!(index.targets("iqn.y:", "iqn.n:1"), Vec::<String>::new());
        index.revoked("iqn.x:a", "iqn.n:1");
        index.granted("iqn.x:c", "iqn.n:2");
        index.target_removed("iqn.x:b");
        assert_eq!(index.targets("iqn.x:", "iqn.n:1"), Vec::<String>::new());
        assert_eq!(index.targets("iqn.x:", "iqn.n:2"), ["iqn.x:c"]);
    }
}
