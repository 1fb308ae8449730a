//! A libvirt host's sshd, read from the host's libvirt URI: vnode reaches the guests of a remote
//! host through it, as `ssh -J` would, with the same user, port, key file and known_hosts that
//! libvirt's own ssh transport uses for that URI.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use super::user;
use crate::text::names;

/// Where a libvirt host's sshd is, from its URI:
/// `qemu+ssh://[user@]host[:port]/system[?keyfile=PATH&known_hosts=PATH...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpHost {
    pub user: String,
    pub host: String,
    pub port: u16,
    /// `keyfile=`: the key to log in with (else the user's default keys and agent).
    pub identity: Option<PathBuf>,
    /// `known_hosts=`: the file that vouches for the host key (else `~/.ssh/known_hosts` and
    /// `/etc/ssh/ssh_known_hosts`).
    pub known_hosts: Option<PathBuf>,
}

/// An ssh URI that names no usable host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{uri} is not a usable libvirt ssh URI: {reason} (write e.g. qemu+ssh://root@HOST/system)")]
pub struct BadUri {
    pub uri: String,
    pub reason: String,
}

/// The transports of libvirt's remote driver that go through the host's sshd.
const SSH_TRANSPORTS: &[&str] = &["ssh", "libssh", "libssh2"];

impl JumpHost {
    /// The host's sshd, or `None` for a URI that does not go through one: local URIs
    /// (`qemu:///system`, `qemu+unix:///system`), `qemu+tcp`/`qemu+tls`, an ssh URI without a host
    /// (libvirt's ssh to this machine), and a malformed ssh URI ([`JumpHost::parse`] says why).
    pub fn from_uri(uri: &str) -> Option<JumpHost> {
        JumpHost::parse(uri).ok().flatten()
    }

    /// Like [`JumpHost::from_uri`], with the reason when an ssh URI cannot be used (for config
    /// validation). A URI without `user@` logs in as the current user, as ssh would; `~/` in the
    /// paths is the user's home.
    pub fn parse(uri: &str) -> Result<Option<JumpHost>, BadUri> {
        parse(
            uri,
            &user::name().unwrap_or_else(|| "root".into()),
            user::home().as_deref(),
        )
    }

    /// For ssh's `ProxyJump` / `-J` (ssh-config, inventory, `vnode ssh`): `user@host:port`, the
    /// port only when it is not 22, an IPv6 address in brackets.
    pub fn proxy_jump(&self) -> String {
        match self.port {
            22 => format!("{}@{}", self.user, self.bracketed()),
            port => format!("{}@{}:{port}", self.user, self.bracketed()),
        }
    }

    /// `host:port` (`[v6]:port`), for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.bracketed(), self.port)
    }

    fn bracketed(&self) -> String {
        match self.host.contains(':') {
            true => format!("[{}]", self.host),
            false => self.host.clone(),
        }
    }

    /// The name ssh looks the host up by in known_hosts: `host`, or `[host]:port`.
    pub fn known_hosts_name(&self) -> String {
        let host = self.host.to_ascii_lowercase();
        match self.port {
            22 => host,
            port => format!("[{host}]:{port}"),
        }
    }

    /// The known_hosts files consulted, the one to name in messages first (never empty): the
    /// URI's `known_hosts=` alone, else the user's and the system's, as ssh reads them.
    pub fn known_hosts_files(&self) -> Vec<PathBuf> {
        match &self.known_hosts {
            Some(file) => vec![file.clone()],
            None => user::home()
                .map(|home| home.join(".ssh/known_hosts"))
                .into_iter()
                .chain([PathBuf::from("/etc/ssh/ssh_known_hosts")])
                .collect(),
        }
    }

    /// `ssh ... user@host`: the login that shows the host's fingerprint and records it in the
    /// file vnode reads.
    pub(super) fn first_login_command(&self) -> String {
        let mut words = vec!["ssh".to_string()];
        if self.port != 22 {
            words.extend(["-p".into(), self.port.to_string()]);
        }
        if let Some(file) = &self.known_hosts {
            words.extend([
                "-o".into(),
                format!("UserKnownHostsFile={}", file.display()),
            ]);
        }
        words.push(format!("{}@{}", self.user, self.host));
        crate::text::shell::join(words)
    }

    /// `ssh-keyscan ... host`, whose output goes into the known_hosts once checked.
    pub(super) fn keyscan_command(&self) -> String {
        let mut words = vec!["ssh-keyscan".to_string()];
        if self.port != 22 {
            words.extend(["-p".into(), self.port.to_string()]);
        }
        words.push(self.host.clone());
        crate::text::shell::join(words)
    }

    /// `ssh-keygen -R ...`: removes the host's recorded keys from `file`.
    pub(super) fn forget_command(&self, file: &Path) -> String {
        crate::text::shell::join([
            "ssh-keygen".to_string(),
            "-f".into(),
            file.display().to_string(),
            "-R".into(),
            self.known_hosts_name(),
        ])
    }
}

impl fmt::Display for JumpHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.proxy_jump())
    }
}

/// [`JumpHost::parse`] with the default user and the home given.
fn parse(uri: &str, default_user: &str, home: Option<&Path>) -> Result<Option<JumpHost>, BadUri> {
    let bad = |reason: &str| BadUri {
        uri: uri.to_string(),
        reason: reason.to_string(),
    };
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Ok(None);
    };
    let transport = scheme.split_once('+').map(|(_, t)| t);
    if !transport.is_some_and(|t| SSH_TRANSPORTS.contains(&t)) {
        return Ok(None);
    }
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let (authority, query) = match rest.find(['/', '?']) {
        Some(i) => {
            let query = rest[i..].split_once('?').map_or("", |(_, q)| q);
            (&rest[..i], query)
        }
        None => (rest, ""),
    };
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((user, host_port)) => (Some(user), host_port),
        None => (None, authority),
    };
    let (host, port) = split_host_port(host_port).ok_or_else(|| bad("bad host or port"))?;
    let host = decode_text(host).ok_or_else(|| bad("the host is not UTF-8"))?;
    if host.is_empty() {
        return Ok(None);
    }
    // Decoded, the parts go into ssh's command line, ssh configs and inventories: they obey the
    // rules of what they are, so that no `%0A` or `%20` in the URI becomes a line or an option.
    if !is_host(&host) {
        return Err(bad(&format!(
            "the host {} is not a DNS name or an IP address",
            names::quoted(&host)
        )));
    }
    let user = match user {
        Some(u) => decode_text(u).ok_or_else(|| bad("the user name is not UTF-8"))?,
        None => default_user.to_string(),
    };
    if user.is_empty() {
        return Err(bad("the user name before @ is empty"));
    }
    if !is_login_name(&user) {
        return Err(bad(&format!(
            "the user name {} is not a login name (letters, digits, '.', '_', '-')",
            names::quoted(&user)
        )));
    }
    let mut jump = JumpHost {
        user,
        host,
        port,
        identity: None,
        known_hosts: None,
    };
    // libvirt's other ssh parameters (netcat, socket, command, sshauth, keyfile's passphrase
    // prompts) do not change where the host's sshd is or which key vouches for it. `no_verify`
    // is ignored on purpose: vnode never accepts a host key blindly.
    for param in query.split('&') {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        let path = || expand_home(decode_path(value), home);
        match name {
            "keyfile" if !value.is_empty() => jump.identity = Some(path()),
            "known_hosts" if !value.is_empty() => jump.known_hosts = Some(path()),
            _ => {}
        }
    }
    Ok(Some(jump))
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`; the port defaults to 22.
fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match s.split_once(':') {
            Some((_, port)) if port.contains(':') => return None,
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    let port = match port {
        None | Some("") => 22,
        Some(p) => p.parse().ok().filter(|&p| p != 0)?,
    };
    Some((host, port))
}

/// A DNS name or an IP address (an IPv6 address without its brackets).
fn is_host(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok() || names::check_domain(host).is_ok()
}

/// A login name as POSIX's portable set has it (and as OpenSSH takes it on a command line): up to
/// 32 letters, digits, '.', '_' and '-', not starting with '-'.
fn is_login_name(user: &str) -> bool {
    user.len() <= 32
        && !user.starts_with('-')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// libvirt URI parameters that vnode refuses in a host's URI, with why: libvirt acts on them
/// without a word (`command`: the program it runs here to reach the host; `no_verify`: its ssh
/// and TLS transports then accept any host key or certificate).
const REFUSED_PARAMS: &[(&str, &str)] = &[
    (
        "command",
        "libvirt would run this program on this machine to reach the host",
    ),
    (
        "no_verify",
        "libvirt would then accept any host key or certificate",
    ),
];

/// A libvirt URI parameter vnode refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{uri} has the parameter '{name}': {why}; vnode refuses it (write the URI without it: vnode \
     verifies host keys against known_hosts, see the `known_hosts=` and `keyfile=` parameters)"
)]
pub struct RefusedParam {
    pub uri: String,
    pub name: String,
    pub why: &'static str,
}

/// Refuses a URI (any transport) whose query names a parameter of [`REFUSED_PARAMS`]; names
/// are compared as libvirt reads them, percent-decoded and in any case.
pub fn check_params(uri: &str) -> Result<(), RefusedParam> {
    let query = uri
        .split_once('#')
        .map_or(uri, |(before, _)| before)
        .split_once('?')
        .map_or("", |(_, q)| q);
    for param in query.split('&') {
        let raw = param.split_once('=').map_or(param, |(name, _)| name);
        let name = String::from_utf8_lossy(&crate::text::percent::decode(raw)).to_lowercase();
        if let Some((refused, why)) = REFUSED_PARAMS.iter().find(|(r, _)| *r == name) {
            return Err(RefusedParam {
                uri: names::quoted(uri),
                name: (*refused).to_string(),
                why,
            });
        }
    }
    Ok(())
}

fn decode_text(s: &str) -> Option<String> {
    String::from_utf8(crate::text::percent::decode(s)).ok()
}

fn decode_path(s: &str) -> PathBuf {
    PathBuf::from(OsString::from_vec(crate::text::percent::decode(s)))
}

/// `~/x` under `home`, as ssh reads `-i ~/x`.
fn expand_home(path: PathBuf, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~"), home) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jump(uri: &str) -> Option<JumpHost> {
        parse(uri, "alice", Some(Path::new("/home/alice"))).unwrap()
    }

    fn host(user: &str, host: &str, port: u16) -> JumpHost {
        JumpHost {
            user: user.into(),
            host: host.into(),
            port,
            identity: None,
            known_hosts: None,
        }
    }

    #[test]
    fn local_and_non_ssh_uris_have_no_jump_host() {
        for uri in [
            "qemu:///system",
            "qemu:///session",
            "qemu+unix:///system",
            "qemu+unix:///system?socket=/run/libvirt/libvirt-sock",
            "qemu+tcp://hv1/system",
            "qemu+tls://hv1.example.org/system",
            "qemu+ssh:///system",
            "test:///default",
            "not a uri",
            "",
        ] {
            assert_eq!(jump(uri), None, "{uri}");
        }
    }

    #[test]
    fn user_host_and_port_come_from_the_authority() {
        assert_eq!(
            jump("qemu+ssh://root@hv1.example.org/system"),
            Some(host("root", "hv1.example.org", 22))
        );
        assert_eq!(
            jump("qemu+ssh://hv1/system"),
            Some(host("alice", "hv1", 22))
        );
        assert_eq!(
            jump("qemu+ssh://root@10.1.2.3:2222/system"),
            Some(host("root", "10.1.2.3", 2222))
        );
        assert_eq!(
            jump("qemu+libssh2://ops@[fd00::7]:2200/system"),
            Some(host("ops", "fd00::7", 2200))
        );
        assert_eq!(jump("qemu+libssh://[::1]"), Some(host("alice", "::1", 22)));
        assert_eq!(jump("lxc+ssh://root@hv2"), Some(host("root", "hv2", 22)));
        assert_eq!(
            jump("qemu+ssh://root@hv1:/system"),
            Some(host("root", "hv1", 22))
        );
    }

    #[test]
    fn the_default_user_is_the_current_one() {
        let expected = user::name().unwrap_or_else(|| "root".into());
        assert_eq!(
            JumpHost::from_uri("qemu+ssh://hv1/system").unwrap().user,
            expected
        );
    }

    #[test]
    fn keyfile_and_known_hosts_come_from_the_query() {
        let j = jump(
            "qemu+ssh://root@hv1/system?keyfile=/etc/vnode/id_hv&no_verify=1&known_hosts=~/lab/known%20hosts",
        )
        .unwrap();
        assert_eq!(j.identity, Some(PathBuf::from("/etc/vnode/id_hv")));
        assert_eq!(
            j.known_hosts,
            Some(PathBuf::from("/home/alice/lab/known hosts"))
        );
        assert_eq!(j.known_hosts_files(), vec![j.known_hosts.clone().unwrap()]);
        let j = jump("qemu+ssh://root@hv1?known_hosts=/k#frag").unwrap();
        assert_eq!(j.known_hosts, Some(PathBuf::from("/k")));
        assert_eq!(j.identity, None);
    }

    #[test]
    fn percent_escapes_are_decoded() {
        let j = jump("qemu+ssh://d%2Eops@hv%31/system?keyfile=/k%2fx%zz%4").unwrap();
        assert_eq!((j.user.as_str(), j.host.as_str()), ("d.ops", "hv1"));
        assert_eq!(j.identity, Some(PathBuf::from("/k/x%zz%4")));
    }

    #[test]
    fn decoded_parts_that_would_be_lines_or_options_are_refused() {
        for uri in [
            "qemu+ssh://d%40ops@hv1/system",
            "qemu+ssh://root%0AHost%20*%0A%20%20ProxyCommand%20sh@hv1/system",
            "qemu+ssh://-oProxyCommand=sh@hv1/system",
            "qemu+ssh://root@hv1%0AHost%20*/system",
            "qemu+ssh://root@hv%20one/system",
        ] {
            let err = parse(uri, "alice", None).unwrap_err();
            assert!(err.to_string().starts_with(uri), "{err}");
        }
    }

    #[test]
    fn refused_params_are_found_decoded_and_in_any_case() {
        for uri in [
            "qemu+ssh://root@hv1/system?command=/tmp/x",
            "qemu+ssh://root@hv1/system?keyfile=/k&No_Verify=1",
            "qemu+ssh://root@hv1/system?%63ommand=x",
            "qemu+tcp://hv1/system?no_verify",
        ] {
            assert!(check_params(uri).is_err(), "{uri}");
        }
        assert!(check_params("qemu+ssh://root@hv1/system?keyfile=/k#command").is_ok());
        assert!(check_params("qemu+ssh://root@hv1/system?commands=1").is_ok());
    }

    #[test]
    fn malformed_ssh_uris_say_why() {
        for uri in [
            "qemu+ssh://root@hv1:99999/system",
            "qemu+ssh://root@hv1:0/system",
            "qemu+ssh://root@hv1:ssh/system",
            "qemu+ssh://root@fd00::1/system",
            "qemu+ssh://root@[fd00::1/system",
            "qemu+ssh://@hv1/system",
            "qemu+ssh://root@hv%ff/system",
        ] {
            let err = parse(uri, "alice", None).unwrap_err();
            assert!(err.to_string().starts_with(uri), "{err}");
            assert_eq!(JumpHost::from_uri(uri), None);
        }
    }

    #[test]
    fn proxy_jump_names_the_port_only_when_not_22() {
        assert_eq!(host("root", "hv1", 22).proxy_jump(), "root@hv1");
        assert_eq!(host("root", "hv1", 2222).proxy_jump(), "root@hv1:2222");
        assert_eq!(host("ops", "fd00::7", 22).proxy_jump(), "ops@[fd00::7]");
        assert_eq!(
            host("ops", "fd00::7", 2200).proxy_jump(),
            "ops@[fd00::7]:2200"
        );
        assert_eq!(host("root", "hv1", 2222).to_string(), "root@hv1:2222");
        assert_eq!(host("root", "hv1", 22).address(), "hv1:22");
        assert_eq!(host("root", "fd00::7", 22).address(), "[fd00::7]:22");
    }

    #[test]
    fn without_known_hosts_param_the_users_and_the_systems_files_are_read() {
        let files = host("root", "hv1", 22).known_hosts_files();
        assert_eq!(files.last().unwrap(), Path::new("/etc/ssh/ssh_known_hosts"));
        if let Some(home) = user::home() {
            assert_eq!(files, vec![home.join(".ssh/known_hosts"), files[1].clone()]);
        }
    }

    #[test]
    fn known_hosts_names_follow_ssh() {
        assert_eq!(host("root", "HV1", 22).known_hosts_name(), "hv1");
        assert_eq!(
            host("root", "10.0.0.1", 2222).known_hosts_name(),
            "[10.0.0.1]:2222"
        );
        let h = host("root", "hv1", 2222);
        assert_eq!(h.first_login_command(), "ssh -p 2222 root@hv1", "{h:?}");
        assert_eq!(h.keyscan_command(), "ssh-keyscan -p 2222 hv1");
        assert_eq!(
            h.forget_command(Path::new("/root/.ssh/known_hosts")),
            "ssh-keygen -f /root/.ssh/known_hosts -R '[hv1]:2222'"
        );
    }
}
