//! `carvectl orphans`: the orphan report ([`crate::orphans`]) from every page of ListVolumes
//! and a `kubectl get pv -o json` document. Read-only: ListVolumes is the only RPC.

use std::{fmt::Write as _, io::Read};

use clap::Args;
use csi_common::cli::DEFAULT_DRIVER_NAME;
use csi_proto::v1::ListVolumesRequest;

use super::{CliError, Output, Session, pages};
use crate::orphans::{PersistentVolumes, Report};
use crate::render::{human_bytes, table};
use crate::status::EXIT_FOUND;

#[derive(Args)]
pub(crate) struct OrphansArgs {
    /// `kubectl get pv -o json` output: a file, or - for stdin. Take it fresh: a volume created
    /// after it was taken has no PV in it and shows as an orphan
    #[arg(long, value_name = "FILE")]
    pvs: String,
    /// The driver whose PersistentVolumes count (spec.csi.driver)
    #[arg(long, default_value = DEFAULT_DRIVER_NAME, value_name = "NAME")]
    driver: String,
}

impl OrphansArgs {
    fn read_pvs(&self) -> Result<PersistentVolumes, CliError> {
        let mut text = String::new();
        let read = if self.pvs == "-" {
            std::io::stdin().read_to_string(&mut text)
        } else {
            std::fs::File::open(&self.pvs).and_then(|mut f| f.read_to_string(&mut text))
        };
        read.map_err(|e| CliError::Usage(format!("cannot read --pvs {}: {e}", self.pvs)))?;
        PersistentVolumes::parse(&text, &self.driver)
            .map_err(|e| CliError::Usage(format!("--pvs {}: {e}", self.pvs)))
    }

    pub(crate) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        let pvs = self.read_pvs()?;
        let listed = pages::fetch(
            session,
            "",
            true,
            |token| ListVolumesRequest {
                max_entries: 0,
                starting_token: token,
            },
            send!(controller, list_volumes),
        )
        .await?
        .entries;
        let report = Report::new(&self.driver, &listed, &pvs);
        Ok(Output {
            json: report.to_json(),
            human: human(&report),
            status: if report.is_clean() { 0 } else { EXIT_FOUND },
        })
    }
}

fn human(report: &Report) -> String {
    let mut out = String::new();
    if !report.orphans.is_empty() {
        let rows: Vec<Vec<String>> = report
            .orphans
            .iter()
            .map(|o| {
                vec![
                    o.volume_id.clone(),
                    human_bytes(o.capacity_bytes),
                    o.published_node_ids.join(","),
                    o.claim(),
                ]
            })
            .collect();
        out += &table(
            &["ORPHAN_VOLUME", "CAPACITY", "PUBLISHED_NODES", "CLAIM"],
            &rows,
        );
    }
    if !report.missing.is_empty() {
        let rows: Vec<Vec<String>> = report
            .missing
            .iter()
            .map(|m| vec![m.persistent_volume.clone(), m.volume_handle.clone()])
            .collect();
        out += &table(&["PV_WITHOUT_VOLUME", "VOLUME_HANDLE"], &rows);
    }
    let _ = writeln!(
        out,
        "{} orphan volume(s), {} PersistentVolume(s) without their volume; {} volume(s) listed, {} PersistentVolume(s) of {}",
        report.orphans.len(),
        report.missing.len(),
        report.listed_volumes,
        report.persistent_volumes,
        report.driver
    );
    out
}
