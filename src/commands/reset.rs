//! `vnode reset SPECS`: running nodes back to their fresh state. Each node is spawned again as it
//! was made (its image and host from its `node.json`), with --force, restoring its state; a node
//! without one is re-created cold and its state saved. Nodes vnode has no record of are refused
//! before anything is touched.

use std::process::ExitCode;

use crate::cli::{ResetArgs, SpawnArgs};
use crate::commands::CommandError;
use crate::commands::spawn::{self, Spawned};
use crate::context::Context;
use crate::error::Result;
use crate::node::files::NodePaths;
use crate::node::metadata::NodeMetadata;
use crate::spawn::FreshOptions;

pub fn run(ctx: &Context, args: &ResetArgs) -> Result<ExitCode> {
    let state_dir = &ctx.config.state_dir;
    let mut specs = Vec::new();
    let mut unknown = Vec::new();
    for (_, node) in crate::plan::spec::resolve_names(&args.specs, &ctx.config.pools)? {
        let name = node.to_string();
        match NodeMetadata::load(&NodePaths::new(state_dir, &name).dir) {
            Ok(m) => specs.push(match &m.host {
                Some(host) => format!("{name}:{}@{host}", m.image),
                None => format!("{name}:{}", m.image),
            }),
            Err(_) => unknown.push(name),
        }
    }
    if !unknown.is_empty() {
        return Err(CommandError::NothingToReset {
            nodes: unknown,
            state_dir: state_dir.clone(),
        }
        .into());
    }
    let spawn_args = SpawnArgs {
        specs,
        force: true,
        ready: args.ready.clone(),
        cold: args.cold,
        ..SpawnArgs::default()
    };
    let fresh = FreshOptions {
        restore: !args.cold,
        save: crate::config::FreshStates::On,
        warm: false,
        reset: true,
        cap_bytes: ctx.config.fresh_states_cap_gib << 30,
    };
    Ok(match spawn::spawn_reports(ctx, &spawn_args, fresh)? {
        Spawned::Printed(code) => code,
        Spawned::Nodes(reports) => {
            spawn::print_report(&reports, ctx.json);
            spawn::print_kept(&reports);
            ExitCode::from(spawn::exit_code(&reports))
        }
    })
}
