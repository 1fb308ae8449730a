//! Files vnode writes and directories it trusts: new files that never follow a planted symlink
//! ([`create`]), and the ownership rules of OpenSSH's StrictModes for the config file, the cache
//! and the state directory ([`strict_modes`]).

pub mod create;
pub mod strict_modes;

pub use create::{create_fresh, create_new, open_or_create, write_atomic};
pub use strict_modes::{TrustError, Trusted, check_dir, check_file};
