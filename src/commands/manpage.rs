//! Man pages from the clap definitions: vnode(1), with the sections a sysadmin looks for (spec
//! grammar, configuration, exit status, files, environment), and one page per verb
//! (vnode-spawn(1), vnode-images-pull(1), ...).

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use crate::cli::Cli;
use crate::error::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_NOT_READY};

/// Writes every page into `dir` and returns their paths, vnode.1 first.
pub fn write_all(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut written = vec![write_main(&cmd, dir)?];
    for sub in visible_subcommands(&cmd) {
        write_verb(sub, dir, &mut written)?;
    }
    Ok(written)
}

fn visible_subcommands(cmd: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cmd.get_subcommands().filter(|s| !s.is_hide_set())
}

/// A verb's page, then its own verbs' pages (`vnode images` → `vnode-images-pull`, ...).
fn write_verb(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
    written.push(Man::new(cmd.clone()).generate_to(dir)?);
    for sub in visible_subcommands(cmd) {
        write_verb(sub, dir, written)?;
    }
    Ok(())
}

fn write_main(cmd: &clap::Command, dir: &Path) -> io::Result<PathBuf> {
    let man = Man::new(cmd.clone());
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    extra_sections(cmd).to_writer(&mut page)?;
    man.render_version_section(&mut page)?;
    std::fs::write(&path, page)?;
    Ok(path)
}

/// The sections of vnode(1) that clap does not know about.
fn extra_sections(cmd: &clap::Command) -> Roff {
    let mut r = Roff::new();
    section(&mut r, "NODE SPECS");
    r.text([
        bold("vnode"),
        roman(" SPECS... is short for "),
        bold("vnode spawn"),
        roman(" SPECS... A spec is "),
        italic("[STEM]NUMBER[-NUMBER][:DISTRO]"),
        roman(", e.g. "),
        bold("vnode 3:f43 vnode4 vnode18:u24.04 20-22"),
        roman("."),
    ]);
    items(
        &mut r,
        &[
            (
                "NUMBER",
                "Normalized to the pool's width: 3, vnode3 and vnode003 all mean vnode03. A bare number belongs to the default pool.",
            ),
            (
                "NUMBER-NUMBER",
                "A range (3-7 is five nodes); at most 1000 nodes per command.",
            ),
            (
                "STEM",
                "The pool's name stem; pools are configured with [[pool]] tables.",
            ),
            (
                "DISTRO",
                "A catalog name or alias (fedora-43, f43, ubuntu-24.04, u24.04, debian; case-insensitive), an imported image, or a derived image BASE-VARIANT. Without one: -d/--distro, then the config's default_distro, then the catalog's default.",
            ),
        ],
    );
    r.control("PP", []);
    r.text([roman(
        "Bad specs exit with status 2 and a message naming the spec, before anything is created.",
    )]);

    section(&mut r, "CONFIGURATION");
    r.text([
        roman("TOML, looked up in "),
        bold("--config"),
        roman(" FILE, $VNODE_CONFIG, ~/.config/vnode/config.toml and /etc/vnode/config.toml; the first found wins and "),
        bold("vnode config show"),
        roman(" says which. Every key is optional. "),
        bold("vnode config example"),
        roman(" prints a commented example (installed as /usr/share/doc/vnode/examples/config.toml)."),
    ]);
    items(
        &mut r,
        &[
            ("libvirt_uri", "libvirt connection (qemu:///system)."),
            (
                "virt_type",
                "kvm, qemu (TCG) or auto (probe whether a guest really runs under KVM).",
            ),
            ("cache_dir", "Cached base images (/var/lib/vnode/images)."),
            ("state_dir", "Per-node files (/var/lib/vnode/nodes)."),
            (
                "ssh_keys",
                "Public keys authorized for root in every node (default: the invoking user's ~/.ssh/id_*.pub).",
            ),
            ("default_distro", "The image of specs without :DISTRO."),
            (
                "catalog",
                "A user catalog in the format of images.toml, added to the built-in one.",
            ),
            (
                "default_pool",
                "The pool bare numbers belong to (default: the first).",
            ),
            (
                "[resources]",
                "memory_mib, vcpus, disk_gib of every node; a pool may override each.",
            ),
            (
                "[cloud_init]",
                "packages and runcmd added to every node's cloud-config.",
            ),
            ("[[users]]", "Extra accounts: name, ssh_keys, sudo, shell."),
            (
                "[[pool]]",
                "stem, width, first, last, mac_id, bridge, network, domain, public_subnet, public_offset, and resources.",
            ),
        ],
    );

    section(&mut r, "EXIT STATUS");
    let codes = [
        (0, "Success.".to_string()),
        (
            EXIT_FAILED,
            "An operation failed (a node, a download, libvirt).".into(),
        ),
        (
            EXIT_BAD_INPUT,
            "Bad input (specs, config, catalog, arguments); nothing was created.".into(),
        ),
        (EXIT_NOT_READY, "Some nodes did not become ready.".into()),
        (EXIT_INTERRUPTED, "Interrupted.".into()),
    ];
    for (code, meaning) in codes {
        r.control("TP", []);
        r.text([bold(code.to_string())]);
        r.text([roman(meaning)]);
    }

    section(&mut r, "FILES");
    items(
        &mut r,
        &[
            (
                "STATE_DIR/NAME/",
                "One directory per node: disk.qcow2 (overlay on the cached image), seed.iso (the NoCloud seed, mode 0600: it carries the node's host key), ssh_host_ed25519_key.pub, node.json, console.log, ready.json.",
            ),
            (
                "STATE_DIR/known_hosts",
                "The pinned host keys of vnode's nodes.",
            ),
            ("CACHE_DIR/", "Verified images and their metadata."),
            (
                "/var/lib/vnode/lab/NAME/",
                "A namespace lab's state, libvirt directories and site DHCP (removed by vnode lab down).",
            ),
            (
                "/var/cache/vnode/lab/",
                "libvirt's qemu probe, kept across labs.",
            ),
            (
                "/etc/vnode/config.toml, ~/.config/vnode/config.toml",
                "The configuration.",
            ),
            ("~/.config/vnode/images.toml", "A user catalog."),
        ],
    );

    section(&mut r, "ENVIRONMENT");
    items(
        &mut r,
        &[
            ("VNODE_CONFIG", "The config file, unless --config is given."),
            ("VNODE_LAB", "Act inside this lab, like --lab=NAME."),
            (
                "RUST_LOG",
                "A tracing filter for the debug log (e.g. vnode=debug), when -v is not given.",
            ),
            ("NO_COLOR", "When set and not empty, no colours."),
            (
                "COMPLETE",
                "Set by the completion scripts to ask vnode for candidates.",
            ),
        ],
    );

    section(&mut r, "SEE ALSO");
    let pages: Vec<String> = visible_subcommands(cmd)
        .map(|s| format!("vnode-{}(1)", s.get_name()))
        .chain(["virsh(1)".into(), "virt-install(1)".into()])
        .collect();
    r.text([roman(pages.join(", "))]);
    r
}

fn section(r: &mut Roff, title: &str) {
    r.control("SH", [title]);
}

/// A tagged paragraph per item: the name in bold, its meaning below.
fn items(r: &mut Roff, items: &[(&str, &str)]) {
    for (name, meaning) in items {
        r.control("TP", []);
        r.text([bold(*name)]);
        r.text([roman(*meaning)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_vnode_1_with_its_sections_and_a_page_per_verb() {
        let dir = tempfile::tempdir().unwrap();
        let pages = write_all(dir.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names[0], "vnode.1");
        for verb in [
            "vnode-spawn.1",
            "vnode-ssh.1",
            "vnode-images-pull.1",
            "vnode-lab-up.1",
        ] {
            assert!(names.iter().any(|n| n == verb), "{verb} missing: {names:?}");
        }
        assert!(
            !names
                .iter()
                .any(|n| n.contains("generate-assets") || n.contains("help"))
        );
        let main = std::fs::read_to_string(&pages[0]).unwrap();
        for sh in [
            "NODE SPECS",
            "CONFIGURATION",
            "EXIT STATUS",
            "FILES",
            "ENVIRONMENT",
        ] {
            assert!(
                main.contains(&format!(".SH \"{sh}\"")) || main.contains(&format!(".SH {sh}")),
                "{sh}"
            );
        }
    }
}
