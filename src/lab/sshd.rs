//! The sshd of a lab host: what libvirt's `qemu+ssh://` transport (and vnode's ssh) reach the
//! host through. It runs in the host's namespaces, so a session's `virt-ssh-helper` or `nc`
//! reaches *that host's* libvirtd socket; it reads only the files named here (never
//! /etc/ssh/sshd_config), listens on the host's site address only and lets in the lab's
//! controller key only.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::paths::MachineDir;

/// The daemon (Debian's openssh-server). Its own service is never started.
pub const SSHD: &str = "/usr/sbin/sshd";

/// sshd's privilege separation directory, which it insists exists (an empty directory, root's,
/// shared by every sshd of the machine; it stays).
pub const PRIVSEP_DIR: &str = "/run/sshd";

/// sshd_config of a lab host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshdConfig {
    pub listen: Ipv4Addr,
    pub port: u16,
    pub host_key: PathBuf,
    /// The controller key's public half.
    pub authorized_keys: PathBuf,
    pub pid_file: PathBuf,
    /// Unauthenticated connections allowed at once: vnode opens one libvirt connection per
    /// node and step, and sshd's default (10, then dropping at random) would turn a wide spawn
    /// into flaky connection resets.
    pub max_startups: u32,
}

impl SshdConfig {
    /// The config of the host whose files are in `dir`, listening on `address`.
    pub fn for_host(dir: &MachineDir, address: Ipv4Addr) -> SshdConfig {
        SshdConfig {
            listen: address,
            port: 22,
            host_key: dir.sshd(HOST_KEY),
            authorized_keys: dir.sshd("authorized_keys"),
            pid_file: dir.sshd("sshd.pid"),
            max_startups: 100,
        }
    }

    /// sshd_config's text.
    pub fn render(&self) -> String {
        let mut out = String::from("# vnode lab: the sshd of one lab host\n");
        let p = |path: &PathBuf| path.display().to_string();
        for (key, value) in [
            ("ListenAddress", self.listen.to_string()),
            ("Port", self.port.to_string()),
            ("HostKey", p(&self.host_key)),
            ("AuthorizedKeysFile", p(&self.authorized_keys)),
            ("PidFile", p(&self.pid_file)),
            // The controller logs in as root with its key, and only so.
            ("PermitRootLogin", "prohibit-password".into()),
            ("PubkeyAuthentication", "yes".into()),
            ("PasswordAuthentication", "no".into()),
            ("KbdInteractiveAuthentication", "no".into()),
            // No PAM: the lab's sshd needs no account stack, and Debian's would log in through
            // the machine's session setup.
            ("UsePAM", "no".into()),
            ("MaxStartups", self.max_startups.to_string()),
            ("UseDNS", "no".into()),
            ("LogLevel", "VERBOSE".into()),
            // scp speaks SFTP (OpenSSH >= 9.0), as a real host's sshd offers it.
            ("Subsystem", "sftp internal-sftp".into()),
        ] {
            let _ = writeln!(out, "{key} {value}");
        }
        out
    }
}

/// The host key's file name in the host's directory (`.pub` next to it).
pub const HOST_KEY: &str = "ssh_host_ed25519_key";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{LabDir, LabName};

    #[test]
    fn config_listens_on_the_host_and_lets_in_keys_only() {
        let dir = LabDir::of(&LabName::new("t").unwrap()).host("h2");
        let conf = SshdConfig::for_host(&dir, Ipv4Addr::new(198, 18, 0, 252)).render();
        let h = "/var/lib/vnode/lab/t/hosts/h2";
        let expected = format!(
            "# vnode lab: the sshd of one lab host\n\
             ListenAddress 198.18.0.252\n\
             Port 22\n\
             HostKey {h}/ssh_host_ed25519_key\n\
             AuthorizedKeysFile {h}/authorized_keys\n\
             PidFile {h}/sshd.pid\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             MaxStartups 100\n\
             UseDNS no\n\
             LogLevel VERBOSE\n\
             Subsystem sftp internal-sftp\n"
        );
        assert_eq!(conf, expected);
    }
}
