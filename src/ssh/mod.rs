//! ssh from vnode to its nodes: vnode's own client key, and a russh session that accepts exactly
//! the host key vnode generated for the node (no trust on first use, no StrictHostKeyChecking=no).
//! A node on a remote libvirt host is reached through that host's sshd ([`JumpPool`]), whose own
//! key must be in the user's known_hosts.

mod client_key;
pub mod config_file;
mod error;
mod identity;
mod jump;
pub mod jump_host;
pub mod known_hosts;
mod session;
mod user;

pub use client_key::ClientKey;
pub use error::{JumpError, SshError};
pub use jump::JumpPool;
pub use jump_host::{BadUri, JumpHost};
pub use session::{Output, Session};
