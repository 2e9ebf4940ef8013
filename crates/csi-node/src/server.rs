//! Builds the node plugin's gRPC routes (Identity and Node) from its configuration.

use crate::{
    config::NodeArgs,
    device::sys::SysDevices,
    filesystem::{mkfs::Formatter, probe::Blkid},
    host::HostView,
    initiator_name,
    iscsi::iscsiadm::OpenIscsi,
    mount::sys::SysMounter,
    multipath::tools::MultipathTools,
    ops::NodeCore,
    readiness::NodeReadiness,
    records::StateDir,
    service::NodeService,
};
use csi_common::{
    Error, Result,
    command::CommandRunner,
    guard::OperationGuards,
    identity::{IdentityService, service_capability},
    ids::{Iqn, NodeId},
};
use csi_proto::v1::{
    identity_server::IdentityServer, node_server::NodeServer,
    plugin_capability::service::Type as ServiceType,
};
use std::{path::PathBuf, sync::Arc};
use tonic::service::Routes;

/// This node's id: --node-id (validated) or the initiator IQN from --initiator-name-file.
pub fn node_id(args: &NodeArgs) -> Result<NodeId> {
    match &args.node_id {
        Some(raw) => NodeId::parse(raw),
        None => {
            initiator_name::read(&args.initiator_name_file).map(|iqn| NodeId::from_initiator(&iqn))
        }
    }
}

/// The node's operations on the real system.
pub fn core(args: &NodeArgs, runner: Arc<dyn CommandRunner>) -> Result<NodeCore> {
    let sys = PathBuf::from("/sys");
    Ok(NodeCore {
        node_id: node_id(args)?,
        max_volumes: args.max_volumes,
        topology: args.segments().map_err(Error::invalid_argument)?,
        initiator: Arc::new(OpenIscsi {
            runner: Arc::clone(&runner),
            iscsiadm: args.iscsiadm.clone(),
            iface: args.iscsi_iface.clone(),
            nodes_dir: args.iscsi_nodes_dir.clone(),
            sys: sys.clone(),
            timeout: args.iscsiadm_timeout,
        }),
        devices: Arc::new(SysDevices {
            runner: Arc::clone(&runner),
            sys: sys.clone(),
            timeout: args.device_tool_timeout,
            multipathd: args.multipathd_program.clone(),
        }),
        multipath: Arc::new(MultipathTools {
            runner: Arc::clone(&runner),
            multipath: args.multipath_program.clone(),
            multipathd: args.multipathd_program.clone(),
            sys,
            conf_dir: args.multipath_conf_dir.clone(),
            timeout: args.device_tool_timeout,
        }),
        multipath_mode: args.multipath,
        probe: Arc::new(Blkid {
            runner: Arc::clone(&runner),
            timeout: args.device_tool_timeout,
        }),
        mounter: Arc::new(SysMounter),
        formatter: Formatter {
            runner,
            timeout: args.mkfs_timeout,
        },
        records: StateDir::new(args.state_dir()),
        mkfs_permits: Arc::new(tokio::sync::Semaphore::new(args.mkfs_concurrency as usize)),
        device_timeout: args.device_timeout,
        host: HostView::default(),
        kubelet_dir: args.kubelet_dir.clone(),
    })
}

/// The Identity and Node services for `args`, running tools via `runner`.
pub fn routes(args: &NodeArgs, runner: Arc<dyn CommandRunner>) -> Result<Routes> {
    Ok(build(args, runner)?.0)
}

/// The target IQN prefix: --iqn-prefix, or the default for the driver name.
pub fn iqn_prefix(args: &NodeArgs) -> Result<Iqn> {
    match &args.iqn_prefix {
        Some(raw) => Iqn::parse(raw),
        None => Iqn::prefix_for_driver(&args.common.driver_name),
    }
}

/// The routes, plus what the stale-session upkeep needs: the node's operations and the
/// per-volume guards the Node service takes.
pub fn build(
    args: &NodeArgs,
    runner: Arc<dyn CommandRunner>,
) -> Result<(Routes, Arc<NodeCore>, OperationGuards)> {
    let readiness = Arc::new(NodeReadiness::new(
        Arc::clone(&runner),
        args.iscsiadm.clone(),
        (args.multipath != crate::multipath::Mode::Off).then(|| args.multipathd_program.clone()),
    ));
    // A node plugin advertises no plugin service capability beyond its Node service, which
    // every plugin has (CONTROLLER_SERVICE is the controller's), except that a NodeGetInfo
    // reporting a topology MUST come with VOLUME_ACCESSIBILITY_CONSTRAINTS (spec.md,
    // NodeGetInfoResponse.accessible_topology).
    let core = Arc::new(core(args, runner)?);
    let capabilities = if core.topology.is_empty() {
        vec![]
    } else {
        vec![service_capability(
            ServiceType::VolumeAccessibilityConstraints,
        )]
    };
    let identity = IdentityService::new(
        args.common.driver_name.clone(),
        env!("CARGO_PKG_VERSION"),
        capabilities,
        readiness,
    );
    let guards = OperationGuards::new("volume");
    let node = NodeService::with_guards(Arc::clone(&core), guards.clone());
    let routes = Routes::new(IdentityServer::new(identity)).add_service(NodeServer::new(node));
    Ok((routes, core, guards))
}
