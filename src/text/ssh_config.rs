//! Values in OpenSSH's configuration syntax (ssh_config(5)), for `vnode ssh-config`, the `-o`
//! options vnode hands to ssh, and the ssh arguments of an Ansible inventory.
//!
//! OpenSSH splits a config line (and an `-o` option) into words at whitespace, honours `"..."`
//! and `'...'` quotes and the escapes `\"`, `\'`, `\\`, and ends the line at a `#` that starts a
//! word. It then expands `%` tokens in some keywords (`%%` is a literal `%`) and `${VAR}` in file
//! names — with no escape for `${`. So a value is written as one word: unchanged when it holds
//! only characters no step treats specially, else in double quotes with `\` and `"` escaped;
//! `%` doubled where ssh expands it. A value with a control character (a newline would start a
//! new line, or a `Host` block) or, in a file name, `${` cannot be written and is refused.

use crate::text::names::{code_point, quoted};

/// Which expansions ssh applies to a keyword's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expansion {
    /// None (`Host`, `HostKeyAlias`, `User`, `StrictHostKeyChecking`).
    None,
    /// `%` tokens (`HostName`: `%h`, `%%`).
    Percent,
    /// `%` tokens and `${VAR}` (`IdentityFile`, `UserKnownHostsFile`, `-i`).
    File,
}

/// Why a value cannot be written for ssh.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SshValueError {
    #[error(
        "{} cannot be given to ssh: it contains {} (ssh reads its configuration line by line \
         and has no way to write that character)",
        quoted(.value),
        code_point(*.c)
    )]
    Char { value: String, c: char },
    #[error(
        "{} cannot be given to ssh as a file name: it contains '${{', which ssh expands as an \
         environment variable and has no escape for",
        quoted(.value)
    )]
    Dollar { value: String },
    #[error("an empty value cannot be given to ssh")]
    Empty,
}

/// `value` as one word of an ssh_config line (or of an `-o` option), read back by ssh as exactly
/// `value` after its `expansion`.
pub fn word(value: &str, expansion: Expansion) -> Result<String, SshValueError> {
    let inner = quoted_inner(value, expansion)?;
    let plain = inner
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_./@:+,%".contains(&b));
    Ok(if plain { inner } else { format!("\"{inner}\"") })
}

/// What goes between the double quotes of [`word`]: `\` and `"` escaped, `%` doubled where ssh
/// expands it. Also what a program that puts the quotes itself (Ansible's
/// `IdentityFile="..."`) needs.
pub fn quoted_inner(value: &str, expansion: Expansion) -> Result<String, SshValueError> {
    check(value, expansion)?;
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' | '"' => {
                out.push('\\');
                out.push(c);
            }
            '%' if expansion != Expansion::None => out.push_str("%%"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A file name given as a command-line argument (`ssh -i FILE`): not split into words, but
/// expanded like [`Expansion::File`].
pub fn file_argument(value: &str) -> Result<String, SshValueError> {
    check(value, Expansion::File)?;
    Ok(value.replace('%', "%%"))
}

fn check(value: &str, expansion: Expansion) -> Result<(), SshValueError> {
    if value.is_empty() {
        return Err(SshValueError::Empty);
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(SshValueError::Char {
            value: value.into(),
            c,
        });
    }
    if expansion == Expansion::File && value.contains("${") {
        return Err(SshValueError::Dollar {
            value: value.into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_by_ssh_config_rules() {
        assert_eq!(word("vnode03", Expansion::None).unwrap(), "vnode03");
        assert_eq!(
            word("192.168.1.2", Expansion::Percent).unwrap(),
            "192.168.1.2"
        );
        assert_eq!(
            word("/var/lib/vnode/client_key", Expansion::File).unwrap(),
            "/var/lib/vnode/client_key"
        );
        assert_eq!(
            word("/tmp/a b/k", Expansion::File).unwrap(),
            "\"/tmp/a b/k\""
        );
        assert_eq!(
            word("/tmp/it's \"x\" \\ #1 =2 %h", Expansion::File).unwrap(),
            r#""/tmp/it's \"x\" \\ #1 =2 %%h""#
        );
        assert_eq!(word("a%b", Expansion::None).unwrap(), "a%b");
        assert_eq!(file_argument("/tmp/%d x").unwrap(), "/tmp/%%d x");
    }

    #[test]
    fn what_ssh_cannot_read_is_refused() {
        let e = word("/tmp/a\nHost *", Expansion::File).unwrap_err();
        assert!(e.to_string().contains("U+000A"), "{e}");
        let e = word("/tmp/${HOME}", Expansion::File).unwrap_err();
        assert!(e.to_string().contains("'${'"), "{e}");
        assert_eq!(
            word("/tmp/${HOME}", Expansion::None).unwrap(),
            "\"/tmp/${HOME}\""
        );
        assert!(word("", Expansion::None).is_err());
        assert!(file_argument("/a\rb").is_err());
    }
}
