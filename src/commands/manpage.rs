//! Man pages rendered by clap_mangen from the `Command` that `--help` shows: vnode(1) and one page
//! per verb (vnode-spawn(1), vnode-images-pull(1), ...). The sections clap knows nothing of come
//! from [`SECTIONS`] and [`SEE_ALSO`], the only text written here; they follow clap_mangen's.

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use crate::cli::Cli;
use crate::exit::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_NOT_READY};

/// A section of a page that clap does not generate: tagged paragraphs, the tag in bold.
struct Section {
    /// The page's name (its file name without `.1`).
    page: &'static str,
    title: &'static str,
    items: &'static [(Tag, &'static str)],
}

enum Tag {
    Text(&'static str),
    Exit(u8),
}

/// Every section clap does not generate, in the order a page shows them (man-pages(7)).
const SECTIONS: &[Section] = &[
    Section {
        page: "vnode",
        title: "EXIT STATUS",
        items: &[
            (Tag::Exit(0), "Success."),
            (
                Tag::Exit(EXIT_FAILED),
                "An operation failed (a node, a download, libvirt).",
            ),
            (
                Tag::Exit(EXIT_BAD_INPUT),
                "Bad input (specs, config, catalog, arguments); nothing was created.",
            ),
            (
                Tag::Exit(EXIT_NOT_READY),
                "Some nodes did not become ready.",
            ),
            (Tag::Exit(EXIT_INTERRUPTED), "Interrupted."),
        ],
    },
    Section {
        page: "vnode",
        title: "ENVIRONMENT",
        items: &[
            (
                Tag::Text("VNODE_CONFIG"),
                "The config file, unless --config is given.",
            ),
            (
                Tag::Text("VNODE_LAB"),
                "Act inside this lab, like --lab=NAME.",
            ),
            (
                Tag::Text("RUST_LOG"),
                "A tracing filter for the debug log (e.g. vnode=debug), when -v is not given.",
            ),
            (Tag::Text("NO_COLOR"), "When set and not empty, no colours."),
            (
                Tag::Text("COMPLETE"),
                "Set by the completion scripts to ask vnode for candidates.",
            ),
        ],
    },
    Section {
        page: "vnode",
        title: "FILES",
        items: &[
            (
                Tag::Text("~/.config/vnode/config.toml, /etc/vnode/config.toml"),
                "The config: the first found, unless --config or VNODE_CONFIG names one. vnode config show says which; vnode config example prints every key.",
            ),
            (
                Tag::Text("~/.config/vnode/images.toml"),
                "A user catalog, added to the built-in one.",
            ),
            (
                Tag::Text("/var/lib/vnode/nodes/NAME/"),
                "One directory per node (the config's state_dir): disk.qcow2, seed.iso, console.log, node.json.",
            ),
            (
                Tag::Text("/var/lib/vnode/images/"),
                "The image cache (the config's cache_dir).",
            ),
            (
                Tag::Text("/var/lib/vnode/lab/NAME/"),
                "A namespace lab's state (removed by vnode lab down).",
            ),
        ],
    },
    Section {
        page: "vnode",
        title: "EXAMPLES",
        items: &[
            (
                Tag::Text("vnode 3:f43 vnode4 vnode18:u24.04 20-22"),
                "vnode03 from Fedora 43, vnode04 from the default image, vnode18 from Ubuntu 24.04, vnode20 to vnode22.",
            ),
            (
                Tag::Text("vnode 10-19@h1"),
                "Ten nodes on h1, one of the config's [[hosts]].",
            ),
            (
                Tag::Text("vnode --dry-run 3-7"),
                "What would be created; nothing is.",
            ),
            (
                Tag::Text("vnode ssh vnode03 -- uptime"),
                "A command in a node.",
            ),
            (
                Tag::Text("vnode destroy 3-7"),
                "The nodes, and their files, gone.",
            ),
        ],
    },
];

/// Other programs' pages a page points to, after its parent's and its verbs' pages.
const SEE_ALSO: &[(&str, &[&str])] = &[
    ("vnode", &["virsh(1)", "virt-install(1)"]),
    ("vnode-console", &["virsh(1)"]),
    ("vnode-ssh", &["ssh(1)"]),
];

/// Writes every page into `dir` and returns their paths, vnode.1 first, each verb's page before
/// its own verbs' pages.
pub fn write_all(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_page(&cmd, None, dir, &mut written)?;
    Ok(written)
}

fn write_page(
    cmd: &clap::Command,
    parent: Option<&clap::Command>,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> io::Result<()> {
    let man = Man::new(with_after_help_described(cmd.clone()));
    let path = dir.join(man.get_filename());
    std::fs::write(&path, render(&man, cmd, parent)?)?;
    written.push(path);
    for sub in visible_subcommands(cmd) {
        write_page(sub, Some(cmd), dir, written)?;
    }
    Ok(())
}

fn visible_subcommands(cmd: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cmd.get_subcommands().filter(|s| !s.is_hide_set())
}

/// The page's name: `vnode`, `vnode-images-pull`.
fn page_name(cmd: &clap::Command) -> &str {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name())
}

/// clap_mangen would show the closing note of `--help` (vnode's spec grammar) under a heading
/// "EXTRA"; the page shows it as the last paragraph of its description instead.
fn with_after_help_described(cmd: clap::Command) -> clap::Command {
    let Some(after) = cmd.get_after_long_help().or_else(|| cmd.get_after_help()) else {
        return cmd;
    };
    let description = match cmd.get_long_about().or_else(|| cmd.get_about()) {
        Some(about) => format!("{about}\n\n{after}"),
        None => after.to_string(),
    };
    cmd.long_about(description)
        .after_help(None::<&str>)
        .after_long_help(None::<&str>)
}

/// clap_mangen's page, then the page's own sections.
fn render(man: &Man, cmd: &clap::Command, parent: Option<&clap::Command>) -> io::Result<Vec<u8>> {
    let mut page = Vec::new();
    man.render(&mut page)?;
    own_sections(cmd, parent).to_writer(&mut page)?;
    Ok(page)
}

/// The page's sections from [`SECTIONS`], and SEE ALSO: its parent's page, its verbs' pages and
/// the [`SEE_ALSO`] of other programs.
fn own_sections(cmd: &clap::Command, parent: Option<&clap::Command>) -> Roff {
    let name = page_name(cmd);
    let mut r = Roff::new();
    // Commands and page names are not to be split at a line's end (`vn-ode-log(1)`).
    r.control("nh", []);
    for section in SECTIONS.iter().filter(|s| s.page == name) {
        r.control("SH", [section.title]);
        for (tag, meaning) in section.items {
            let tag = match tag {
                Tag::Text(text) => text.to_string(),
                Tag::Exit(code) => code.to_string(),
            };
            r.control("TP", []);
            r.text([bold(tag)]);
            r.text([roman(*meaning)]);
        }
    }
    let others = SEE_ALSO
        .iter()
        .filter(|(page, _)| *page == name)
        .flat_map(|(_, pages)| pages.iter().map(|p| p.to_string()));
    let pages: Vec<String> = parent
        .into_iter()
        .chain(visible_subcommands(cmd))
        .map(|c| format!("{}(1)", page_name(c)))
        .chain(others)
        .collect();
    if !pages.is_empty() {
        r.control("SH", ["SEE ALSO"]);
        r.text([roman(pages.join(", "))]);
    }
    r
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
        for section in SECTIONS.iter().filter(|s| s.page == "vnode") {
            let sh = section.title;
            assert!(
                main.contains(&format!(".SH \"{sh}\"")) || main.contains(&format!(".SH {sh}")),
                "{sh}"
            );
        }
        assert!(!main.contains(".SH EXTRA"), "{main}");
    }

    #[test]
    fn every_section_belongs_to_a_page() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = write_all(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        let pages = SECTIONS
            .iter()
            .map(|s| s.page)
            .chain(SEE_ALSO.iter().map(|(p, _)| *p));
        for page in pages {
            assert!(names.iter().any(|n| n == page), "no page {page}: {names:?}");
        }
    }
}
