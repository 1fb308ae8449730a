//! Rules for config strings that vnode hands to other programs: interface names (virt-install's
//! `--network bridge=NAME,...`), DNS domains (the lab's dnsmasq config, run as root) and one-line
//! values (URIs, paths, keys). A value that breaks them could inject options or directives, so
//! the config rejects it when read. Each check's error says what is allowed.

/// The longest Linux interface name (`IFNAMSIZ` - 1).
pub const MAX_INTERFACE_NAME: usize = 15;
/// The longest DNS name and label (RFC 1035), in bytes, without the trailing dot.
pub const MAX_DNS_NAME: usize = 253;
pub const MAX_DNS_LABEL: usize = 63;

use crate::text::terminal::unsafe_to_show;

/// A value as messages show it: quoted, made safe for the terminal by
/// [`terminal::escaped`](crate::text::terminal::escaped), so a hostile value cannot break the
/// message's line or hide or reorder its text.
pub fn quoted(value: &str) -> String {
    format!("'{}'", crate::text::terminal::escaped(value))
}

/// Why a config string is refused; each message says what is allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(
        "{} is not an interface name ({problem}): use 1-{MAX_INTERFACE_NAME} ASCII letters, \
         digits, '-', '_' or '.', not '.' or '..' (stricter than Linux, which also allows \
         other punctuation, so that the name cannot inject virt-install or dnsmasq options)",
        quoted(.name)
    )]
    Interface {
        name: String,
        problem: InterfaceProblem,
    },
    #[error(
        "{} is not a DNS domain ({problem}): use labels of 1-{MAX_DNS_LABEL} ASCII letters, \
         digits or '-' (not first or last) joined by '.', at most {MAX_DNS_NAME} bytes in \
         all, e.g. lab.example.org",
        quoted(.domain)
    )]
    Domain {
        domain: String,
        problem: DomainProblem,
    },
    #[error(
        "{} is not {what}: {problem}; it must be non-empty, without whitespace, control or \
         format characters",
        quoted(.value)
    )]
    NotAWord {
        value: String,
        what: &'static str,
        problem: TextProblem,
    },
    #[error(
        "{} is not {what}: {problem}; it must be non-empty and one line, without control or \
         format characters",
        quoted(.value)
    )]
    NotALine {
        value: String,
        what: &'static str,
        problem: TextProblem,
    },
    #[error("{} is not an absolute path: it must start with '/'", quoted(.value))]
    NotAbsolute { value: String },
    #[error(
        "{} is not a host name: use 1-32 letters, digits, '-', '_' or '.', starting with a \
         letter or digit",
        quoted(.name)
    )]
    HostName { name: String },
}

/// What makes a value no word or no line (part of [`NameError::NotAWord`]'s and
/// [`NameError::NotALine`]'s sentence): the code point is named, as it may not show.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TextProblem {
    #[error("it is empty")]
    Empty,
    #[error("it contains {}", code_point(*.0))]
    Char(char),
}

/// `U+009B`: how messages name a character that may not show.
pub fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// What makes a name no interface name (part of [`NameError::Interface`]'s sentence).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InterfaceProblem {
    #[error("it is empty")]
    Empty,
    #[error("it is {0} bytes, more than Linux's {MAX_INTERFACE_NAME}")]
    TooLong(usize),
    #[error("'.' and '..' are not interface names")]
    Dots,
    #[error("it contains {}", quoted_char(.0))]
    Char(char),
}

/// What makes a name no DNS domain (part of [`NameError::Domain`]'s sentence).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainProblem {
    #[error("it is empty")]
    Empty,
    #[error("it ends with '.': write it without the trailing dot")]
    TrailingDot,
    #[error("it is {0} bytes, more than {MAX_DNS_NAME}")]
    TooLong(usize),
    #[error("it has an empty label")]
    EmptyLabel,
    #[error("label {} is {} bytes, more than {MAX_DNS_LABEL}", quoted(.0), .0.len())]
    LongLabel(String),
    #[error("label {} starts or ends with '-'", quoted(.0))]
    LabelHyphen(String),
    #[error("it contains {}", quoted_char(.0))]
    Char(char),
}

fn quoted_char(c: &char) -> String {
    quoted(&c.to_string())
}

/// A host bridge or libvirt network name. Linux allows 1-15 bytes other than '/', ':',
/// whitespace and NUL, and not "." or ".."; vnode allows only ASCII letters, digits, '-', '_'
/// and '.', because the name goes into virt-install's comma-separated options and the lab's
/// dnsmasq config.
pub fn check_interface_name(name: &str) -> Result<(), NameError> {
    let problem = if name.is_empty() {
        Some(InterfaceProblem::Empty)
    } else if name.len() > MAX_INTERFACE_NAME {
        Some(InterfaceProblem::TooLong(name.len()))
    } else if name == "." || name == ".." {
        Some(InterfaceProblem::Dots)
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
            .map(InterfaceProblem::Char)
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(NameError::Interface {
            name: name.into(),
            problem,
        }),
    }
}

/// A DNS domain: labels of 1-63 ASCII letters, digits and '-' (not first or last in a label,
/// any case) joined by '.', at most 253 bytes, without a trailing dot.
pub fn check_domain(domain: &str) -> Result<(), NameError> {
    let problem = if domain.is_empty() {
        Some(DomainProblem::Empty)
    } else if domain.ends_with('.') {
        Some(DomainProblem::TrailingDot)
    } else if domain.len() > MAX_DNS_NAME {
        Some(DomainProblem::TooLong(domain.len()))
    } else {
        domain.split('.').find_map(label_problem)
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(NameError::Domain {
            domain: domain.into(),
            problem,
        }),
    }
}

fn label_problem(label: &str) -> Option<DomainProblem> {
    if label.is_empty() {
        Some(DomainProblem::EmptyLabel)
    } else if label.len() > MAX_DNS_LABEL {
        Some(DomainProblem::LongLabel(label.into()))
    } else if label.starts_with('-') || label.ends_with('-') {
        Some(DomainProblem::LabelHyphen(label.into()))
    } else {
        label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
            .map(DomainProblem::Char)
    }
}

/// A value that must stay on one line and be one word: no whitespace, and no character that
/// [`terminal::unsafe_to_show`](crate::text::terminal::unsafe_to_show) (control and format
/// characters, non-characters; so also none that YAML 1.1 cannot carry).
pub fn check_word(value: &str, what: &'static str) -> Result<(), NameError> {
    let problem = text_problem(value, |c| c.is_whitespace() || unsafe_to_show(c));
    match problem {
        None => Ok(()),
        Some(problem) => Err(NameError::NotAWord {
            value: value.into(),
            what,
            problem,
        }),
    }
}

/// A value that must stay on one line: non-empty, no control characters (newline, NUL, DEL, C1),
/// format characters (bidirectional overrides, line separators) or non-characters.
pub fn check_line(value: &str, what: &'static str) -> Result<(), NameError> {
    match text_problem(value, unsafe_to_show) {
        None => Ok(()),
        Some(problem) => Err(NameError::NotALine {
            value: value.into(),
            what,
            problem,
        }),
    }
}

fn text_problem(value: &str, refused: impl Fn(char) -> bool) -> Option<TextProblem> {
    if value.is_empty() {
        return Some(TextProblem::Empty);
    }
    value.chars().find(|c| refused(*c)).map(TextProblem::Char)
}

/// An absolute path on one line.
pub fn check_absolute_path(value: &str) -> Result<(), NameError> {
    check_line(value, "a path")?;
    if !value.starts_with('/') {
        return Err(NameError::NotAbsolute {
            value: value.into(),
        });
    }
    Ok(())
}

/// A name vnode gives a hypervisor host (or a storage pool on one): what `SPEC@HOST`, `--host`
/// and the tables use. 1-32 of letters, digits, '-', '_' and '.', starting with a letter or
/// digit, so it survives being part of a spec, a file name and a table cell.
pub fn check_host_name(name: &str) -> Result<(), NameError> {
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok_start && ok_chars && name.len() <= 32 {
        return Ok(());
    }
    Err(NameError::HostName { name: name.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_follow_linux_and_vnode_rules() {
        for ok in ["br0", "virbr0", "my-net_1.2", "a", "123456789012345"] {
            assert!(check_interface_name(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "it is empty"),
            ("1234567890123456", "it is 16 bytes"),
            (".", "'.' and '..'"),
            ("..", "'.' and '..'"),
            ("br0,model=e1000", "it contains ','"),
            ("br0\nx", "it contains '\\n'"),
            ("br 0", "it contains ' '"),
            ("br/0", "it contains '/'"),
            ("br:0", "it contains ':'"),
            ("brü", "it contains 'ü'"),
            ("br\0", "it contains '\\u{0}'"),
        ] {
            let e = check_interface_name(bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("stricter than Linux"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn domains_follow_dns_rules() {
        for ok in [
            "lab.example.org",
            "Lab.Example",
            "a",
            "x-1.y",
            &"a".repeat(63),
        ] {
            assert!(check_domain(ok).is_ok(), "{ok}");
        }
        let long = vec!["a".repeat(63); 4].join(".");
        for (bad, why) in [
            ("", "it is empty"),
            ("lab.", "trailing dot"),
            ("a..b", "empty label"),
            (".a", "empty label"),
            ("-a.b", "starts or ends with '-'"),
            ("a-.b", "starts or ends with '-'"),
            ("a_b", "it contains '_'"),
            ("lab\nserver=1.2.3.4", "it contains '\\n'"),
            ("lab,local", "it contains ','"),
            (&"a".repeat(64), "64 bytes, more than 63"),
            (&long, "255 bytes, more than 253"),
        ] {
            let e = check_domain(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn lines_words_and_paths() {
        assert!(check_word("qemu:///system", "a libvirt URI").is_ok());
        assert!(check_word("qemu:///system x", "a libvirt URI").is_err());
        assert!(check_line("ssh-ed25519 AAAA me@host", "a key").is_ok());
        assert!(check_line("a\nb", "a key").is_err());
        assert!(check_absolute_path("/var/lib/vnode").is_ok());
        assert!(check_absolute_path("var/lib").is_err());
        assert!(check_absolute_path("/var\0").is_err());
        assert_eq!(quoted("a\nb\u{7f}"), "'a\\nb\\u{7f}'");
        for (bad, point) in [
            ("ssh-ed25519 AAAA a\u{9b}b", "U+009B"),
            ("ssh-ed25519 AAAA a\u{7f}", "U+007F"),
            ("ssh-ed25519 AAAA a\u{86}", "U+0086"),
            ("ssh-ed25519 AAAA \u{fffe}", "U+FFFE"),
            ("ssh-ed25519 AAAA \u{ffff}", "U+FFFF"),
            ("ssh-ed25519 AAAA \u{202e}", "U+202E"),
            ("ssh-ed25519 AAAA \u{2028}", "U+2028"),
        ] {
            let e = check_line(bad, "a key").unwrap_err().to_string();
            assert!(e.contains(&format!("it contains {point};")), "{e}");
            let e = check_word(&bad.replace(' ', ""), "a package name")
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("it contains {point};")), "{e}");
        }
        let e = check_word("vim git", "a package name").unwrap_err();
        assert!(e.to_string().contains("it contains U+0020;"), "{e}");
        let e = check_line("", "a key").unwrap_err();
        assert!(e.to_string().contains("it is empty;"), "{e}");
    }
}
