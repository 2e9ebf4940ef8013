//! `carvectl controller ...`: every Controller service RPC of CSI v1.12.
//!
//! Each subcommand's flags turn into its request in a pure `request()` (unit-tested below);
//! `run` sends it and picks the output.

use std::collections::HashMap;

use clap::{Args, Subcommand};
use csi_proto::v1::*;

use super::args::{CapabilitiesArgs, CapabilityArgs, SecretArgs, map};
use super::{CliError, Output, Session};
use crate::parse;
use crate::render::{human_bytes, table};
use crate::request;

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

#[derive(Args)]
pub(crate) struct CreateVolumeArgs {
    /// Volume name (the idempotency key, e.g. the PV name)
    #[arg(long)]
    name: String,
    /// Required capacity, e.g. 1Gi, 512Mi, 100M, 1G, 4096 (0: plugin default)
    #[arg(long, value_name = "SIZE", value_parser = parse::parse_size, default_value = "0")]
    capacity: i64,
    /// Capacity limit: the volume must not be larger (same units as --capacity)
    #[arg(long, value_name = "SIZE", value_parser = parse::parse_size, default_value = "0")]
    limit: i64,
    /// A StorageClass-style parameter key=value (repeatable)
    #[arg(long = "param", value_name = "K=V", value_parser = parse::parse_kv)]
    params: Vec<(String, String)>,
    /// A mutable parameter key=value (repeatable; needs MODIFY_VOLUME)
    #[arg(long = "mutable-param", value_name = "K=V", value_parser = parse::parse_kv)]
    mutable_params: Vec<(String, String)>,
    /// Restore the volume from this snapshot id
    #[arg(long, value_name = "ID", conflicts_with = "from_volume")]
    from_snapshot: Option<String>,
    /// Clone the volume from this volume id
    #[arg(long, value_name = "ID")]
    from_volume: Option<String>,
    /// A topology the volume must be accessible from, as k=v,k2=v2 (repeatable)
    #[arg(long, value_name = "K=V,...", value_parser = parse::parse_kv_list)]
    requisite_topology: Vec<HashMap<String, String>>,
    /// A topology the volume should preferably be accessible from, as k=v,k2=v2 (repeatable)
    #[arg(long, value_name = "K=V,...", value_parser = parse::parse_kv_list)]
    preferred_topology: Vec<HashMap<String, String>>,
    #[command(flatten)]
    caps: CapabilitiesArgs,
    #[command(flatten)]
    secrets: SecretArgs,
}

impl CreateVolumeArgs {
    fn request(&self) -> Result<CreateVolumeRequest, CliError> {
        let source = match (&self.from_snapshot, &self.from_volume) {
            (Some(snapshot), _) => Some(request::from_snapshot(snapshot)),
            (None, Some(volume)) => Some(request::from_volume(volume)),
            (None, None) => None,
        };
        Ok(CreateVolumeRequest {
            name: self.name.clone(),
            capacity_range: request::capacity_range(self.capacity, self.limit),
            volume_capabilities: self.caps.capabilities(),
            parameters: map(&self.params)?,
            secrets: self.secrets.load()?,
            volume_content_source: source,
            accessibility_requirements: request::topology_requirement(
                self.requisite_topology.clone(),
                self.preferred_topology.clone(),
            ),
            mutable_parameters: map(&self.mutable_params)?,
        })
    }
}

#[derive(Args)]
pub(crate) struct DeleteVolumeArgs {
    /// Volume id
    volume_id: String,
    #[command(flatten)]
    secrets: SecretArgs,
}

#[derive(Args)]
pub(crate) struct PublishArgs {
    /// Volume id
    volume_id: String,
    /// Node id to publish to (as NodeGetInfo reports it)
    #[arg(long)]
    node_id: String,
    /// Publish read-only
    #[arg(long)]
    readonly: bool,
    /// A volume context entry key=value, as CreateVolume returned it (repeatable)
    #[arg(long = "volume-context", value_name = "K=V", value_parser = parse::parse_kv)]
    volume_context: Vec<(String, String)>,
    #[command(flatten)]
    cap: CapabilityArgs,
    #[command(flatten)]
    secrets: SecretArgs,
}

impl PublishArgs {
    fn request(&self) -> Result<ControllerPublishVolumeRequest, CliError> {
        Ok(ControllerPublishVolumeRequest {
            volume_id: self.volume_id.clone(),
            node_id: self.node_id.clone(),
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
    /// Node id to unpublish from (empty: from all nodes)
    #[arg(long, default_value = "")]
    node_id: String,
    #[command(flatten)]
    secrets: SecretArgs,
}

#[derive(Args)]
pub(crate) struct ValidateArgs {
    /// Volume id
    volume_id: String,
    /// A volume context entry key=value (repeatable)
    #[arg(long = "volume-context", value_name = "K=V", value_parser = parse::parse_kv)]
    volume_context: Vec<(String, String)>,
    /// A parameter key=value (repeatable)
    #[arg(long = "param", value_name = "K=V", value_parser = parse::parse_kv)]
    params: Vec<(String, String)>,
    /// A mutable parameter key=value (repeatable)
    #[arg(long = "mutable-param", value_name = "K=V", value_parser = parse::parse_kv)]
    mutable_params: Vec<(String, String)>,
    #[command(flatten)]
    caps: CapabilitiesArgs,
    #[command(flatten)]
    secrets: SecretArgs,
}

impl ValidateArgs {
    fn request(&self) -> Result<ValidateVolumeCapabilitiesRequest, CliError> {
        Ok(ValidateVolumeCapabilitiesRequest {
            volume_id: self.volume_id.clone(),
            volume_context: map(&self.volume_context)?,
            volume_capabilities: self.caps.capabilities(),
            parameters: map(&self.params)?,
            secrets: self.secrets.load()?,
            mutable_parameters: map(&self.mutable_params)?,
        })
    }
}

#[derive(Args)]
pub(crate) struct ListVolumesArgs {
    /// At most this many entries per page (0: the plugin decides)
    #[arg(long, default_value_t = 0, value_name = "N")]
    max_entries: i32,
    /// Continue from this next_token of an earlier page
    #[arg(long, default_value = "", value_name = "TOKEN")]
    starting_token: String,
    /// Follow next_token until the last page and print all entries as one response
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
pub(crate) struct CapacityArgs {
    /// A parameter key=value (repeatable)
    #[arg(long = "param", value_name = "K=V", value_parser = parse::parse_kv)]
    params: Vec<(String, String)>,
    /// Only capacity accessible from this topology, as k=v,k2=v2
    #[arg(long, value_name = "K=V,...", value_parser = parse::parse_kv_list)]
    topology: Option<HashMap<String, String>>,
    /// Capabilities the capacity is for (no flags: any)
    #[command(flatten)]
    caps: CapabilitiesArgs,
}

impl CapacityArgs {
    fn request(&self) -> Result<GetCapacityRequest, CliError> {
        Ok(GetCapacityRequest {
            volume_capabilities: self.caps.optional(),
            parameters: map(&self.params)?,
            accessible_topology: self.topology.clone().map(|segments| Topology { segments }),
        })
    }
}

#[derive(Args)]
pub(crate) struct GetVolumeArgs {
    /// Volume id
    volume_id: String,
}

#[derive(Args)]
pub(crate) struct ExpandArgs {
    /// Volume id
    volume_id: String,
    /// New required capacity, e.g. 2Gi
    #[arg(long, value_name = "SIZE", value_parser = parse::parse_size)]
    capacity: i64,
    /// Capacity limit (same units as --capacity)
    #[arg(long, value_name = "SIZE", value_parser = parse::parse_size, default_value = "0")]
    limit: i64,
    /// The volume's capability (sent only if a capability flag is given)
    #[command(flatten)]
    cap: CapabilityArgs,
    #[command(flatten)]
    secrets: SecretArgs,
}

impl ExpandArgs {
    fn request(&self) -> Result<ControllerExpandVolumeRequest, CliError> {
        Ok(ControllerExpandVolumeRequest {
            volume_id: self.volume_id.clone(),
            capacity_range: request::capacity_range(self.capacity, self.limit),
            secrets: self.secrets.load()?,
            volume_capability: self.cap.optional(),
        })
    }
}

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

#[derive(Args)]
pub(crate) struct DeleteSnapshotArgs {
    /// Snapshot id
    snapshot_id: String,
    #[command(flatten)]
    secrets: SecretArgs,
}

#[derive(Args)]
pub(crate) struct ListSnapshotsArgs {
    /// Only this snapshot
    #[arg(long, default_value = "", value_name = "ID")]
    snapshot_id: String,
    /// Only snapshots of this volume
    #[arg(long, default_value = "", value_name = "ID")]
    source_volume_id: String,
    /// At most this many entries per page (0: the plugin decides)
    #[arg(long, default_value_t = 0, value_name = "N")]
    max_entries: i32,
    /// Continue from this next_token of an earlier page
    #[arg(long, default_value = "", value_name = "TOKEN")]
    starting_token: String,
    /// Follow next_token until the last page and print all entries as one response
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    secrets: SecretArgs,
}

#[derive(Args)]
pub(crate) struct GetSnapshotArgs {
    /// Snapshot id
    snapshot_id: String,
    #[command(flatten)]
    secrets: SecretArgs,
}

#[derive(Args)]
pub(crate) struct ModifyVolumeArgs {
    /// Volume id
    volume_id: String,
    /// A mutable parameter key=value to set (repeatable, at least one)
    #[arg(long = "mutable-param", value_name = "K=V", value_parser = parse::parse_kv, required = true)]
    mutable_params: Vec<(String, String)>,
    #[command(flatten)]
    secrets: SecretArgs,
}

/// Fails when a plugin hands back the token it was given (it would page forever).
fn next_page(current: &str, next: &str) -> Result<(), CliError> {
    if next == current {
        return Err(CliError::Usage(format!(
            "plugin returned next_token {next:?} again; stopping"
        )));
    }
    Ok(())
}

impl ControllerCmd {
    pub(crate) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        Ok(match self {
            ControllerCmd::CreateVolume(args) => {
                Output::of(&rpc!(session, controller, create_volume, args.request()?))
            }
            ControllerCmd::DeleteVolume(args) => {
                let request = DeleteVolumeRequest {
                    volume_id: args.volume_id.clone(),
                    secrets: args.secrets.load()?,
                };
                let response = rpc!(session, controller, delete_volume, request);
                Output::with_human(&response, format!("volume {} deleted", args.volume_id))
            }
            ControllerCmd::Publish(args) => Output::of(&rpc!(
                session,
                controller,
                controller_publish_volume,
                args.request()?
            )),
            ControllerCmd::Unpublish(args) => {
                let request = ControllerUnpublishVolumeRequest {
                    volume_id: args.volume_id.clone(),
                    node_id: args.node_id.clone(),
                    secrets: args.secrets.load()?,
                };
                let response = rpc!(session, controller, controller_unpublish_volume, request);
                let from = if args.node_id.is_empty() {
                    "all nodes".to_string()
                } else {
                    format!("node {}", args.node_id)
                };
                Output::with_human(
                    &response,
                    format!("volume {} unpublished from {from}", args.volume_id),
                )
            }
            ControllerCmd::Validate(args) => Output::of(&rpc!(
                session,
                controller,
                validate_volume_capabilities,
                args.request()?
            )),
            ControllerCmd::ListVolumes(args) => {
                let mut all = ListVolumesResponse::default();
                let mut token = args.starting_token.clone();
                loop {
                    let request = ListVolumesRequest {
                        max_entries: args.max_entries,
                        starting_token: token.clone(),
                    };
                    let page = rpc!(session, controller, list_volumes, request);
                    all.entries.extend(page.entries);
                    all.next_token = page.next_token;
                    if !args.all || all.next_token.is_empty() {
                        break;
                    }
                    next_page(&token, &all.next_token)?;
                    token = all.next_token.clone();
                }
                Output::with_human(&all, volumes_table(&all))
            }
            ControllerCmd::Capacity(args) => {
                Output::of(&rpc!(session, controller, get_capacity, args.request()?))
            }
            ControllerCmd::Capabilities => Output::of(&rpc!(
                session,
                controller,
                controller_get_capabilities,
                ControllerGetCapabilitiesRequest {}
            )),
            ControllerCmd::GetVolume(args) => {
                let request = ControllerGetVolumeRequest {
                    volume_id: args.volume_id,
                };
                Output::of(&rpc!(session, controller, controller_get_volume, request))
            }
            ControllerCmd::Expand(args) => Output::of(&rpc!(
                session,
                controller,
                controller_expand_volume,
                args.request()?
            )),
            ControllerCmd::CreateSnapshot(args) => {
                let request = CreateSnapshotRequest {
                    source_volume_id: args.source.clone(),
                    name: args.name.clone(),
                    secrets: args.secrets.load()?,
                    parameters: map(&args.params)?,
                };
                Output::of(&rpc!(session, controller, create_snapshot, request))
            }
            ControllerCmd::DeleteSnapshot(args) => {
                let request = DeleteSnapshotRequest {
                    snapshot_id: args.snapshot_id.clone(),
                    secrets: args.secrets.load()?,
                };
                let response = rpc!(session, controller, delete_snapshot, request);
                Output::with_human(&response, format!("snapshot {} deleted", args.snapshot_id))
            }
            ControllerCmd::ListSnapshots(args) => {
                let secrets = args.secrets.load()?;
                let mut all = ListSnapshotsResponse::default();
                let mut token = args.starting_token.clone();
                loop {
                    let request = ListSnapshotsRequest {
                        max_entries: args.max_entries,
                        starting_token: token.clone(),
                        source_volume_id: args.source_volume_id.clone(),
                        snapshot_id: args.snapshot_id.clone(),
                        secrets: secrets.clone(),
                    };
                    let page = rpc!(session, controller, list_snapshots, request);
                    all.entries.extend(page.entries);
                    all.next_token = page.next_token;
                    if !args.all || all.next_token.is_empty() {
                        break;
                    }
                    next_page(&token, &all.next_token)?;
                    token = all.next_token.clone();
                }
                Output::with_human(&all, snapshots_table(&all))
            }
            ControllerCmd::GetSnapshot(args) => {
                let request = GetSnapshotRequest {
                    snapshot_id: args.snapshot_id,
                    secrets: args.secrets.load()?,
                };
                Output::of(&rpc!(session, controller, get_snapshot, request))
            }
            ControllerCmd::ModifyVolume(args) => {
                let request = ControllerModifyVolumeRequest {
                    volume_id: args.volume_id.clone(),
                    secrets: args.secrets.load()?,
                    mutable_parameters: map(&args.mutable_params)?,
                };
                let response = rpc!(session, controller, controller_modify_volume, request);
                Output::with_human(&response, format!("volume {} modified", args.volume_id))
            }
        })
    }
}

fn next_token_line(token: &str) -> String {
    if token.is_empty() {
        String::new()
    } else {
        format!("next_token: {token}\n")
    }
}

/// ListVolumes as a table: id, capacity, published nodes, condition.
fn volumes_table(response: &ListVolumesResponse) -> String {
    let rows: Vec<Vec<String>> = response
        .entries
        .iter()
        .map(|entry| {
            let volume = entry.volume.clone().unwrap_or_default();
            let (nodes, condition) = match &entry.status {
                Some(status) => (
                    status.published_node_ids.join(","),
                    match &status.volume_condition {
                        Some(c) if c.abnormal => format!("abnormal: {}", c.message),
                        Some(_) => "ok".to_string(),
                        None => String::new(),
                    },
                ),
                None => (String::new(), String::new()),
            };
            vec![
                volume.volume_id,
                human_bytes(volume.capacity_bytes),
                nodes,
                condition,
            ]
        })
        .collect();
    table(
        &["VOLUME_ID", "CAPACITY", "PUBLISHED_NODES", "CONDITION"],
        &rows,
    ) + &next_token_line(&response.next_token)
}

/// ListSnapshots as a table: id, source volume, size, ready, creation time.
fn snapshots_table(response: &ListSnapshotsResponse) -> String {
    let rows: Vec<Vec<String>> = response
        .entries
        .iter()
        .map(|entry| {
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
        })
        .collect();
    table(
        &[
            "SNAPSHOT_ID",
            "SOURCE_VOLUME_ID",
            "SIZE",
            "READY",
            "CREATED",
        ],
        &rows,
    ) + &next_token_line(&response.next_token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Group};
    use clap::Parser;
    use volume_capability::{AccessType, access_mode::Mode};

    fn parse(args: &[&str]) -> ControllerCmd {
        let cli = Cli::try_parse_from(["carvectl", "controller"].iter().chain(args)).unwrap();
        let Group::Controller(cmd) = cli.group else {
            panic!("not a controller command")
        };
        cmd
    }

    #[test]
    fn create_volume_request() {
        let ControllerCmd::CreateVolume(args) = parse(&[
            "create-volume",
            "--name=pvc-1",
            "--capacity=1Gi",
            "--limit=2Gi",
            "--fs-type=xfs",
            "--mount-flag=noatime",
            "--access-mode=single-node-writer",
            "--access-mode=rox",
            "--param=pool=fast",
            "--secret=user=admin",
            "--from-snapshot=snap-1",
            "--requisite-topology=zone=a,rack=1",
            "--preferred-topology=zone=a",
        ]) else {
            panic!("wrong command")
        };
        let request = args.request().unwrap();
        assert_eq!(request.name, "pvc-1");
        assert_eq!(
            request.capacity_range,
            Some(CapacityRange {
                required_bytes: 1 << 30,
                limit_bytes: 2 << 30
            })
        );
        assert_eq!(request.volume_capabilities.len(), 2);
        assert_eq!(
            request.volume_capabilities[1].access_mode.unwrap().mode,
            Mode::MultiNodeReaderOnly as i32
        );
        let Some(AccessType::Mount(mount)) = &request.volume_capabilities[0].access_type else {
            panic!("not mount")
        };
        assert_eq!(
            (mount.fs_type.as_str(), mount.mount_flags.as_slice()),
            ("xfs", ["noatime".to_string()].as_slice())
        );
        assert_eq!(request.parameters["pool"], "fast");
        assert_eq!(request.secrets["user"], "admin");
        assert_eq!(
            request.volume_content_source,
            Some(request::from_snapshot("snap-1"))
        );
        let topology = request.accessibility_requirements.unwrap();
        assert_eq!(topology.requisite[0].segments["rack"], "1");
        assert_eq!(topology.preferred[0].segments.len(), 1);
    }

    #[test]
    fn create_volume_defaults_and_conflicts() {
        let ControllerCmd::CreateVolume(args) = parse(&["create-volume", "--name=v", "--block"])
        else {
            panic!("wrong command")
        };
        let request = args.request().unwrap();
        assert_eq!(request.capacity_range, None);
        assert_eq!(
            request.volume_capabilities,
            vec![request::block_capability(Mode::SingleNodeWriter)]
        );
        assert_eq!(request.accessibility_requirements, None);

        let try_parse = |args: &[&str]| {
            Cli::try_parse_from(["carvectl", "controller"].iter().chain(args)).map(|_| ())
        };
        assert!(try_parse(&["create-volume", "--name=v", "--block", "--fs-type=ext4"]).is_err());
        assert!(
            try_parse(&[
                "create-volume",
                "--name=v",
                "--from-snapshot=s",
                "--from-volume=v"
            ])
            .is_err()
        );
        assert!(try_parse(&["create-volume", "--name=v", "--capacity=1GB"]).is_err());
        assert!(try_parse(&["create-volume", "--name=v", "--param=novalue"]).is_err());
        assert!(try_parse(&["create-volume", "--capacity=1Gi"]).is_err());

        let ControllerCmd::CreateVolume(args) =
            parse(&["create-volume", "--name=v", "--param=a=1", "--param=a=2"])
        else {
            panic!("wrong command")
        };
        assert!(matches!(args.request(), Err(CliError::Usage(m)) if m.contains("duplicate key")));
    }

    #[test]
    fn publish_and_expand_requests() {
        let ControllerCmd::Publish(args) = parse(&[
            "publish",
            "vol-1",
            "--node-id=n1",
            "--readonly",
            "--volume-context=iqn=x",
            "--block",
        ]) else {
            panic!("wrong command")
        };
        let request = args.request().unwrap();
        assert_eq!(
            (
                request.volume_id.as_str(),
                request.node_id.as_str(),
                request.readonly
            ),
            ("vol-1", "n1", true)
        );
        assert_eq!(
            request.volume_capability,
            Some(request::block_capability(Mode::SingleNodeWriter))
        );
        assert_eq!(request.volume_context["iqn"], "x");

        let ControllerCmd::Expand(args) = parse(&["expand", "vol-1", "--capacity=2Gi"]) else {
            panic!("wrong")
        };
        let request = args.request().unwrap();
        assert_eq!(request.capacity_range.unwrap().required_bytes, 2 << 30);
        assert_eq!(
            request.volume_capability, None,
            "no capability flags: none sent"
        );
    }

    #[test]
    fn capacity_and_validate_requests() {
        let ControllerCmd::Capacity(args) = parse(&["capacity", "--topology=zone=a"]) else {
            panic!("wrong")
        };
        let request = args.request().unwrap();
        assert!(request.volume_capabilities.is_empty());
        assert_eq!(request.accessible_topology.unwrap().segments["zone"], "a");

        let ControllerCmd::Validate(args) =
            parse(&["validate", "v", "--access-mode=rwx", "--block"])
        else {
            panic!("wrong")
        };
        let request = args.request().unwrap();
        assert_eq!(
            request.volume_capabilities,
            vec![request::block_capability(Mode::MultiNodeMultiWriter)]
        );
    }

    #[test]
    fn tables() {
        let response = ListVolumesResponse {
            entries: vec![list_volumes_response::Entry {
                volume: Some(Volume {
                    volume_id: "vol-1".into(),
                    capacity_bytes: 1 << 30,
                    ..Default::default()
                }),
                status: Some(list_volumes_response::VolumeStatus {
                    published_node_ids: vec!["n1".into()],
                    volume_condition: Some(VolumeCondition {
                        abnormal: false,
                        message: String::new(),
                    }),
                }),
            }],
            next_token: "5".into(),
        };
        assert_eq!(
            volumes_table(&response),
            "VOLUME_ID  CAPACITY  PUBLISHED_NODES  CONDITION\nvol-1      1 GiB     n1               ok\nnext_token: 5\n"
        );
        assert!(next_page("a", "a").is_err());
        assert!(next_page("a", "b").is_ok());
    }
}
