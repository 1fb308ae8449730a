//! `vnode lab up|down|status|exec`: the lab is the one named by `--lab[=NAME]`, "vnode" without.

use crate::cli::LabCommand;
use crate::context::Context;
use crate::error::Result;
use crate::lab::{self, DEFAULT_LAB, LabName, LabStatus, UpOutcome};
use crate::text::table::Table;

pub fn run(ctx: &Context, cmd: LabCommand) -> Result<()> {
    let name = LabName::new(ctx.lab.as_deref().unwrap_or(DEFAULT_LAB))?;
    match cmd {
        LabCommand::Up { hosts } => up(ctx, &name, hosts),
        LabCommand::Down => down(ctx, &name),
        LabCommand::Status => status(ctx, &name),
        LabCommand::Exec { host, command } => {
            Err(lab::exec(&name, host.as_deref(), &command).into())
        }
    }
}

fn up(ctx: &Context, name: &LabName, hosts: u8) -> Result<()> {
    let report = lab::up(name, &ctx.config.pools, hosts)?;
    for w in &report.warnings {
        eprintln!("vnode: warning: {w}");
    }
    let (outcome, cleaned) = match &report.outcome {
        UpOutcome::AlreadyUp => ("already-up", None),
        UpOutcome::Started { cleaned } => ("started", cleaned.as_deref()),
    };
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "lab": name,
            "outcome": outcome,
            "cleaned_stale": cleaned,
            "seconds": report.elapsed.as_secs_f64(),
            "state": report.state,
        }));
        return Ok(());
    }
    if let Some(stale) = cleaned {
        println!("lab {name}: removed stale state first ({stale})");
    }
    match report.outcome {
        UpOutcome::AlreadyUp => println!("lab {name} is already up"),
        UpOutcome::Started { .. } => {
            println!("lab {name} is up ({:.1} s)", report.elapsed.as_secs_f64())
        }
    }
    for net in &report.state.public {
        println!(
            "  pool {}: {} on {}, lab at {}, domain {}",
            net.pool,
            net.subnet,
            net.bridge,
            net.host,
            net.domain.as_deref().unwrap_or("-")
        );
    }
    for h in &report.state.hosts {
        println!("  host {}: {} ({})", h.name, h.uri, h.machine.netns);
    }
    println!(
        "  use it: vnode {flag} <command>, vnode {flag} lab exec -- <command>; stop it: vnode {flag} lab down",
        flag = name.flag()
    );
    if let Some(h) = report.state.hosts.first() {
        println!(
            "  a host's own namespaces: vnode {flag} lab exec --host {} -- <command>",
            h.name,
            flag = name.flag()
        );
    }
    Ok(())
}

fn down(ctx: &Context, name: &LabName) -> Result<()> {
    let report = lab::down(name)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "lab": name,
            "was_up": report.was_up,
            "done": report.done,
            "seconds": report.elapsed.as_secs_f64(),
        }));
    } else if !report.was_up {
        println!("lab {name} is not up; nothing to do");
    } else {
        for d in &report.done {
            println!("  {d}");
        }
        println!("lab {name} is down ({:.1} s)", report.elapsed.as_secs_f64());
    }
    Ok(())
}

fn status(ctx: &Context, name: &LabName) -> Result<()> {
    let st = lab::status(name)?;
    if ctx.json {
        ctx.print_json(&st);
    } else {
        print!("{}", render(&st));
    }
    Ok(())
}

fn render(st: &LabStatus) -> String {
    if !st.up && st.processes.is_empty() && st.problems.is_empty() {
        return format!("lab {}: not up\n", st.name);
    }
    let mut out = header(st);
    let tables = [
        Some(processes_table(st)),
        hosts_table(st),
        Some(public_table(st)),
        interfaces_table(st),
        networks_table(st),
    ];
    for t in tables.into_iter().flatten() {
        out.push('\n');
        out.push_str(&t);
    }
    out.push('\n');
    if st.domains.is_empty() {
        out.push_str("no domains\n");
    } else {
        let mut t = Table::new(["DOMAIN", "STATE"]);
        for d in &st.domains {
            t.row([d.name.clone(), d.state.clone()]);
        }
        out.push_str(&t.render());
    }
    out
}

/// "lab NAME: up" or "NOT healthy", with its problems.
fn header(st: &LabStatus) -> String {
    let health = if st.up { "up" } else { "NOT healthy" };
    let mut out = format!(
        "lab {}: {health} ({}, netns {})\n",
        st.name, st.dir, st.netns
    );
    for p in &st.problems {
        out.push_str(&format!("  problem: {p}\n"));
    }
    out
}

fn processes_table(st: &LabStatus) -> String {
    let mut t = Table::new(["PROCESS", "PID", "STATE"]);
    for p in &st.processes {
        t.row([
            p.role.to_string(),
            p.pid.to_string(),
            if p.alive { "running" } else { "gone" }.into(),
        ]);
    }
    t.render()
}

/// The lab's hosts, when it has any.
fn hosts_table(st: &LabStatus) -> Option<String> {
    if st.hosts.is_empty() {
        return None;
    }
    let mut t = Table::new(["HOST", "ADDRESS", "URI", "PIDS", "ANSWERS"]);
    for h in &st.hosts {
        let pids: Vec<String> = h
            .processes
            .iter()
            .map(|p| {
                let gone = if p.alive { "" } else { " (gone)" };
                format!("{} {}{gone}", p.role, p.pid)
            })
            .collect();
        t.row([
            h.name.clone(),
            h.address.to_string(),
            h.uri.clone(),
            pids.join(", "),
            if h.answers { "yes" } else { "no" }.into(),
        ]);
    }
    Some(t.render())
}

fn public_table(st: &LabStatus) -> String {
    let mut t = Table::new(["POOL", "BRIDGE", "SUBNET", "LAB ADDRESS", "DOMAIN"]);
    for n in &st.public {
        t.row([
            n.pool.clone(),
            n.bridge.clone(),
            n.subnet.to_string(),
            n.host.to_string(),
            n.domain.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t.render()
}

fn interfaces_table(st: &LabStatus) -> Option<String> {
    if st.interfaces.is_empty() {
        return None;
    }
    let mut t = Table::new(["INTERFACE", "STATE", "ADDRESSES"]);
    for i in &st.interfaces {
        t.row([i.name.clone(), i.state.clone(), i.addresses.join(" ")]);
    }
    Some(t.render())
}

fn networks_table(st: &LabStatus) -> Option<String> {
    if st.networks.is_empty() {
        return None;
    }
    let mut t = Table::new(["NETWORK", "STATE"]);
    for n in &st.networks {
        t.row([
            n.name.clone(),
            if n.active { "active" } else { "inactive" }.into(),
        ]);
    }
    Some(t.render())
}
