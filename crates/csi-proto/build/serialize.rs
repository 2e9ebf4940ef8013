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
use tonic_prost_build::Builder;

const DERIVE: &str = "#[derive(serde::Serialize)]";

/// `builder` with the attributes for every message a `.{package}.*Response` reaches, and the
/// source of `mod enum_json` (one `fn(&i32, S)` per enum they use). Panics if one of them is
/// in `secret_messages` (top-level names).
pub fn configure(
    mut builder: Builder,
    set: &FileDescriptorSet,
    package: &str,
    secret_messages: &[&str],
) -> (Builder, String) {
    let (mut messages, mut enums) = (BTreeMap::new(), BTreeMap::new());
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
    let package = format!(".{package}.");
    let mut queue: VecDeque<String> = messages
        .keys()
        .filter(|name| {
            name.strip_prefix(&package)
                .is_some_and(|rest| !rest.contains('.') && rest.ends_with("Response"))
        })
        .cloned()
        .collect();
    let (mut seen, mut used_enums) = (BTreeSet::new(), BTreeSet::new());
    while let Some(name) = queue.pop_front() {
        if !seen.insert(name.clone()) {
            continue;
        }
        assert!(
            !secret_messages.contains(&name.trim_start_matches(&package)),
            "{name} carries secrets but a response reaches it: it must not derive Serialize"
        );
        let message: &DescriptorProto = messages[&name];
        let path = &name[1..];
        builder = builder.message_attribute(path, DERIVE);
        if let [only] = message.field.as_slice()
            && only.r#type() == Type::Enum
        {
            builder = builder.message_attribute(path, "#[serde(transparent)]");
        }
        for (index, oneof) in message.oneof_decl.iter().enumerate() {
            let oneof_path = format!("{path}.{}", oneof.name());
            builder = builder
                .field_attribute(&oneof_path, "#[serde(flatten)]")
                .enum_attribute(&oneof_path, DERIVE);
            for variant in message
                .field
                .iter()
                .filter(|f| f.oneof_index.and_then(|i| usize::try_from(i).ok()) == Some(index))
            {
                assert_eq!(
                    variant.r#type(),
                    Type::Message,
                    "{path}: oneof of non-messages"
                );
                let rename = format!("#[serde(rename = \"{}\")]", variant.name());
                builder =
                    builder.field_attribute(format!("{oneof_path}.{}", variant.name()), rename);
                queue.push_back(variant.type_name().to_string());
            }
        }
        for field in message.field.iter().filter(|f| f.oneof_index.is_none()) {
            let with = match (field.r#type(), field.type_name()) {
                (Type::Enum, enum_name) => {
                    assert_ne!(field.label(), Label::Repeated, "{path}: repeated enum");
                    used_enums.insert(enum_name);
                    format!(
                        ", serialize_with = \"crate::v1::enum_json::{}\"",
                        fn_name(enum_name)
                    )
                }
                (Type::Message, ".google.protobuf.Timestamp") => {
                    ", serialize_with = \"crate::serialize::timestamp\"".to_string()
                }
                // Wrappers (`google.protobuf.Int64Value`) are `Option<i64>` in prost; map
                // entries are harmless (no struct is generated for them).
                (Type::Message, target) if !target.starts_with(".google.") => {
                    queue.push_back(target.to_string());
                    String::new()
                }
                _ => String::new(),
            };
            let attribute = format!("#[serde(rename = \"{}\"{with})]", field.name());
            builder = builder.field_attribute(format!("{path}.{}", field.name()), attribute);
        }
    }
    let enum_fns = used_enums
        .iter()
        .map(|name| enum_fn(name, enums[*name]))
        .collect();
    (builder, enum_fns)
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
    let arms = descriptor.value.iter().fold(String::new(), |mut out, v| {
        let _ = write!(out, "{} => Some(\"{}\"),", v.number(), v.name());
        out
    });
    format!(
        "/// `{name}` by its proto name.\n\
         pub(crate) fn {}<S: serde::Serializer>(value: &i32, s: S) -> Result<S::Ok, S::Error> {{\n\
         let name = match *value {{ {arms} _ => None }};\n\
         crate::serialize::enumeration(*value, name, s)\n}}\n",
        fn_name(name)
    )
}
