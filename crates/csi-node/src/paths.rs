//! Validation of paths the CO hands us (staging and target paths).
//!
//! Invariants: a path is absolute, at most 4096 bytes, has no `.`/`..`/empty components and no
//! NUL; its parent exists and resolves to itself (no symlink anywhere above it); the path itself,
//! if it exists, is not a symlink. Mounts then go through an `O_NOFOLLOW` fd (mount::sys), so a
//! symlink swapped in after this check is still refused. Every path a Node RPC takes, staging
//! path, publish target or volume path, must lie under the kubelet directory (`--kubelet-dir`):
//! [`confine`] for the paths an RPC acts on, [`confine_lookup`] for those it only asks about.

use csi_common::{Error, Result};
use std::path::{Component, Path, PathBuf};

/// Checks the shape of `raw` only (no filesystem access).
pub fn check_shape(raw: &str, what: &str) -> Result<PathBuf> {
    let bad = |why: &str| Error::invalid_argument(format!("{what} {raw:?} {why}"));
    if raw.is_empty() {
        return Err(Error::invalid_argument(format!("{what} is required")));
    }
    if raw.len() > 4096 || raw.contains('\0') {
        return Err(bad("is too long or contains NUL"));
    }
    let path = Path::new(raw);
    if !path.is_absolute() {
        return Err(bad("must be absolute"));
    }
    if raw
        .split('/')
        .skip(1)
        .any(|c| c.is_empty() || c == "." || c == "..")
        && raw != "/"
    {
        return Err(bad("must be normalized (no '.', '..' or '//')"));
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(bad("must not contain '..'"));
    }
    if path.parent().is_none() {
        return Err(bad("must not be the root directory"));
    }
    Ok(path.to_path_buf())
}

/// A path the CO asks about rather than hands over (`volume_path` of NodeGetVolumeStats and
/// NodeExpandVolume, `staging_target_path` of NodeExpandVolume): empty is `InvalidArgument` (a
/// missing field); any shape [`check_shape`] refuses (relative, not normalized, NUL, too long)
/// cannot hold a volume, so it is `Ok(None)`, which those RPCs answer NOT_FOUND (spec.md:
/// "volume does not exist on the specified volume_path"). Nothing is resolved against the
/// plugin's working directory.
pub fn lookup(raw: &str, what: &str) -> Result<Option<PathBuf>> {
    if raw.is_empty() {
        return Err(Error::invalid_argument(format!("{what} is required")));
    }
    Ok(check_shape(raw, what).ok())
}

/// Checks that `path` (already shape-checked) lies strictly under `root` (the kubelet directory),
/// the only place a CO puts staging paths and publish targets: a path elsewhere is refused,
/// `InvalidArgument` (the caller's bad field, spec.md's error scheme), before anything touches
/// it. Comparison is by whole components (`/var/lib/kubeletx` is not under `/var/lib/kubelet`)
/// and lexical: [`validate`] refuses symlinks above or at the path.
///
/// Used for the paths an RPC acts on: NodeStageVolume's and NodeUnstageVolume's
/// staging_target_path, NodePublishVolume's staging_target_path and target_path,
/// NodeUnpublishVolume's target_path. For the paths an RPC only asks about, see
/// [`confine_lookup`].
pub fn confine(path: &Path, root: &Path, what: &str) -> Result<()> {
    if path.starts_with(root) && path != root {
        return Ok(());
    }
    Err(Error::invalid_argument(format!(
        "{what} {} is not under the kubelet directory {}",
        path.display(),
        root.display()
    )))
}

/// [`confine`] for a path the CO asks about rather than hands over (the [`lookup`] paths:
/// `volume_path` and `staging_target_path` of NodeGetVolumeStats and NodeExpandVolume): no
/// Carve volume is staged or published outside the kubelet directory, so a path there holds no
/// volume and the answer is `NotFound` (spec.md, both RPCs' error tables: "volume does not
/// exist on the specified volume_path"), with [`confine`]'s message. This keeps one code for
/// every path that cannot be the volume's: malformed, missing, outside, or another volume's.
pub fn confine_lookup(path: &Path, root: &Path, what: &str) -> Result<()> {
    confine(path, root, what).map_err(|e| Error::not_found(e.message()))
}

/// Checks `raw` and the filesystem around it: no symlink above or at the path.
pub fn validate(raw: &str, what: &str) -> Result<PathBuf> {
    let path = check_shape(raw, what)?;
    let parent = path.parent().expect("checked: not the root");
    let real = std::fs::canonicalize(parent)
        .map_err(|e| Error::invalid_argument(format!("{what} {raw:?}: parent directory: {e}")))?;
    if real != parent {
        return Err(Error::invalid_argument(format!(
            "{what} {raw:?}: parent resolves to {} (symlinks are not allowed)",
            real.display()
        )));
    }
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::invalid_argument(format!(
            "{what} {raw:?} is a symlink"
        ))),
        _ => Ok(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_shapes_are_refused() {
        for bad in [
            "",
            "relative/x",
            "/a/../etc",
            "/a/./b",
            "/a//b",
            "/a/b/",
            "/",
            "/a\0b",
            "../x",
        ] {
            assert!(check_shape(bad, "target_path").is_err(), "{bad:?}");
        }
        assert!(check_shape(&format!("/{}", "a".repeat(5000)), "p").is_err());
        assert_eq!(
            check_shape("/var/lib/kubelet/pods/x/mount", "p").unwrap(),
            Path::new("/var/lib/kubelet/pods/x/mount")
        );
    }

    #[test]
    fn looked_up_paths_of_a_bad_shape_hold_no_volume() {
        assert!(lookup("", "volume_path").is_err(), "missing field");
        for none in ["some/path", "/a/../b", "/a//b", "/a\0b"] {
            assert_eq!(lookup(none, "volume_path").unwrap(), None, "{none:?}");
        }
        assert_eq!(
            lookup("/var/lib/kubelet/x", "volume_path").unwrap(),
            Some(PathBuf::from("/var/lib/kubelet/x"))
        );
    }

    #[test]
    fn only_paths_under_the_kubelet_directory() {
        let root = Path::new("/var/lib/kubelet");
        assert!(confine(Path::new("/var/lib/kubelet/pods/x/mount"), root, "p").is_ok());
        for bad in [
            "/var/lib/kubelet",
            "/var/lib/kubeletx/a",
            "/etc/passwd",
            "/var/lib",
        ] {
            let e = confine(Path::new(bad), root, "p").unwrap_err();
            assert_eq!(e.kind(), csi_common::Kind::InvalidArgument, "{bad}");
            let e = confine_lookup(Path::new(bad), root, "p").unwrap_err();
            assert_eq!(e.kind(), csi_common::Kind::NotFound, "{bad}");
            assert!(
                e.message().contains("not under the kubelet directory"),
                "{e}"
            );
        }
        assert!(confine_lookup(Path::new("/var/lib/kubelet/pods/x"), root, "p").is_ok());
    }

    #[test]
    fn symlinks_above_or_at_the_path_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("real/target")).unwrap();
        let s = |p: &str| root.join(p).to_string_lossy().into_owned();
        assert!(
            validate(&s("link/target2"), "p").is_err(),
            "symlinked parent"
        );
        assert!(
            validate(&s("real/target"), "p").is_err(),
            "symlink at the path"
        );
        assert!(
            validate(&s("missing/target"), "p").is_err(),
            "parent must exist"
        );
        assert_eq!(
            validate(&s("real/new"), "p").unwrap(),
            root.join("real/new")
        );
    }
}
