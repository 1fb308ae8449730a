//! `vnode states`: the fresh states, their host, size and use, and the cap they are held under.
//! A `[[hosts]]` host's state counts its volumes there as recorded at the save (they never
//! change), so the listing asks no host.

use serde::Serialize;

use crate::context::Context;
use crate::error::Result;
use crate::fresh_state::store;
use crate::text::table::Table;

#[derive(Serialize)]
struct Row {
    node: String,
    /// The `[[hosts]]` host whose pool holds the state's memory and disk; none for this host.
    host: Option<String>,
    image: Option<String>,
    bytes: u64,
    created: Option<String>,
    last_used: Option<String>,
    /// `usable`, or why not.
    state: String,
}

pub fn run(ctx: &Context) -> Result<()> {
    let state_dir = &ctx.config.state_dir;
    let rows: Vec<Row> = store::list(state_dir)
        .into_iter()
        .map(|l| {
            let time = |s: u64| crate::node::metadata::rfc3339(s);
            match l.record {
                Ok(r) => Row {
                    node: l.node,
                    host: r.on_host().map(String::from),
                    image: Some(r.image),
                    bytes: l.bytes,
                    created: Some(time(r.created_unix)),
                    last_used: Some(time(r.last_used_unix)),
                    state: "usable".into(),
                },
                Err(e) => Row {
                    node: l.node,
                    host: None,
                    image: None,
                    bytes: l.bytes,
                    created: None,
                    last_used: None,
                    state: format!("unusable: {e}"),
                },
            }
        })
        .collect();
    if ctx.json {
        ctx.print_json(&rows);
        return Ok(());
    }
    let mut t = Table::new([
        "NODE",
        "HOST",
        "IMAGE",
        "SIZE",
        "CREATED",
        "LAST USED",
        "STATE",
    ]);
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    for r in &rows {
        t.row([
            r.node.clone(),
            r.host.clone().unwrap_or_else(|| "local".into()),
            dash(r.image.clone()),
            format!("{} MiB", r.bytes >> 20),
            dash(r.created.clone()),
            dash(r.last_used.clone()),
            r.state.clone(),
        ]);
    }
    print!("{}", t.render());
    let total: u64 = rows.iter().map(|r| r.bytes).sum();
    println!(
        "{} state(s), {} MiB of the cap's {} GiB (fresh_states_cap_gib) in {}",
        rows.len(),
        total >> 20,
        ctx.config.fresh_states_cap_gib,
        state_dir.join(store::DIR).display()
    );
    Ok(())
}
