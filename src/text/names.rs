//! Rules for config strings that vnode hands to other programs: interface names (virt-install's
//! `--network bridge=NAME,...`), DNS domains (the lab's dnsmasq config, run as root) and one-line
//! values (URIs, paths, keys). A value that breaks them could inject options or directives, so
//! the config rejects it when read. Each check returns the sentence that says what is allowed.

use std::fmt::Write as _;

/// The longest Linux interface name (`IFNAMSIZ` - 1).
pub const MAX_INTERFACE_NAME: usize = 15;
/// The longest DNS name and label (RFC 1035), in bytes, without the trailing dot.
pub const MAX_DNS_NAME: usize = 253;
pub const MAX_DNS_LABEL: usize = 63;

/// A config string as messages show it: quoted, with control characters escaped, so a hostile
/// value cannot break the message's line.
pub fn quoted(value: &str) -> String {
    let mut out = String::from("'");
    for c in value.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// A host bridge or libvirt network name. Linux allows 1-15 bytes other than '/', ':',
/// whitespace and NUL, and not "." or ".."; vnode allows only ASCII letters, digits, '-', '_'
/// and '.', because the name goes into virt-install's comma-separated options and the lab's
/// dnsmasq config.
pub fn check_interface_name(name: &str) -> Result<(), String> {
    let problem = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > MAX_INTERFACE_NAME {
        Some(format!(
            "it is {} bytes, more than Linux's {MAX_INTERFACE_NAME}",
            name.len()
        ))
    } else if name == "." || name == ".." {
        Some("'.' and '..' are not interface names".to_string())
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
            .map(|c| format!("it contains {}", quoted(&c.to_string())))
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(format!(
            "{} is not an interface name ({problem}): use 1-{MAX_INTERFACE_NAME} ASCII letters, \
             digits, '-', '_' or '.', not '.' or '..' (stricter than Linux, which also allows \
             other punctuation, so that the name cannot inject virt-install or dnsmasq options)",
            quoted(name)
        )),
    }
}

/// A DNS domain: labels of 1-63 ASCII letters, digits and '-' (not first or last in a label,
/// any case) joined by '.', at most 253 bytes, without a trailing dot.
pub fn check_domain(domain: &str) -> Result<(), String> {
    let problem = if domain.is_empty() {
        Some("it is empty".to_string())
    } else if domain.ends_with('.') {
        Some("it ends with '.': write it without the trailing dot".to_string())
    } else if domain.len() > MAX_DNS_NAME {
        Some(format!(
            "it is {} bytes, more than {MAX_DNS_NAME}",
            domain.len()
        ))
    } else {
        domain.split('.').find_map(label_problem)
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(format!(
            "{} is not a DNS domain ({problem}): use labels of 1-{MAX_DNS_LABEL} ASCII letters, \
             digits or '-' (not first or last) joined by '.', at most {MAX_DNS_NAME} bytes in \
             all, e.g. lab.example.org",
            quoted(domain)
        )),
    }
}

fn label_problem(label: &str) -> Option<String> {
    if label.is_empty() {
        Some("it has an empty label".into())
    } else if label.len() > MAX_DNS_LABEL {
        Some(format!(
            "label {} is {} bytes, more than {MAX_DNS_LABEL}",
            quoted(label),
            label.len()
        ))
    } else if label.starts_with('-') || label.ends_with('-') {
        Some(format!("label {} starts or ends with '-'", quoted(label)))
    } else {
        label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
            .map(|c| format!("it contains {}", quoted(&c.to_string())))
    }
}

/// A value that must stay on one line and be one word: no whitespace, no control characters.
pub fn check_word(value: &str, what: &str) -> Result<(), String> {
    if !value.is_empty() && !value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Ok(());
    }
    Err(format!(
        "{} is not {what}: it must be non-empty, without whitespace or control characters",
        quoted(value)
    ))
}

/// A value that must stay on one line: non-empty, no control characters (newline, NUL, ...).
pub fn check_line(value: &str, what: &str) -> Result<(), String> {
    if !value.is_empty() && !value.chars().any(char::is_control) {
        return Ok(());
    }
    Err(format!(
        "{} is not {what}: it must be non-empty and one line, without control characters",
        quoted(value)
    ))
}

/// An absolute path on one line.
pub fn check_absolute_path(value: &str) -> Result<(), String> {
    check_line(value, "a path")?;
    if !value.starts_with('/') {
        return Err(format!(
            "{} is not an absolute path: it must start with '/'",
            quoted(value)
        ));
    }
    Ok(())
}

/// A name vnode gives a hypervisor host (or a storage pool on one): what `SPEC@HOST`, `--host`
/// and the tables use. 1-32 of letters, digits, '-', '_' and '.', starting with a letter or
/// digit, so it survives being part of a spec, a file name and a table cell.
pub fn check_host_name(name: &str) -> Result<(), String> {
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
    Err(format!(
        "{} is not a host name: use 1-32 letters, digits, '-', '_' or '.', starting with a \
         letter or digit",
        quoted(name)
    ))
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
            let e = check_interface_name(bad).unwrap_err();
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
            let e = check_domain(bad).unwrap_err();
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
    }
}
