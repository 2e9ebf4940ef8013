//! Serde attributes for the JSON view of CSI responses (what `carvectl --json` prints).
//!
//! Only the messages a `*Response` reaches derive `Serialize`, so a request (which may carry
//! secrets) cannot be serialized at all; the build fails if a message with a `csi_secret` field
//! is ever reached. The shape, read from the descriptors so new fields are covered:
//! - fields under their proto names; unset messages and wrappers `null`; maps as objects;
//!   `int64` as numbers (serde's default for `i64`);
//! - enums as their proto names, an unknown number as the number (a generated `enum_json`
//!   function per enum); timestamps as RFC 3339 strings (`crate::serialize::timestamp`);
//! - a oneof flattened into its message (`{"snapshot": {...}}`, unset `{}`);
//! - a message whose only field is an enum (`AccessMode`, the capability `RPC`s) as that enum.
//!
//! Paths are given without the leading dot: prost-build then matches that one type or field
//! only, not every type nested under it (a leading dot also matches by prefix).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};

const TIMESTAMP: &str = ".google.protobuf.Timestamp";

/// What to add to the tonic-prost-build configuration, and the enum functions to compile.
pub struct Attributes {
    /// (exact path, attribute) for `message_attribute`.
    pub messages: Vec<(String, String)>,
    /// (exact path, attribute) for `enum_attribute` (oneofs).
    pub oneofs: Vec<(String, String)>,
    /// (exact path, attribute) for `field_attribute` (fields and oneof variants).
    pub fields: Vec<(String, String)>,
    /// Source of `mod enum_json`: one `fn(&i32, S)` per enum a response uses.
    pub enum_fns: String,
}

/// Attributes for every message reachable from a `.{package}.*Response`; panics if one of them
/// is in `secret_messages` (top-level names).
pub fn attributes(set: &FileDescriptorSet, package: &str, secret_messages: &[&str]) -> Attributes {
    let mut messages = BTreeMap::new();
    let mut enums = BTreeMap::new();
    for file in &set.file {
        let prefix = format!(".{}", file.package());
        index(
            &prefix,
            &file.message_type,
            &file.enum_type,
            &mut messages,
            &mut enums,
        );
    }
    let mut queue: VecDeque<String> = messages
        .keys()
        .filter(|name| {
            name.strip_prefix(&format!(".{package}."))
                .is_some_and(|rest| !rest.contains('.') && rest.ends_with("Response"))
        })
        .cloned()
        .collect();
    let mut seen = BTreeSet::new();
    let mut used_enums = BTreeSet::new();
    let mut out = Attributes {
        messages: Vec::new(),
        oneofs: Vec::new(),
        fields: Vec::new(),
        enum_fns: String::new(),
    };
    while let Some(name) = queue.pop_front() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let top = name.trim_start_matches(&format!(".{package}."));
        assert!(
            !secret_messages.contains(&top),
            "{name} carries secrets but a response reaches it: it must not derive Serialize"
        );
        let message: &DescriptorProto = messages[&name];
        let path = &name[1..];
        out.messages
            .push((path.into(), "#[derive(serde::Serialize)]".into()));
        if let [only] = message.field.as_slice()
            && only.r#type() == Type::Enum
        {
            out.messages
                .push((path.into(), "#[serde(transparent)]".into()));
        }
        for (index, oneof) in message.oneof_decl.iter().enumerate() {
            let oneof_path = format!("{path}.{}", oneof.name());
            out.fields
                .push((oneof_path.clone(), "#[serde(flatten)]".into()));
            out.oneofs
                .push((oneof_path.clone(), "#[derive(serde::Serialize)]".into()));
            for variant in message
                .field
                .iter()
                .filter(|f| f.oneof_index == Some(index as i32))
            {
                assert_eq!(
                    variant.r#type(),
                    Type::Message,
                    "{path}: oneof of non-messages"
                );
                out.fields.push((
                    format!("{oneof_path}.{}", variant.name()),
                    format!("#[serde(rename = \"{}\")]", variant.name()),
                ));
                queue.push_back(variant.type_name().to_string());
            }
        }
        for field in message.field.iter().filter(|f| f.oneof_index.is_none()) {
            let field_path = format!("{path}.{}", field.name());
            let mut attribute = format!("#[serde(rename = \"{}\"", field.name());
            match field.r#type() {
                Type::Enum => {
                    assert_ne!(
                        field.label(),
                        Label::Repeated,
                        "{field_path}: repeated enum"
                    );
                    used_enums.insert(field.type_name().to_string());
                    let _ = write!(
                        attribute,
                        ", serialize_with = \"crate::v1::enum_json::{}\"",
                        fn_name(field.type_name())
                    );
                }
                Type::Message if field.type_name() == TIMESTAMP => {
                    attribute.push_str(", serialize_with = \"crate::serialize::timestamp\"");
                }
                Type::Message => {
                    let target = messages.get(field.type_name());
                    let is_map = target
                        .and_then(|m| m.options.as_ref())
                        .is_some_and(|o| o.map_entry());
                    // Wrappers (`google.protobuf.Int64Value`) are `Option<i64>` in prost.
                    if target.is_some() && !is_map && !field.type_name().starts_with(".google.") {
                        queue.push_back(field.type_name().to_string());
                    }
                }
                _ => {}
            }
            attribute.push_str(")]");
            out.fields.push((field_path, attribute));
        }
    }
    for name in used_enums {
        out.enum_fns.push_str(&enum_fn(&name, enums[&name]));
    }
    out
}

/// Records every message and enum under `prefix`, nested ones included.
fn index<'a>(
    prefix: &str,
    messages: &'a [DescriptorProto],
    enums: &'a [EnumDescriptorProto],
    message_index: &mut BTreeMap<String, &'a DescriptorProto>,
    enum_index: &mut BTreeMap<String, &'a EnumDescriptorProto>,
) {
    for e in enums {
        enum_index.insert(format!("{prefix}.{}", e.name()), e);
    }
    for m in messages {
        let name = format!("{prefix}.{}", m.name());
        index(
            &name,
            &m.nested_type,
            &m.enum_type,
            message_index,
            enum_index,
        );
        message_index.insert(name, m);
    }
}

fn fn_name(enum_name: &str) -> String {
    enum_name
        .trim_start_matches('.')
        .replace('.', "_")
        .to_lowercase()
}

/// `fn x(value: &i32, s: S)`: the proto name of a known value, else the number.
fn enum_fn(name: &str, descriptor: &EnumDescriptorProto) -> String {
    let arms: String = descriptor
        .value
        .iter()
        .map(|v| format!("{} => Some(\"{}\"),", v.number(), v.name()))
        .collect();
    format!(
        "/// `{name}` by its proto name.\n\
         pub(crate) fn {}<S: serde::Serializer>(value: &i32, s: S) -> Result<S::Ok, S::Error> {{\n\
         let name = match *value {{ {arms} _ => None }};\n\
         crate::serialize::enumeration(*value, name, s)\n}}\n",
        fn_name(name)
    )
}
