//! `vnode inventory [--format ini|yaml]`: an Ansible inventory of the ready nodes.
//!
//! Every value is written so that Ansible reads back exactly what vnode means: in the INI form,
//! Ansible splits a host line with Python's shlex and then evaluates each value as a Python
//! literal, so a value is written as a Python string literal, shell-quoted; the YAML form is
//! YAML's own quoting. The ssh options inside (`ansible_ssh_common_args`, the key file) are
//! written by ssh_config's rules ([`crate::ssh::config_file`]).

use serde::Serialize;

use super::known_nodes;
use crate::cli::InventoryFormat;
use crate::commands::CommandError;
use crate::context::Context;
use crate::error::Result;
use crate::hosts::hypervisor::Hypervisor;
use crate::ssh::config_file::{LoginError, NodeLogin};
use crate::text::shell;

pub fn run(ctx: &Context, format: InventoryFormat) -> Result<()> {
    let host = Hypervisor::local(&ctx.config);
    let logins: Vec<NodeLogin> = known_nodes::ready(ctx, &host)
        .iter()
        .filter_map(|r| known_nodes::login(ctx, &host, r))
        .collect();
    let hosts = inventory_hosts(&logins).map_err(CommandError::from)?;
    match format {
        InventoryFormat::Ini => print!("{}", ini(&hosts)),
        InventoryFormat::Yaml => print!("{}", yaml(&hosts).map_err(CommandError::Yaml)?),
    }
    Ok(())
}

/// A node's variables in the inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InventoryHost {
    #[serde(skip)]
    pub name: String,
    pub ansible_host: String,
    pub ansible_user: &'static str,
    pub ansible_ssh_private_key_file: String,
    pub ansible_ssh_common_args: String,
}

/// Each node's variables; refused when ssh could not be given a value.
pub fn inventory_hosts(logins: &[NodeLogin]) -> Result<Vec<InventoryHost>, LoginError> {
    logins
        .iter()
        .map(|l| {
            Ok(InventoryHost {
                name: l.name.clone(),
                ansible_host: l.address.clone(),
                ansible_user: "root",
                ansible_ssh_private_key_file: l.ansible_key_file()?,
                ansible_ssh_common_args: l.ansible_common_args()?,
            })
        })
        .collect()
}

/// The INI form: group `vnode`, a line per node; each value a Python string literal in
/// shlex's double quotes (`key="'value'"`).
pub fn ini(hosts: &[InventoryHost]) -> String {
    let mut out = String::from("[vnode]\n");
    for h in hosts {
        let vars = [
            ("ansible_host", h.ansible_host.as_str()),
            ("ansible_user", h.ansible_user),
            (
                "ansible_ssh_private_key_file",
                &h.ansible_ssh_private_key_file,
            ),
            ("ansible_ssh_common_args", &h.ansible_ssh_common_args),
        ];
        out.push_str(&shell::quote(&h.name));
        for (key, value) in vars {
            out.push_str(&format!(" {key}={}", shlex_quoted(&python_string(value))));
        }
        out.push('\n');
    }
    out
}

/// `word` in double quotes as Python's shlex (POSIX mode) reads them: only `\` and `"` are
/// escaped there.
fn shlex_quoted(word: &str) -> String {
    format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The YAML form: `all.children.vnode.hosts`.
pub fn yaml(hosts: &[InventoryHost]) -> Result<String, serde_norway::Error> {
    let by_name: std::collections::BTreeMap<&str, &InventoryHost> =
        hosts.iter().map(|h| (h.name.as_str(), h)).collect();
    let doc = serde_json::json!({ "all": { "children": { "vnode": { "hosts": by_name } } } });
    serde_norway::to_string(&doc)
}

/// `value` as a Python string literal, which Ansible's INI reader evaluates back to `value`
/// (unquoted, `1` would become a number and `[x]` a list). The values have no control
/// characters (ssh could not take them); other characters stand for themselves.
fn python_string(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_python_literals_in_shell_words() {
        assert_eq!(python_string("a'b\\c"), "'a\\'b\\\\c'");
        let h = InventoryHost {
            name: "vnode03".into(),
            ansible_host: "10.0.0.3".into(),
            ansible_user: "root",
            ansible_ssh_private_key_file: "/srv/a b/k".into(),
            ansible_ssh_common_args: "-o HostKeyAlias=vnode03".into(),
        };
        assert_eq!(
            ini(&[h]),
            "[vnode]\nvnode03 ansible_host=\"'10.0.0.3'\" ansible_user=\"'root'\" \
             ansible_ssh_private_key_file=\"'/srv/a b/k'\" \
             ansible_ssh_common_args=\"'-o HostKeyAlias=vnode03'\"\n"
        );
        assert_eq!(shlex_quoted(r#"'a"b\c'"#), r#""'a\"b\\c'""#);
    }
}
