//! What a sysadmin meets around vnode, through the real binary: bash completion driven for real
//! (with node names, images and labs from vnode's own state), the man pages rendered by groff,
//! the `-v` debug log, `--quiet`, `--json` and colours.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clap::CommandFactory;
use common::cli::Vnode;
use vnode::cli::Cli;
use vnode::plan::spec::GRAMMAR;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vnode")
}

fn bin_dir() -> PathBuf {
    Path::new(bin()).parent().unwrap().to_path_buf()
}

/// Runs a program this test needs; a missing program fails the test, naming the package.
fn run(program: &str, package: &str, cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {program} ({e}): install {package} (bash .ci/install-deps)")
    })
}

/// A config whose state_dir holds two nodes (and a directory that is no node) and whose cache
/// holds one imported image, as `vnode images import` leaves it.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in [
            "state/vnode03",
            "state/vnode04",
            "state/big007",
            "state/scratch",
            "cache",
            "home",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(
            root.join("config.toml"),
            format!(
                "state_dir = \"{0}/state\"\ncache_dir = \"{0}/cache\"\n\n\
                 [[pool]]\nstem = \"vnode\"\n\n[[pool]]\nstem = \"big\"\nwidth = 3\nlast = 199\n",
                root.display()
            ),
        )
        .unwrap();
        let image = root.join("tiny.qcow2");
        let out = run(
            "qemu-img",
            "qemu-utils",
            Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2"])
                .arg(&image)
                .arg("1M"),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fixture = Fixture { dir };
        let out = fixture
            .vnode()
            .args(["images", "import"])
            .arg(&image)
            .args(["--name", "tiny-test"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        fixture
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// vnode with this config in $VNODE_CONFIG (as a completion script's vnode sees it).
    fn vnode(&self) -> Command {
        let mut cmd = Command::new(bin());
        self.environment(&mut cmd);
        cmd
    }

    /// Runs a shell of the fixture's environment; its output lines.
    fn shell_lines(&self, shell: &str, mut cmd: Command) -> Vec<String> {
        self.environment(&mut cmd);
        let out = run(shell, shell, &mut cmd);
        assert!(
            out.status.success(),
            "{shell} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    fn environment(&self, cmd: &mut Command) {
        cmd.env("VNODE_CONFIG", self.path("config.toml"))
            .env("HOME", self.path("home"))
            .env("PATH", path_with(&bin_dir()))
            .env_remove("VNODE_LAB")
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR");
    }

    /// What bash's completion offers when the line up to the cursor is `line`, with `words` as
    /// bash splits it (at blanks and at `:` and `=`, its default COMP_WORDBREAKS).
    fn complete_bash(&self, line: &str, words: &[&str]) -> Vec<String> {
        let script = r#"
            source <(vnode completions bash) || exit 9
            COMP_LINE=$1; COMP_POINT=${#COMP_LINE}; shift
            COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
            _vnode vnode "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\n' "${COMPREPLY[@]}"
        "#;
        let mut cmd = Command::new("bash");
        cmd.args(["-c", script, "bash", line]).args(words);
        let mut got: Vec<String> = self
            .shell_lines("bash", cmd)
            .into_iter()
            .filter(|l| !l.is_empty())
            .collect();
        got.sort();
        got
    }
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn values(got: &[String]) -> Vec<&str> {
    got.iter()
        .map(String::as_str)
        .filter(|v| !v.starts_with('-'))
        .collect()
}

#[test]
fn bash_completes_node_names_from_the_state_dir() {
    let f = Fixture::new();
    assert_eq!(
        f.complete_bash("vnode ssh vn", &["vnode", "ssh", "vn"]),
        ["vnode03", "vnode04"]
    );
    assert_eq!(
        f.complete_bash("vnode console b", &["vnode", "console", "b"]),
        ["big007"]
    );
    assert_eq!(
        f.complete_bash("vnode log vnode0", &["vnode", "log", "vnode0"]),
        ["vnode03", "vnode04"]
    );
    // destroy takes several nodes; flags are offered too, but `scratch` (no pool's name) is not.
    let got = f.complete_bash(
        "vnode destroy vnode03 ",
        &["vnode", "destroy", "vnode03", ""],
    );
    assert_eq!(values(&got), ["big007", "vnode03", "vnode04"]);
    assert!(got.contains(&"--keep-disk".to_string()), "{got:?}");
    // The config named on the line wins over $VNODE_CONFIG.
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir(other.path().join("vnode42")).unwrap();
    let cfg = other.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("state_dir = \"{}\"\n", other.path().display()),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let line = format!("vnode --config {cfg} ssh ");
    assert_eq!(
        values(&f.complete_bash(&line, &["vnode", "--config", cfg, "ssh", ""])),
        ["vnode42"]
    );
}

#[test]
fn bash_completes_images_after_a_colon_and_for_distro_flags() {
    let f = Fixture::new();
    // bash hands `3:ti` over as `3`, `:`, `ti` and replaces only `ti`: the reply has no `3:`.
    assert_eq!(
        f.complete_bash("vnode spawn 3:ti", &["vnode", "spawn", "3", ":", "ti"]),
        ["tiny-test"]
    );
    assert_eq!(
        f.complete_bash("vnode 3:ti", &["vnode", "3", ":", "ti"]),
        ["tiny-test"]
    );
    // Catalog names come after the cached ones.
    let got = f.complete_bash("vnode 7:fedora-4", &["vnode", "7", ":", "fedora-4"]);
    assert!(got.contains(&"fedora-43".to_string()), "{got:?}");
    assert_eq!(
        f.complete_bash("vnode spawn -d ti", &["vnode", "spawn", "-d", "ti"]),
        ["tiny-test"]
    );
    assert_eq!(
        f.complete_bash("vnode -d ti", &["vnode", "-d", "ti"]),
        ["tiny-test"]
    );
    assert_eq!(
        values(&f.complete_bash("vnode images rm ", &["vnode", "images", "rm", ""])),
        ["tiny-test"]
    );
    assert_eq!(
        f.complete_bash("vnode images verify t", &["vnode", "images", "verify", "t"]),
        ["tiny-test"]
    );
    // Pull offers the catalog (nothing cached is implied).
    let got = f.complete_bash(
        "vnode images pull ubuntu-24",
        &["vnode", "images", "pull", "ubuntu-24"],
    );
    assert_eq!(got, ["ubuntu-24.04"]);
}

#[test]
fn bash_completes_verbs_flags_and_lab_names() {
    let f = Fixture::new();
    assert_eq!(
        f.complete_bash("vnode i", &["vnode", "i"]),
        ["images", "inventory"]
    );
    assert_eq!(
        f.complete_bash("vnode images ", &["vnode", "images", ""])
            .into_iter()
            .filter(|c| !c.starts_with('-'))
            .collect::<Vec<_>>(),
        [
            "derive", "help", "import", "list", "pull", "push", "rm", "verify"
        ]
    );
    assert_eq!(
        f.complete_bash("vnode spawn --pr", &["vnode", "spawn", "--pr"]),
        ["--prepare-only"]
    );
    assert_eq!(
        f.complete_bash("vnode plan --format d", &["vnode", "plan", "--format", "d"]),
        ["dnsmasq"]
    );
    // Lab names come from the labs with state under /var/lib/vnode/lab; a lab directory made
    // for this test (other labs may come and go meanwhile: the prefix makes the answer exact).
    let lab = LabState::new(&format!("cmpl{}", std::process::id()));
    let typed = format!("vnode --lab={}", &lab.name[..6]);
    assert_eq!(
        f.complete_bash(&typed, &["vnode", "--lab", "=", &lab.name[..6]]),
        [lab.name.as_str()]
    );
    let all = f.complete_bash("vnode --lab=", &["vnode", "--lab", "=", ""]);
    assert!(all.contains(&lab.name), "{all:?}");
}

/// A lab's state directory as `vnode lab up` leaves it (no namespaces: completion reads only
/// the directory), removed again on drop.
struct LabState {
    name: String,
}

impl LabState {
    fn new(name: &str) -> LabState {
        let dir = Path::new("/var/lib/vnode/lab").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("state.json"), "{}").unwrap();
        LabState { name: name.into() }
    }
}

impl Drop for LabState {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new("/var/lib/vnode/lab").join(&self.name));
    }
}

#[test]
fn fish_completes_nodes_and_images_through_the_same_binary() {
    let f = Fixture::new();
    let complete = |line: &str| {
        let script = format!("vnode completions fish | source; complete -C '{line}'");
        let mut cmd = Command::new("fish");
        cmd.args(["--no-config", "-c", &script]);
        let mut got: Vec<String> = f
            .shell_lines("fish", cmd)
            .iter()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect();
        got.sort();
        got
    };
    assert_eq!(complete("vnode ssh vn"), ["vnode03", "vnode04"]);
    assert_eq!(complete("vnode 3:ti"), ["3:tiny-test"]);
    assert_eq!(values(&complete("vnode images verify ")), ["tiny-test"]);
}

#[test]
fn the_bash_script_registers_for_vnode() {
    let f = Fixture::new();
    let mut cmd = Command::new("bash");
    cmd.args([
        "-c",
        "source <(vnode completions bash) && complete -p vnode",
    ]);
    f.environment(&mut cmd);
    let out = run("bash", "bash", &mut cmd);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "complete -o bashdefault -o nosort -F _vnode vnode"
    );
}

/// Writes the man pages with `vnode generate-assets` into `dir`; their file names, sorted.
fn generate_man_pages(dir: &Path) -> Vec<String> {
    let out = Command::new(bin())
        .arg("generate-assets")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut pages: Vec<String> = std::fs::read_dir(dir.join("man"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    pages
}

/// A man page as `man -l` shows it on a 100-column terminal, without formatting.
fn render_man_page(page: &Path) -> String {
    let out = run(
        "man",
        "man-db",
        Command::new("man")
            .args(["-l", "-E", "UTF-8"])
            .arg(page)
            .env("MANWIDTH", "100")
            .env("MAN_KEEP_FORMATTING", ""),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn man_pages_render_without_warnings_and_have_their_sections() {
    let dir = tempfile::tempdir().unwrap();
    let pages = generate_man_pages(dir.path());
    let man = dir.path().join("man");
    for verb in [
        "spawn",
        "list",
        "destroy",
        "reset",
        "warm",
        "states",
        "ssh",
        "console",
        "log",
        "plan",
        "images",
        "images-pull",
        "lab-up",
        "host-check",
        "completions",
    ] {
        assert!(
            pages.contains(&format!("vnode-{verb}.1")),
            "vnode-{verb}.1 missing: {pages:?}"
        );
    }
    assert!(
        !pages.iter().any(|p| p.contains("generate-assets")),
        "{pages:?}"
    );
    for page in &pages {
        let out = run(
            "groff",
            "groff-base",
            Command::new("groff")
                .args(["-man", "-Tutf8", "-ww", "-z"])
                .arg(man.join(page)),
        );
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{page}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let main = render_man_page(&man.join("vnode.1"));
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "SUBCOMMANDS",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(
            main.lines().any(|l| l == section),
            "vnode(1) has no {section} section:\n{main}"
        );
    }
    assert!(
        !main.lines().any(|l| l == "EXTRA"),
        "the spec note belongs to the description:\n{main}"
    );
    for text in [
        "state_dir",
        "130",
        "seed.iso",
        "vnode-spawn(1)",
        "--verbose",
        "vnode config example",
    ] {
        assert!(main.contains(text), "vnode(1) does not mention {text}");
    }
    let spawn = render_man_page(&man.join("vnode-spawn.1"));
    assert!(
        spawn.contains("--prepare-only") && spawn.contains("--wait-on"),
        "{spawn}"
    );
    assert!(spawn.contains("SEE ALSO\n       vnode(1)"), "{spawn}");
}

/// Where `text` shows the spec grammar other than whole: a `[:DISTRO]` or `NUMBER[-NUMBER]` that
/// is not part of [`GRAMMAR`] (as the grammar read before `[@HOST]`).
fn partial_grammar(text: &str) -> Option<String> {
    let whole: Vec<usize> = text.match_indices(GRAMMAR).map(|(at, _)| at).collect();
    let inside_whole = |at: usize| {
        whole
            .iter()
            .any(|&start| (start..start + GRAMMAR.len()).contains(&at))
    };
    ["[:DISTRO]", "NUMBER[-NUMBER]"]
        .iter()
        .flat_map(|part| text.match_indices(part))
        .find(|&(at, _)| !inside_whole(at))
        .map(|(at, _)| text[at.saturating_sub(40)..].chars().take(100).collect())
}

#[test]
fn help_and_man_pages_show_the_whole_spec_grammar() {
    for args in [&["--help"][..], &["spawn", "--help"], &["spawn", "-h"]] {
        let help = Vnode::new().args(args).ok();
        assert!(help.contains(GRAMMAR), "vnode {args:?}:\n{help}");
    }
    // Every verb's help, short and long.
    let mut paths = Vec::new();
    command_paths(&Cli::command(), &[], &mut paths);
    for path in &paths {
        for flag in ["-h", "--help"] {
            let help = Vnode::new().args(path).args([flag]).ok();
            assert_eq!(partial_grammar(&help), None, "vnode {path:?} {flag}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man");
    for page in generate_man_pages(dir.path()) {
        let text = render_man_page(&man.join(&page));
        assert_eq!(partial_grammar(&text), None, "{page}");
        if page == "vnode.1" || page == "vnode-spawn.1" {
            assert!(text.contains(GRAMMAR), "{page}:\n{text}");
        }
    }
}

/// The words that reach `cmd` and each of its verbs, depth first (`[]`, `["images"]`,
/// `["images", "pull"]`, ...).
fn command_paths(cmd: &clap::Command, path: &[String], out: &mut Vec<Vec<String>>) {
    out.push(path.to_vec());
    for sub in cmd.get_subcommands() {
        let mut longer = path.to_vec();
        longer.push(sub.get_name().to_string());
        command_paths(sub, &longer, out);
    }
}

#[test]
fn partial_grammar_finds_a_grammar_without_host() {
    assert_eq!(
        partial_grammar(&format!("specs: {GRAMMAR}, or {GRAMMAR}.")),
        None
    );
    assert!(partial_grammar("specs: [STEM]NUMBER[-NUMBER][:DISTRO].").is_some());
    assert!(partial_grammar(&format!("{GRAMMAR} or NUMBER[-NUMBER]")).is_some());
}

/// A `virsh` that answers every query with `running`, so `vnode list` runs it without libvirt.
fn fake_virsh(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("virsh");
    std::fs::write(&path, "#!/bin/sh\necho running\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn verbose_logs_every_external_command_with_duration_and_status() {
    let f = Fixture::new();
    let fake = tempfile::tempdir().unwrap();
    fake_virsh(fake.path());
    let list = |extra: &[&str], env: Option<(&str, &str)>| {
        let mut cmd = f.vnode();
        cmd.env("PATH", path_with(fake.path()))
            .args(extra)
            .arg("list");
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (quiet_out, quiet_err) = list(&[], None);
    assert!(
        quiet_err.is_empty(),
        "without -v, stderr stays empty: {quiet_err}"
    );
    let (out, err) = list(&["-v"], None);
    assert_eq!(out, quiet_out, "the table is unchanged by -v");
    // One `domstats --state` reads every node's state at once.
    let line = err
        .lines()
        .find(|l| l.contains("ran `virsh -q -c qemu:///system domstats --state`"))
        .unwrap_or_else(|| panic!("no log line for the domain states:\n{err}"));
    assert!(
        line.contains("DEBUG") && line.contains(": exit 0 in ") && line.ends_with(" ms"),
        "{line}"
    );
    let (_, err) = list(&[], Some(("RUST_LOG", "vnode=debug")));
    assert!(
        err.contains("ran `virsh -q -c qemu:///system domstats --state`: exit 0"),
        "{err}"
    );
    // A failing command is logged with its status.
    std::fs::write(
        fake.path().join("virsh"),
        "#!/bin/sh\necho 'error: no such thing' >&2\nexit 3\n",
    )
    .unwrap();
    let mut cmd = f.vnode();
    let out = cmd
        .env("PATH", path_with(fake.path()))
        .args(["-v", "list"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("domstats --state`: exit 3 after "), "{err}");
}

#[test]
fn quiet_prints_only_the_table_and_json_keeps_progress_off_stdout() {
    let f = Fixture::new();
    let verify = |args: &[&str]| {
        let out = f.vnode().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (table, progress) = verify(&["images", "verify"]);
    assert!(progress.contains("tiny-test: hashing"), "{progress}");
    assert!(
        table.starts_with("NAME") && table.contains("tiny-test  ok"),
        "{table}"
    );
    let (quiet_table, nothing) = verify(&["--quiet", "images", "verify"]);
    assert_eq!(quiet_table, table);
    assert!(nothing.is_empty(), "--quiet printed progress: {nothing}");
    let (json, progress) = verify(&["--json", "images", "verify"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("stdout is JSON alone");
    assert_eq!(v[0]["name"], "tiny-test");
    assert!(
        progress.contains("tiny-test: hashing"),
        "progress goes to stderr: {progress}"
    );
    let (json_q, _) = verify(&["-q", "--json", "images", "verify"]);
    assert_eq!(json_q, json);
}

/// Runs vnode on a pseudo-terminal (util-linux `script`) and returns what the terminal showed.
fn on_a_terminal(f: &Fixture, path: &str, args: &str, no_color: bool) -> String {
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &format!("{} {args}", bin()), "/dev/null"]);
    f.environment(&mut cmd);
    cmd.env("TERM", "xterm").env("PATH", path);
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    let out = run("script", "bsdutils", &mut cmd);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn colours_only_on_a_terminal_and_never_with_no_color() {
    let esc = "\u{1b}[";
    let f = Fixture::new();
    let fake = tempfile::tempdir().unwrap();
    fake_virsh(fake.path());
    let path = path_with(fake.path());
    let tty = on_a_terminal(&f, &path, "--help", false);
    assert!(
        tty.contains("Usage") && tty.contains(esc),
        "help on a terminal is styled: {tty:?}"
    );
    let tty = on_a_terminal(&f, &path, "--help", true);
    assert!(
        tty.contains("Usage") && !tty.contains(esc),
        "NO_COLOR: {tty:?}"
    );
    let piped = Vnode::new().args(["--help"]).ok();
    assert!(
        piped.contains("Usage") && !piped.contains(esc),
        "a pipe gets no colours"
    );
    // The debug log likewise.
    let tty = on_a_terminal(&f, &path, "-v list", false);
    assert!(tty.contains("ran `virsh") && tty.contains(esc), "{tty:?}");
    let tty = on_a_terminal(&f, &path, "-v list", true);
    assert!(tty.contains("ran `virsh") && !tty.contains(esc), "{tty:?}");
    let out = f
        .vnode()
        .env("PATH", &path)
        .args(["-v", "list"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ran `virsh") && !err.contains(esc), "{err:?}");
}
