//! `vnode host ...`.

use std::io::{BufRead, IsTerminal, Write};

use crate::cli::{BridgeCommand, BridgeTarget, HostCommand};
use crate::commands::CommandError;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::setup::bridge::{self, Backend, Plan};
use crate::setup::check::{Level, verdicts};
use crate::setup::host_facts;

pub fn run(ctx: &Context, cmd: HostCommand) -> Result<()> {
    match cmd {
        HostCommand::Check => check(ctx),
        HostCommand::Bridge(BridgeCommand::Create { uplink, target }) => {
            let name = &target.name;
            if std::path::Path::new("/sys/class/net").join(name).exists() {
                return Err(Error::Usage(format!(
                    "{name} already exists; `vnode host bridge delete --name {name}` first"
                )));
            }
            let up = bridge::read_uplink(&uplink).map_err(|e| Error::Usage(e.to_string()))?;
            let plan = bridge::create_plan(name, &up, backend(), bridge::bridge_netfilter());
            show_and_apply(ctx, &plan, &target)
        }
        HostCommand::Bridge(BridgeCommand::Delete { target }) => {
            let name = &target.name;
            let uplink = bridge::bridge_uplink(name).map_err(|e| Error::Usage(e.to_string()))?;
            let state = bridge::read_uplink(name).map_err(|e| Error::Usage(e.to_string()))?;
            let plan = bridge::delete_plan(name, &state, &uplink, backend());
            show_and_apply(ctx, &plan, &target)
        }
    }
}

fn backend() -> Backend {
    if bridge::network_manager_running() {
        Backend::NetworkManager
    } else {
        Backend::Iproute2
    }
}

fn show_and_apply(ctx: &Context, plan: &Plan, target: &BridgeTarget) -> Result<()> {
    let (dry_run, yes) = (target.dry_run, target.yes);
    if ctx.json {
        ctx.print_json(plan);
    } else {
        println!("plan ({:?}):", plan.backend);
        for s in &plan.steps {
            println!("  {s}");
        }
        for n in &plan.notes {
            println!("note: {n}");
        }
    }
    if dry_run {
        return Ok(());
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::Usage(
                "not applied: confirm with --yes (stdin is not a terminal)".into(),
            ));
        }
        eprint!("apply this plan? the host's network drops for a few seconds [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "yes") {
            return Err(CommandError::NotApplied.into());
        }
    }
    bridge::apply(plan).map_err(|e| CommandError::BridgeHalfWay(e).into())
}

fn check(ctx: &Context) -> Result<()> {
    let facts = host_facts::gather(&ctx.config);
    let verdicts = verdicts(&facts);
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "checks": verdicts }));
    } else {
        for v in &verdicts {
            let level = match v.level {
                Level::Ok => "ok  ",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            println!("{level}  {:<16} {}", v.check, v.message);
            if !v.fix.is_empty() {
                println!("      {:<16} fix: {}", "", v.fix);
            }
        }
    }
    let failed = verdicts.iter().filter(|v| v.level == Level::Fail).count();
    if failed > 0 {
        return Err(CommandError::ChecksFailed(failed).into());
    }
    Ok(())
}
