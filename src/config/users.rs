//! `[[users]]`: the extra accounts created in every node, and the public keys they (and root,
//! through the top-level `ssh_keys`) are given.

use serde::Serialize;

use super::file::UserFile;
use super::located::Located;
use crate::text::names::{self, NameError};
use crate::text::toml_file::FileError;

/// An extra account created in every node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UserConfig {
    pub name: String,
    /// Public keys (literal `ssh-ed25519 AAAA...` lines or paths to .pub files).
    pub ssh_keys: Vec<String>,
    /// Passwordless sudo.
    pub sudo: bool,
    pub shell: Option<String>,
}

/// Why a `[[users]]` value is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("{} is already users[{index}]", names::quoted(.name))]
    Duplicate { name: String, index: usize },
    #[error(
        "{} is not a valid new user name: use 1-32 lowercase letters, digits, '_' or '-', \
         starting with a letter or '_', and not root",
        names::quoted(.name)
    )]
    BadName { name: String },
    /// A key or shell that is not one line (or one word).
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(
        "{} is not a login shell: it must be an absolute path like /bin/bash",
        names::quoted(.shell)
    )]
    RelativeShell { shell: String },
}

impl Located<'_> {
    /// The extra accounts: valid, new and distinct names, one-line keys, absolute shells.
    pub(super) fn users(&self, users: Vec<UserFile>) -> Result<Vec<UserConfig>, FileError> {
        let mut out: Vec<UserConfig> = Vec::new();
        for (i, u) in users.into_iter().enumerate() {
            let field = |key: &str| format!("users[{i}].{key}");
            let name = self.string(u.name, &field("name"), |name| {
                if let Some(index) = out.iter().position(|o| o.name == name) {
                    return Err(UserError::Duplicate {
                        name: name.into(),
                        index,
                    });
                }
                check_user_name(name)
            })?;
            out.push(UserConfig {
                name,
                ssh_keys: self.strings(u.ssh_keys, &field("ssh_keys"), check_key)?,
                sudo: u.sudo,
                shell: self.optional(u.shell, &field("shell"), check_shell)?,
            });
        }
        Ok(out)
    }
}

/// A name useradd accepts everywhere, for an account that does not exist yet.
fn check_user_name(name: &str) -> Result<(), UserError> {
    let chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b));
    let start = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    if chars && start && name.len() <= 32 && name != "root" {
        return Ok(());
    }
    Err(UserError::BadName { name: name.into() })
}

/// A literal public key or a path to one: a single line either way (a newline would authorize
/// a second key).
pub(super) fn check_key(key: &str) -> Result<(), NameError> {
    names::check_line(key, "a public key or a path to one")
}

fn check_shell(shell: &str) -> Result<(), UserError> {
    names::check_word(shell, "a login shell")?;
    if !shell.starts_with('/') {
        return Err(UserError::RelativeShell {
            shell: shell.into(),
        });
    }
    Ok(())
}
