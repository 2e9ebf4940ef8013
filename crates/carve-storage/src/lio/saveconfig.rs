//! The saveconfig.json file (rtslib-fb's format), kept current for administrators and for the
//! distribution's restore service, and read back at start for CHAP credentials.
//!
//! Invariants: written atomically and durably (tempfile in the same directory, fsync, rename,
//! fsync of the directory) with mode 0600 from creation on, since it holds CHAP secrets;
//! streamed from a [`LioState`] into the file, with no copy of the document in memory; the
//! secrets are never logged. What is written when is the saver's business
//! ([`super::saver::SaveHandle`]).

use super::{AclState, LioState, StorageObjectState, TargetState};
use csi_common::{Error, Result, contract::Chap};
use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{IgnoredAny, MapAccess, SeqAccess, Visitor},
    ser::SerializeStruct,
};
use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    io::Write,
    marker::PhantomData,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

/// Debian's rtslib-fb path.
pub const DEBIAN_PATH: &str = "/etc/rtslib-fb-target/saveconfig.json";
/// The upstream path.
pub const DEFAULT_PATH: &str = "/etc/target/saveconfig.json";

/// The saveconfig path: `configured`, else Debian's if its directory exists, else upstream's.
pub fn detect_path(configured: Option<&Path>) -> PathBuf {
    match configured {
        Some(path) => path.to_path_buf(),
        None if Path::new(DEBIAN_PATH).parent().is_some_and(Path::is_dir) => DEBIAN_PATH.into(),
        None => DEFAULT_PATH.into(),
    }
}

/// One portal of a TPG.
#[derive(Serialize)]
struct Portal<'a> {
    ip_address: &'a str,
    iser: bool,
    offload: bool,
    port: u16,
}

impl<'a> Portal<'a> {
    /// `address` is `ip:port` or `[ipv6]:port` (the configfs `np/` entry's name).
    fn of(address: &'a str) -> Self {
        let (ip, port) = address.rsplit_once(':').unwrap_or((address, "3260"));
        Self {
            ip_address: ip.trim_start_matches('[').trim_end_matches(']'),
            iser: false,
            offload: false,
            port: port.parse().unwrap_or(3260),
        }
    }
}

#[derive(Serialize)]
struct ObjectAttributes {
    emulate_tpu: u8,
}

#[derive(Serialize)]
struct StorageObject<'a> {
    attributes: ObjectAttributes,
    dev: &'a str,
    name: &'a str,
    plugin: &'static str,
    readonly: bool,
    write_back: bool,
    wwn: &'a str,
}

#[derive(Serialize)]
struct Lun {
    index: u32,
    storage_object: String,
}

#[derive(Serialize)]
struct MappedLun {
    index: u32,
    tpg_lun: u32,
    write_protect: bool,
}

#[derive(Serialize)]
struct NodeAcl<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    chap_mutual_password: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chap_mutual_userid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chap_password: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chap_userid: Option<&'a str>,
    mapped_luns: Vec<MappedLun>,
    node_wwn: &'a str,
}

#[derive(Serialize)]
struct TpgAttributes {
    authentication: u8,
    generate_node_acls: u8,
}

#[derive(Serialize)]
struct Tpg<'a> {
    attributes: TpgAttributes,
    enable: bool,
    luns: Vec<Lun>,
    node_acls: Vec<NodeAcl<'a>>,
    parameters: BTreeMap<&'a str, &'a str>,
    portals: Vec<Portal<'a>>,
    tag: u32,
}

#[derive(Serialize)]
struct Target<'a> {
    fabric: &'static str,
    tpgs: [Tpg<'a>; 1],
    wwn: &'a str,
}

/// The rtslib-format document of a [`LioState`] ([`document`]), serialised as the file is
/// written: keys sorted as rtslib-fb's `json.dump(..., sort_keys=True)` writes them, borrowing
/// every string from the state (nothing but the one target being written is built at a time).
#[derive(Debug)]
pub struct Document<'a>(&'a LioState);

/// The rtslib-format document for `state`: its block storage objects, and its iSCSI targets
/// that have TPG 1 (rtslib-fb `RTSRoot.dump`, the file `targetctl restore` loads).
pub fn document(state: &LioState) -> Document<'_> {
    Document(state)
}

fn storage_object(o: &StorageObjectState) -> StorageObject<'_> {
    StorageObject {
        attributes: ObjectAttributes {
            emulate_tpu: u8::from(o.emulate_tpu),
        },
        dev: o.device.as_deref().unwrap_or_default(),
        name: &o.name,
        plugin: "block",
        readonly: false,
        write_back: false,
        wwn: o.serial.as_deref().unwrap_or_default(),
    }
}

fn node_acl(a: &AclState) -> NodeAcl<'_> {
    NodeAcl {
        chap_mutual_password: a.auth.password_mutual.as_deref(),
        chap_mutual_userid: a.auth.userid_mutual.as_deref(),
        chap_password: a.auth.password.as_deref(),
        chap_userid: a.auth.userid.as_deref(),
        mapped_luns: a
            .mapped_lun0
            .then_some(MappedLun {
                index: 0,
                tpg_lun: 0,
                write_protect: a.write_protect,
            })
            .into_iter()
            .collect(),
        node_wwn: &a.initiator,
    }
}

fn target(t: &TargetState) -> Target<'_> {
    Target {
        fabric: "iscsi",
        tpgs: [Tpg {
            attributes: TpgAttributes {
                authentication: u8::from(t.authentication),
                generate_node_acls: u8::from(t.generate_node_acls),
            },
            enable: t.enabled,
            luns: t
                .lun0_object
                .iter()
                .map(|o| Lun {
                    index: 0,
                    storage_object: format!("/backstores/block/{o}"),
                })
                .collect(),
            node_acls: t.acls.iter().map(node_acl).collect(),
            parameters: t
                .parameters
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect(),
            portals: t.portals.iter().map(|p| Portal::of(p)).collect(),
            tag: 1,
        }],
        wwn: &t.iqn,
    }
}

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let state = self.0;
        let mut doc = serializer.serialize_struct("Document", 3)?;
        doc.serialize_field("fabric_modules", &[(); 0])?;
        doc.serialize_field(
            "storage_objects",
            &Each(|| state.storage_objects.iter().map(storage_object)),
        )?;
        doc.serialize_field(
            "targets",
            &Each(|| state.targets.iter().filter(|t| t.has_tpg).map(target)),
        )?;
        doc.end()
    }
}

/// A sequence serialised one item at a time from a fresh iterator.
struct Each<F>(F);

impl<F, I> Serialize for Each<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_seq((self.0)())
    }
}

/// Writes `document` to `path` atomically and durably with mode 0600: pretty JSON streamed
/// into a temporary file in the same directory, fsync, rename, fsync of the directory.
///
/// # Errors
/// The directory cannot be created or written, or the rename fails.
pub fn write_atomic(path: &Path, document: &impl Serialize) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file = tempfile::Builder::new()
        .prefix(".saveconfig")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    let mut out = std::io::BufWriter::new(file);
    serde_json::to_writer_pretty(&mut out, document)
        .map_err(|e| Error::internal(format!("saveconfig: {e}")))?;
    out.write_all(b"\n")?;
    let file = out
        .into_inner()
        .map_err(|e| Error::internal(format!("saveconfig: {}", e.error())))?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| {
        Error::internal(format!(
            "saveconfig: rename to {}: {}",
            path.display(),
            e.error
        ))
    })?;
    // The rename is durable once the directory is (rename(2), fsync(2)): until then a power
    // loss could bring the previous file back, with an ACL revoked since.
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// CHAP credentials per (target IQN, initiator IQN) found in a saveconfig document.
///
/// Read as the text is parsed: only `targets[].wwn`, `targets[].tpgs[].node_acls[]` and each
/// ACL's `node_wwn` and `chap_*` strings are kept; everything else is skipped, never built.
/// (The whole document as a `serde_json::Value`, at start, raised the controller's VmRSS by
/// 17 MiB at 2,000 targets, which glibc kept after it was dropped.) A value of another shape
/// than these reads as absent, as `Value::get` and `Value::as_str` read it; the text must
/// still be valid JSON.
pub fn chap_credentials(text: &str) -> Result<HashMap<(String, String), Chap>> {
    let Lenient(doc): Lenient<ChapDoc> = serde_json::from_str(text)
        .map_err(|e| Error::internal(format!("saveconfig is not valid JSON: {e}")))?;
    let mut out = HashMap::new();
    for target in doc.targets {
        let Some(iqn) = target.wwn else {
            continue;
        };
        for tpg in target.tpgs {
            for acl in tpg.node_acls {
                let (Some(node), Some(username), Some(password)) =
                    (acl.node_wwn, acl.chap_userid, acl.chap_password)
                else {
                    continue;
                };
                let mutual = acl.chap_mutual_userid.zip(acl.chap_mutual_password);
                out.insert(
                    (iqn.clone(), node),
                    Chap {
                        username,
                        password,
                        mutual,
                    },
                );
            }
        }
    }
    Ok(out)
}

/// What [`chap_credentials`] reads of the document.
#[derive(Default)]
struct ChapDoc {
    targets: Vec<ChapTarget>,
}

#[derive(Default)]
struct ChapTarget {
    wwn: Option<String>,
    tpgs: Vec<ChapTpg>,
}

#[derive(Default)]
struct ChapTpg {
    node_acls: Vec<ChapAcl>,
}

#[derive(Default)]
#[allow(clippy::struct_field_names)] // the document's own keys
struct ChapAcl {
    node_wwn: Option<String>,
    chap_userid: Option<String>,
    chap_password: Option<String>,
    chap_mutual_userid: Option<String>,
    chap_mutual_password: Option<String>,
}

/// A shape [`chap_credentials`] looks for in a JSON value (an object with some keys, an array,
/// a non-empty string); any other value reads as the default (absent, empty), and is skipped
/// without being built.
trait Shape: Default {
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> std::result::Result<Self, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Self::default())
    }
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> std::result::Result<Self, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Self::default())
    }
    fn from_str(_: &str) -> Self {
        Self::default()
    }
}

/// A JSON value read as the [`Shape`] `T`.
struct Lenient<T>(T);

impl<'de, T: Shape> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Any<T>(PhantomData<T>);
        impl<'de, T: Shape> Visitor<'de> for Any<T> {
            type Value = Lenient<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                T::from_map(map).map(Lenient)
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                T::from_seq(seq).map(Lenient)
            }
            fn visit_str<E: serde::de::Error>(
                self,
                s: &str,
            ) -> std::result::Result<Self::Value, E> {
                Ok(Lenient(T::from_str(s)))
            }
            fn visit_bool<E: serde::de::Error>(
                self,
                _: bool,
            ) -> std::result::Result<Self::Value, E> {
                Ok(Lenient(T::default()))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> std::result::Result<Self::Value, E> {
                Ok(Lenient(T::default()))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> std::result::Result<Self::Value, E> {
                Ok(Lenient(T::default()))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> std::result::Result<Self::Value, E> {
                Ok(Lenient(T::default()))
            }
            fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Self::Value, E> {
                Ok(Lenient(T::default()))
            }
        }
        d.deserialize_any(Any(PhantomData))
    }
}

impl Shape for Option<String> {
    fn from_str(s: &str) -> Self {
        Some(s).filter(|s| !s.is_empty()).map(str::to_string)
    }
}

impl<T: Shape> Shape for Vec<T> {
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> std::result::Result<Self, A::Error> {
        let mut items = Vec::new();
        while let Some(Lenient(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(items)
    }
}

/// [`Shape`] for an object: `$key => $field` read (the last of a repeated key wins, as in a
/// `Value`), every other key skipped.
macro_rules! object_shape {
    ($ty:ty { $($key:literal => $field:ident),+ $(,)? }) => {
        impl Shape for $ty {
            fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> std::result::Result<Self, A::Error> {
                let mut this = Self::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        $($key => this.$field = map.next_value::<Lenient<_>>()?.0,)+
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(this)
            }
        }
    };
}

object_shape!(ChapDoc { "targets" => targets });
object_shape!(ChapTarget { "wwn" => wwn, "tpgs" => tpgs });
object_shape!(ChapTpg { "node_acls" => node_acls });
object_shape!(ChapAcl {
    "node_wwn" => node_wwn,
    "chap_userid" => chap_userid,
    "chap_password" => chap_password,
    "chap_mutual_userid" => chap_mutual_userid,
    "chap_mutual_password" => chap_mutual_password,
});

#[cfg(test)]
#[path = "saveconfig_tests.rs"]
mod tests;
