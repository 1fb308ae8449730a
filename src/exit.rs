//! vnode's exit codes: 0 success; 1 an operation failed (a node, a download, libvirt); 2 bad
//! input (specs, config, catalog, arguments) with nothing created; 3 some nodes did not become
//! ready; 130 interrupted. Every error type says which of these it ends with.

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_NOT_READY: u8 = 3;
pub const EXIT_INTERRUPTED: u8 = 130;
