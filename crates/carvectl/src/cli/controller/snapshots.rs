//! `carvectl controller` snapshot commands: CreateSnapshot, DeleteSnapshot, ListSnapshots (a
//! table) and GetSnapshot.

use clap::Args;
#[allow(clippy::wildcard_imports)] // the CSI messages of these commands
use csi_proto::v1::*;

use crate::cli::args::{SecretArgs, map};
use crate::cli::pages::{self, PageArgs, page_table};
use crate::cli::{CliError, Output, Session};
use crate::parse;
use crate::render::human_bytes;

#[derive(Args)]
pub(crate) struct CreateSnapshotArgs {
    /// Snapshot name (the idempotency key)
    #[arg(long)]
    name: String,
    /// Id of the volume to snapshot
    #[arg(long, value_name = "VOLUME_ID")]
    source: String,
    /// A parameter key=value (repeatable)
    #[arg(long = "param", value_name = "K=V", value_parser = parse::parse_kv)]
    params: Vec<(String, String)>,
    #[command(flatten)]
    secrets: SecretArgs,
}

impl CreateSnapshotArgs {
    pub(super) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        let request = CreateSnapshotRequest {
            source_volume_id: self.source.clone(),
            name: self.name.clone(),
            secrets: self.secrets.load()?,
            parameters: map(&self.params)?,
        };
        show!(session, create_snapshot, request)
    }
}

#[derive(Args)]
pub(crate) struct DeleteSnapshotArgs {
    /// Snapshot id
    snapshot_id: String,
    #[command(flatten)]
    secrets: SecretArgs,
}

impl DeleteSnapshotArgs {
    pub(super) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        let request = DeleteSnapshotRequest {
            snapshot_id: self.snapshot_id.clone(),
            secrets: self.secrets.load()?,
        };
        let response = rpc!(session, controller, delete_snapshot, request);
        Ok(Output::with_human(
            &response,
            format!("snapshot {} deleted", self.snapshot_id),
        ))
    }
}

#[derive(Args)]
pub(crate) struct ListSnapshotsArgs {
    /// Only this snapshot
    #[arg(long, default_value = "", value_name = "ID")]
    snapshot_id: String,
    /// Only snapshots of this volume
    #[arg(long, default_value = "", value_name = "ID")]
    source_volume_id: String,
    #[command(flatten)]
    page: PageArgs,
    #[command(flatten)]
    secrets: SecretArgs,
}

impl ListSnapshotsArgs {
    pub(super) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        let secrets = self.secrets.load()?;
        let all = pages::fetch(
            session,
            &self.page.starting_token,
            self.page.all,
            |token| ListSnapshotsRequest {
                max_entries: self.page.max_entries,
                starting_token: token,
                source_volume_id: self.source_volume_id.clone(),
                snapshot_id: self.snapshot_id.clone(),
                secrets: secrets.clone(),
            },
            send!(controller, list_snapshots),
        )
        .await?;
        Ok(Output::with_human(&all, snapshots_table(&all)))
    }
}

#[derive(Args)]
pub(crate) struct GetSnapshotArgs {
    /// Snapshot id
    snapshot_id: String,
    #[command(flatten)]
    secrets: SecretArgs,
}

impl GetSnapshotArgs {
    pub(super) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        let request = GetSnapshotRequest {
            snapshot_id: self.snapshot_id,
            secrets: self.secrets.load()?,
        };
        show!(session, get_snapshot, request)
    }
}

/// ListSnapshots as a table: id, source volume, size, ready, creation time.
fn snapshots_table(response: &ListSnapshotsResponse) -> String {
    page_table(
        &[
            "SNAPSHOT_ID",
            "SOURCE_VOLUME_ID",
            "SIZE",
            "READY",
            "CREATED",
        ],
        &response.entries,
        snapshot_row,
        &response.next_token,
    )
}

fn snapshot_row(entry: &list_snapshots_response::Entry) -> Vec<String> {
    let snapshot = entry.snapshot.clone().unwrap_or_default();
    vec![
        snapshot.snapshot_id,
        snapshot.source_volume_id,
        human_bytes(snapshot.size_bytes),
        snapshot.ready_to_use.to_string(),
        snapshot
            .creation_time
            .map(|t| t.to_string())
            .unwrap_or_default(),
    ]
}
