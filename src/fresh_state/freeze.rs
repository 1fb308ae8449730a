//! The disk side of a state: a new overlay on the state's frozen disk (the node's after a save,
//! and on every restore), and the state's directory.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::node::overlay;

/// Replaces whatever is at `disk` with a new overlay backed by `frozen`, of its virtual size.
pub fn new_overlay(disk: &Path, frozen: &Path) -> io::Result<()> {
    let size = crate::images::qcow2::inspect(frozen)
        .map_err(io::Error::other)?
        .virtual_size;
    match std::fs::remove_file(disk) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    overlay::create(disk, frozen, size)
}

/// A directory only root can list, that the qemu user can pass (it opens the frozen disk).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for d in [dir, dir.parent().unwrap_or(dir)] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711))?;
    }
    Ok(())
}
