//! CSI topology (spec.md, `message Topology` and `TopologyRequirement`): segment maps parsed
//! by the spec's grammar, and the one rule deciding whether a volume reachable from some
//! segments satisfies a requested topology.
//!
//! Invariants: every key is `[prefix/]name`, the name 1-63 characters of `[A-Za-z0-9._-]`
//! beginning and ending alphanumeric, the optional prefix a lower-case DNS name of at most 63
//! characters; every value 1-63 characters of the same set as a name; keys are
//! case-insensitive, so a map never holds two spellings of one key and matching ignores
//! case; one prefix for every key a plugin reports (spec: "If a key prefix is specified, it
//! MUST be identical across all topology keys returned by the SP"). A volume accessible from
//! `served` is accessible from a requested topology `wanted` when every segment of `served`
//! is in `wanted` (so `{zone: a}` serves `{region: r1, zone: a}`, but `{zone: a, rack: 1}`
//! does not serve all of `{zone: a}`).

use std::collections::{BTreeMap, HashMap};

/// The longest key name, key prefix or value, in characters (spec.md, `message Topology`).
pub const MAX_PART: usize = 63;

/// One topology: domain → segment (for example `topology.carve.dev/zone` → `a`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Segments(BTreeMap<String, String>);

impl Segments {
    /// Parses `key=value[,key=value...]`; the error names the part that breaks the grammar.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut segments = Self::default();
        for pair in raw.split(',') {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not key=value"))?;
            segments.insert(key, value)?;
        }
        Ok(segments)
    }

    /// Adds the `key=value` lines of `text` (a topology file: blank lines and lines starting
    /// with `#` are skipped); the error names the line.
    pub fn extend_from_lines(&mut self, text: &str) -> Result<(), String> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("line {}: {line:?} is not key=value", n + 1))?;
            self.insert(key.trim(), value.trim())
                .map_err(|e| format!("line {}: {e}", n + 1))?;
        }
        Ok(())
    }

    /// Adds `key` = `value`, both checked by the spec's grammar; a key already present (in
    /// any case) is refused.
    pub fn insert(&mut self, key: &str, value: &str) -> Result<(), String> {
        check_key(key)?;
        check_part(value).map_err(|e| format!("topology value {value:?}: {e}"))?;
        if self.0.keys().any(|k| k.eq_ignore_ascii_case(key)) {
            return Err(format!(
                "topology key {key:?} given twice (keys are case-insensitive)"
            ));
        }
        self.0.insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// Whether no segment is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The segments as the CSI map.
    pub fn to_map(&self) -> HashMap<String, String> {
        self.0.clone().into_iter().collect()
    }

    /// Whether a volume accessible from these segments is accessible from `wanted`: every
    /// segment here is in `wanted` (keys compared without case, values exactly).
    pub fn within(&self, wanted: &HashMap<String, String>) -> bool {
        self.0.iter().all(|(key, value)| {
            wanted
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case(key) && v == value)
        })
    }

    /// The key prefixes used (`""` for a key without one).
    fn prefixes(&self) -> impl Iterator<Item = &str> {
        self.0
            .keys()
            .map(|k| k.rsplit_once('/').map_or("", |(prefix, _)| prefix))
    }
}

impl std::fmt::Display for Segments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(f, "{{{}}}", pairs.join(","))
    }
}

/// Refuses a set of topologies whose keys do not share one prefix (or all have none).
pub fn check_one_prefix<'a>(all: impl IntoIterator<Item = &'a Segments>) -> Result<(), String> {
    let mut seen: Option<&str> = None;
    for prefix in all.into_iter().flat_map(Segments::prefixes) {
        match seen {
            Some(p) if !p.eq_ignore_ascii_case(prefix) => {
                return Err(format!(
                    "topology keys use two prefixes, {p:?} and {prefix:?}: the spec wants one"
                ));
            }
            _ => seen = Some(prefix),
        }
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = key
        .rsplit_once('/')
        .map_or((None, key), |(p, n)| (Some(p), n));
    check_part(name).map_err(|e| format!("topology key {key:?}: name {e}"))?;
    if let Some(prefix) = prefix {
        check_prefix(prefix).map_err(|e| format!("topology key {key:?}: prefix {e}"))?;
    }
    Ok(())
}

/// A key name or a value: 1-63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn check_part(part: &str) -> Result<(), &'static str> {
    let bytes = part.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_PART {
        return Err("must be 1 to 63 characters");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
    {
        return Err("may hold only letters, digits, '-', '_' and '.'");
    }
    if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return Err("must begin and end with a letter or digit");
    }
    Ok(())
}

/// A key prefix: a lower-case DNS name (RFC 1035 §2.3.1) of at most 63 characters.
fn check_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.is_empty() || prefix.len() > MAX_PART {
        return Err("must be 1 to 63 characters");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !prefix.split('.').all(label_ok) {
        return Err("must be a lower-case DNS name (labels of a-z, 0-9 and inner '-')");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::map;

    #[test]
    fn parses_keys_with_and_without_prefix() {
        let s = Segments::parse("topology.carve.dev/zone=a,rack=r-1").unwrap();
        assert_eq!(
            s.to_map(),
            map(&[("topology.carve.dev/zone", "a"), ("rack", "r-1")])
        );
        assert_eq!(s.to_string(), "{rack=r-1,topology.carve.dev/zone=a}");
    }

    #[test]
    fn refuses_what_the_grammar_forbids() {
        for bad in [
            "zone",
            "=a",
            "zone=",
            "-zone=a",
            "zone-=a",
            "zo ne=a",
            "zone=a b",
            "zone=-a",
            "Carve.dev/zone=a",
            "carve..dev/zone=a",
            "-carve.dev/zone=a",
            "/zone=a",
            "zone=a,ZONE=b",
        ] {
            assert!(Segments::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let long = "z".repeat(64);
        assert!(Segments::parse(&format!("{long}=a")).is_err());
        assert!(Segments::parse(&format!("zone={long}")).is_err());
        assert!(Segments::parse(&format!("{}=a", "z".repeat(63))).is_ok());
    }

    #[test]
    fn within_needs_every_served_segment_and_ignores_key_case() {
        let served = Segments::parse("zone=a").unwrap();
        assert!(served.within(&map(&[("zone", "a"), ("region", "r1")])));
        assert!(served.within(&map(&[("Zone", "a")])));
        assert!(!served.within(&map(&[("zone", "A")])));
        assert!(!served.within(&map(&[("zone", "b")])));
        assert!(!served.within(&map(&[("region", "r1")])));
        let rack = Segments::parse("zone=a,rack=1").unwrap();
        assert!(!rack.within(&map(&[("zone", "a")])));
    }

    #[test]
    fn a_topology_file_holds_one_pair_per_line() {
        let mut s = Segments::parse("rack=1").unwrap();
        s.extend_from_lines("# this node\n\ntopology.carve.dev/zone = a\n")
            .unwrap();
        assert_eq!(s.to_string(), "{rack=1,topology.carve.dev/zone=a}");
        let err = Segments::default()
            .extend_from_lines("zone=a\nzone b\n")
            .unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        assert!(s.extend_from_lines("RACK=2").is_err(), "a key twice");
    }

    #[test]
    fn one_prefix_for_every_key() {
        let a = Segments::parse("carve.dev/zone=a").unwrap();
        let b = Segments::parse("carve.dev/rack=1").unwrap();
        let c = Segments::parse("example.com/rack=1").unwrap();
        let bare = Segments::parse("rack=1").unwrap();
        assert!(check_one_prefix([&a, &b]).is_ok());
        assert!(check_one_prefix([&a, &c]).is_err());
        assert!(check_one_prefix([&a, &bare]).is_err());
        assert!(check_one_prefix([&bare]).is_ok());
    }
}
