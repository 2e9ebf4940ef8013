//! `carvectl node ...`: every Node service RPC of CSI v1.12.
//!
//! Each subcommand's flags turn into its request in a pure `request()` (unit-tested below).

use clap::{Args, Subcommand};
#[allow(clippy::wildcard_imports)] // the CSI messages of these commands
use csi_proto::v1::*;

use super::args::{CapabilityArgs, SecretArgs, map};
use super::{CliError, Output, Session};
use crate::parse;
use crate::request;

#[derive(Subcommand)]
pub(crate) enum NodeCmd {
    /// NodeStageVolume: attach and format/mount a volume at a staging path
    Stage(StageArgs),
    /// NodeUnstageVolume: undo stage
    Unstage(UnstageArgs),
    /// NodePublishVolume: bind-mount (or expose the block device of) a volume at a target path
    Publish(PublishArgs),
    /// NodeUnpublishVolume: undo publish
    Unpublish(UnpublishArgs),
    /// NodeGetVolumeStats: usage and condition of a published volume
    Stats(StatsArgs),
    /// NodeExpandVolume: grow the filesystem of a volume after ControllerExpandVolume
    Expand(ExpandArgs),
    /// NodeGetCapabilities: which node RPCs the plugin supports
    Capabilities,
    /// NodeGetInfo: the node id, volume limit and topology
    Info,
}

#[derive(Args)]
pub(crate) struct StageArgs {
    /// Volume id
    volume_id: String,
    /// Staging path (a directory; the CO creates it)
    #[arg(long, value_name = "PATH")]
    staging_path: String,
    /// A publish context entry key=value, as ControllerPublishVolume returned it (repeatable)
    #[arg(long = "publish-context", value_name = "K=V", value_parser = parse::parse_kv)]
    publish_context: Vec<(String, String)>,
    /// A volume context entry key=value, as CreateVolume returned it (repeatable)
    #[arg(long = "volume-context", value_name = "K=V", value_parser = parse::parse_kv)]
    volume_context: Vec<(String, String)>,
    #[command(flatten)]
    cap: CapabilityArgs,
    #[command(flatten)]
    secrets: SecretArgs,
}

impl StageArgs {
    fn request(&self) -> Result<NodeStageVolumeRequest, CliError> {
        Ok(NodeStageVolumeRequest {
            volume_id: self.volume_id.clone(),
            publish_context: map(&self.publish_context)?,
            staging_target_path: self.staging_path.clone(),
            volume_capability: Some(self.cap.capability()),
            secrets: self.secrets.load()?,
            volume_context: map(&self.volume_context)?,
        })
    }
}

#[derive(Args)]
pub(crate) struct UnstageArgs {
    /// Volume id
    volume_id: String,
    /// Staging path given to stage
    #[arg(long, value_name = "PATH")]
    staging_path: String,
}

#[derive(Args)]
pub(crate) struct PublishArgs {
    /// Volume id
    volume_id: String,
    /// Target path: a directory for mount volumes, a file for block volumes
    #[arg(long, value_name = "PATH")]
    target_path: String,
    /// Staging path given to stage (when the plugin has STAGE_UNSTAGE_VOLUME)
    #[arg(long, value_name = "PATH", default_value = "")]
    staging_path: String,
    /// Publish read-only
    #[arg(long)]
    readonly: bool,
    /// A publish context entry key=value, as ControllerPublishVolume returned it (repeatable)
    #[arg(long = "publish-context", value_name = "K=V", value_parser = parse::parse_kv)]
    publish_context: Vec<(String, String)>,
    /// A volume context entry key=value, as CreateVolume returned it (repeatable)
    #[arg(long = "volume-context", value_name = "K=V", value_parser = parse::parse_kv)]
    volume_context: Vec<(String, String)>,
    #[command(flatten)]
    cap: CapabilityArgs,
    #[command(flatten)]
    secrets: SecretArgs,
}

impl PublishArgs {
    fn request(&self) -> Result<NodePublishVolumeRequest, CliError> {
        Ok(NodePublishVolumeRequest {
            volume_id: self.volume_id.clone(),
            publish_context: map(&self.publish_context)?,
            staging_target_path: self.staging_path.clone(),
            target_path: self.target_path.clone(),
            volume_capability: Some(self.cap.capability()),
            readonly: self.readonly,
            secrets: self.secrets.load()?,
            volume_context: map(&self.volume_context)?,
        })
    }
}

#[derive(Args)]
pub(crate) struct UnpublishArgs {
    /// Volume id
    volume_id: String,
    /// Target path given to publish
    #[arg(long, value_name = "PATH")]
    target_path: String,
}

#[derive(Args)]
pub(crate) struct StatsArgs {
    /// Volume id
    volume_id: String,
    /// A path where the volume is published
    #[arg(long, value_name = "PATH")]
    volume_path: String,
    /// Staging path of the volume, if staged
    #[arg(long, value_name = "PATH", default_value = "")]
    staging_path: String,
}

#[derive(Args)]
pub(crate) struct ExpandArgs {
    /// Volume id
    volume_id: String,
    /// A path where the volume is published (or staged)
    #[arg(long, value_name = "PATH")]
    volume_path: String,
    /// New required capacity, e.g. 2Gi (0: the plugin finds out)
    #[arg(long, value_name = "SIZE", value_parser = parse::parse_size, default_value = "0")]
    capacity: i64,
    /// Capacity limit (same units as --capacity)
    #[arg(long, value_name = "SIZE", value_parser = parse::parse_size, default_value = "0")]
    limit: i64,
    /// Staging path of the volume, if staged
    #[arg(long, value_name = "PATH", default_value = "")]
    staging_path: String,
    /// The volume's capability (sent only if a capability flag is given)
    #[command(flatten)]
    cap: CapabilityArgs,
    #[command(flatten)]
    secrets: SecretArgs,
}

impl ExpandArgs {
    fn request(&self) -> Result<NodeExpandVolumeRequest, CliError> {
        Ok(NodeExpandVolumeRequest {
            volume_id: self.volume_id.clone(),
            volume_path: self.volume_path.clone(),
            capacity_range: request::capacity_range(self.capacity, self.limit),
            staging_target_path: self.staging_path.clone(),
            volume_capability: self.cap.optional(),
            secrets: self.secrets.load()?,
        })
    }
}

impl NodeCmd {
    pub(crate) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        Ok(match self {
            NodeCmd::Stage(args) => {
                let response = rpc!(session, node, node_stage_volume, args.request()?);
                Output::with_human(
                    &response,
                    format!("volume {} staged at {}", args.volume_id, args.staging_path),
                )
            }
            NodeCmd::Unstage(args) => {
                let request = NodeUnstageVolumeRequest {
                    volume_id: args.volume_id.clone(),
                    staging_target_path: args.staging_path.clone(),
                };
                let response = rpc!(session, node, node_unstage_volume, request);
                Output::with_human(
                    &response,
                    format!(
                        "volume {} unstaged from {}",
                        args.volume_id, args.staging_path
                    ),
                )
            }
            NodeCmd::Publish(args) => {
                let response = rpc!(session, node, node_publish_volume, args.request()?);
                Output::with_human(
                    &response,
                    format!(
                        "volume {} published at {}",
                        args.volume_id, args.target_path
                    ),
                )
            }
            NodeCmd::Unpublish(args) => {
                let request = NodeUnpublishVolumeRequest {
                    volume_id: args.volume_id.clone(),
                    target_path: args.target_path.clone(),
                };
                let response = rpc!(session, node, node_unpublish_volume, request);
                Output::with_human(
                    &response,
                    format!(
                        "volume {} unpublished from {}",
                        args.volume_id, args.target_path
                    ),
                )
            }
            NodeCmd::Stats(args) => {
                let request = NodeGetVolumeStatsRequest {
                    volume_id: args.volume_id,
                    volume_path: args.volume_path,
                    staging_target_path: args.staging_path,
                };
                Output::of(&rpc!(session, node, node_get_volume_stats, request))
            }
            NodeCmd::Expand(args) => {
                Output::of(&rpc!(session, node, node_expand_volume, args.request()?))
            }
            NodeCmd::Capabilities => Output::of(&rpc!(
                session,
                node,
                node_get_capabilities,
                NodeGetCapabilitiesRequest {}
            )),
            NodeCmd::Info => Output::of(&rpc!(session, node, node_get_info, NodeGetInfoRequest {})),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Group};
    use clap::Parser;
    use volume_capability::access_mode::Mode;

    fn parse(args: &[&str]) -> NodeCmd {
        let cli = Cli::try_parse_from(["carvectl", "node"].iter().chain(args)).unwrap();
        let Group::Node(cmd) = cli.group else {
            panic!("not a node command")
        };
        cmd
    }

    #[test]
    fn stage_request() {
        let NodeCmd::Stage(args) = parse(&[
            "stage",
            "vol-1",
            "--staging-path=/stage",
            "--fs-type=ext4",
            "--mount-group=1000",
            "--publish-context=lun=0",
            "--volume-context=iqn=x",
            "--secret=chap=pw",
        ]) else {
            panic!("wrong command")
        };
        let request = args.request().unwrap();
        assert_eq!(request.staging_target_path, "/stage");
        assert_eq!(
            request.volume_capability,
            Some(request::mount_capability(
                Mode::SingleNodeWriter,
                "ext4",
                &[],
                "1000"
            ))
        );
        assert_eq!(request.publish_context["lun"], "0");
        assert_eq!(request.volume_context["iqn"], "x");
        assert_eq!(request.secrets["chap"], "pw");
        assert!(
            !format!("{request:?}").contains("pw\""),
            "Debug must redact secrets"
        );
    }

    #[test]
    fn publish_and_expand_requests() {
        let NodeCmd::Publish(args) = parse(&[
            "publish",
            "v",
            "--target-path=/t",
            "--staging-path=/s",
            "--readonly",
            "--block",
            "--access-mode=rox",
        ]) else {
            panic!("wrong command")
        };
        let request = args.request().unwrap();
        assert_eq!(
            (
                request.target_path.as_str(),
                request.staging_target_path.as_str()
            ),
            ("/t", "/s")
        );
        assert!(request.readonly);
        assert_eq!(
            request.volume_capability,
            Some(request::block_capability(Mode::MultiNodeReaderOnly))
        );

        let NodeCmd::Expand(args) = parse(&[
            "expand",
            "v",
            "--volume-path=/t",
            "--capacity=3Gi",
            "--fs-type=xfs",
        ]) else {
            panic!("wrong command")
        };
        let request = args.request().unwrap();
        assert_eq!(request.capacity_range.unwrap().required_bytes, 3 << 30);
        assert!(request.volume_capability.is_some());
        let NodeCmd::Expand(args) = parse(&["expand", "v", "--volume-path=/t"]) else {
            panic!("wrong command")
        };
        let request = args.request().unwrap();
        assert_eq!(
            (request.capacity_range, request.volume_capability),
            (None, None)
        );
    }

    #[test]
    fn secret_errors_do_not_echo_values() {
        let NodeCmd::Stage(args) = parse(&["stage", "v", "--staging-path=/s", "--secret=hunter2"])
        else {
            panic!("wrong command")
        };
        let Err(CliError::Usage(message)) = args.request() else {
            panic!("accepted a bad secret")
        };
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("--secret #1"), "{message}");
    }
}
