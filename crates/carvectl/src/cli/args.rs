//! Flag groups shared by several subcommands: volume capability flags, secrets, `k=v` maps.
//!
//! Invariant: secret values never reach an error message or a `Debug` print: they are parsed
//! here, not by clap (which would echo a bad value), and these types do not derive `Debug`.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Args;
use csi_proto::v1::{VolumeCapability, volume_capability::access_mode::Mode};

use super::CliError;
use crate::parse::{self, ParseError};
use crate::request::{self, AccessType};

/// The access mode used when none is given.
pub(crate) const DEFAULT_ACCESS_MODE: Mode = Mode::SingleNodeWriter;

/// Collects parsed `k=v` pairs, refusing duplicate keys (exit status 2).
pub(crate) fn map(pairs: &[(String, String)]) -> Result<HashMap<String, String>, CliError> {
    parse::collect_map(pairs.iter().cloned()).map_err(usage)
}

pub(crate) fn usage(error: ParseError) -> CliError {
    CliError::Usage(error.0)
}

/// How the volume is accessed: mounted filesystem (default) or raw block.
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Volume capability")]
pub(crate) struct AccessTypeArgs {
    /// Filesystem type of a mount volume, e.g. ext4 or xfs (default: the plugin's choice)
    #[arg(long, value_name = "FS", conflicts_with = "block")]
    pub fs_type: Option<String>,
    /// Access the volume as a raw block device instead of a mounted filesystem
    #[arg(long)]
    pub block: bool,
    /// A mount flag for a mount volume, e.g. noatime (repeatable)
    #[arg(long = "mount-flag", value_name = "FLAG", conflicts_with = "block")]
    pub mount_flags: Vec<String>,
    /// Group id that should own the mounted volume (volume_mount_group)
    #[arg(long, value_name = "GID", conflicts_with = "block")]
    pub mount_group: Option<String>,
}

impl AccessTypeArgs {
    fn given(&self) -> bool {
        self.block
            || self.fs_type.is_some()
            || !self.mount_flags.is_empty()
            || self.mount_group.is_some()
    }

    fn access_type(&self) -> AccessType {
        if self.block {
            return AccessType::Block;
        }
        AccessType::Mount {
            fs_type: self.fs_type.clone().unwrap_or_default(),
            mount_flags: self.mount_flags.clone(),
            volume_mount_group: self.mount_group.clone().unwrap_or_default(),
        }
    }
}

/// One volume capability (publish, stage, expand).
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Volume capability")]
pub(crate) struct CapabilityArgs {
    #[command(flatten)]
    pub access: AccessTypeArgs,
    /// Access mode: single-node-writer (default), single-node-reader-only,
    /// multi-node-reader-only, multi-node-single-writer, multi-node-multi-writer,
    /// single-node-single-writer, single-node-multi-writer (or rwo, rox, rwx, rwop)
    #[arg(long, value_name = "MODE", value_parser = parse::parse_access_mode)]
    pub access_mode: Option<Mode>,
}

impl CapabilityArgs {
    /// The capability; unset flags take their defaults (mount, single-node-writer).
    pub fn capability(&self) -> VolumeCapability {
        request::volume_capability(
            self.access_mode.unwrap_or(DEFAULT_ACCESS_MODE),
            &self.access.access_type(),
        )
    }

    /// The capability if any capability flag was given, for RPCs where it is optional.
    pub fn optional(&self) -> Option<VolumeCapability> {
        (self.access.given() || self.access_mode.is_some()).then(|| self.capability())
    }
}

/// Volume capabilities: one per `--access-mode`, all with the same access type.
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Volume capability")]
pub(crate) struct CapabilitiesArgs {
    #[command(flatten)]
    pub access: AccessTypeArgs,
    /// Access mode, repeatable for several capabilities: single-node-writer (default),
    /// single-node-reader-only, multi-node-reader-only, multi-node-single-writer,
    /// multi-node-multi-writer, single-node-single-writer, single-node-multi-writer
    /// (or rwo, rox, rwx, rwop)
    #[arg(long = "access-mode", value_name = "MODE", value_parser = parse::parse_access_mode)]
    pub access_modes: Vec<Mode>,
}

impl CapabilitiesArgs {
    /// The capabilities; without `--access-mode`, one single-node-writer capability.
    pub fn capabilities(&self) -> Vec<VolumeCapability> {
        let modes = if self.access_modes.is_empty() {
            vec![DEFAULT_ACCESS_MODE]
        } else {
            self.access_modes.clone()
        };
        let access = self.access.access_type();
        modes
            .into_iter()
            .map(|mode| request::volume_capability(mode, &access))
            .collect()
    }

    /// The capabilities if any capability flag was given, else none.
    pub fn optional(&self) -> Vec<VolumeCapability> {
        if self.access.given() || !self.access_modes.is_empty() {
            self.capabilities()
        } else {
            Vec::new()
        }
    }
}

/// Secrets for the RPC. Never printed.
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Secrets")]
pub(crate) struct SecretArgs {
    /// A secret as key=value (repeatable); prefer --secrets-file to keep secrets out of shell
    /// history and the process list
    #[arg(long = "secret", value_name = "K=V")]
    pub secrets: Vec<String>,
    /// Read secrets from a file: key=value lines (blank and # lines skipped) or a JSON object
    /// of strings; combined with --secret (a key in both is an error)
    #[arg(long, value_name = "PATH")]
    pub secrets_file: Option<PathBuf>,
}

impl SecretArgs {
    /// All secrets, from the file and the flags.
    pub fn load(&self) -> Result<HashMap<String, String>, CliError> {
        let mut pairs = Vec::new();
        for (index, secret) in self.secrets.iter().enumerate() {
            // Do not echo the value: it is a secret.
            let pair = parse::parse_kv(secret).map_err(|_| {
                CliError::Usage(format!("--secret #{} is not key=value", index + 1))
            })?;
            pairs.push(pair);
        }
        let flags = parse::collect_map(pairs).map_err(usage)?;
        let file = match &self.secrets_file {
            Some(path) => parse::read_secrets_file(path).map_err(usage)?,
            None => HashMap::new(),
        };
        parse::merge_maps(file, flags).map_err(usage)
    }
}
