//! Pure parsers for command-line inputs: `k=v` pairs and maps, sizes (`1Gi`, `100M`, `4096`),
//! access-mode names, and secrets files.
//!
//! Invariant: every parser rejects what it does not fully understand; nothing is silently
//! truncated, defaulted or overwritten (duplicate keys are errors).

use std::collections::HashMap;
use std::path::Path;

use csi_proto::v1::volume_capability::access_mode::Mode;

/// Why an input was refused. The message names the offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(message.into()))
}

/// Parses one `key=value` pair. The key must be non-empty; the value may be empty and may
/// itself contain `=` (the first `=` splits).
pub fn parse_kv(input: &str) -> Result<(String, String), ParseError> {
    match input.split_once('=') {
        None => fail(format!("{input:?} is not key=value (missing '=')")),
        Some(("", _)) => fail(format!("{input:?} has an empty key")),
        Some((key, value)) => Ok((key.to_string(), value.to_string())),
    }
}

/// Collects pairs into a map, refusing duplicate keys.
pub fn collect_map<I>(pairs: I) -> Result<HashMap<String, String>, ParseError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut map = HashMap::new();
    for (key, value) in pairs {
        if map.contains_key(&key) {
            return fail(format!("duplicate key {key:?}"));
        }
        map.insert(key, value);
    }
    Ok(map)
}

/// Parses `k=v` items (each as [`parse_kv`]) into a map, refusing duplicate keys.
pub fn parse_map<S: AsRef<str>>(items: &[S]) -> Result<HashMap<String, String>, ParseError> {
    let pairs = items
        .iter()
        .map(|item| parse_kv(item.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    collect_map(pairs)
}

/// Parses a comma-separated `k=v,k2=v2` list (a topology segment map). Empty items are refused.
pub fn parse_kv_list(input: &str) -> Result<HashMap<String, String>, ParseError> {
    let items: Vec<&str> = input.split(',').collect();
    if items.iter().any(|item| item.trim().is_empty()) {
        return fail(format!("{input:?} has an empty item (expected k=v,k2=v2)"));
    }
    parse_map(&items)
}

/// Parses a byte size: a plain count (`4096`), or a number with a decimal (`k`/`K`, `M`, `G`,
/// `T`, `P`, `E`: powers of 1000) or binary (`Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`, optionally
/// followed by `B`: powers of 1024) suffix. A fraction (`1.5Gi`) is accepted only when the
/// result is a whole number of bytes. The result fits CSI's `int64`.
pub fn parse_size(input: &str) -> Result<i64, ParseError> {
    let text = input.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let multiplier: u128 = match suffix {
        "" => 1,
        "k" | "K" => 1000,
        "M" => 1000u128.pow(2),
        "G" => 1000u128.pow(3),
        "T" => 1000u128.pow(4),
        "P" => 1000u128.pow(5),
        "E" => 1000u128.pow(6),
        "Ki" | "KiB" => 1 << 10,
        "Mi" | "MiB" => 1 << 20,
        "Gi" | "GiB" => 1 << 30,
        "Ti" | "TiB" => 1 << 40,
        "Pi" | "PiB" => 1 << 50,
        "Ei" | "EiB" => 1 << 60,
        _ => {
            return fail(format!(
                "{input:?}: unknown size suffix {suffix:?} (use e.g. 4096, 100M, 1G, 512Mi, 1Gi)"
            ));
        }
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || number.ends_with('.') || fraction.contains('.') {
        return fail(format!(
            "{input:?} is not a size (use e.g. 4096, 100M, 1G, 512Mi, 1Gi)"
        ));
    }
    let too_big = || {
        ParseError(format!(
            "{input:?} is too large (at most {} bytes)",
            i64::MAX
        ))
    };
    if fraction.len() > 18 {
        return fail(format!("{input:?} has too many decimal places"));
    }
    let whole: u128 = whole.parse().map_err(|_| too_big())?;
    let scale = 10u128.pow(u32::try_from(fraction.len()).unwrap_or(u32::MAX)); // at most 18
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| too_big())?
    };
    let scaled = whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(fraction))
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(too_big)?;
    if scaled % scale != 0 {
        return fail(format!("{input:?} is not a whole number of bytes"));
    }
    i64::try_from(scaled / scale).map_err(|_| too_big())
}

/// Every access mode with its command-line name, in spec order.
pub const ACCESS_MODES: [(&str, Mode); 7] = [
    ("single-node-writer", Mode::SingleNodeWriter),
    ("single-node-reader-only", Mode::SingleNodeReaderOnly),
    ("multi-node-reader-only", Mode::MultiNodeReaderOnly),
    ("multi-node-single-writer", Mode::MultiNodeSingleWriter),
    ("multi-node-multi-writer", Mode::MultiNodeMultiWriter),
    ("single-node-single-writer", Mode::SingleNodeSingleWriter),
    ("single-node-multi-writer", Mode::SingleNodeMultiWriter),
];

/// Parses an access mode by its kebab-case name (`single-node-writer`), its spec name
/// (`SINGLE_NODE_WRITER`), or a Kubernetes shorthand (`rwo`, `rox`, `rwx`, `rwop`).
pub fn parse_access_mode(input: &str) -> Result<Mode, ParseError> {
    let normalized = input.trim().to_ascii_lowercase().replace('_', "-");
    let shorthand = match normalized.as_str() {
        "rwo" => Some(Mode::SingleNodeWriter),
        "rox" => Some(Mode::MultiNodeReaderOnly),
        "rwx" => Some(Mode::MultiNodeMultiWriter),
        "rwop" => Some(Mode::SingleNodeSingleWriter),
        _ => None,
    };
    shorthand
        .or_else(|| {
            ACCESS_MODES
                .iter()
                .find(|(name, _)| *name == normalized)
                .map(|(_, mode)| *mode)
        })
        .ok_or_else(|| {
            let names: Vec<&str> = ACCESS_MODES.iter().map(|(name, _)| *name).collect();
            ParseError(format!(
                "unknown access mode {input:?} (one of: {})",
                names.join(", ")
            ))
        })
}

/// The command-line name of an access mode (inverse of [`parse_access_mode`]).
pub fn access_mode_name(mode: Mode) -> &'static str {
    ACCESS_MODES
        .iter()
        .find(|(_, m)| *m == mode)
        .map_or("unknown", |(name, _)| name)
}

/// Parses secrets text: either a JSON object of strings (`{"user":"admin"}`) or `key=value`
/// lines, where blank lines and lines starting with `#` are skipped. Duplicates are refused.
pub fn parse_secrets_text(text: &str) -> Result<HashMap<String, String>, ParseError> {
    if text.trim_start().starts_with('{') {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| ParseError(format!("secrets are not a JSON object of strings: {e}")))?;
        return object
            .into_iter()
            .map(|(key, value)| match value {
                serde_json::Value::String(value) => Ok((key, value)),
                _ => fail(format!("secret {key:?} is not a JSON string")),
            })
            .collect();
    }
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        // Never echo the line: it holds a secret.
        let pair = parse_kv(line)
            .map_err(|_| ParseError(format!("secrets line {} is not key=value", number + 1)))?;
        pairs.push(pair);
    }
    collect_map(pairs)
}

/// Reads a secrets file (see [`parse_secrets_text`]).
pub fn read_secrets_file(path: &Path) -> Result<HashMap<String, String>, ParseError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ParseError(format!("cannot read secrets file {}: {e}", path.display())))?;
    parse_secrets_text(&text)
        .map_err(|ParseError(e)| ParseError(format!("{}: {e}", path.display())))
}

/// Merges two maps, refusing keys present in both.
pub fn merge_maps(
    mut base: HashMap<String, String>,
    extra: HashMap<String, String>,
) -> Result<HashMap<String, String>, ParseError> {
    for (key, value) in extra {
        if base.contains_key(&key) {
            return fail(format!("duplicate key {key:?}"));
        }
        base.insert(key, value);
    }
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_pairs() {
        assert_eq!(parse_kv("a=b").unwrap(), ("a".into(), "b".into()));
        assert_eq!(parse_kv("a=").unwrap(), ("a".into(), String::new()));
        assert_eq!(parse_kv("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_kv("ab").unwrap_err().0.contains("missing '='"));
        assert!(parse_kv("=b").unwrap_err().0.contains("empty key"));
    }

    #[test]
    fn maps_reject_duplicates() {
        let map = parse_map(&["a=1", "b=2"]).unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map["b"], "2");
        assert!(
            parse_map(&["a=1", "a=2"])
                .unwrap_err()
                .0
                .contains("duplicate key \"a\"")
        );
        assert!(parse_map(&["a"]).is_err());
        assert!(parse_map::<&str>(&[]).unwrap().is_empty());
    }

    #[test]
    fn kv_lists() {
        let map = parse_kv_list("zone=a,rack=r1").unwrap();
        assert_eq!(map["zone"], "a");
        assert_eq!(map["rack"], "r1");
        assert!(parse_kv_list("zone=a,").is_err());
        assert!(parse_kv_list("zone=a,zone=b").is_err());
        assert!(parse_kv_list("").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("1Gi").unwrap(), 1 << 30);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("512Mi").unwrap(), 512 << 20);
        assert_eq!(parse_size("100M").unwrap(), 100_000_000);
        assert_eq!(parse_size("1G").unwrap(), 1_000_000_000);
        assert_eq!(parse_size("4k").unwrap(), 4000);
        assert_eq!(parse_size("4Ki").unwrap(), 4096);
        assert_eq!(parse_size("1.5Gi").unwrap(), 3 << 29);
        assert_eq!(parse_size("7Ei").unwrap(), 7 << 60);
        assert_eq!(parse_size(&i64::MAX.to_string()).unwrap(), i64::MAX);
    }

    #[test]
    fn sizes_reject_garbage_and_overflow() {
        for bad in [
            "", "Gi", "1Gb", "1 Gi", "-1", "1.5", "0.1", "1..5G", "1.G", ".5G", "1e9", "x", "1GG",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_size("8Ei").unwrap_err().0.contains("too large"));
        assert!(
            parse_size("9223372036854775808")
                .unwrap_err()
                .0
                .contains("too large")
        );
        assert!(parse_size("99999999999999999999999999999999999999999999").is_err());
        assert!(parse_size("1.0000000000000000001Gi").is_err());
    }

    #[test]
    fn access_modes() {
        for (name, mode) in ACCESS_MODES {
            assert_eq!(parse_access_mode(name).unwrap(), mode);
            assert_eq!(parse_access_mode(mode.as_str_name()).unwrap(), mode);
            assert_eq!(access_mode_name(mode), name);
        }
        assert_eq!(
            parse_access_mode("rwop").unwrap(),
            Mode::SingleNodeSingleWriter
        );
        assert_eq!(
            parse_access_mode("RWX").unwrap(),
            Mode::MultiNodeMultiWriter
        );
        let error = parse_access_mode("writer").unwrap_err();
        assert!(error.0.contains("single-node-writer"), "{error}");
        assert!(parse_access_mode("unknown").is_err());
    }

    #[test]
    fn secrets_text_lines_and_json() {
        let lines = parse_secrets_text("# comment\nuser=admin\n\npassword=p=w\r\n").unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines["password"], "p=w");
        let json = parse_secrets_text(r#" {"user": "admin", "password": "x"}"#).unwrap();
        assert_eq!(json["user"], "admin");
        assert!(parse_secrets_text(r#"{"n": 1}"#).is_err());
        assert!(parse_secrets_text("{broken").is_err());
        let error = parse_secrets_text("user=a\nhunter2\n").unwrap_err();
        assert_eq!(error.0, "secrets line 2 is not key=value");
        assert!(parse_secrets_text("a=1\na=2").is_err());
    }

    #[test]
    fn secrets_file_and_merge() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets");
        std::fs::write(&path, "user=admin\n").unwrap();
        let file = read_secrets_file(&path).unwrap();
        let merged = merge_maps(file.clone(), parse_map(&["token=t"]).unwrap()).unwrap();
        assert_eq!(merged.len(), 2);
        assert!(merge_maps(file, parse_map(&["user=x"]).unwrap()).is_err());
        assert!(
            read_secrets_file(&dir.path().join("missing"))
                .unwrap_err()
                .0
                .contains("cannot read")
        );
    }
}
