//! `vnode inventory [--format ini|yaml]`: an Ansible inventory of the ready nodes.

use serde::Serialize;

use super::known_nodes;
use crate::cli::InventoryFormat;
use crate::commands::CommandError;
use crate::context::Context;
use crate::error::Result;
use crate::hosts::hypervisor::Hypervisor;

pub fn run(ctx: &Context, format: InventoryFormat) -> Result<()> {
    let host = Hypervisor::local(&ctx.config);
    let nodes = known_nodes::ready(ctx, &host);
    let key = host.client_key().display().to_string();
    let common = format!(
        "-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
        host.known_hosts().display()
    );
    // A node on a `[[hosts]]` host is reached through that host's sshd (ProxyJump).
    let args_of = |r: &crate::node::ready::ReadyRecord| {
        let jump = known_nodes::proxy_jump(ctx, r)
            .map(|j| format!(" -o ProxyJump={j}"))
            .unwrap_or_default();
        format!("{common} -o HostKeyAlias={}{jump}", r.name)
    };
    match format {
        InventoryFormat::Ini => {
            println!("[vnode]");
            for r in &nodes {
                println!(
                    "{} ansible_host={} ansible_user=root ansible_ssh_private_key_file={key} ansible_ssh_common_args='{}'",
                    r.name,
                    r.address().expect("ready nodes have one"),
                    args_of(r)
                );
            }
        }
        InventoryFormat::Yaml => {
            #[derive(Serialize)]
            struct Host {
                ansible_host: String,
                ansible_user: &'static str,
                ansible_ssh_private_key_file: String,
                ansible_ssh_common_args: String,
            }
            let hosts: std::collections::BTreeMap<String, Host> = nodes
                .iter()
                .map(|r| {
                    let host = Host {
                        ansible_host: r.address().expect("ready nodes have one").to_string(),
                        ansible_user: "root",
                        ansible_ssh_private_key_file: key.clone(),
                        ansible_ssh_common_args: args_of(r),
                    };
                    (r.name.clone(), host)
                })
                .collect();
            let doc = serde_json::json!({ "all": { "children": { "vnode": { "hosts": hosts } } } });
            print!(
                "{}",
                serde_norway::to_string(&doc).map_err(CommandError::Yaml)?
            );
        }
    }
    Ok(())
}
