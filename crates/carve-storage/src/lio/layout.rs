//! Paths of LIO objects under the configfs root, in rtslib-fb's layout, so that `targetcli ls`
//! shows and manages everything Carve creates.
//!
//! Invariants: one HBA directory per storage object (`core/iblock_<N>/<name>`, N the lowest
//! index no `core/*_<N>` uses, as rtslib picks it; sharing an HBA breaks `targetcli
//! clearconfig`); iSCSI objects under `iscsi/<target iqn>/tpgt_1`; every name that reaches a path
//! is a validated IQN, portal or Carve LV name, never `..` or a `/`.

use csi_common::{ids::Iqn, ids::sha256_hex};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// The one TPG Carve uses per target.
pub const TPG: &str = "tpgt_1";
/// The one LUN Carve uses per target.
pub const LUN0: &str = "lun_0";

/// Paths under one configfs root (`/sys/kernel/config/target`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The configfs root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `core/`: one directory per HBA.
    pub fn core(&self) -> PathBuf {
        self.root.join("core")
    }

    /// `iscsi/`: one directory per target.
    pub fn iscsi(&self) -> PathBuf {
        self.root.join("iscsi")
    }

    /// `core/iblock_<index>`.
    pub fn hba(&self, index: u32) -> PathBuf {
        self.core().join(format!("iblock_{index}"))
    }

    /// `iscsi/<iqn>`.
    pub fn target(&self, iqn: &str) -> PathBuf {
        self.iscsi().join(iqn)
    }

    /// `iscsi/<iqn>/tpgt_1`.
    pub fn tpg(&self, iqn: &str) -> PathBuf {
        self.target(iqn).join(TPG)
    }

    /// `iscsi/<iqn>/tpgt_1/lun/lun_0`.
    pub fn lun0(&self, iqn: &str) -> PathBuf {
        self.tpg(iqn).join("lun").join(LUN0)
    }

    /// `iscsi/<iqn>/tpgt_1/np/<ip:port>`.
    pub fn portal(&self, iqn: &str, portal: &SocketAddr) -> PathBuf {
        self.tpg(iqn).join("np").join(portal.to_string())
    }

    /// `iscsi/<iqn>/tpgt_1/acls/<initiator>`.
    pub fn acl(&self, iqn: &str, initiator: &str) -> PathBuf {
        self.tpg(iqn).join("acls").join(initiator)
    }

    /// `iscsi/<iqn>/tpgt_1/acls/<initiator>/lun_0`.
    pub fn mapped_lun0(&self, iqn: &str, initiator: &str) -> PathBuf {
        self.acl(iqn, initiator).join(LUN0)
    }
}

/// The name of the symlink inside a LUN or mapped-LUN directory (rtslib uses a random 10-hex
/// alias; any name works, Carve derives it so that reruns are predictable).
pub fn link_alias(target: &Iqn, what: &str) -> String {
    sha256_hex(format!("{target}/{what}").as_bytes())[..10].to_string()
}

/// The lowest HBA index not used by any `core/<plugin>_<N>` directory in `existing` names.
pub fn free_hba_index<'a>(existing: impl IntoIterator<Item = &'a str>) -> u32 {
    let used: std::collections::BTreeSet<u32> = existing
        .into_iter()
        .filter_map(|name| name.rsplit_once('_')?.1.parse().ok())
        .collect();
    (0..=u32::MAX).find(|i| !used.contains(i)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hba_index_is_the_lowest_free_one_across_plugins() {
        assert_eq!(free_hba_index([]), 0);
        assert_eq!(free_hba_index(["iblock_0", "fileio_1", "alua"]), 2);
        assert_eq!(free_hba_index(["iblock_1", "iblock_3"]), 0);
        assert_eq!(free_hba_index(["iblock_0", "iblock_2"]), 1);
    }

    #[test]
    fn paths_follow_rtslib() {
        let layout = Layout::new("/cfg");
        let iqn = "iqn.2024-01.dev.carve:csi-a-1";
        assert_eq!(layout.hba(3), Path::new("/cfg/core/iblock_3"));
        assert_eq!(
            layout.lun0(iqn),
            Path::new("/cfg/iscsi/iqn.2024-01.dev.carve:csi-a-1/tpgt_1/lun/lun_0")
        );
        let portal: SocketAddr = "[fd00::1]:3260".parse().unwrap();
        assert!(layout.portal(iqn, &portal).ends_with("np/[fd00::1]:3260"));
        assert_eq!(
            layout.mapped_lun0(iqn, "iqn.2024-01.x:n1"),
            Path::new(
                "/cfg/iscsi/iqn.2024-01.dev.carve:csi-a-1/tpgt_1/acls/iqn.2024-01.x:n1/lun_0"
            )
        );
    }
}
