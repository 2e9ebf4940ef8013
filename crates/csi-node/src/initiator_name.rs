//! Reads this node's initiator IQN from open-iscsi's `initiatorname.iscsi`; a name not in the
//! normal form of iSCSI names (RFC 3722) is refused, since LIO compares it to the ACL exactly.

use csi_common::{Error, Result, ids::Iqn};
use std::path::Path;

/// Parses `InitiatorName=iqn...` (comments and blank lines ignored).
pub fn parse(text: &str) -> Result<Iqn> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix("InitiatorName="))
        .ok_or_else(|| Error::failed_precondition("no InitiatorName= line"))
        .and_then(|raw| {
            let iqn = Iqn::parse(raw)?;
            // The initiator logs in with the name as written, and LIO matches ACLs to it byte
            // for byte, while the controller grants the normalized name: a name not already in
            // normal form (RFC 3722: lower case) could never log in to its own ACL.
            if iqn.as_str() != raw.trim() {
                return Err(Error::failed_precondition(format!(
                    "InitiatorName {raw:?} is not in the normal form of iSCSI names (RFC 3722: \
                     lower case); write it as {iqn}"
                )));
            }
            Ok(iqn)
        })
}

/// Reads the initiator IQN from `path`.
pub fn read(path: &Path) -> Result<Iqn> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::failed_precondition(format!(
            "cannot read initiator name from {}: {e} (install open-iscsi and set InitiatorName)",
            path.display()
        ))
    })?;
    parse(&text).map_err(|e| e.context(path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debian_file() {
        let text = "## DO NOT EDIT OR REMOVE THIS FILE!\n## If you remove this file...\nInitiatorName=iqn.1993-08.org.debian:01:5a3e8a1b2c\n";
        assert_eq!(
            parse(text).unwrap().as_str(),
            "iqn.1993-08.org.debian:01:5a3e8a1b2c"
        );
    }

    #[test]
    fn refuses_missing_or_bad_names() {
        assert!(parse("# nothing\n").is_err());
        assert!(parse("InitiatorName=not an iqn\n").is_err());
        assert!(parse("#InitiatorName=iqn.2024-01.dev.carve:x\n").is_err());
        let upper = parse("InitiatorName=iqn.2024-01.dev.carve:Node1\n").unwrap_err();
        assert!(
            upper.to_string().contains("iqn.2024-01.dev.carve:node1"),
            "{upper}"
        );
    }
}
