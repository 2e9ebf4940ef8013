//! Volume and snapshot ids that name their storage host: `AGENT:VG:LOCAL`, where `AGENT` is a
//! carve-agent's name in the controller's agents file, `VG` the volume group holding the LV on
//! that host and `LOCAL` the id the host itself uses (the LV name, `csi-…` or `snap-…`). An id
//! without `:` (every id issued before several hosts existed) is the default backend's: the local
//! host of a single-host controller, or the agent marked `default` in the agents file.
//!
//! Invariants: `:` occurs in no agent name (`[a-z0-9-]`), no VG name (LVM's `[A-Za-z0-9+_.-]`)
//! and no LV name Carve derives (`[a-z0-9-]`), so splitting at the first two `:` is the only
//! reading of an id; an agent name is at most [`MAX_AGENT`] bytes and a VG name at most
//! [`MAX_VG`], so a placed id is at most 24 + 1 + 32 + 1 + 62 = 120 bytes, within CSI's 128
//! (spec.md, "Size Limits"), and printable ASCII without `/` (it names a node's stage record
//! file); parsing never fails: a string that is not a placed id is [`Placed::Default`].

use crate::{Error, Result, ids::VolumeId};
use std::fmt;

/// The longest agent name, in bytes.
pub const MAX_AGENT: usize = 24;
/// The longest volume group name a placed id carries, in bytes.
pub const MAX_VG: usize = 32;
/// What separates the parts of a placed id.
pub const SEPARATOR: char = ':';

/// Where an id says its volume or snapshot lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed<'a> {
    /// No backend named (no `:`): the default backend, with this local id.
    Default(&'a str),
    /// On the agent `agent`, in its volume group `vg`, with the local id `local`.
    Agent {
        /// The agent's name.
        agent: &'a str,
        /// The volume group.
        vg: &'a str,
        /// The id on that host (not checked here: the host's own parsing does).
        local: &'a str,
    },
    /// It has a `:` but not the shape of a placed id: Carve never issued it.
    Foreign,
}

impl<'a> Placed<'a> {
    /// Reads an untrusted id.
    pub fn parse(raw: &'a str) -> Self {
        if !raw.contains(SEPARATOR) {
            return Placed::Default(raw);
        }
        let mut parts = raw.splitn(3, SEPARATOR);
        match (parts.next(), parts.next(), parts.next()) {
            (Some(agent), Some(vg), Some(local))
                if check_agent(agent).is_ok()
                    && check_vg(vg).is_ok()
                    && !local.is_empty()
                    && !local.contains(SEPARATOR) =>
            {
                Placed::Agent { agent, vg, local }
            }
            _ => Placed::Foreign,
        }
    }
}

/// The id of `local` on the agent `agent`, volume group `vg` (both checked by the caller with
/// [`check_agent`] and [`check_vg`] when the agents file was read).
pub fn format(agent: &str, vg: &str, local: &str) -> String {
    format!("{agent}{SEPARATOR}{vg}{SEPARATOR}{local}")
}

/// An agent name: 1 to [`MAX_AGENT`] bytes of `[a-z0-9-]`, beginning and ending alphanumeric
/// (a DNS label, shorter).
pub fn check_agent(name: &str) -> Result<(), String> {
    let ok = (1..=MAX_AGENT).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "agent name {name:?} must be 1-{MAX_AGENT} characters of [a-z0-9-], beginning and ending with a letter or digit"
        ))
    }
}

/// A volume group name: 1 to [`MAX_VG`] bytes of LVM's `[A-Za-z0-9+_.-]`, not beginning with
/// `-` and not `.` or `..` (lvm(8), VALID NAMES).
pub fn check_vg(name: &str) -> Result<(), String> {
    let ok = (1..=MAX_VG).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+_.-".contains(&b))
        && !name.starts_with('-')
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "volume group {name:?} must be 1-{MAX_VG} characters of [A-Za-z0-9+_.-], not beginning with '-'"
        ))
    }
}

impl fmt::Display for Placed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placed::Default(local) => f.write_str(local),
            Placed::Agent { agent, vg, local } => f.write_str(&format(agent, vg, local)),
            Placed::Foreign => f.write_str("<not a Carve id>"),
        }
    }
}

/// The key an operation on the volume or snapshot `raw` is guarded by on a node: its local id
/// (the LV name, which its target IQN ends with), so the node's upkeep, which knows a session
/// only by its target, takes the same guard as the RPCs; `raw` itself for any other id.
pub fn guard_key(raw: &str) -> &str {
    match Placed::parse(raw) {
        Placed::Agent { local, .. } => local,
        _ => raw,
    }
}

/// A CSI volume id as a node receives it: Carve's [`VolumeId`], bare (the default backend's) or
/// placed (`AGENT:VG:csi-…`). It names the node's stage record (`<id>.json`: neither form holds
/// a `/`); its [`VolumeHandle::local`] part is the id the volume's target IQN ends with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VolumeHandle {
    full: String,
    local: VolumeId,
}

impl VolumeHandle {
    /// Parses an id whose local part [`VolumeId::parse`] accepts (the error when it does not).
    pub fn parse(raw: &str) -> Result<Self> {
        let local = match Placed::parse(raw) {
            Placed::Default(local) | Placed::Agent { local, .. } => local,
            Placed::Foreign => {
                return Err(Error::invalid_argument(format!(
                    "{raw:?} is not a Carve volume id"
                )));
            }
        };
        Ok(Self {
            full: raw.to_string(),
            local: VolumeId::parse(local)?,
        })
    }

    /// Looks up an untrusted volume id as [`VolumeId::lookup`] does (empty: `InvalidArgument`;
    /// not a Carve volume id: `Ok(None)`), in either form.
    pub fn lookup(raw: &str) -> Result<Option<Self>> {
        if raw.is_empty() {
            return Err(Error::invalid_argument("volume_id is required"));
        }
        Ok(Self::parse(raw)
            .ok()
            .filter(|h| h.local.as_str().starts_with("csi-")))
    }

    /// The handle of the default backend's volume `id`.
    pub fn from_local(id: &VolumeId) -> Self {
        Self {
            full: id.to_string(),
            local: id.clone(),
        }
    }

    /// The id as the CO sends it.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The id on its storage host.
    pub fn local(&self) -> &VolumeId {
        &self.local
    }
}

impl fmt::Display for VolumeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::LvName;

    #[test]
    fn old_ids_are_the_default_backends_and_placed_ids_split_one_way() {
        assert_eq!(
            Placed::parse("csi-pvc-1-0123"),
            Placed::Default("csi-pvc-1-0123")
        );
        assert_eq!(Placed::parse(""), Placed::Default(""));
        let id = format("h1", "vg.data_1", "snap-s-0123");
        assert_eq!(id, "h1:vg.data_1:snap-s-0123");
        assert_eq!(
            Placed::parse(&id),
            Placed::Agent {
                agent: "h1",
                vg: "vg.data_1",
                local: "snap-s-0123"
            }
        );
        assert_eq!(Placed::parse(&id).to_string(), id);
        for foreign in [
            ":vg:csi-a",
            "h1::csi-a",
            "h1:vg:",
            "h1:vg:csi-a:b",
            "H1:vg:csi-a",
            "h1:-vg:csi-a",
            "h1:vg/x:csi-a",
            "h1:vg",
            "-h:vg:csi-a",
            &format!("{}:vg:csi-a", "h".repeat(25)),
        ] {
            assert_eq!(Placed::parse(foreign), Placed::Foreign, "{foreign:?}");
        }
    }

    #[test]
    fn the_longest_placed_id_fits_csi_and_a_file_name() {
        let lv = LvName::for_snapshot(&"名".repeat(42));
        let id = format(&"a".repeat(MAX_AGENT), &"V".repeat(MAX_VG), lv.as_str());
        assert!(id.len() <= 128, "{} bytes", id.len());
        assert!(id.bytes().all(|b| b.is_ascii_graphic() && b != b'/'));
    }

    #[test]
    fn a_node_takes_both_forms_of_a_volume_id_and_nothing_else() {
        for plain in ["", "fake-vol-1", "snap-s-1", "csi-A", "名"] {
            assert_eq!(
                VolumeHandle::lookup(plain).ok().flatten(),
                None,
                "{plain:?} as VolumeId::lookup answers it"
            );
        }
        assert!(VolumeHandle::lookup("").is_err(), "a missing field");
        let bare = VolumeHandle::lookup("csi-v-1").unwrap().unwrap();
        assert_eq!(
            (bare.as_str(), bare.local().as_str()),
            ("csi-v-1", "csi-v-1")
        );
        let placed = VolumeHandle::lookup("b:vg0:csi-v-1").unwrap().unwrap();
        assert_eq!(placed.as_str(), "b:vg0:csi-v-1");
        assert_eq!(placed.local().as_str(), "csi-v-1");
        for foreign in ["b:vg0:snap-s-1", "b:vg0:x", "b::csi-v-1", "B:vg0:csi-v-1"] {
            assert_eq!(VolumeHandle::lookup(foreign).unwrap(), None, "{foreign:?}");
        }
        assert_eq!(guard_key("b:vg0:csi-v-1"), "csi-v-1");
        assert_eq!(guard_key("csi-v-1"), "csi-v-1");
        assert_eq!(guard_key("a::b"), "a::b");
    }

    #[test]
    fn names_follow_their_grammars() {
        assert!(check_agent("storage-1").is_ok());
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", "a:b", &"a".repeat(25)] {
            assert!(check_agent(bad).is_err(), "{bad:?}");
        }
        assert!(check_vg("vg_data+1.x").is_ok());
        for bad in ["", "-vg", ".", "..", "v g", "v:g", "v/g", &"v".repeat(33)] {
            assert!(check_vg(bad).is_err(), "{bad:?}");
        }
    }
}
