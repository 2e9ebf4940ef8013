//! Output rendering: `--json` prints one compact JSON object per response; the human form is an
//! indented, aligned `key: value` outline of the same JSON value, plus tables for lists.
//!
//! Invariant: both forms come from the same [`ToJson`] value, so they show the same fields;
//! keys are always sorted; nothing here ever sees a request (requests carry secrets).

use std::fmt::Write as _;

use serde_json::Value;

use crate::json::ToJson;

/// Renders `message` as a single line of JSON.
pub fn render_json(message: &impl ToJson) -> String {
    message.to_json().to_string()
}

/// Renders `message` in the human outline form (ends with a newline unless empty).
pub fn render_human(message: &impl ToJson) -> String {
    human_value(&message.to_json())
}

/// Renders any JSON value in the human outline form.
pub fn human_value(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(_) => write_object(&mut out, value, 0),
        other => {
            let _ = writeln!(out, "{}", scalar(other, false));
        }
    }
    out
}

/// Byte counts in human form: `1073741824` -> `1 GiB`, `1536` -> `1.5 KiB`, `100` -> `100 B`.
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes.unsigned_abs() as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let sign = if bytes < 0 { "-" } else { "" };
    let number = format!("{value:.1}");
    let number = number.strip_suffix(".0").unwrap_or(&number);
    format!("{sign}{number} {}", UNITS[unit])
}

/// Whether `key` in `object` holds a byte count, to annotate with [`human_bytes`]: `*_bytes`,
/// GetCapacity's sizes, and a VolumeUsage's counts when its unit is `BYTES`.
fn is_byte_key(object: &serde_json::Map<String, Value>, key: &str) -> bool {
    key.ends_with("_bytes")
        || matches!(
            key,
            "available_capacity" | "maximum_volume_size" | "minimum_volume_size"
        )
        || (matches!(key, "available" | "total" | "used")
            && object.get("unit").and_then(Value::as_str) == Some("BYTES"))
}

fn scalar(value: &Value, bytes: bool) -> String {
    match value {
        Value::Null => "<unset>".to_string(),
        Value::String(s) if s.is_empty() => "\"\"".to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_i64() {
            Some(count) if bytes && count.unsigned_abs() >= 1024 => {
                format!("{n} ({})", human_bytes(count))
            }
            _ => n.to_string(),
        },
        Value::Array(items) if items.is_empty() => "[]".to_string(),
        Value::Object(map) if map.is_empty() => "{}".to_string(),
        Value::Array(items) => items
            .iter()
            .map(|item| scalar(item, bytes))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Bool(b) => b.to_string(),
        Value::Object(_) => value.to_string(),
    }
}

/// Whether a value prints on the same line as its key.
fn is_inline(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items
            .iter()
            .all(|item| !item.is_object() && !item.is_array()),
        _ => true,
    }
}

fn write_object(out: &mut String, value: &Value, indent: usize) {
    let Value::Object(map) = value else { return };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let width = keys
        .iter()
        .filter(|k| is_inline(&map[k.as_str()]))
        .map(|k| k.len())
        .max()
        .unwrap_or(0);
    for key in keys {
        let child = &map[key.as_str()];
        let pad = " ".repeat(indent);
        if is_inline(child) {
            let _ = writeln!(
                out,
                "{pad}{:width$} {}",
                format!("{key}:"),
                scalar(child, is_byte_key(map, key)),
                width = width + 1
            );
            continue;
        }
        let _ = writeln!(out, "{pad}{key}:");
        match child {
            Value::Object(_) => write_object(out, child, indent + 2),
            Value::Array(items) => write_list(out, items, indent + 2),
            _ => {}
        }
    }
}

fn write_list(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        // Render the item at indent + 2, then turn its first line's indent into "- ".
        let mut block = String::new();
        match item {
            Value::Object(map) if !map.is_empty() => write_object(&mut block, item, indent + 2),
            Value::Array(inner) => write_list(&mut block, inner, indent + 2),
            other => {
                let _ = writeln!(block, "{}{}", " ".repeat(indent + 2), scalar(other, false));
            }
        }
        let marked = format!("{}- {}", " ".repeat(indent), &block[indent + 2..]);
        out.push_str(&marked);
    }
}

/// A plain text table: a header row and rows, columns separated by two spaces and padded to
/// the widest cell (the last column is not padded).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i + 1 == row.len() {
                    cell.clone()
                } else {
                    format!("{cell:width$}", width = widths[i])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outline_aligns_sorts_and_nests() {
        let value = json!({
            "volume": {
                "volume_id": "vol-1",
                "capacity_bytes": 1_073_741_824,
                "volume_context": { "z": "1", "a": "" },
                "content_source": null,
                "accessible_topology": [ { "segments": { "zone": "a" } } ],
            }
        });
        let expected = "\
volume:
  accessible_topology:
    - segments:
        zone: a
  capacity_bytes: 1073741824 (1 GiB)
  content_source: <unset>
  volume_context:
    a: \"\"
    z: 1
  volume_id:      vol-1
";
        assert_eq!(human_value(&value), expected);
    }

    #[test]
    fn outline_lists_and_empty_values() {
        let value = json!({
            "capabilities": [ { "rpc": "STAGE_UNSTAGE_VOLUME" }, { "rpc": "GET_VOLUME_STATS" } ],
            "published_node_ids": ["n1", "n2"],
            "manifest": {},
            "entries": [],
        });
        let expected = "\
capabilities:
  - rpc: STAGE_UNSTAGE_VOLUME
  - rpc: GET_VOLUME_STATS
entries:            []
manifest:           {}
published_node_ids: n1, n2
";
        assert_eq!(human_value(&value), expected);
    }

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(100), "100 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(-(1 << 20)), "-1 MiB");
        assert_eq!(human_bytes(i64::MAX), "8 EiB");
    }

    #[test]
    fn tables_align() {
        let rows = vec![
            vec!["vol-long-id".to_string(), "1 GiB".to_string()],
            vec!["v".to_string(), String::new()],
        ];
        assert_eq!(
            table(&["VOLUME", "SIZE"], &rows),
            "VOLUME       SIZE\nvol-long-id  1 GiB\nv\n"
        );
    }

    #[test]
    fn json_is_one_line() {
        let response = csi_proto::v1::ControllerPublishVolumeResponse {
            publish_context: [("lun".to_string(), "0".to_string())].into(),
        };
        assert_eq!(render_json(&response), r#"{"publish_context":{"lun":"0"}}"#);
        assert_eq!(render_human(&response), "publish_context:\n  lun: 0\n");
    }
}
