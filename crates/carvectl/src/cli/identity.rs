//! `carvectl identity ...`: GetPluginInfo, GetPluginCapabilities, Probe.

use clap::Subcommand;
use csi_proto::v1::{GetPluginCapabilitiesRequest, GetPluginInfoRequest, ProbeRequest};

use super::{CliError, Output, Session};
use crate::status::EXIT_NOT_READY;

#[derive(Subcommand)]
pub(crate) enum IdentityCmd {
    /// GetPluginInfo: the plugin's name, version and manifest
    Info,
    /// GetPluginCapabilities: which services and expansion modes the plugin offers
    Capabilities,
    /// Probe: whether the plugin is ready (exit status 3 when it answers ready=false)
    Probe,
}

impl IdentityCmd {
    pub(crate) async fn run(self, session: &mut Session<'_>) -> Result<Output, CliError> {
        Ok(match self {
            IdentityCmd::Info => Output::of(&rpc!(
                session,
                identity,
                get_plugin_info,
                GetPluginInfoRequest {}
            )),
            IdentityCmd::Capabilities => Output::of(&rpc!(
                session,
                identity,
                get_plugin_capabilities,
                GetPluginCapabilitiesRequest {}
            )),
            IdentityCmd::Probe => {
                let response = rpc!(session, identity, probe, ProbeRequest {});
                let mut output = Output::of(&response);
                if response.ready == Some(false) {
                    output.status = EXIT_NOT_READY;
                }
                output
            }
        })
    }
}
