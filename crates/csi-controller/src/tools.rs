//! Start-up check that every external program the controller runs exists.
//!
//! Invariant: reports each missing program by name; never fails start-up (the controller
//! serves, Probe says not ready, RPCs say what is missing).

use std::path::{Path, PathBuf};

/// The programs every configuration needs: LVM's commands
/// ([`crate::lvm::argv::LVM_COMMANDS`]) and `blkdiscard` (util-linux), for wiping.
pub fn lvm_tools() -> impl Iterator<Item = &'static str> {
    crate::lvm::argv::LVM_COMMANDS
        .iter()
        .copied()
        .chain(["blkdiscard"])
}

/// Whether `program` resolves: a path that exists, or a name found on `PATH`.
pub fn exists(program: &Path) -> bool {
    if program.components().count() > 1 {
        return program.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The programs in `needed` that do not exist.
pub fn missing(needed: &[PathBuf]) -> Vec<String> {
    needed
        .iter()
        .filter(|p| !exists(p))
        .map(|p| p.display().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_on_path_and_by_path() {
        assert!(exists(Path::new("sh")));
        assert!(!exists(Path::new("carve-no-such-tool")));
        assert!(!exists(Path::new("/nonexistent/targetcli")));
        assert_eq!(
            missing(&["sh".into(), "carve-no-such-tool".into()]),
            ["carve-no-such-tool"]
        );
    }
}
