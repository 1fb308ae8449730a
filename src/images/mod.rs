//! The image cache: pull (verified, resumable), list, import, rm, verify.
//!
//! Spawning never downloads: it asks [`Cache::require`] for each node's image, which fails with
//! the command that gets the image. `vnode images pull` (and `vnode spawn --pull`) fill the cache
//! through [`pull`].

mod access;
mod base;
mod cache;
pub mod catalog;
mod checksum_file;
mod derived;
mod digest;
mod disk_writer;
mod error;
mod fetch_error;
mod import;
mod meta;
mod progress;
mod pull;
pub mod qcow2;
mod redirect;
mod signature;
mod sink;
mod validate;
mod verify;

pub use base::{BaseImage, pull_missing, resolve as resolve_bases};
pub use cache::{Cache, CachedImage, Listed, State, local_names};
pub use checksum_file::url_file_name;
pub use derived::{DerivedImage, commit_flattened};
pub use error::ImageError;
pub use import::Import;
pub use meta::{ImageMeta, Origin, Trust};
pub use progress::Progress;
pub use pull::{PullOptions, interrupted as pull_interrupted, pull, pull_with};
pub use signature::{BUILTIN_KEYS, KeySource, Keyring};
pub use verify::{Verified, verify};
