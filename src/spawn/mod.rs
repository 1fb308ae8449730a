//! The concurrent spawn pipeline: preflight, artifacts, virt-install, readiness, report.

use std::process::ExitCode;

use crate::cli::SpawnArgs;
use crate::context::Context;
use crate::error::Result;
use crate::spec::NodeRequest;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{0}")]
    Preflight(String),
}

impl SpawnError {
    pub fn exit_code(&self) -> u8 {
        crate::error::EXIT_FAILED
    }
}

pub fn run(_ctx: &Context, _args: &SpawnArgs, _requests: Vec<NodeRequest>) -> Result<ExitCode> {
    Err(crate::not_yet("spawn (without --dry-run)"))
}
