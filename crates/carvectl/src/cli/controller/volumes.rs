//! `carvectl controller` commands on one volume: create, delete, get, publish/unpublish
//! (attach/detach), expand and modify.

use std::collections::HashMap;

use clap::Args;
#[allow(clippy::wildcard_imports)] // the CSI messages of these commands
use csi_proto::v1::*;

use crate::cli::args::{CapabilitiesArgs, CapabilityArgs, SecretArgs, map};
use crate::cli::{CliError, Output, Session};
use crate::parse;
use crate::request;

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

    pub(super) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        show!(session, create_volume, self.request()?)
    }
}

#[derive(Args)]
pub(crate) struct DeleteVolumeArgs {
    /// Volume id
    volume_id: String,
    #[command(flatten)]
    secrets: SecretArgs,
}

impl DeleteVolumeArgs {
    pub(super) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        let request = DeleteVolumeRequest {
            volume_id: self.volume_id.clone(),
            secrets: self.secrets.load()?,
        };
        let response = rpc!(session, controller, delete_volume, request);
        Ok(Output::with_human(
            &response,
            format!("volume {} deleted", self.volume_id),
        ))
    }
}

#[derive(Args)]
pub(crate) struct GetVolumeArgs {
    /// Volume id
    volume_id: String,
}

impl GetVolumeArgs {
    pub(super) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        let request = ControllerGetVolumeRequest {
            volume_id: self.volume_id,
        };
        show!(session, controller_get_volume, request)
    }
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

    pub(super) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        show!(session, controller_publish_volume, self.request()?)
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

impl UnpublishArgs {
    pub(super) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        let request = ControllerUnpublishVolumeRequest {
            volume_id: self.volume_id.clone(),
            node_id: self.node_id.clone(),
            secrets: self.secrets.load()?,
        };
        let response = rpc!(session, controller, controller_unpublish_volume, request);
        let from = if self.node_id.is_empty() {
            "all nodes".to_string()
        } else {
            format!("node {}", self.node_id)
        };
        Ok(Output::with_human(
            &response,
            format!("volume {} unpublished from {from}", self.volume_id),
        ))
    }
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

    pub(super) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        show!(session, controller_expand_volume, self.request()?)
    }
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

impl ModifyVolumeArgs {
    pub(super) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        let request = ControllerModifyVolumeRequest {
            volume_id: self.volume_id.clone(),
            secrets: self.secrets.load()?,
            mutable_parameters: map(&self.mutable_params)?,
        };
        let response = rpc!(session, controller, controller_modify_volume, request);
        Ok(Output::with_human(
            &response,
            format!("volume {} modified", self.volume_id),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::cli::controller::{ControllerCmd, tests::parse};
    use clap::Parser;
    use volume_capability::{AccessType, access_mode::Mode};

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
}
