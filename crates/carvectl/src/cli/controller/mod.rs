//! `carvectl controller ...`: every Controller service RPC of CSI v1.12, one subcommand each,
//! grouped by subject: `volumes` (one volume's lifecycle and attachment), `inventory` (listing,
//! capacity, capability checks) and `snapshots`.
//!
//! Each subcommand's flags turn into its request in a pure `request()` (unit-tested beside it);
//! its `run` sends it and picks the output.

/// `show!(session, create_volume, request)`: sends `request` through the controller's `method`
/// and shows the response as it is (`Output::of`), `?` on error.
macro_rules! show {
    ($session:expr, $method:ident, $request:expr) => {
        Ok(Output::of(&rpc!($session, controller, $method, $request)))
    };
}

mod inventory;
mod snapshots;
mod volumes;

use clap::Subcommand;

use self::inventory::{CapacityArgs, ListVolumesArgs, ValidateArgs};
use self::snapshots::{CreateSnapshotArgs, DeleteSnapshotArgs, GetSnapshotArgs, ListSnapshotsArgs};
use self::volumes::{
    CreateVolumeArgs, DeleteVolumeArgs, ExpandArgs, GetVolumeArgs, ModifyVolumeArgs, PublishArgs,
    UnpublishArgs,
};
use super::{CliError, Output, Session};

#[derive(Subcommand)]
pub(crate) enum ControllerCmd {
    /// CreateVolume: provision a volume
    CreateVolume(CreateVolumeArgs),
    /// DeleteVolume: delete a volume
    DeleteVolume(DeleteVolumeArgs),
    /// ControllerPublishVolume: make a volume available on a node (attach)
    Publish(PublishArgs),
    /// ControllerUnpublishVolume: withdraw a volume from a node (detach)
    Unpublish(UnpublishArgs),
    /// ValidateVolumeCapabilities: check that a volume supports capabilities
    Validate(ValidateArgs),
    /// ListVolumes: list volumes (a table; --json for every field)
    ListVolumes(ListVolumesArgs),
    /// GetCapacity: the capacity available for new volumes
    Capacity(CapacityArgs),
    /// ControllerGetCapabilities: which controller RPCs the plugin supports
    Capabilities,
    /// ControllerGetVolume: one volume with its status
    GetVolume(GetVolumeArgs),
    /// ControllerExpandVolume: grow a volume
    Expand(ExpandArgs),
    /// CreateSnapshot: snapshot a volume
    CreateSnapshot(CreateSnapshotArgs),
    /// DeleteSnapshot: delete a snapshot
    DeleteSnapshot(DeleteSnapshotArgs),
    /// ListSnapshots: list snapshots (a table; --json for every field)
    ListSnapshots(ListSnapshotsArgs),
    /// GetSnapshot: one snapshot
    GetSnapshot(GetSnapshotArgs),
    /// ControllerModifyVolume: change a volume's mutable parameters
    ModifyVolume(ModifyVolumeArgs),
}

impl ControllerCmd {
    pub(crate) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        match self {
            ControllerCmd::CreateVolume(args) => args.run(session).await,
            ControllerCmd::DeleteVolume(args) => args.run(session).await,
            ControllerCmd::Publish(args) => args.run(session).await,
            ControllerCmd::Unpublish(args) => args.run(session).await,
            ControllerCmd::Validate(args) => args.run(session).await,
            ControllerCmd::ListVolumes(args) => args.run(session).await,
            ControllerCmd::Capacity(args) => args.run(session).await,
            ControllerCmd::GetVolume(args) => args.run(session).await,
            ControllerCmd::Expand(args) => args.run(session).await,
            ControllerCmd::CreateSnapshot(args) => args.run(session).await,
            ControllerCmd::DeleteSnapshot(args) => args.run(session).await,
            ControllerCmd::ListSnapshots(args) => args.run(session).await,
            ControllerCmd::GetSnapshot(args) => args.run(session).await,
            ControllerCmd::ModifyVolume(args) => args.run(session).await,
            ControllerCmd::Capabilities => inventory::capabilities(session).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Group};
    use clap::Parser;

    /// `carvectl controller ARGS...` parsed (for the subject modules' tests).
    pub(super) fn parse(args: &[&str]) -> ControllerCmd {
        let cli = Cli::try_parse_from(["carvectl", "controller"].iter().chain(args)).unwrap();
        let Group::Controller(cmd) = cli.group else {
            panic!("not a controller command")
        };
        cmd
    }
}
