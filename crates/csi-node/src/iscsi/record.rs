//! The open-iscsi node record file: where it lives and how its auth, startup and (for a path of
//! a multipath map) replacement-timeout fields are written without any secret touching a
//! process argv.
//!
//! `iscsiadm -o update -n node.session.auth.password -v SECRET` would show the secret to every
//! user of the host through /proc. Instead `iscsiadm -m node -o new` creates the record and this
//! module rewrites its auth and startup lines in place: atomically (temp file in the same
//! directory + rename), mode 0600, with every other line kept. Verified with open-iscsi 2.1.8 in
//! the lab guest: a record without tpgt (`-o new`, no discovery) is the file
//! `nodes/<iqn>/<ip>,<port>`; newer layouts use `nodes/<iqn>/<ip>,<port>,<tpgt>/<iface>`.
//! Invariants: the record must name the expected target, portal and iface before it is touched;
//! the secret appears in no error and no log line.

use csi_common::{Error, Result, contract::Chap, ids::Iqn};
use std::{
    io::Write,
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

const AUTH_KEYS: [&str; 5] = [
    "node.session.auth.authmethod",
    "node.session.auth.username",
    "node.session.auth.password",
    "node.session.auth.username_in",
    "node.session.auth.password_in",
];
const END: &str = "# END RECORD";

fn key_of(line: &str) -> &str {
    line.split_once('=').map_or("", |(k, _)| k.trim())
}

/// The record key of the seconds a failed session waits to come back before failing its I/O.
pub const REPLACEMENT_TIMEOUT: &str = "node.session.timeo.replacement_timeout";

/// The record text with manual startup, exactly the auth lines for `chap` (None: no auth) and,
/// when given, `replacement_timeout` seconds (else the value iscsid.conf gave the record).
/// Lines are inserted before `# END RECORD` (appended if it is missing).
pub fn rewrite(text: &str, chap: Option<&Chap>, replacement_timeout: Option<u32>) -> String {
    let mut auth = Vec::new();
    match chap {
        None => auth.push(format!("{} = None", AUTH_KEYS[0])),
        Some(chap) => {
            auth.push(format!("{} = CHAP", AUTH_KEYS[0]));
            auth.push(format!("{} = {}", AUTH_KEYS[1], chap.username));
            auth.push(format!("{} = {}", AUTH_KEYS[2], chap.password));
            if let Some((user, pass)) = &chap.mutual {
                auth.push(format!("{} = {user}", AUTH_KEYS[3]));
                auth.push(format!("{} = {pass}", AUTH_KEYS[4]));
            }
        }
    }
    let mut out = Vec::new();
    let mut inserted = false;
    for line in text.lines() {
        let key = key_of(line);
        if AUTH_KEYS.contains(&key) {
            continue;
        }
        if line.trim() == END && !inserted {
            out.append(&mut auth);
            if let Some(t) = replacement_timeout {
                out.push(format!("{REPLACEMENT_TIMEOUT} = {t}"));
            }
            inserted = true;
        }
        match key {
            REPLACEMENT_TIMEOUT if replacement_timeout.is_some() => {}
            "node.startup" => out.push("node.startup = manual".to_string()),
            "node.conn[0].startup" => out.push("node.conn[0].startup = manual".to_string()),
            _ => out.push(line.to_string()),
        }
    }
    if !inserted {
        out.append(&mut auth);
        if let Some(t) = replacement_timeout {
            out.push(format!("{REPLACEMENT_TIMEOUT} = {t}"));
        }
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// The value of `key` in a record, if present.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| key_of(l) == key)
        .and_then(|l| l.split_once('='))
        .map(|(_, v)| v.trim())
}

/// Checks that a record describes `target` at `portal` through `iface`.
pub fn check_identity(text: &str, target: &Iqn, portal: SocketAddr, iface: &str) -> Result<()> {
    let port = portal.port().to_string();
    let address = portal.ip().to_string();
    let checks = [
        ("node.name", target.as_str()),
        ("node.conn[0].address", address.as_str()),
        ("node.conn[0].port", port.as_str()),
        ("iface.iscsi_ifacename", iface),
    ];
    for (key, want) in checks {
        if field(text, key) != Some(want) {
            return Err(Error::internal(format!(
                "node record for {target} at {portal}: {key} is {:?}, expected {want:?}",
                field(text, key)
            )));
        }
    }
    Ok(())
}

/// Finds the record file of `target` at `portal` for `iface` under `nodes_dir`.
pub fn locate(nodes_dir: &Path, target: &Iqn, portal: SocketAddr, iface: &str) -> Result<PathBuf> {
    let dir = nodes_dir.join(target.as_str());
    let stem = format!("{},{}", portal.ip(), portal.port());
    let flat = dir.join(&stem);
    if flat.is_file() {
        return Ok(flat);
    }
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| Error::internal(format!("node record directory {}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&format!("{stem},")) {
            let file = entry.path().join(iface);
            if file.is_file() {
                return Ok(file);
            }
        }
    }
    Err(Error::internal(format!(
        "no node record for {target} at {portal} (iface {iface}) under {}",
        dir.display()
    )))
}

/// `(target, portal)` of every node record under `nodes_dir` for `iface`, in both layouts: the
/// file `<iqn>/<ip>,<port>` (its `iface.iscsi_ifacename` names the iface, `default` when
/// absent) and `<iqn>/<ip>,<port>,<tpgt>/<iface>`. An IPv6 address is written without brackets.
pub fn list(nodes_dir: &Path, iface: &str) -> Vec<(String, SocketAddr)> {
    let names = |dir: &Path| -> Vec<(String, PathBuf)> {
        let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        out.sort();
        out
    };
    let mut found = Vec::new();
    for (target, dir) in names(nodes_dir) {
        for (name, path) in names(&dir) {
            let mut parts = name.split(',');
            let (Some(ip), Some(port)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(ip), Ok(port)) = (ip.parse::<std::net::IpAddr>(), port.parse::<u16>()) else {
                continue;
            };
            let ours = if path.is_dir() {
                path.join(iface).is_file()
            } else {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                field(&text, "iface.iscsi_ifacename").unwrap_or("default") == iface
            };
            if ours {
                found.push((target.clone(), SocketAddr::new(ip, port)));
            }
        }
    }
    found
}

/// Rewrites the record at `path` for `chap` atomically with mode 0600.
pub fn write_auth(
    path: &Path,
    target: &Iqn,
    portal: SocketAddr,
    iface: &str,
    chap: Option<&Chap>,
    replacement_timeout: Option<u32>,
) -> Result<()> {
    let what = || format!("node record {}", path.display());
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::internal(format!("{}: {e}", what())))?;
    check_identity(&text, target, portal, iface)?;
    let dir = path.parent().ok_or_else(|| Error::internal(what()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".carve-record")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| Error::internal(format!("{}: temp file: {e}", what())))?;
    tmp.write_all(rewrite(&text, chap, replacement_timeout).as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::internal(format!("{}: write: {e}", what())))?;
    tmp.persist(path)
        .map_err(|e| Error::internal(format!("{}: rename: {}", what(), e.error)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_records_of_one_iface_in_both_layouts() {
        let nodes = tempfile::tempdir().unwrap();
        let n = nodes.path();
        let t1 = n.join("iqn.2024-01.dev.carve:csi-a");
        std::fs::create_dir_all(&t1).unwrap();
        std::fs::write(t1.join("127.0.0.1,3260"), DEFAULT).unwrap();
        std::fs::create_dir_all(t1.join("::1,3260,1")).unwrap();
        std::fs::write(t1.join("::1,3260,1/default"), DEFAULT).unwrap();
        std::fs::create_dir_all(t1.join("127.0.0.2,3260,1")).unwrap();
        std::fs::write(t1.join("127.0.0.2,3260,1/node2"), DEFAULT).unwrap();
        std::fs::write(t1.join("garbage"), "").unwrap();
        let mut listed = list(n, "default");
        listed.sort();
        assert_eq!(
            listed,
            [
                (
                    "iqn.2024-01.dev.carve:csi-a".to_string(),
                    "127.0.0.1:3260".parse().unwrap()
                ),
                (
                    "iqn.2024-01.dev.carve:csi-a".to_string(),
                    "[::1]:3260".parse().unwrap()
                ),
            ]
        );
        assert_eq!(
            list(n, "node2"),
            [(
                "iqn.2024-01.dev.carve:csi-a".to_string(),
                "127.0.0.2:3260".parse().unwrap()
            )]
        );
        assert!(list(&n.join("missing"), "default").is_empty());
    }

    const DEFAULT: &str = include_str!("../../../../tests/fixtures/node/node-record-default.txt");
    const SECRET: &str = "chap-secret-0123";

    fn chap(mutual: bool) -> Chap {
        Chap {
            username: "chapuser".into(),
            password: SECRET.into(),
            mutual: mutual.then(|| ("tgtuser".into(), "mutual-secret-99".into())),
        }
    }

    fn target() -> (Iqn, SocketAddr) {
        (
            Iqn::parse("iqn.2024-01.dev.carve:cap1").unwrap(),
            "127.0.0.1:3260".parse().unwrap(),
        )
    }

    #[test]
    fn chap_lines_replace_the_default_auth_before_the_end_marker() {
        let text = rewrite(DEFAULT, Some(&chap(true)), None);
        assert_eq!(field(&text, "node.session.auth.authmethod"), Some("CHAP"));
        assert_eq!(field(&text, "node.session.auth.username"), Some("chapuser"));
        assert_eq!(field(&text, "node.session.auth.password"), Some(SECRET));
        assert_eq!(
            field(&text, "node.session.auth.username_in"),
            Some("tgtuser")
        );
        assert_eq!(
            field(&text, "node.session.auth.chap_algs"),
            Some("MD5"),
            "kept"
        );
        assert_eq!(text.matches("authmethod").count(), 1);
        assert!(text.trim_end().ends_with(END));
        assert_eq!(field(&text, "node.startup"), Some("manual"));
        assert_eq!(field(&text, "node.conn[0].startup"), Some("manual"));
        // Removing CHAP again leaves no secret behind.
        let plain = rewrite(&text, None, None);
        assert!(!plain.contains(SECRET) && !plain.contains("mutual-secret"));
        assert_eq!(field(&plain, "node.session.auth.authmethod"), Some("None"));
        assert_eq!(
            plain.lines().count(),
            DEFAULT.lines().count(),
            "chap_algs kept, authmethod rewritten, nothing else lost"
        );
        let path = rewrite(&plain, None, Some(5));
        assert_eq!(field(&path, REPLACEMENT_TIMEOUT), Some("5"));
        assert_eq!(path.matches(REPLACEMENT_TIMEOUT).count(), 1);
        assert!(path.trim_end().ends_with(END));
        assert_eq!(
            field(&rewrite(&path, None, None), REPLACEMENT_TIMEOUT),
            Some("5"),
            "None keeps what the record says"
        );
    }

    #[test]
    fn identity_is_checked_and_records_are_found_in_both_layouts() {
        let (iqn, portal) = target();
        check_identity(DEFAULT, &iqn, portal, "default").unwrap();
        assert!(check_identity(DEFAULT, &iqn, portal, "node2").is_err());
        let other = Iqn::parse("iqn.2024-01.dev.carve:other").unwrap();
        assert!(check_identity(DEFAULT, &other, portal, "default").is_err());

        let dir = tempfile::tempdir().unwrap();
        let tdir = dir.path().join(iqn.as_str());
        std::fs::create_dir_all(tdir.join("127.0.0.1,3260,1")).unwrap();
        assert!(locate(dir.path(), &iqn, portal, "default").is_err());
        std::fs::write(tdir.join("127.0.0.1,3260,1/default"), DEFAULT).unwrap();
        assert_eq!(
            locate(dir.path(), &iqn, portal, "default").unwrap(),
            tdir.join("127.0.0.1,3260,1/default")
        );
        std::fs::write(tdir.join("127.0.0.1,3260"), DEFAULT).unwrap();
        let flat = locate(dir.path(), &iqn, portal, "default").unwrap();
        assert_eq!(flat, tdir.join("127.0.0.1,3260"));

        write_auth(&flat, &iqn, portal, "default", Some(&chap(false)), None).unwrap();
        let written = std::fs::read_to_string(&flat).unwrap();
        assert_eq!(field(&written, "node.session.auth.password"), Some(SECRET));
        let mode = std::fs::metadata(&flat).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = write_auth(&flat, &iqn, portal, "node2", Some(&chap(false)), None).unwrap_err();
        assert!(!err.message().contains(SECRET), "{err}");
    }
}
