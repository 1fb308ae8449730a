//! The storage pools virt-install makes on its own. Handed a disk by path in a directory no pool
//! covers, virt-install defines, starts and autostarts a directory pool for it, named after the
//! directory (`vnode03`, or `vnode03-1` when that name is taken). vnode removes such a pool with
//! the node: once the directory is gone it would stay behind inactive and broken (and other libvirt
//! tools trip over it). A pool is recognised by its target path alone, which must be the node's
//! directory; a pool of any other directory is never touched, whatever its name.

use std::path::{Path, PathBuf};

use super::LibvirtError;
use super::storage::parse;
use super::virsh::{Virsh, parse_names};

/// Why a pool made for a node's directory could not be removed.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot remove libvirt's storage pool {pool} (made by virt-install for {}): {source}; remove \
     it with `virsh -c {uri} pool-destroy {pool}; virsh -c {uri} pool-undefine {pool}`",
    dir.display()
)]
pub struct PoolRemovalError {
    pub pool: String,
    pub dir: PathBuf,
    pub uri: String,
    #[source]
    pub source: LibvirtError,
}

/// Names of the pools (active or not) whose target is `dir`.
pub async fn pools_of_dir(virsh: &Virsh, dir: &Path) -> Result<Vec<String>, LibvirtError> {
    let mut found = Vec::new();
    for pool in parse_names(&virsh.run(&["pool-list", "--all", "--name"]).await?) {
        let xml = match virsh.run(&["pool-dumpxml", &pool]).await {
            Ok(xml) => xml,
            // Removed by someone else since the listing.
            Err(LibvirtError::Virsh { message, .. }) if parse::is_no_pool(&message) => continue,
            Err(e) => return Err(e),
        };
        if parse::pool_dump(&xml).is_some_and(|d| same_dir(&d.target, dir)) {
            found.push(pool);
        }
    }
    Ok(found)
}

/// Stops and undefines every pool whose target is `dir` (see the module); the names removed.
/// The directory and its files are left as they are.
pub async fn remove_pools_of_dir(
    virsh: &Virsh,
    dir: &Path,
) -> Result<Vec<String>, PoolRemovalError> {
    let fail = |pool: &str, source| PoolRemovalError {
        pool: pool.to_string(),
        dir: dir.to_path_buf(),
        uri: virsh.uri().to_string(),
        source,
    };
    let pools = pools_of_dir(virsh, dir)
        .await
        .map_err(|e| fail("(listing the pools)", e))?;
    for pool in &pools {
        match virsh.run(&["pool-destroy", pool]).await {
            Ok(_) => {}
            Err(LibvirtError::Virsh { message, .. })
                if parse::is_not_active(&message) || parse::is_no_pool(&message) => {}
            Err(e) => return Err(fail(pool, e)),
        }
        match virsh.run(&["pool-undefine", pool]).await {
            Ok(_) => {}
            Err(LibvirtError::Virsh { message, .. }) if parse::is_no_pool(&message) => {}
            Err(e) => return Err(fail(pool, e)),
        }
    }
    Ok(pools)
}

/// The same directory, as written (components, so `/a//b/` is `/a/b`) or once resolved.
fn same_dir(target: &Path, dir: &Path) -> bool {
    if target == dir {
        return true;
    }
    match (target.canonicalize(), dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A virsh that plays libvirt's pools from files in `dir`: `pools/NAME` holds a pool's
    /// target path, `pools/NAME.inactive` marks it stopped; every call is appended to `dir/calls`.
    /// Domain calls succeed (no such domain is fine for vnode).
    pub(crate) fn stand_in(dir: &Path) -> Virsh {
        use std::os::unix::fs::PermissionsExt;
        let d = dir.display();
        let script = format!(
            "#!/bin/sh\n\
             shift 3\n\
             echo \"$*\" >> {d}/calls\n\
             p={d}/pools\n\
             case $1 in\n\
             pool-list) for f in $p/*; do [ -e \"$f\" ] || continue; case $f in *.inactive) ;; *) basename $f;; esac; done;;\n\
             pool-dumpxml) [ -f $p/$2 ] || {{ echo 'error: Storage pool not found: no storage pool with matching name' >&2; exit 1; }}\n\
               printf \"<pool type='dir'>\\n  <name>%s</name>\\n  <target>\\n    <path>%s</path>\\n  </target>\\n</pool>\\n\" $2 \"$(cat $p/$2)\";;\n\
             pool-destroy) [ -f $p/$2.inactive ] && {{ echo \"error: Requested operation is not valid: storage pool '$2' is not active\" >&2; exit 1; }}; touch $p/$2.inactive;;\n\
             pool-undefine) rm -f $p/$2 $p/$2.inactive;;\n\
             destroy|undefine) ;;\n\
             *) exit 1;;\n\
             esac\n"
        );
        std::fs::create_dir_all(dir.join("pools")).unwrap();
        let path = dir.join("virsh");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Virsh::with_program(path, "test:///stand-in")
    }

    /// Defines pool `name` on the stand-in, targeting `target`.
    pub(crate) fn define(dir: &Path, name: &str, target: &str, active: bool) {
        std::fs::write(dir.join("pools").join(name), target).unwrap();
        if !active {
            std::fs::write(dir.join("pools").join(format!("{name}.inactive")), "").unwrap();
        }
    }

    /// The pools the stand-in still has, sorted.
    pub(crate) fn pools(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join("pools"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.ends_with(".inactive"))
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn only_pools_of_the_nodes_directory_are_removed_active_or_not() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let virsh = stand_in(dir);
        define(dir, "vnode03", "/state/vnode03", true);
        define(dir, "vnode03-1", "/state//vnode03/", false);
        // Named like the node, but another directory's: kept.
        define(dir, "vnode3", "/srv/vnode03", true);
        define(dir, "default", "/var/lib/libvirt/images", true);
        let removed = remove_pools_of_dir(&virsh, Path::new("/state/vnode03"))
            .await
            .unwrap();
        assert_eq!(removed, ["vnode03", "vnode03-1"]);
        assert_eq!(pools(dir), ["default", "vnode3"]);
        // Nothing left to remove: a second run is a no-op.
        let again = remove_pools_of_dir(&virsh, Path::new("/state/vnode03"))
            .await
            .unwrap();
        assert!(again.is_empty());
    }

    #[tokio::test]
    async fn a_failure_names_the_pool_and_the_commands_to_run() {
        let tmp = tempfile::tempdir().unwrap();
        let virsh = Virsh::with_program("/nonexistent/virsh", "qemu:///system");
        let e = remove_pools_of_dir(&virsh, &tmp.path().join("vnode03"))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("vnode03") && e.contains("pool-undefine"), "{e}");
    }
}
