//! What vnode writes for other ssh clients to log into its nodes: `vnode ssh-config`'s Host
//! blocks, the options of `vnode ssh`, and the ssh arguments of `vnode inventory`. Every value
//! is written by ssh_config(5)'s rules ([`crate::text::ssh_config`]); a state directory or jump
//! host that ssh cannot be given is refused, naming the node, rather than written broken.

use std::path::{Path, PathBuf};

use crate::text::shell;
use crate::text::ssh_config::{self, Expansion, SshValueError};

/// One ready node as another ssh client reaches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLogin {
    /// The node's name: the `Host` and the `HostKeyAlias` its pinned key is recorded under.
    pub name: String,
    /// Its address.
    pub address: String,
    /// vnode's client key (`IdentityFile`).
    pub identity_file: PathBuf,
    /// vnode's known_hosts with the node's pinned key (`UserKnownHostsFile`).
    pub known_hosts: PathBuf,
    /// `user@host[:port]` of the hypervisor host's sshd, for a node behind one.
    pub proxy_jump: Option<String>,
}

/// A value of a node that ssh cannot be given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{node}: cannot write its ssh options ({what}): {source}; choose a state_dir (or [[hosts]] \
     URI) that ssh can read"
)]
pub struct LoginError {
    pub node: String,
    pub what: &'static str,
    #[source]
    pub source: SshValueError,
}

/// The `ssh_config` text with a `Host` block per node.
pub fn ssh_config(nodes: &[NodeLogin]) -> Result<String, LoginError> {
    let mut out = String::new();
    for n in nodes {
        let w = |what, value: &str, expansion| {
            ssh_config::word(value, expansion).map_err(|source| n.error(what, source))
        };
        out.push_str(&format!("Host {}\n", w("Host", &n.name, Expansion::None)?));
        let host_name = w("HostName", &n.address, Expansion::Percent)?;
        out.push_str(&format!("  HostName {host_name}\n  User root\n"));
        let key = w("IdentityFile", &path(&n.identity_file), Expansion::File)?;
        out.push_str(&format!("  IdentityFile {key}\n"));
        let known = w("UserKnownHostsFile", &path(&n.known_hosts), Expansion::File)?;
        out.push_str(&format!("  UserKnownHostsFile {known}\n"));
        out.push_str("  StrictHostKeyChecking yes\n");
        let alias = w("HostKeyAlias", &n.name, Expansion::None)?;
        out.push_str(&format!("  HostKeyAlias {alias}\n"));
        if let Some(jump) = n.jump()? {
            out.push_str(&format!("  ProxyJump {jump}\n"));
        }
        out.push('\n');
    }
    Ok(out)
}

impl NodeLogin {
    fn error(&self, what: &'static str, source: SshValueError) -> LoginError {
        LoginError {
            node: self.name.clone(),
            what,
            source,
        }
    }

    /// ssh's arguments that verify the node's pinned key: `-J JUMP` (when behind a host), `-i
    /// KEY`, and `-o` options, each one argument (for `vnode ssh`, which runs ssh).
    pub fn ssh_arguments(&self) -> Result<Vec<String>, LoginError> {
        let mut args = Vec::new();
        if let Some(jump) = self.jump()? {
            args.extend(["-J".to_string(), jump]);
        }
        let key = ssh_config::file_argument(&path(&self.identity_file))
            .map_err(|e| self.error("IdentityFile", e))?;
        args.extend(["-i".to_string(), key]);
        for option in self.options()? {
            args.extend(["-o".to_string(), option]);
        }
        Ok(args)
    }

    /// `-o` options (known_hosts, strict checking, the alias, the jump) as one shell-quoted
    /// line: Ansible's `ansible_ssh_common_args`, which Ansible splits with Python's shlex.
    pub fn ansible_common_args(&self) -> Result<String, LoginError> {
        let mut options = self.options()?;
        if let Some(jump) = self.jump()? {
            options.push(format!("ProxyJump={jump}"));
        }
        let words: Vec<String> = options
            .iter()
            .map(|o| format!("-o {}", shell::quote(o)))
            .collect();
        Ok(words.join(" "))
    }

    /// The key file for Ansible's `ansible_ssh_private_key_file`, which Ansible hands to ssh as
    /// `-o IdentityFile="VALUE"`: escaped for inside those quotes.
    pub fn ansible_key_file(&self) -> Result<String, LoginError> {
        ssh_config::quoted_inner(&path(&self.identity_file), Expansion::File)
            .map_err(|e| self.error("IdentityFile", e))
    }

    fn options(&self) -> Result<Vec<String>, LoginError> {
        let known = ssh_config::word(&path(&self.known_hosts), Expansion::File)
            .map_err(|e| self.error("UserKnownHostsFile", e))?;
        let alias = ssh_config::word(&self.name, Expansion::None)
            .map_err(|e| self.error("HostKeyAlias", e))?;
        Ok(vec![
            format!("UserKnownHostsFile={known}"),
            "StrictHostKeyChecking=yes".to_string(),
            format!("HostKeyAlias={alias}"),
        ])
    }

    /// ssh reads `ProxyJump` and `-J` raw, as `[user@]host[:port]`: only such characters pass.
    fn jump(&self) -> Result<Option<String>, LoginError> {
        let Some(jump) = &self.proxy_jump else {
            return Ok(None);
        };
        let plain = |c: char| c.is_ascii_alphanumeric() || "-_.@:[]".contains(c);
        match jump.chars().find(|c| !plain(*c)) {
            None if !jump.is_empty() => Ok(Some(jump.clone())),
            found => Err(self.error(
                "ProxyJump",
                SshValueError::Char {
                    value: jump.clone(),
                    c: found.unwrap_or(' '),
                },
            )),
        }
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(state: &str) -> NodeLogin {
        NodeLogin {
            name: "vnode03".into(),
            address: "192.168.122.3".into(),
            identity_file: Path::new(state).join("client_key"),
            known_hosts: Path::new(state).join("known_hosts"),
            proxy_jump: Some("root@h1:2222".into()),
        }
    }

    #[test]
    fn a_state_dir_with_quotes_and_spaces_stays_one_value() {
        let text = ssh_config(&[node("/srv/it's \"my\" vnode")]).unwrap();
        assert_eq!(
            text,
            "Host vnode03\n  HostName 192.168.122.3\n  User root\n  \
             IdentityFile \"/srv/it's \\\"my\\\" vnode/client_key\"\n  \
             UserKnownHostsFile \"/srv/it's \\\"my\\\" vnode/known_hosts\"\n  \
             StrictHostKeyChecking yes\n  HostKeyAlias vnode03\n  ProxyJump root@h1:2222\n\n"
        );
        let args = node("/srv/a b%").ssh_arguments().unwrap();
        assert_eq!(
            args,
            [
                "-J",
                "root@h1:2222",
                "-i",
                "/srv/a b%%/client_key",
                "-o",
                "UserKnownHostsFile=\"/srv/a b%%/known_hosts\"",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "HostKeyAlias=vnode03"
            ]
        );
        assert_eq!(
            node("/srv/a'b").ansible_common_args().unwrap(),
            "-o 'UserKnownHostsFile=\"/srv/a'\\''b/known_hosts\"' -o StrictHostKeyChecking=yes \
             -o HostKeyAlias=vnode03 -o ProxyJump=root@h1:2222"
        );
    }

    #[test]
    fn what_ssh_cannot_read_is_refused_naming_the_node() {
        let e = ssh_config(&[node("/srv/a\nHost *\n  ProxyCommand x")]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("vnode03: cannot write its ssh options (IdentityFile)")
        );
        assert!(e.to_string().contains("U+000A"), "{e}");
        let mut n = node("/srv");
        n.proxy_jump = Some("root\nHost *".into());
        let e = n.ansible_common_args().unwrap_err();
        assert!(e.to_string().contains("(ProxyJump)"), "{e}");
    }
}
