//! iSCSI names (RFC 3720 §3.2.6, RFC 3722, RFC 3980): parsed by their full grammar and
//! normalized, so the same node or target always has one spelling.
//!
//! Invariants: the result is the normalized form (RFC 3722's stringprep maps upper case to
//! lower case, so `IQN.2001-04.COM.Example:A` and `iqn.2001-04.com.example:a` are one name);
//! at most 223 bytes (RFC 3720 §3.2.6.1); only the ASCII subset of the iSCSI character set is
//! accepted: `a-z`, `0-9`, `-`, `.`, `:` (RFC 3720 §3.2.6.2; names using other Unicode
//! characters are refused rather than half-normalized, since Carve does not implement
//! stringprep's NFKC step); `iqn.` names have a real `yyyy-mm` date (month 01-12), a reversed
//! domain of non-empty labels that neither start nor end with `-`, and, when a `:` follows,
//! a non-empty unique part (RFC 3720 §3.2.6.3.1); `eui.` names have exactly 16 hex digits
//! (EUI-64, §3.2.6.3.2); `naa.` names 16 or 32 hex digits (RFC 3980 §2).

/// The longest iSCSI name, in bytes (RFC 3720 §3.2.6.1).
pub const MAX_BYTES: usize = 223;

/// Normalizes and validates the iSCSI name `raw`; the error says which rule it breaks.
pub fn normalize(raw: &str) -> Result<String, &'static str> {
    if raw.is_empty() || raw.len() > MAX_BYTES {
        return Err("must be 1 to 223 bytes");
    }
    if !raw.is_ascii() {
        return Err("only ASCII letters, digits, '.', '-' and ':' are accepted");
    }
    let name = raw.to_ascii_lowercase();
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".:-".contains(&b))
    {
        return Err("only letters, digits, '.', '-' and ':' are allowed");
    }
    if let Some(rest) = name.strip_prefix("iqn.") {
        iqn(rest)?;
    } else if let Some(hex) = name.strip_prefix("eui.") {
        if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("an eui. name has exactly 16 hex digits (EUI-64)");
        }
    } else if let Some(hex) = name.strip_prefix("naa.") {
        if !(hex.len() == 16 || hex.len() == 32) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("a naa. name has 16 or 32 hex digits");
        }
    } else {
        return Err("must start with iqn., eui. or naa.");
    }
    Ok(name)
}

/// `yyyy-mm.reversed.domain[:unique]`, already lower case.
fn iqn(rest: &str) -> Result<(), &'static str> {
    let date_bytes = rest.as_bytes();
    let date_ok = date_bytes.len() > 8
        && date_bytes[..4].iter().all(u8::is_ascii_digit)
        && date_bytes[4] == b'-'
        && date_bytes[5..7].iter().all(u8::is_ascii_digit)
        && date_bytes[7] == b'.';
    if !date_ok {
        return Err("expected iqn.yyyy-mm.reversed.domain[:name]");
    }
    let month: u8 = rest[5..7].parse().unwrap_or(0);
    if !(1..=12).contains(&month) {
        return Err("the month of an iqn. date is 01 to 12");
    }
    let after = &rest[8..];
    let (domain, unique) = match after.split_once(':') {
        Some((domain, unique)) => (domain, Some(unique)),
        None => (after, None),
    };
    let label_ok = |l: &str| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-');
    if !domain.split('.').all(label_ok) {
        return Err("the naming authority is a reversed domain name of non-empty labels");
    }
    if unique == Some("") {
        return Err("nothing follows the ':' of an iqn. name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_3720_examples_are_accepted() {
        for name in [
            "iqn.2001-04.com.example:storage:diskarrays-sn-a8675309",
            "iqn.2001-04.com.example",
            "iqn.2001-04.com.example:storage.tape1.sys1.xyz",
            "iqn.2001-04.com.example:storage.disk2.sys1.xyz",
            "iqn.1993-08.org.debian:01:5a3e8a1b2c",
            "eui.02004567a425678d",
            "naa.52004567ba64678d",
            "naa.62004567ba64678d0123456789abcdef",
        ] {
            assert_eq!(normalize(name).as_deref(), Ok(name), "{name}");
        }
    }

    #[test]
    fn upper_case_is_normalized_to_lower_case() {
        assert_eq!(
            normalize("IQN.2001-04.COM.Example:Storage").as_deref(),
            Ok("iqn.2001-04.com.example:storage")
        );
        assert_eq!(
            normalize("eui.02004567A425678D").as_deref(),
            Ok("eui.02004567a425678d")
        );
        assert_eq!(
            normalize("NAA.52004567BA64678D").as_deref(),
            Ok("naa.52004567ba64678d")
        );
    }

    /// Each name is refused, with a reason that says its `why`.
    fn assert_refused(cases: &[(&str, &str)]) {
        for (bad, why) in cases {
            let err = normalize(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn length_and_characters() {
        let long = format!("iqn.2001-04.com.example:{}", "a".repeat(MAX_BYTES));
        assert!(normalize(&long).unwrap_err().contains("223"));
        let max = format!("iqn.2001-04.com.example:{}", "a".repeat(MAX_BYTES - 24));
        assert_eq!(max.len(), MAX_BYTES);
        assert!(normalize(&max).is_ok());
        assert!(normalize("").is_err());
        assert_refused(&[
            ("iqn.2001-04.com.example:a b", "allowed"),
            ("iqn.2001-04.com.example:a;b", "allowed"),
            ("iqn.2001-04.com.example:a_b", "allowed"),
            ("iqn.2001-04.com.example:a/b", "allowed"),
        ]);
        assert!(
            normalize("iqn.2001-04.com.exämple")
                .unwrap_err()
                .contains("ASCII")
        );
    }

    #[test]
    fn iqn_date_domain_and_unique_part() {
        assert_refused(&[
            ("iqn.01-04.com.example", "yyyy-mm"),
            ("iqn.2001-4.com.example", "yyyy-mm"),
            ("iqn.2001-04", "yyyy-mm"),
            ("iqn.2001-04.", "yyyy-mm"),
            ("iqn.200104.com.example", "yyyy-mm"),
            ("iqn.2001-00.com.example", "01 to 12"),
            ("iqn.2001-13.com.example", "01 to 12"),
            ("iqn.2001-04.com..example", "labels"),
            ("iqn.2001-04.com.example.", "labels"),
            ("iqn.2001-04.-com.example", "labels"),
            ("iqn.2001-04.com.example-", "labels"),
            ("iqn.2001-04.:x", "labels"),
            ("iqn.2001-04.com.example:", "follows"),
        ]);
    }

    #[test]
    fn eui_and_naa_lengths_and_digits() {
        assert_refused(&[
            ("eui.02004567a425678", "hex digits"),
            ("eui.02004567a425678d0", "hex digits"),
            ("eui.02004567a425678g", "hex digits"),
            ("eui.", "hex digits"),
            ("naa.5200456", "hex digits"),
            ("naa.52004567ba64678d01", "hex digits"),
            ("naa.52004567ba64678z", "hex digits"),
        ]);
        assert_refused(&[
            ("node1", "must start"),
            ("iqn", "must start"),
            ("iqnx.2001-04.com.example", "must start"),
            ("eui02004567a425678d", "must start"),
        ]);
    }
}
