//! [`FakeHost`]: a storage host for the operations' unit tests, LVM through a [`ScriptedRunner`] replaying `lvs`/`vgs` JSON in
//! the captured format, and the configfs LIO backend on a tempdir.

use super::{Ctx, Settings, create_volume::CreateVolume, publish::Publish};
use crate::{
    lio::{AclSpec, Lio, configfs::ConfigfsLio, state::entries},
    lvm::{Allocation, Claim, LvRow, LvmCli, argv, pool_status, tags::VolumeRecord},
};
use csi_common::{
    command::{Expectation, ScriptedRunner},
    ids::{Iqn, LvName, VolumeId},
};
use csi_proto::v1::{CapacityRange, VolumeCapability};
use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

pub use crate::lvm::testing::{NODE1, NODE2, VG, carve_tags, lv_row, lvs_json, pool_row};

pub const PREFIX: &str = "iqn.2024-01.dev.carve.csi.lvm-iscsi";
const T: Duration = Duration::from_secs(5);

/// A CreateVolume request with no requisite topology.
pub fn create_request<'a>(
    name: &'a str,
    caps: &'a [VolumeCapability],
    range: Option<&'a CapacityRange>,
    params: &'a HashMap<String, String>,
) -> CreateVolume<'a> {
    CreateVolume {
        name,
        capacity: range,
        capabilities: caps,
        parameters: params,
        requisite: &[],
    }
}

/// A capacity range in bytes (0: unset).
pub fn range(required: u64, limit: u64) -> CapacityRange {
    CapacityRange {
        required_bytes: required.cast_signed(),
        limit_bytes: limit.cast_signed(),
    }
}

/// ControllerPublish of "csi-v-1" to `node` with `cap`.
pub fn publish_request<'a>(
    node: &'a str,
    cap: &'a VolumeCapability,
    readonly: bool,
    secrets: &'a HashMap<String, String>,
) -> Publish<'a> {
    Publish {
        volume_id: "csi-v-1",
        node_id: node,
        capability: Some(cap),
        readonly,
        secrets,
    }
}

/// The record of a volume `name` created for `required` bytes as an ext4 single-node writer.
pub fn ext4_record(name: &str, required: u64) -> VolumeRecord {
    VolumeRecord {
        name: name.into(),
        required_bytes: required,
        capabilities: "mount/ext4/SINGLE_NODE_WRITER".into(),
        ..Default::default()
    }
}

/// The allocation in the thin pool `pool`.
pub fn thin_pool() -> Allocation {
    Allocation::Thin {
        pool: "pool".into(),
    }
}

/// A claim of `bytes` in the thin pool `pool`, at ratio 1 and with zeroing required.
pub fn thin_claim(bytes: u64) -> Claim<'static> {
    Claim::Thin {
        pool: "pool",
        bytes,
        ratio: 1.0,
        zeroing_required: true,
    }
}

/// `carve_tags(name)` with the read-write publication to `node`.
pub fn published_tags(name: &str, node: &str) -> Vec<String> {
    let mut tags = carve_tags(name);
    tags.push(format!("carve.pub=rw:{node}"));
    tags
}

/// `carve_tags(name)` with the publication tag `carve.pub=<publication>` (`"rw.chap:<node>"`).
pub fn publication_tags(name: &str, publication: &str) -> Vec<String> {
    let mut tags = carve_tags(name);
    tags.push(format!("carve.pub={publication}"));
    tags
}

/// An 8 MiB linear LV `lv` with `tags`, as `lvs` reports it.
pub fn linear_row(lv: &str, tags: &[String]) -> LvRow {
    lv_row(lv, 8 << 20, None, tags)
}

#[derive(Debug)]
pub struct FakeHost {
    pub runner: Arc<ScriptedRunner>,
    pub lio: Arc<ConfigfsLio>,
    pub ctx: Ctx,
    pub root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeHost {
    pub fn new() -> Self {
        Self::build(false, Duration::ZERO)
    }

    /// A host that serves only the topology `segments` (`"zone=a"`).
    pub fn in_topology(segments: &str) -> Self {
        let mut host = Self::new();
        host.ctx.settings.accessible_topology =
            vec![csi_common::topology::Segments::parse(segments).unwrap()];
        host
    }

    /// A host whose LVM keeps a ledger (as the controller binary does): reads and admission
    /// run no LVM command once it is seeded.
    pub fn with_ledger() -> Self {
        Self::build(true, Duration::ZERO)
    }

    /// [`FakeHost::with_ledger`], admitting thin claims on a thin-pool reading younger than
    /// `max_age` ([`LvmCli::with_pool_max_age`]).
    pub fn with_pool_max_age(max_age: Duration) -> Self {
        Self::build(true, max_age)
    }

    fn build(ledger: bool, pool_max_age: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("target");
        std::fs::create_dir_all(&root).unwrap();
        let runner = Arc::new(ScriptedRunner::new());
        let mut lvm = LvmCli::new(runner.clone(), VG, T);
        if ledger {
            lvm = lvm.with_ledger().with_pool_max_age(pool_max_age);
        }
        let lvm = Arc::new(lvm);
        let lio = Arc::new(ConfigfsLio::plain_directory(&root));
        let settings = Settings {
            portals: vec!["127.0.0.1:3260".parse().unwrap()],
            iqn_prefix: Iqn::parse(PREFIX).unwrap(),
            thin_pool: Some("pool".into()),
            default_capacity: 1 << 30,
            thin_overprovision: 1.0,
            allow_unzeroed_thin_pool: false,
            accessible_topology: Vec::new(),
        };
        let ctx = Ctx::new(Some(lvm), lio.clone(), settings, None);
        Self {
            runner,
            lio,
            ctx,
            root,
            _dir: dir,
        }
    }

    pub fn expect_vgs(&self, free: u64, extent: u64) {
        let json = serde_json::json!({"report": [{"vg": [{
            "vg_name": VG, "vg_size": "17175674880", "vg_free": free.to_string(),
            "vg_extent_size": extent.to_string()}]}]});
        self.runner
            .expect(Expectation::of(&argv::vgs(VG, T)).stdout(json.to_string()));
    }

    /// The one report CreateVolume and GetCapacity start with: every LV, each row with the VG
    /// columns (and, as LVM does, no row at all in a VG without LVs: then `vgs` follows).
    pub fn expect_survey(&self, free: u64, extent: u64, rows: &[LvRow]) {
        let mut json: serde_json::Value = serde_json::from_str(&lvs_json(rows)).unwrap();
        for row in json["report"][0]["lv"].as_array_mut().unwrap() {
            row["vg_name"] = VG.into();
            row["vg_size"] = "17175674880".into();
            row["vg_free"] = free.to_string().into();
            row["vg_extent_size"] = extent.to_string().into();
        }
        self.runner
            .expect(Expectation::of(&argv::lvs_survey(VG, T)).stdout(json.to_string()));
        if rows.is_empty() {
            self.expect_vgs(free, extent);
        }
    }

    pub fn expect_survey_missing(&self) {
        self.runner.expect(
            Expectation::of(&argv::lvs_survey(VG, T)).fails(
                5,
                include_str!("../../../../tests/fixtures/controller/vgs-missing.stderr")
                    .replace("novg", VG),
            ),
        );
    }

    /// `lvs vg/pool` of the thin pool `pool` (its condition, in ControllerGetVolume).
    pub fn expect_pool(&self, pool: &LvRow) {
        self.runner.expect(
            Expectation::of(&argv::lvs(&format!("{VG}/{}", pool.name), T))
                .stdout(lvs_json(std::slice::from_ref(pool))),
        );
    }

    /// `dmsetup status` and `dmsetup table` of the thin pool `pool`'s `-tpool` device,
    /// answering what `pool` says (how a pool the ledger already holds is read again).
    pub fn expect_pool_dm(&self, pool: &LvRow) {
        let (table, status) = carve_storage::lvm::testing::dm_pool_lines(pool);
        let name = pool_status::dm_name(VG, &pool.name, "tpool");
        self.runner
            .expect(Expectation::of(&pool_status::status_cmd(&name, T)).stdout(status));
        self.runner
            .expect(Expectation::of(&pool_status::table_cmd(&name, T)).stdout(table));
    }

    /// `dmsetup status` failing under both names of the thin pool `pool` as it does for a
    /// device that does not exist (an inactive pool).
    pub fn expect_pool_dm_missing(&self, pool: &str) {
        for name in pool_status::dm_names(VG, pool) {
            self.runner.expect(
                Expectation::of(&pool_status::status_cmd(&name, T))
                    .fails(1, "Device does not exist.\nCommand failed.\n"),
            );
        }
    }

    /// `lvs vg/pool` failing as LVM does for an LV that does not exist.
    pub fn expect_pool_gone(&self, pool: &str) {
        self.runner.expect(
            Expectation::of(&argv::lvs(&format!("{VG}/{pool}"), T)).fails(
                5,
                format!("  Failed to find logical volume \"{VG}/{pool}\"\n"),
            ),
        );
    }

    pub fn expect_lvs(&self, rows: &[LvRow]) {
        self.runner
            .expect(Expectation::of(&argv::lvs(VG, T)).stdout(lvs_json(rows)));
    }

    /// `lvs vg/lv`; no rows: the LV does not exist, and LVM answers as captured in the guest.
    /// [`FakeHost::expect_lvs_one`] of the LV of `row`, answering `row`.
    pub fn expect_lookup(&self, row: &LvRow) {
        self.expect_lvs_one(&row.name, std::slice::from_ref(row));
    }

    pub fn expect_lvs_one(&self, name: &str, rows: &[LvRow]) {
        let lv = LvName::parse(name).unwrap();
        let cmd = Expectation::of(&argv::lvs_one(VG, &lv, T));
        self.runner.expect(if rows.is_empty() {
            let stderr =
                include_str!("../../../../tests/fixtures/controller/lvs-one-missing.stderr")
                    .replace("csi-nope", name);
            cmd.fails(5, stderr)
        } else {
            cmd.stdout(lvs_json(rows))
        });
    }

    pub fn expect_lvremove(&self, name: &str) {
        let lv = LvName::parse(name).unwrap();
        self.runner
            .expect(Expectation::of(&argv::lvremove(VG, &lv, T)));
    }

    pub fn expect_tag(&self, name: &str, tag: &str, add: bool) {
        let lv = LvName::parse(name).unwrap();
        self.runner
            .expect(Expectation::of(&argv::lvchange_tag(VG, &lv, tag, add, T)));
    }

    /// One `lvchange` deleting `remove` and adding `add` on `name`.
    pub fn expect_retag(&self, name: &str, remove: &[&str], add: &[&str]) {
        self.runner.expect(Self::retag(name, remove, add));
    }

    /// [`FakeHost::expect_retag`], answering a failure with LVM's `stderr` (exit code 5).
    pub fn expect_retag_fails(&self, name: &str, remove: &[&str], add: &[&str], stderr: &str) {
        self.runner
            .expect(Self::retag(name, remove, add).fails(5, stderr));
    }

    fn retag(name: &str, remove: &[&str], add: &[&str]) -> Expectation {
        let lv = LvName::parse(name).unwrap();
        let owned = |tags: &[&str]| {
            tags.iter()
                .map(std::string::ToString::to_string)
                .collect::<Vec<_>>()
        };
        Expectation::of(&crate::lvm::argv::lvchange_retag(
            VG,
            &lv,
            &owned(remove),
            &owned(add),
            T,
        ))
    }

    pub fn expect(&self, expectation: Expectation) {
        self.runner.expect(expectation);
    }

    /// `lvcreate` of `lv` with `tags`, answering success.
    pub fn expect_lvcreate(
        &self,
        lv: &LvName,
        size: u64,
        allocation: &Allocation,
        tags: &[String],
    ) {
        self.expect(Expectation::of(&argv::lvcreate(
            VG, lv, size, allocation, tags, T,
        )));
    }

    /// An `lvremove` of `name` that fails with an internal LVM error (the ledger forgets).
    pub fn expect_lvremove_failing(&self, name: &str) {
        let lv = LvName::parse(name).unwrap();
        self.expect(
            Expectation::of(&argv::lvremove(VG, &lv, T))
                .fails(5, "  Internal error: something odd\n"),
        );
    }

    #[allow(clippy::unused_self)] // read as host.target(..) beside the host's expectations
    pub fn target(&self, volume: &str) -> Iqn {
        Iqn::parse(PREFIX)
            .unwrap()
            .target_for(&VolumeId::parse(volume).unwrap())
    }

    /// Makes every grant on `volume`'s target fail after publish wrote its records: the TPG's
    /// `attrib/authentication` becomes a directory, so the ACL's attribute write fails. Returns
    /// that path; `remove_dir` of it lifts the obstacle.
    pub fn fail_grants(&self, volume: &str) -> PathBuf {
        let attribute = self.root.join(format!(
            "iscsi/{}/tpgt_1/attrib/authentication",
            self.target(volume)
        ));
        let _ = std::fs::remove_file(&attribute);
        std::fs::create_dir_all(&attribute).unwrap();
        attribute
    }

    /// This host with a saveconfig writer on `path` whose background saves wait an hour (so
    /// only [`Ctx::lio_saved`] writes the file).
    pub fn with_saver(self, path: &std::path::Path) -> Self {
        self.with_saver_after(path, Duration::from_hours(1))
    }

    /// This host with a saveconfig writer on `path` whose background saves wait `delay`.
    pub fn with_saver_after(mut self, path: &std::path::Path, delay: Duration) -> Self {
        let lio: Arc<dyn Lio> = self.lio.clone();
        let saver = crate::lio::saver::SaveHandle::spawn(lio.clone(), path.to_path_buf(), delay);
        self.ctx.lio = Arc::new(crate::lio::saved::SavedLio::new(lio, saver.clone()));
        self.ctx.saver = Some(saver);
        self
    }

    /// Exports the volume in `row` directly through the backend.
    pub async fn export(&self, row: &LvRow) {
        let volume = super::volume::Volume::from_row(row.clone())
            .unwrap()
            .unwrap();
        self.lio
            .ensure_export(&volume.export_spec(&self.ctx, VG))
            .await
            .unwrap();
    }

    /// An 8 MiB linear LV `lv` with `tags`, exported directly through the backend.
    pub async fn export_linear(&self, lv: &str, tags: &[String]) -> LvRow {
        let row = lv_row(lv, 8 << 20, None, tags);
        self.export(&row).await;
        row
    }

    /// [`FakeHost::export_linear`] of volume `name`, published to `node`: its tags record the
    /// publication and `node`'s ACL exists.
    pub async fn published_linear(&self, lv: &str, name: &str, node: &str) -> LvRow {
        let row = self.export_linear(lv, &published_tags(name, node)).await;
        self.add_acl(lv, node).await;
        row
    }

    pub async fn add_acl(&self, volume: &str, node: &str) {
        let acl = AclSpec {
            initiator: Iqn::parse(node).unwrap(),
            readonly: false,
            chap: None,
        };
        self.lio
            .ensure_acl(&self.target(volume), &acl)
            .await
            .unwrap();
    }

    pub fn acls(&self, volume: &str) -> Vec<String> {
        entries(
            &self
                .lio
                .layout()
                .tpg(self.target(volume).as_str())
                .join("acls"),
        )
    }

    pub fn configfs_tree(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            for name in entries(&dir) {
                let path = dir.join(&name);
                out.push(path.strip_prefix(&self.root).unwrap().display().to_string());
                if path.is_dir() && !path.is_symlink() {
                    stack.push(path);
                }
            }
        }
        out.sort();
        out
    }

    /// No storage object and no target left (the `core`/`iscsi` roots may stay).
    pub fn configfs_is_empty(&self) -> bool {
        self.configfs_tree()
            .iter()
            .all(|p| p == "core" || p == "iscsi")
    }

    pub fn finish(&self) {
        self.runner.finish();
    }
}
