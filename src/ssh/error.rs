//! What can go wrong on the way to a node: its own ssh login, and the libvirt host in between.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("vnode's client key {}: {message}", path.display())]
    Key { path: PathBuf, message: String },
    #[error("ssh to {addr}: {message}")]
    Session { addr: String, message: String },
    #[error(
        "ssh to {addr}: the host key is not the one vnode generated for this node (someone else answers on this address?)"
    )]
    WrongHostKey { addr: String },
    #[error("ssh to {addr}: vnode's key was not accepted for root (yet)")]
    AuthRejected { addr: String },
    /// The libvirt host that the node's address is routed through.
    #[error(transparent)]
    Jump(Box<JumpError>),
}

impl From<JumpError> for SshError {
    fn from(e: JumpError) -> SshError {
        SshError::Jump(Box::new(e))
    }
}

impl SshError {
    /// Whether trying again, unchanged, cannot help: a host key that is wrong, unknown or revoked,
    /// a jump host that rejects the user's keys or refuses to forward. A login loop that waits for
    /// a booting guest should stop on these at once.
    pub fn is_permanent(&self) -> bool {
        match self {
            SshError::Key { .. } | SshError::WrongHostKey { .. } => true,
            SshError::Session { .. } | SshError::AuthRejected { .. } => false,
            SshError::Jump(e) => e.is_permanent(),
        }
    }
}

/// The libvirt host's sshd, used as a jump host. `host` is always its `user@host[:port]`.
#[derive(Debug, thiserror::Error)]
pub enum JumpError {
    #[error(
        "cannot connect to the sshd of libvirt host {host} at {addr}: {source} (is sshd running there, and are the host and port in its URI right?)"
    )]
    Connect {
        host: String,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("libvirt host {host}: no answer within {after:?} {doing}")]
    Timeout {
        host: String,
        doing: String,
        after: Duration,
    },
    #[error("cannot read {} (the known_hosts that vouches for libvirt host {host}): {source}", file.display())]
    KnownHostsUnreadable {
        host: String,
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the host key of libvirt host {host} ({fingerprint}) is not in {}{other_types}; vnode never accepts an unknown host key: connect once with `{first_login}`, check the fingerprint and accept it (or check the key from `{keyscan}` and add it to that file)",
        file.display()
    )]
    HostKeyUnknown {
        host: String,
        fingerprint: String,
        file: PathBuf,
        /// ", which has only ssh-rsa keys for it" when there are keys of other types.
        other_types: String,
        first_login: String,
        keyscan: String,
    },
    #[error(
        "WARNING: the host key of libvirt host {host} has changed: {}:{line} holds another key, it now offers {fingerprint}; someone may be intercepting the connection, or the host was reinstalled: if you know it was, remove the old key (`{forget}`), then connect once with ssh and check the new fingerprint",
        file.display()
    )]
    HostKeyChanged {
        host: String,
        fingerprint: String,
        file: PathBuf,
        line: usize,
        forget: String,
    },
    #[error(
        "the host key of libvirt host {host} ({fingerprint}) is marked @revoked in {}:{line}; vnode will not use it: give the host a new key, then accept that one",
        file.display()
    )]
    HostKeyRevoked {
        host: String,
        fingerprint: String,
        file: PathBuf,
        line: usize,
    },
    #[error("ssh to libvirt host {host}: {message}")]
    Handshake { host: String, message: String },
    #[error(
        "libvirt host {host} accepted none of the keys vnode tried ({tried}): authorize one of them in ~/.ssh/authorized_keys of that user there, or name the right one with ?keyfile=PATH in the host's URI"
    )]
    AuthRejected { host: String, tried: String },
    #[error(
        "the sshd of libvirt host {host} refused to forward a connection to {target} (administratively prohibited): vnode reaches guests through it, so allow it in its sshd_config (`AllowTcpForwarding local`, and no PermitOpen that excludes the guests' network)"
    )]
    ForwardingRefused { host: String, target: SocketAddr },
    #[error(
        "libvirt host {host} cannot connect to {target}: the guest is not up yet, or that address is not routable from the host"
    )]
    GuestUnreachable { host: String, target: SocketAddr },
    #[error("libvirt host {host} did not open a channel to {target}: {message}")]
    ChannelFailed {
        host: String,
        target: SocketAddr,
        message: String,
    },
}

impl JumpError {
    /// See [`SshError::is_permanent`].
    pub fn is_permanent(&self) -> bool {
        match self {
            JumpError::KnownHostsUnreadable { .. }
            | JumpError::HostKeyUnknown { .. }
            | JumpError::HostKeyChanged { .. }
            | JumpError::HostKeyRevoked { .. }
            | JumpError::AuthRejected { .. }
            | JumpError::ForwardingRefused { .. } => true,
            JumpError::Connect { .. }
            | JumpError::Timeout { .. }
            | JumpError::Handshake { .. }
            | JumpError::GuestUnreachable { .. }
            | JumpError::ChannelFailed { .. } => false,
        }
    }
}
