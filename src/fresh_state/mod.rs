//! Fresh states: a node's first-ready moment (memory and disk) saved once, so that a later
//! spawn or `vnode reset` of the same node restores it in seconds instead of booting.
//!
//! - [`key`]: what makes a state "the same fresh node", and what changed when it is not.
//! - [`store`]: where states live, `state.json`, listing, the size cap, removal.
//! - [`freeze`]: the disk moved into the state read-only, and overlays on it.
//! - [`save`], [`restore`]: the libvirt side.
//! - [`on_host`]: the same for a `[[hosts]]` host's nodes, whose disks are volumes of its pool.
//! - [`guest`]: the watcher that reseeds the RNG and sets the clock after a restore, and the
//!   first login's fixes.

pub mod freeze;
pub mod guest;
pub mod key;
pub mod on_host;
pub mod restore;
pub mod save;
pub mod store;
