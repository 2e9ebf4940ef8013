//! Pure matching of a udev property map to the disk a volume expects, and VPD 0x80 decoding.
//!
//! Invariants: a disk matches only if it is a whole disk (`DEVTYPE=disk`) whose `ID_PATH` names
//! exactly the expected portal, target and LUN (`ip-<address>:<port>-iscsi-<iqn>-lun-<n>`, the
//! address as udev's path_id writes it: from the session's `persistent_address`, an IPv6
//! address without brackets; compared as addresses, not as text); the serial is checked separately
//! ([`check_serial`]) and a mismatch is an error, never a skip, so a wrong disk is refused
//! loudly before any write.

use csi_common::{Error, Result, ids::Iqn};
use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
};

/// Which disk a volume is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Portal the session uses.
    pub portal: SocketAddr,
    /// Target IQN.
    pub target: Iqn,
    /// LUN.
    pub lun: u32,
    /// Unit serial (VPD 0x80) the disk must report.
    pub serial: String,
}

impl Expected {
    /// The udev `ID_PATH` (and by-path link name) of the disk. udev's path_id builds it as
    /// `ip-%s:%s-iscsi-%s-lun-%s` from the connection's `persistent_address` and
    /// `persistent_port` in sysfs: an IPv6 address appears without brackets
    /// (`ip-fd00::1:3260-...`), unlike a socket address's text form `[fd00::1]:3260`.
    pub fn id_path(&self) -> String {
        format!(
            "ip-{}:{}-iscsi-{}-lun-{}",
            self.portal.ip(),
            self.portal.port(),
            self.target,
            self.lun
        )
    }
}

/// Portal, target and LUN read back from an iSCSI `ID_PATH` (`None` for any other shape).
pub fn parse_id_path(id_path: &str) -> Option<(SocketAddr, &str, u32)> {
    let rest = id_path.strip_prefix("ip-")?;
    // Address and port hold no '-', so the first "-iscsi-" ends them (an IQN may hold dashes).
    let (address, rest) = rest.split_once("-iscsi-")?;
    let (target, lun) = rest.rsplit_once("-lun-")?;
    let (ip, port) = address.rsplit_once(':')?;
    let ip: IpAddr = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some((
        SocketAddr::new(ip, port.parse().ok()?),
        target,
        lun.parse().ok()?,
    ))
}

/// Whether the udev properties describe the expected whole disk.
pub fn matches(props: &HashMap<String, String>, expected: &Expected) -> bool {
    props.get("SUBSYSTEM").map(String::as_str) == Some("block")
        && props.get("DEVTYPE").map(String::as_str) == Some("disk")
        && props
            .get("ID_PATH")
            .is_some_and(|p| id_path_matches(p, expected))
}

/// Whether an `ID_PATH` names the expected portal (as an address), target and LUN.
pub fn id_path_matches(id_path: &str, expected: &Expected) -> bool {
    parse_id_path(id_path).is_some_and(|(portal, target, lun)| {
        portal == expected.portal && target == expected.target.as_str() && lun == expected.lun
    })
}

/// Compares serials as LIO reports them (case-insensitive, surrounding blanks ignored).
pub fn check_serial(found: &str, expected: &str, source: &str) -> Result<()> {
    if found.trim().eq_ignore_ascii_case(expected.trim()) {
        Ok(())
    } else {
        Err(Error::failed_precondition(format!(
            "disk serial from {source} is {found:?} but the volume's is {expected:?}: refusing to use this disk"
        )))
    }
}

/// The WWID multipath-tools gives the LUN LIO exports with unit serial `serial`: `3` (udev's
/// `scsi_id` prefix for an NAA designator) + the NAA 6 identifier LIO builds in VPD page 0x83
/// (`spc_gen_naa_6h_vendor_specific`, drivers/target/target_core_spc.c): `6`, the company id
/// `001405` (LIO's default OUI) and the first 25 hex digits of the unit serial (other
/// characters skipped), lower case. `None` when the serial has fewer than 25 hex digits (then
/// the identifier is padded in a way not worth guessing: such a disk is refused).
pub fn expected_wwid(serial: &str) -> Option<String> {
    let digits: String = serial
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(25)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (digits.len() == 25).then(|| format!("36001405{digits}"))
}

/// Checks the kernel's `device/wwid` of a path (`naa.6001405...`, from VPD page 0x83) against
/// the WWID expected for the volume ([`expected_wwid`]).
pub fn check_wwid(kernel: &str, expected: &str) -> Result<()> {
    let found = kernel
        .trim()
        .strip_prefix("naa.")
        .map(|naa| format!("3{}", naa.to_ascii_lowercase()));
    if found.as_deref() == Some(expected) {
        Ok(())
    } else {
        Err(Error::failed_precondition(format!(
            "disk WWID (VPD page 0x83) is {kernel:?} but the volume's is {expected:?}: refusing to use this disk"
        )))
    }
}

/// Decodes a VPD page 0x80 (unit serial number) as in sysfs `device/vpd_pg80`.
pub fn decode_vpd80(page: &[u8]) -> Result<String> {
    let bad = |why: &str| Error::internal(format!("malformed VPD page 0x80: {why}"));
    if page.len() < 4 || page[1] != 0x80 {
        return Err(bad("not a unit serial page"));
    }
    let len = u16::from_be_bytes([page[2], page[3]]) as usize;
    let body = page.get(4..4 + len).ok_or_else(|| bad("truncated"))?;
    let text = String::from_utf8_lossy(body);
    Ok(text
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string())
}

/// Parses `udevadm info --query=property` output (KEY=value lines).
pub fn parse_properties(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROPS: &str = include_str!("../../../../tests/fixtures/node/udev-properties-sda.txt");
    const SERIAL: &str = "5a0c1e00-0000-4000-8000-00000000c0de";

    #[test]
    fn the_wwid_is_derived_from_the_serial_as_lio_does() {
        // Captured in the lab guest for this serial: sysfs `device/wwid` (sysfs-scsi-device-sda.txt)
        // and udev `ID_SERIAL` (udev-properties-sda.txt), which multipath-tools uses as the WWID.
        assert!(PROPS.contains("ID_SERIAL=360014055a0c1e0000004000800000000"));
        let wwid = expected_wwid(SERIAL).unwrap();
        assert_eq!(wwid, "360014055a0c1e0000004000800000000");
        check_wwid("naa.60014055a0c1e0000004000800000000\n", &wwid).unwrap();
        check_wwid("naa.60014055A0C1E0000004000800000000", &wwid).unwrap();
        let err = check_wwid("naa.60014055a0c1e0000004000800000001", &wwid).unwrap_err();
        assert!(err.message().contains("refusing"), "{err}");
        assert!(check_wwid("t10.LIO-ORG", &wwid).is_err());
        assert_eq!(expected_wwid("short-1234"), None);
    }

    fn expected() -> Expected {
        Expected {
            portal: "127.0.0.1:3260".parse().unwrap(),
            target: Iqn::parse("iqn.2024-01.dev.carve:cap1").unwrap(),
            lun: 0,
            serial: SERIAL.into(),
        }
    }

    #[test]
    fn matcher_table() {
        let props = parse_properties(PROPS);
        assert!(matches(&props, &expected()), "the captured disk");
        let other = |f: &dyn Fn(&mut Expected)| {
            let mut e = expected();
            f(&mut e);
            matches(&props, &e)
        };
        assert!(!other(&|e| e.lun = 1));
        assert!(!other(&|e| e.portal = "127.0.0.2:3260".parse().unwrap()));
        assert!(!other(
            &|e| e.target = Iqn::parse("iqn.2024-01.dev.carve:cap10").unwrap()
        ));
        let mut partition = props.clone();
        partition.insert("DEVTYPE".into(), "partition".into());
        assert!(!matches(&partition, &expected()));
        let mut no_path = props.clone();
        no_path.remove("ID_PATH");
        assert!(!matches(&no_path, &expected()));
        assert_eq!(props.get("ID_SCSI_SERIAL").unwrap(), SERIAL);
    }

    #[test]
    fn ipv6_portals_match_the_by_path_name_udev_writes_without_brackets() {
        let mut v6 = expected();
        v6.portal = "[fd00::1]:3260".parse().unwrap();
        assert_eq!(
            v6.id_path(),
            "ip-fd00::1:3260-iscsi-iqn.2024-01.dev.carve:cap1-lun-0"
        );
        let mut props = parse_properties(PROPS);
        props.insert("ID_PATH".into(), v6.id_path());
        assert!(matches(&props, &v6));
        assert!(
            !matches(&props, &expected()),
            "the IPv4 portal is another path"
        );
        // The same address written uncompressed is the same portal.
        props.insert(
            "ID_PATH".into(),
            "ip-fd00:0:0:0:0:0:0:1:3260-iscsi-iqn.2024-01.dev.carve:cap1-lun-0".into(),
        );
        assert!(matches(&props, &v6));
        let mut other_port = v6.clone();
        other_port.portal = "[fd00::1]:3261".parse().unwrap();
        assert!(!matches(&props, &other_port));
        // A dash-laden IQN and a non-iSCSI path.
        assert_eq!(
            parse_id_path("ip-::1:3260-iscsi-iqn.2024-01.dev.carve:csi-v-1-lun-12"),
            Some((
                "[::1]:3260".parse().unwrap(),
                "iqn.2024-01.dev.carve:csi-v-1",
                12
            ))
        );
        assert_eq!(parse_id_path("pci-0000:00:04.0-scsi-0:0:0:0"), None);
        assert_eq!(parse_id_path("ip-[::1]-iscsi-x-lun-0"), None, "no port");
    }

    #[test]
    fn serial_checks() {
        check_serial(SERIAL, &SERIAL.to_uppercase(), "udev").unwrap();
        let err =
            check_serial("5a0c1e00-0000-4000-8000-000000000bad", SERIAL, "sysfs").unwrap_err();
        assert_eq!(err.kind(), csi_common::Kind::FailedPrecondition);
        assert!(check_serial("", SERIAL, "udev").is_err());
    }

    #[test]
    fn decodes_the_captured_vpd_page() {
        // od -c of sysfs vpd_pg80 in the guest: \0 200 \0 % then the serial and a NUL.
        let mut page = vec![0u8, 0x80, 0, 37];
        page.extend_from_slice(SERIAL.as_bytes());
        page.push(0);
        assert_eq!(decode_vpd80(&page).unwrap(), SERIAL);
        assert!(decode_vpd80(&page[..10]).is_err());
        assert!(decode_vpd80(&[0, 0x83, 0, 0]).is_err());
    }
}
