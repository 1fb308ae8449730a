//! `vnode host ...`.

use crate::cli::HostCommand;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::host::check::{Level, verdicts};
use crate::host::facts;

pub fn run(ctx: &Context, cmd: HostCommand) -> Result<()> {
    match cmd {
        HostCommand::Check => check(ctx),
        HostCommand::Bridge(_) => Err(crate::not_yet("host bridge")),
    }
}

fn check(ctx: &Context) -> Result<()> {
    let facts = facts::gather(&ctx.config);
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
        return Err(Error::Failed(format!(
            "{failed} check(s) failed: this host cannot run vnode as configured"
        )));
    }
    Ok(())
}
