//! The orphan report: volumes the controller lists that no PersistentVolume names, and
//! PersistentVolumes whose volume the controller does not list.
//!
//! Carvectl sees only the CSI side, so Kubernetes' side comes in as a document: the output of
//! `kubectl get pv -o json` (a `List` of PersistentVolumes, or one PersistentVolume). A
//! PersistentVolume belongs to the driver when `spec.csi.driver` is the driver's name; it owns
//! the volume whose id is its `spec.csi.volumeHandle`. An orphan volume is the LV, its iSCSI
//! target and every ACL of it (its `published_node_ids`): nothing in Kubernetes will ever
//! unpublish or delete them. Each orphan shows the claim it was provisioned for when the
//! controller recorded one (volume_context `pvcNamespace`, `pvcName`, `pvName`, from the
//! provisioner's `--extra-create-metadata`), so an operator can tell whose data it holds.
//!
//! Invariants: pure (no I/O: [`PersistentVolumes::parse`] takes the document's text,
//! [`Report::new`] the listed volumes); a document that is not PersistentVolumes is an error,
//! never an empty set that would make every volume an orphan; output is sorted by id.

use std::collections::{BTreeMap, BTreeSet};

use csi_common::contract::{PV_NAME, PVC_NAME, PVC_NAMESPACE};
use csi_proto::v1::list_volumes_response::Entry;
use serde_json::{Value, json};

/// The volume handles the driver's PersistentVolumes name: handle -> PersistentVolume name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersistentVolumes {
    /// Handle -> the PersistentVolume naming it.
    pub handles: BTreeMap<String, String>,
    /// PersistentVolumes in the document (every driver).
    pub total: usize,
}

impl PersistentVolumes {
    /// Reads `kubectl get pv -o json` output, keeping the PersistentVolumes of `driver`.
    pub fn parse(text: &str, driver: &str) -> Result<Self, String> {
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| format!("not JSON ({e}): want `kubectl get pv -o json`"))?;
        let items: Vec<&Value> = match doc.get("kind").and_then(Value::as_str) {
            Some("List" | "PersistentVolumeList") => doc
                .get("items")
                .and_then(Value::as_array)
                .ok_or("a List without items")?
                .iter()
                .collect(),
            Some("PersistentVolume") => vec![&doc],
            other => {
                return Err(format!(
                    "kind {other:?}: want the PersistentVolumes of `kubectl get pv -o json`"
                ));
            }
        };
        let mut out = PersistentVolumes::default();
        for item in items {
            let kind = item.get("kind").and_then(Value::as_str);
            if kind.is_some_and(|k| k != "PersistentVolume") {
                return Err(format!(
                    "an item of kind {kind:?} in the list: want PersistentVolumes"
                ));
            }
            out.total += 1;
            let name = item
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .ok_or("a PersistentVolume without metadata.name")?;
            let Some(csi) = item.pointer("/spec/csi") else {
                continue;
            };
            if csi.get("driver").and_then(Value::as_str) != Some(driver) {
                continue;
            }
            let handle = csi
                .get("volumeHandle")
                .and_then(Value::as_str)
                .filter(|h| !h.is_empty())
                .ok_or_else(|| format!("PersistentVolume {name}: spec.csi.volumeHandle missing"))?;
            out.handles.insert(handle.to_string(), name.to_string());
        }
        Ok(out)
    }
}

/// A volume no PersistentVolume names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// The volume id.
    pub volume_id: String,
    /// Its size.
    pub capacity_bytes: i64,
    /// The nodes whose ACLs it still has.
    pub published_node_ids: Vec<String>,
    /// The namespace of the claim it was provisioned for (`""`: not recorded).
    pub pvc_namespace: String,
    /// The name of that claim (`""`: not recorded).
    pub pvc_name: String,
    /// The PersistentVolume that was made for it (`""`: not recorded).
    pub pv_name: String,
}

impl Orphan {
    /// `namespace/name` of the claim, or `""` when none was recorded.
    pub fn claim(&self) -> String {
        match (self.pvc_namespace.as_str(), self.pvc_name.as_str()) {
            ("", "") => String::new(),
            (namespace, name) => format!("{namespace}/{name}"),
        }
    }
}

/// A PersistentVolume whose volume the controller does not list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The PersistentVolume's name.
    pub persistent_volume: String,
    /// The volume handle it names.
    pub volume_handle: String,
}

/// What the comparison found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The driver whose PersistentVolumes were compared.
    pub driver: String,
    /// Volumes ListVolumes returned.
    pub listed_volumes: usize,
    /// The driver's PersistentVolumes in the document.
    pub persistent_volumes: usize,
    /// Volumes no PersistentVolume names, by id.
    pub orphans: Vec<Orphan>,
    /// PersistentVolumes naming a volume the controller does not list, by handle.
    pub missing: Vec<Missing>,
}

impl Report {
    /// Compares the listed volumes (every page of ListVolumes) with the PersistentVolumes.
    pub fn new(driver: &str, listed: &[Entry], pvs: &PersistentVolumes) -> Self {
        let mut ids = BTreeSet::new();
        let mut orphans = Vec::new();
        for entry in listed {
            let Some(volume) = &entry.volume else {
                continue;
            };
            ids.insert(volume.volume_id.clone());
            if !pvs.handles.contains_key(&volume.volume_id) {
                let context =
                    |key: &str| volume.volume_context.get(key).cloned().unwrap_or_default();
                orphans.push(Orphan {
                    pvc_namespace: context(PVC_NAMESPACE),
                    pvc_name: context(PVC_NAME),
                    pv_name: context(PV_NAME),
                    volume_id: volume.volume_id.clone(),
                    capacity_bytes: volume.capacity_bytes,
                    published_node_ids: entry
                        .status
                        .as_ref()
                        .map(|s| s.published_node_ids.clone())
                        .unwrap_or_default(),
                });
            }
        }
        orphans.sort_by(|a, b| a.volume_id.cmp(&b.volume_id));
        let missing = pvs
            .handles
            .iter()
            .filter(|(handle, _)| !ids.contains(*handle))
            .map(|(handle, pv)| Missing {
                persistent_volume: pv.clone(),
                volume_handle: handle.clone(),
            })
            .collect();
        Report {
            driver: driver.to_string(),
            listed_volumes: ids.len(),
            persistent_volumes: pvs.handles.len(),
            orphans,
            missing,
        }
    }

    /// Whether anything was found.
    pub fn is_clean(&self) -> bool {
        self.orphans.is_empty() && self.missing.is_empty()
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "driver": self.driver,
            "listed_volumes": self.listed_volumes,
            "persistent_volumes": self.persistent_volumes,
            "orphans": self.orphans.iter().map(|o| json!({
                "volume_id": o.volume_id,
                "capacity_bytes": o.capacity_bytes,
                "published_node_ids": o.published_node_ids,
                "pvc_namespace": o.pvc_namespace,
                "pvc_name": o.pvc_name,
                "pv_name": o.pv_name,
            })).collect::<Vec<_>>(),
            "missing": self.missing.iter().map(|m| json!({
                "persistent_volume": m.persistent_volume,
                "volume_handle": m.volume_handle,
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use csi_proto::v1::{Volume, list_volumes_response::VolumeStatus};

    const DRIVER: &str = "lvm-iscsi.csi.carve.dev";

    fn pv(name: &str, driver: &str, handle: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
               "spec": {"csi": {"driver": driver, "volumeHandle": handle}}})
    }

    fn entry(id: &str, nodes: &[&str]) -> Entry {
        Entry {
            volume: Some(Volume {
                volume_id: id.into(),
                capacity_bytes: 1 << 30,
                volume_context: [("pvcNamespace", "team-a"), ("pvcName", id)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            }),
            status: Some(VolumeStatus {
                published_node_ids: nodes.iter().map(std::string::ToString::to_string).collect(),
                volume_condition: None,
            }),
        }
    }

    #[test]
    fn compares_handles_of_the_driver_only() {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [
            pv("pv-a", DRIVER, "vol-a"),
            pv("pv-gone", DRIVER, "vol-gone"),
            pv("pv-other", "other.csi.example.com", "vol-b"),
            {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-nfs"},
             "spec": {"nfs": {"server": "x", "path": "/"}}},
        ]});
        let pvs = PersistentVolumes::parse(&list.to_string(), DRIVER).unwrap();
        assert_eq!(pvs.total, 4);
        let listed = [entry("vol-b", &["iqn.node1"]), entry("vol-a", &[])];
        let report = Report::new(DRIVER, &listed, &pvs);
        assert_eq!(
            report.orphans,
            vec![Orphan {
                volume_id: "vol-b".into(),
                capacity_bytes: 1 << 30,
                published_node_ids: vec!["iqn.node1".into()],
                pvc_namespace: "team-a".into(),
                pvc_name: "vol-b".into(),
                pv_name: String::new(),
            }],
            "vol-b is named only by another driver's PV"
        );
        assert_eq!(report.orphans[0].claim(), "team-a/vol-b");
        assert_eq!(
            report.missing,
            vec![Missing {
                persistent_volume: "pv-gone".into(),
                volume_handle: "vol-gone".into(),
            }]
        );
        assert!(!report.is_clean());
        assert_eq!((report.listed_volumes, report.persistent_volumes), (2, 2));
        let json = report.to_json();
        assert_eq!(
            json["orphans"][0]["published_node_ids"],
            json!(["iqn.node1"])
        );
        assert_eq!(json["orphans"][0]["pvc_namespace"], "team-a");
        assert_eq!(json["orphans"][0]["pv_name"], "");
        assert_eq!(json["missing"][0]["persistent_volume"], "pv-gone");
    }

    #[test]
    fn one_pv_and_a_clean_report() {
        let one = pv("pv-a", DRIVER, "vol-a").to_string();
        let pvs = PersistentVolumes::parse(&one, DRIVER).unwrap();
        let report = Report::new(DRIVER, &[entry("vol-a", &[])], &pvs);
        assert!(report.is_clean(), "{report:?}");
    }

    #[test]
    fn documents_that_are_not_persistent_volumes_are_refused() {
        for bad in [
            "",
            "[]",
            r#"{"kind":"PodList","items":[]}"#,
            r#"{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"p"}}]}"#,
            r#"{"kind":"List"}"#,
        ] {
            assert!(
                PersistentVolumes::parse(bad, DRIVER).is_err(),
                "{bad:?} accepted"
            );
        }
        let no_handle = json!({"kind": "PersistentVolume", "metadata": {"name": "pv"},
                               "spec": {"csi": {"driver": DRIVER}}});
        let err = PersistentVolumes::parse(&no_handle.to_string(), DRIVER).unwrap_err();
        assert!(err.contains("volumeHandle"), "{err}");
    }
}
