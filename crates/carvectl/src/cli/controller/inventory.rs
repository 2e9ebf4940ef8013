//! `carvectl controller` queries about the plugin's volumes and room: ListVolumes (a table),
//! GetCapacity, ValidateVolumeCapabilities and ControllerGetCapabilities.

use std::collections::HashMap;

use clap::Args;
#[allow(clippy::wildcard_imports)] // the CSI messages of these commands
use csi_proto::v1::*;

use crate::cli::args::{CapabilitiesArgs, SecretArgs, map};
use crate::cli::pages::{self, PageArgs, page_table};
use crate::cli::{CliError, Output, Session};
use crate::parse;
use crate::render::human_bytes;

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

    pub(super) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        show!(session, validate_volume_capabilities, self.request()?)
    }
}

#[derive(Args)]
pub(crate) struct ListVolumesArgs {
    #[command(flatten)]
    page: PageArgs,
}

impl ListVolumesArgs {
    pub(super) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        let all = pages::fetch(
            session,
            &self.page.starting_token,
            self.page.all,
            |token| ListVolumesRequest {
                max_entries: self.page.max_entries,
                starting_token: token,
            },
            send!(controller, list_volumes),
        )
        .await?;
        Ok(Output::with_human(&all, volumes_table(&all)))
    }
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

    pub(super) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        show!(session, get_capacity, self.request()?)
    }
}

/// ControllerGetCapabilities: which controller RPCs the plugin supports.
pub(super) async fn capabilities(session: &mut Session<'_>) -> Result<Output, CliError> {
    show!(
        session,
        controller_get_capabilities,
        ControllerGetCapabilitiesRequest {}
    )
}

/// ListVolumes as a table: id, capacity, published nodes, condition.
fn volumes_table(response: &ListVolumesResponse) -> String {
    page_table(
        &["VOLUME_ID", "CAPACITY", "PUBLISHED_NODES", "CONDITION"],
        &response.entries,
        volume_row,
        &response.next_token,
    )
}

fn volume_row(entry: &list_volumes_response::Entry) -> Vec<String> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::controller::{ControllerCmd, tests::parse};
    use crate::cli::pages::next_page;
    use crate::request;
    use volume_capability::access_mode::Mode;

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
