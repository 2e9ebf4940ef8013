//! The agents file (`--agents FILE`, `CARVE_AGENTS`): the storage hosts a controller places
//! volumes on, each behind its carve-agent. JSON (serde_json, already the workspace's):
//!
//! ```json
//! {
//!   "agents": [
//!     { "name": "store-a", "address": "https://store-a.example:9811",
//!       "segments": { "topology.carve.dev/zone": "a" }, "pools": ["vg0"], "default": true },
//!     { "name": "store-b", "address": "https://192.0.2.11:9811",
//!       "serverName": "store-b.example",
//!       "segments": { "topology.carve.dev/zone": "b" }, "pools": ["vg0"] }
//!   ]
//! }
//! ```
//!
//! `name` goes into every id of that host's volumes ([`csi_common::placed`]) and StorageClass
//! `storageHosts` lists it; `address` is `https://HOST:PORT`; the agent's certificate must name
//! `serverName` (default: `HOST`); `segments` is the one topology its volumes are reachable from
//! (none: from everywhere); `pools` the volume group it serves (StorageClass `pool`), exactly
//! one, since carve-agent drives one; `default` (at most one agent) takes the ids without a host
//! (issued by a single-host controller before: that host, now behind its agent).
//!
//! Invariants: unknown fields, duplicate names, one address under two names (after normalising
//! it: [`same_endpoint`]), bad grammar, topology keys of two prefixes and a file over
//! [`MAX_FILE_BYTES`] are start-up errors naming the file, the agent and the field; nothing read
//! here is a secret.

use csi_common::{Error, Result, placed, topology::Segments};
use serde::Deserialize;
use std::{collections::BTreeMap, path::Path};

/// The largest agents file read, in bytes (1 MiB: a few thousand agents' entries).
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// One agent, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// Its name (ids, `storageHosts`).
    pub name: String,
    /// `host:port` to connect to.
    pub address: String,
    /// The name its certificate must carry.
    pub server_name: String,
    /// The topology its volumes are reachable from (empty: everywhere).
    pub segments: Segments,
    /// The volume group it serves.
    pub pool: String,
    /// Whether ids without a host name are its.
    pub default: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    agents: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Entry {
    name: String,
    address: String,
    #[serde(default)]
    server_name: Option<String>,
    #[serde(default)]
    segments: BTreeMap<String, String>,
    pools: Vec<String>,
    #[serde(default)]
    default: bool,
}

/// Reads and checks the agents file at `path` (at most [`MAX_FILE_BYTES`]); errors name the
/// file.
pub fn load(path: &Path) -> Result<Vec<AgentConfig>> {
    use std::io::Read;
    let named = |e: String| Error::invalid_argument(format!("agents file {}: {e}", path.display()));
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES as u64 + 1).read_to_string(&mut text))
        .map_err(|e| named(e.to_string()))?;
    if text.len() > MAX_FILE_BYTES {
        return Err(named(format!(
            "larger than {MAX_FILE_BYTES} bytes (1 MiB), the most an agents file may hold"
        )));
    }
    parse(&text).map_err(|e| e.context(format!("agents file {}", path.display())))
}

/// Parses and checks the agents file's text.
pub fn parse(text: &str) -> Result<Vec<AgentConfig>> {
    let file: File =
        serde_json::from_str(text).map_err(|e| Error::invalid_argument(e.to_string()))?;
    if file.agents.is_empty() {
        return Err(Error::invalid_argument("no agents listed"));
    }
    let mut agents: Vec<AgentConfig> = Vec::new();
    for entry in file.agents {
        let name = entry.name.clone();
        let agent =
            check(entry).map_err(|e| Error::invalid_argument(format!("agent {name:?}: {e}")))?;
        if agents.iter().any(|a| a.name == agent.name) {
            return Err(Error::invalid_argument(format!(
                "agent {name:?} listed twice"
            )));
        }
        if let Some(same) = agents
            .iter()
            .find(|a| same_endpoint(&a.address, &agent.address))
        {
            return Err(Error::invalid_argument(format!(
                "agents {:?} and {name:?} have the same address {}: one storage host under two names would list its volumes twice",
                same.name, agent.address
            )));
        }
        agents.push(agent);
    }
    if agents.iter().filter(|a| a.default).count() > 1 {
        return Err(Error::invalid_argument(
            "more than one agent is marked default",
        ));
    }
    csi_common::topology::check_one_prefix(agents.iter().map(|a| &a.segments))
        .map_err(Error::invalid_argument)?;
    Ok(agents)
}

fn check(entry: Entry) -> Result<AgentConfig, String> {
    placed::check_agent(&entry.name)?;
    let (address, host) = split_url(&entry.address)?;
    let mut segments = Segments::default();
    for (key, value) in &entry.segments {
        segments
            .insert(key, value)
            .map_err(|e| format!("segments: {e}"))?;
    }
    let [pool] = entry.pools.as_slice() else {
        return Err(format!(
            "pools must list exactly one volume group (carve-agent serves one), not {}",
            entry.pools.len()
        ));
    };
    placed::check_vg(pool).map_err(|e| format!("pools: {e}"))?;
    let server_name = entry.server_name.unwrap_or(host);
    if server_name.is_empty() {
        return Err("serverName must not be empty".into());
    }
    Ok(AgentConfig {
        name: entry.name,
        address,
        server_name,
        segments,
        pool: pool.clone(),
        default: entry.default,
    })
}

/// Whether two checked addresses (`HOST:PORT`, as [`split_url`] leaves them) reach one
/// endpoint: the same port number (`01` is `1`) and the same host, an IP address compared as an
/// address (`[2001:DB8:0::1]` is `[2001:db8::1]`), a DNS name without regard to case or a
/// trailing `.`.
fn same_endpoint(a: &str, b: &str) -> bool {
    fn key(address: &str) -> Option<(String, u16)> {
        let (host, port) = address.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => host.trim_end_matches('.').to_ascii_lowercase(),
        };
        Some((host, port.parse().ok()?))
    }
    key(a).is_some_and(|k| Some(k) == key(b))
}

/// `https://HOST:PORT` (an optional trailing `/`) → (`HOST:PORT`, `HOST` without IPv6 brackets).
fn split_url(url: &str) -> Result<(String, String), String> {
    let bad = |why: &str| format!("address {url:?} {why}");
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| bad("must begin with https:// (agents speak only mutual TLS)"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) || authority.is_empty() {
        return Err(bad("must be https://HOST:PORT, without a path or user"));
    }
    let (host, port) = authority
        .rsplit_once(':')
        .filter(|(host, _)| !host.is_empty())
        .ok_or_else(|| bad("must name a port (https://HOST:PORT)"))?;
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| bad("has no valid port"))?;
    let bare = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .filter(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
            .ok_or_else(|| bad("has a malformed IPv6 address"))?,
        None if host.contains(':') => return Err(bad("must bracket an IPv6 address")),
        None => host,
    };
    Ok((authority.to_string(), bare.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"{"agents": [
        {"name": "store-a", "address": "https://store-a.example:9811",
         "segments": {"topology.carve.dev/zone": "a"}, "pools": ["vg0"], "default": true},
        {"name": "store-b", "address": "https://[2001:db8::1]:9811/", "serverName": "b.example",
         "segments": {"topology.carve.dev/zone": "b"}, "pools": ["data"]}
    ]}"#;

    #[test]
    fn the_documented_example_parses() {
        let agents = parse(TWO).unwrap();
        assert_eq!(agents[0].address, "store-a.example:9811");
        assert_eq!(agents[0].server_name, "store-a.example");
        assert!(agents[0].default);
        assert_eq!(
            agents[0].segments.to_string(),
            "{topology.carve.dev/zone=a}"
        );
        assert_eq!(agents[1].address, "[2001:db8::1]:9811");
        assert_eq!(agents[1].server_name, "b.example");
        assert_eq!(agents[1].pool, "data");
        assert!(!agents[1].default);
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .filter_map(|l| l.strip_prefix("//! "))
            .skip_while(|l| !l.starts_with("```json"))
            .skip(1)
            .take_while(|l| !l.starts_with("```"))
            .collect();
        assert_eq!(parse(&example).unwrap().len(), 2, "{example}");
    }

    /// Agents `a` and `b` at `first` and `second`.
    fn two_at(first: &str, second: &str) -> String {
        format!(
            r#"{{"agents": [{{"name": "a", "address": "{first}", "pools": ["vg"]}}, {{"name": "b", "address": "{second}", "pools": ["vg"]}}]}}"#
        )
    }

    #[test]
    fn one_storage_host_under_two_names_is_refused_naming_both() {
        for distinct in [
            ("https://h:1", "https://h:2"),
            ("https://h:1", "https://h2:1"),
            ("https://[::1]:1", "https://127.0.0.1:1"),
        ] {
            assert!(
                parse(&two_at(distinct.0, distinct.1)).is_ok(),
                "{distinct:?}"
            );
        }
        let err = parse(&two_at("https://h:1", "https://H:1")).unwrap_err();
        assert!(
            err.message().contains("\"a\"") && err.message().contains("\"b\""),
            "{err}"
        );
    }

    #[test]
    fn a_file_over_the_size_cap_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let valid = r#"{"agents": [{"name": "a", "address": "https://h:1", "pools": ["vg"]}]}"#;
        let padded = |len: usize| format!("{valid}{}", " ".repeat(len - valid.len()));
        let at_cap = dir.path().join("at-cap.json");
        std::fs::write(&at_cap, padded(MAX_FILE_BYTES)).unwrap();
        assert_eq!(load(&at_cap).unwrap().len(), 1, "a file of exactly the cap");
        let over = dir.path().join("over.json");
        std::fs::write(&over, padded(MAX_FILE_BYTES + 1)).unwrap();
        let err = load(&over).unwrap_err();
        assert_eq!(err.kind(), csi_common::Kind::InvalidArgument);
        let named = over.display().to_string();
        assert!(
            err.message().contains(&named) && err.message().contains("1 MiB"),
            "{err}"
        );
    }

    #[test]
    fn every_mistake_is_refused_naming_what() {
        let one = |entry: &str| format!(r#"{{"agents": [{entry}]}}"#);
        let ok = r#""name": "a", "address": "https://h:1", "pools": ["vg"]"#;
        assert!(parse(&one(&format!("{{{ok}}}"))).is_ok());
        for (text, says) in [
            (String::new(), "EOF"),
            ("{}".into(), "missing field `agents`"),
            (r#"{"agents": []}"#.into(), "no agents"),
            (
                one(&format!(r#"{{{ok}, "zone": "a"}}"#)),
                "unknown field `zone`",
            ),
            (
                one(r#"{"name": "A", "address": "https://h:1", "pools": ["vg"]}"#),
                "agent name",
            ),
            (
                one(r#"{"name": "a", "address": "http://h:1", "pools": ["vg"]}"#),
                "https://",
            ),
            (
                one(r#"{"name": "a", "address": "https://h", "pools": ["vg"]}"#),
                "port",
            ),
            (
                one(r#"{"name": "a", "address": "https://h:0", "pools": ["vg"]}"#),
                "port",
            ),
            (
                one(r#"{"name": "a", "address": "https://h:1/x", "pools": ["vg"]}"#),
                "path",
            ),
            (
                one(r#"{"name": "a", "address": "https://::1:1", "pools": ["vg"]}"#),
                "IPv6",
            ),
            (
                one(r#"{"name": "a", "address": "https://h:1", "pools": []}"#),
                "exactly one",
            ),
            (
                one(r#"{"name": "a", "address": "https://h:1", "pools": ["a","b"]}"#),
                "exactly one",
            ),
            (
                one(r#"{"name": "a", "address": "https://h:1", "pools": ["-vg"]}"#),
                "volume group",
            ),
            (
                one(&format!(r#"{{{ok}, "segments": {{"zone": "a b"}}}}"#)),
                "segments",
            ),
            (one(&format!(r#"{{{ok}, "serverName": ""}}"#)), "serverName"),
            (
                format!(r#"{{"agents": [{{{ok}}}, {{{ok}}}]}}"#),
                "listed twice",
            ),
            (
                format!(
                    r#"{{"agents": [{{{ok}, "default": true}}, {{"name": "b", "address": "https://h:2", "pools": ["vg"], "default": true}}]}}"#
                ),
                "more than one",
            ),
            (two_at("https://h:1", "https://H:1/"), "same address"),
            (
                two_at("https://h.example:1", "https://h.example.:01"),
                "same address",
            ),
            (
                two_at("https://[2001:db8::1]:9811", "https://[2001:DB8:0::1]:9811"),
                "same address",
            ),
            (
                two_at("https://127.0.0.1:1", "https://127.0.0.1:1"),
                "same address",
            ),
            (
                format!(
                    r#"{{"agents": [{{{ok}, "segments": {{"x.dev/zone": "a"}}}}, {{"name": "b", "address": "https://h:2", "pools": ["vg"], "segments": {{"y.dev/zone": "a"}}}}]}}"#
                ),
                "two prefixes",
            ),
        ] {
            let err = parse(&text).unwrap_err();
            assert_eq!(err.kind(), csi_common::Kind::InvalidArgument);
            assert!(err.message().contains(says), "{text}: {err}");
        }
    }

    /// deploy/carve-agent/agents.example.json, the controller's side of a deployment with agents.
    #[test]
    fn the_deployed_example_parses() {
        let text = include_str!("../../../../deploy/carve-agent/agents.example.json");
        let agents = parse(text).unwrap();
        assert_eq!(agents.len(), 2);
        assert!(agents[0].default && !agents[1].default);
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = load(Path::new("/nonexistent/agents.json")).unwrap_err();
        assert!(err.message().contains("/nonexistent/agents.json"), "{err}");
    }
}
