use super::*;
use crate::lio::state::{AclAuth, AclState, StorageObjectState, TargetState};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;

const CAPTURED: &str = include_str!("../../../../tests/fixtures/controller/saveconfig.json");

fn state() -> LioState {
    LioState {
        storage_objects: vec![StorageObjectState {
            name: "csi-thin-4567".into(),
            hba: "iblock_0".into(),
            device: Some("/dev/carvevg/csi-thin-4567".into()),
            enabled: true,
            serial: Some("01234567-89ab-cdef-0123-456789abcdef".into()),
            emulate_tpu: true,
        }],
        targets: vec![TargetState {
            iqn: "iqn.2024-01.dev.carve.csi.lvm-iscsi:csi-thin-4567".into(),
            has_tpg: true,
            enabled: true,
            portals: vec!["127.0.0.1:3260".into()],
            lun0_object: Some("csi-thin-4567".into()),
            lun0_hba: Some("iblock_0".into()),
            generate_node_acls: false,
            authentication: true,
            acls: vec![AclState {
                initiator: "iqn.2024-01.dev.carve:node1".into(),
                mapped_lun0: true,
                write_protect: true,
                auth: AclAuth {
                    userid: Some("user1".into()),
                    password: Some("secretpass12".into()),
                    userid_mutual: Some("tuser".into()),
                    password_mutual: Some("mutualpass34".into()),
                },
            }],
            // LIO's defaults, as in the targetcli fixture (captured before Carve set them).
            parameters: [
                ("InitialR2T", "Yes"),
                ("ImmediateData", "Yes"),
                ("MaxRecvDataSegmentLength", "8192"),
                ("FirstBurstLength", "65536"),
                ("MaxBurstLength", "262144"),
            ]
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .to_vec(),
        }],
        other_hbas: vec![],
    }
}

/// The fields Carve writes, read from a document (ours or targetcli's).
fn essentials(doc: &Value) -> Value {
    let so = &doc["storage_objects"][0];
    let t = &doc["targets"][0];
    let tpg = &t["tpgs"][0];
    let acl = &tpg["node_acls"][0];
    json!({
        "so": [so["name"], so["dev"], so["plugin"], so["wwn"], so["readonly"], so["attributes"]["emulate_tpu"]],
        "target": [t["wwn"], t["fabric"], tpg["tag"], tpg["enable"], tpg["portals"][0]["ip_address"], tpg["portals"][0]["port"]],
        "attributes": [tpg["attributes"]["authentication"], tpg["attributes"]["generate_node_acls"]],
        "parameters": crate::lio::SESSION_PARAMETERS.iter().map(|(n, _)| tpg["parameters"][n].clone()).collect::<Vec<_>>(),
        "lun": [tpg["luns"][0]["index"], tpg["luns"][0]["storage_object"]],
        "acl": [acl["node_wwn"], acl["chap_userid"], acl["chap_password"], acl["chap_mutual_userid"],
                acl["chap_mutual_password"], acl["mapped_luns"][0]["index"], acl["mapped_luns"][0]["tpg_lun"],
                acl["mapped_luns"][0]["write_protect"]],
    })
}

#[test]
fn document_matches_what_targetcli_saved_for_the_same_export() {
    let captured: Value = serde_json::from_str(CAPTURED).unwrap();
    assert_eq!(
        essentials(&serde_json::to_value(document(&state())).unwrap()),
        essentials(&captured)
    );
}

#[test]
fn chap_credentials_are_read_from_the_captured_file() {
    let chap = chap_credentials(CAPTURED).unwrap();
    let key = (
        "iqn.2024-01.dev.carve.csi.lvm-iscsi:csi-thin-4567".to_string(),
        "iqn.2024-01.dev.carve:node1".to_string(),
    );
    let found = &chap[&key];
    assert_eq!(found.username, "user1");
    assert_eq!(found.password, "secretpass12");
    assert_eq!(found.mutual, Some(("tuser".into(), "mutualpass34".into())));
    assert!(chap_credentials("{").is_err());
}

/// The credentials as the whole document read into a `serde_json::Value` gives them (how
/// [`chap_credentials`] read it before it skipped what it does not need).
fn chap_by_value(text: &str) -> Option<HashMap<(String, String), Chap>> {
    let doc: Value = serde_json::from_str(text).ok()?;
    let str_of = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let arr = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut out = HashMap::new();
    for target in arr(&doc, "targets") {
        let Some(iqn) = str_of(&target, "wwn") else {
            continue;
        };
        for tpg in arr(&target, "tpgs") {
            for acl in arr(&tpg, "node_acls") {
                let (Some(node), Some(username), Some(password)) = (
                    str_of(&acl, "node_wwn"),
                    str_of(&acl, "chap_userid"),
                    str_of(&acl, "chap_password"),
                ) else {
                    continue;
                };
                let mutual =
                    str_of(&acl, "chap_mutual_userid").zip(str_of(&acl, "chap_mutual_password"));
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
    Some(out)
}

#[test]
fn chap_credentials_read_what_the_whole_document_as_a_value_gives() {
    let acl = r#"{"node_wwn": "iqn.n:1", "chap_userid": "u", "chap_password": "p",
        "chap_mutual_userid": "mu", "chap_mutual_password": "mp", "mapped_luns": [{"index": 0}]}"#;
    let documents = [
        CAPTURED.to_string(),
        "[]".into(),
        "null".into(),
        "{}".into(),
        r#"{"targets": 5}"#.into(),
        r#"{"targets": {"wwn": "iqn.t:1"}}"#.into(),
        r#"{"targets": [1, "x", null, [], {"wwn": 7}, {"wwn": ""}]}"#.into(),
        format!(r#"{{"targets": [{{"wwn": "iqn.t:1", "tpgs": [{{"node_acls": [{acl}]}}]}}]}}"#),
        // `wwn` after `tpgs`, unknown keys with nested values, a target without TPG array.
        format!(
            r#"{{"storage_objects": [{{"a": {{"b": [1, 2.5, -3, true, null]}}}}], "targets": [
              {{"tpgs": [{{"x": {{"y": []}}, "node_acls": [{acl}, 3, {{"node_wwn": "iqn.n:2"}}]}}],
                "fabric": "iscsi", "wwn": "iqn.t:2"}},
              {{"wwn": "iqn.t:3", "tpgs": {{"node_acls": [{acl}]}}}},
              {{"wwn": "iqn.t:4", "tpgs": [{{"node_acls": {{"a": 1}}}}, null]}}]}}"#
        ),
        // Empty and non-string credentials, a half mutual pair.
        r#"{"targets": [{"wwn": "iqn.t:5", "tpgs": [{"node_acls": [
            {"node_wwn": "iqn.n:1", "chap_userid": "", "chap_password": "p"},
            {"node_wwn": "iqn.n:2", "chap_userid": "u", "chap_password": 12},
            {"node_wwn": "iqn.n:3", "chap_userid": "u", "chap_password": "p", "chap_mutual_userid": "m"},
            {"node_wwn": "iqn.n:4", "chap_userid": "u", "chap_password": "p", "chap_mutual_password": "mp"}
        ]}]}]}"#
            .into(),
        // A repeated key: the last one counts, as in a `Value`; a repeated ACL: the last wins.
        format!(
            r#"{{"targets": [{{"wwn": "iqn.t:6", "wwn": "iqn.t:7", "tpgs": [{{"node_acls": [{acl}]}}],
                "tpgs": [{{"node_acls": [{acl}, {{"node_wwn": "iqn.n:1", "chap_userid": "v", "chap_password": "q"}}]}}]}},
              {{"wwn": "iqn.t:8", "wwn": 1, "tpgs": [{{"node_acls": [{acl}]}}]}}]}}"#
        ),
        // Escapes in keys and values.
        r#"{"t\u0061rgets": [{"wwn": "iqn.t:\u0039", "tpgs": [{"node_acls": [
            {"node_wwn": "iqn.n:\"1\"", "chap_userid": "u\\1", "chap_password": "p\n"}]}]}]}"#
            .into(),
    ];
    for text in &documents {
        let streamed = chap_credentials(text).expect(text);
        assert_eq!(Some(streamed), chap_by_value(text), "{text}");
    }
    let found = chap_credentials(&documents[8]).unwrap();
    let keys: Vec<_> = found.keys().collect();
    assert_eq!(keys, [&("iqn.t:2".to_string(), "iqn.n:1".to_string())]);
    let escaped = chap_credentials(documents.last().unwrap()).unwrap();
    let key = ("iqn.t:9".to_string(), "iqn.n:\"1\"".to_string());
    assert_eq!(
        (
            escaped[&key].username.as_str(),
            escaped[&key].password.as_str()
        ),
        ("u\\1", "p\n")
    );
    for bad in ["{", r#"{"targets": [}"#, "{} x", ""] {
        assert!(chap_credentials(bad).is_err(), "{bad}");
        assert_eq!(chap_by_value(bad), None);
    }
}

#[test]
fn written_atomically_with_mode_0600_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etc/target/saveconfig.json");
    write_atomic(&path, &document(&state())).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(chap_credentials(&text).unwrap().len(), 1);
    write_atomic(&path, &document(&LioState::default())).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left behind");
}

#[test]
fn the_streamed_document_is_rtslib_layout_with_sorted_keys() {
    let text = serde_json::to_string(&document(&state())).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    // Keys in the order rtslib-fb's sort_keys=True writes them (serde_json's Map is sorted).
    assert_eq!(serde_json::to_string(&doc).unwrap(), text);
    let acl = &doc["targets"][0]["tpgs"][0]["node_acls"][0];
    assert_eq!(
        acl["mapped_luns"],
        json!([{"index": 0, "tpg_lun": 0, "write_protect": true}])
    );
    assert_eq!(
        doc["targets"][0]["tpgs"][0]["portals"],
        json!([{"ip_address": "127.0.0.1", "iser": false, "offload": false, "port": 3260}])
    );
    // No CHAP keys for an ACL without credentials; no target without TPG 1.
    let mut plain = state();
    plain.targets[0].acls[0].auth = AclAuth::default();
    plain.targets[0].acls[0].mapped_lun0 = false;
    plain.targets.push(TargetState {
        iqn: "iqn.2024-01.dev.carve.csi.lvm-iscsi:no-tpg".into(),
        ..TargetState::default()
    });
    let doc = serde_json::to_value(document(&plain)).unwrap();
    assert_eq!(
        doc["targets"][0]["tpgs"][0]["node_acls"][0],
        json!({"mapped_luns": [], "node_wwn": "iqn.2024-01.dev.carve:node1"})
    );
    assert_eq!(doc["targets"].as_array().unwrap().len(), 1);
}

#[test]
fn debug_of_acl_auth_hides_passwords() {
    let shown = format!("{:?}", state());
    assert!(
        !shown.contains("secretpass12") && !shown.contains("mutualpass34"),
        "{shown}"
    );
    assert!(shown.contains("user1"));
}

#[test]
fn debian_path_is_detected_only_when_configured_or_present() {
    assert_eq!(
        detect_path(Some(Path::new("/x/s.json"))),
        PathBuf::from("/x/s.json")
    );
    let detected = detect_path(None);
    assert!(detected == Path::new(DEBIAN_PATH) || detected == Path::new(DEFAULT_PATH));
}
