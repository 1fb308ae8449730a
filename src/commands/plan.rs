//! `vnode plan`: the DHCP/DNS plan for the site's admin.

use crate::cli::PlanArgs;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::plan::site_dhcp::{Plan, PlanFormat};

pub fn run(ctx: &Context, args: &PlanArgs) -> Result<()> {
    let pools = &ctx.config.pools;
    let plan = if let Some(stem) = &args.pool {
        let pool = pools.by_stem(stem).ok_or_else(|| {
            Error::Usage(format!("no pool '{stem}'; known pools: {}", pools.stems()))
        })?;
        Plan::for_pools([pool])
    } else if args.specs.is_empty() {
        Plan::for_pools(pools.all())
    } else {
        let nodes = crate::plan::spec::resolve_names(&args.specs, pools)?;
        Plan::for_nodes(nodes.iter().map(|(p, n)| (p, n.number)))
    };
    let format = if ctx.json {
        PlanFormat::Json
    } else {
        args.format
    };
    print!("{}", plan.render(format)?);
    Ok(())
}
