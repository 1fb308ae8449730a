//! `vnode warm SPECS`: fresh states made ahead of time. Each node boots cold, its state is saved
//! at its first ready, and the node is removed (the state stays); a node whose state exists and
//! matches is left as it is ("warm"). A node that exists already is left alone.

use std::process::ExitCode;

use crate::cli::{ReadyArgs, SpawnArgs, WarmArgs};
use crate::commands::spawn::{self, Spawned};
use crate::context::Context;
use crate::error::Result;
use crate::hosts::Hosts;
use crate::hosts::hypervisor::Keep;
use crate::process::runtime::{self, Flavor};
use crate::spawn::FreshOptions;
use crate::spawn::WaitFor;
use crate::spawn::report::{FreshHow, NodeReport, Outcome};

pub fn run(ctx: &Context, args: &WarmArgs) -> Result<ExitCode> {
    let spawn_args = SpawnArgs {
        specs: args.specs.clone(),
        distro: args.distro.clone(),
        pull: args.pull,
        virt_type: args.virt_type,
        ready: ReadyArgs {
            timeout: args.timeout,
            // The state is taken when the node is as a spawn would report it ready.
            wait: WaitFor::Auto,
            public_optional: true,
            ..ReadyArgs::default()
        },
        ..SpawnArgs::default()
    };
    let fresh = FreshOptions {
        restore: false,
        save: crate::config::FreshStates::On,
        warm: true,
        reset: false,
        cap_bytes: ctx.config.fresh_states_cap_gib << 30,
    };
    let mut reports = match spawn::spawn_reports(ctx, &spawn_args, fresh)? {
        Spawned::Printed(code) => return Ok(code),
        Spawned::Nodes(reports) => reports,
    };
    remove_warmed(ctx, &mut reports)?;
    spawn::print_report(&reports, ctx.json);
    spawn::print_kept(&reports);
    Ok(ExitCode::from(spawn::exit_code(&reports)))
}

/// Removes every node whose state was saved (the state stays); a node that could not be
/// removed is failed, with what to do.
fn remove_warmed(ctx: &Context, reports: &mut [NodeReport]) -> Result<()> {
    let hosts = Hosts::from_config(&ctx.config);
    runtime::block_on(Flavor::CurrentThread, async {
        for r in reports.iter_mut() {
            if r.outcome != Outcome::Ready {
                continue;
            }
            let saved = r.fresh.as_ref().is_some_and(|f| f.how == FreshHow::Saved);
            let Some(host) = hosts
                .all()
                .iter()
                .find(|h| h.name().remote_name() == r.host.as_deref())
            else {
                continue;
            };
            match host.remove_node(&r.name, Keep::Nothing).await {
                Ok(()) if saved => {}
                Ok(()) => {
                    r.outcome = Outcome::Failed;
                    if r.error.is_none() {
                        r.error = Some(
                            "no fresh state was saved (see the note above); the node was removed"
                                .into(),
                        );
                    }
                }
                Err(e) => {
                    r.outcome = Outcome::Failed;
                    r.error = Some(format!(
                        "its state was saved, but the node could not be removed: {e}; `vnode destroy {}`",
                        r.name
                    ));
                }
            }
        }
    })?;
    Ok(())
}
