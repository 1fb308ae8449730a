//! The Debian package, as README says to build it (`pkg/build-deb`, cargo-deb): its control
//! fields and file list as dpkg-deb reads them, an install into a scratch root with dpkg, vnode
//! run from there, and lintian with no error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Runs a program the test needs; a missing one fails the test, naming its package.
fn run(program: &str, package: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): install {package} (bash .ci/install-deps)")
        })
}

fn ok(program: &str, package: &str, args: &[&str]) -> String {
    let out = run(program, package, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The package, built once for all tests of this file into a directory kept until the process
/// ends, by the same script the README gives. It packages the debug binary `cargo test` has just
/// built (`--profile dev --prebuilt`) instead of building the `deb` profile again: the packaging
/// steps are the same, and CI spares a release build (several minutes on two cores).
fn package() -> &'static Path {
    static DEB: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, deb) = DEB.get_or_init(|| {
        let out = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("pkg/build-deb");
        let built = Command::new(&script)
            .args(["--profile", "dev", "--prebuilt", "--output"])
            .arg(out.path())
            .output()
            .expect("run pkg/build-deb");
        assert!(
            built.status.success(),
            "pkg/build-deb failed (is cargo-deb installed? bash .ci/install-deps):\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
        let deb = std::fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .expect("a .deb in the output directory");
        (out, deb)
    });
    deb
}

/// cargo-deb's version: the crate's, Debian revision 1.
fn version() -> String {
    format!("{}-1", env!("CARGO_PKG_VERSION"))
}

fn deb() -> &'static str {
    package().to_str().unwrap()
}

fn field(name: &str) -> String {
    ok("dpkg-deb", "dpkg", &["-f", deb(), name])
        .trim()
        .to_string()
}

/// The package names of a Depends-style field (version constraints dropped).
fn names(field: &str) -> Vec<String> {
    field
        .split(',')
        .map(|p| p.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn control_fields_name_exactly_what_vnode_runs() {
    assert_eq!(field("Package"), "vnode");
    assert_eq!(field("Version"), version());
    assert_eq!(field("Section"), "admin");
    assert!(!field("Maintainer").is_empty());
    let depends = names(&field("Depends"));
    // libc through cargo-deb's $auto; then virsh, virt-install, qemu-img, ssh, ip.
    assert!(depends.iter().any(|d| d == "libc6"), "{depends:?}");
    let mut run: Vec<&str> = depends
        .iter()
        .map(String::as_str)
        .filter(|d| *d != "libc6")
        .collect();
    run.sort();
    // cargo-deb sorts them: iproute2 (ip), libvirt-clients (virsh), openssh-client (ssh),
    // qemu-utils (qemu-img), virtinst (virt-install).
    assert_eq!(
        run,
        [
            "iproute2",
            "libvirt-clients",
            "openssh-client",
            "qemu-utils",
            "virtinst"
        ]
    );
    assert_eq!(
        names(&field("Recommends")),
        [
            "libvirt-daemon-system",
            "libvirt-daemon-driver-qemu",
            "qemu-system-x86",
            "dnsmasq-base",
            "iptables"
        ]
    );
    assert_eq!(names(&field("Suggests")), ["network-manager"]);
}

#[test]
fn the_file_list_has_binary_man_pages_completions_and_example_config() {
    let listing = ok("dpkg-deb", "dpkg", &["-c", deb()]);
    let files: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    for f in [
        "./usr/bin/vnode",
        "./usr/share/man/man1/vnode.1.gz",
        "./usr/share/man/man1/vnode-spawn.1.gz",
        "./usr/share/man/man1/vnode-images-pull.1.gz",
        "./usr/share/bash-completion/completions/vnode",
        "./usr/share/zsh/vendor-completions/_vnode",
        "./usr/share/fish/vendor_completions.d/vnode.fish",
        "./usr/share/doc/vnode/examples/config.toml",
        "./usr/share/doc/vnode/copyright",
        "./usr/share/doc/vnode/changelog.Debian.gz",
    ] {
        assert!(files.contains(&f), "{f} not in the package:\n{listing}");
    }
    let binary = listing
        .lines()
        .find(|l| l.ends_with("./usr/bin/vnode"))
        .unwrap();
    assert!(
        binary.starts_with("-rwxr-xr-x 0/0 ") || binary.starts_with("-rwxr-xr-x root/root "),
        "{binary}"
    );
    assert!(
        !files.iter().any(|f| f.contains("generate-assets")),
        "{listing}"
    );
}

#[test]
fn installs_into_a_scratch_root_and_runs_from_there() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let admin = r.join("var/lib/dpkg");
    for d in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(admin.join(d)).unwrap();
    }
    std::fs::write(admin.join("status"), "").unwrap();
    let root_arg = format!("--root={}", r.display());
    // The scratch root has none of the Depends: --force-depends, and say so in the log.
    ok(
        "dpkg",
        "dpkg",
        &[
            &root_arg,
            "--force-depends",
            "--force-script-chrootless",
            "-i",
            deb(),
        ],
    );
    let status = ok(
        "dpkg-query",
        "dpkg",
        &[
            &format!("--admindir={}", admin.display()),
            "-W",
            "-f",
            "${Status} ${Version}",
            "vnode",
        ],
    );
    assert_eq!(status, format!("install ok installed {}", version()));

    let vnode = r.join("usr/bin/vnode");
    let home = r.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let installed = |args: &[&str]| {
        let out = Command::new(&vnode)
            .args(args)
            .env("HOME", &home)
            .env_remove("VNODE_CONFIG")
            .env_remove("VNODE_LAB")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        installed(&["--version"]).trim(),
        format!("vnode {}", env!("CARGO_PKG_VERSION"))
    );
    // The shipped example config is a valid config; with it, the plan the README shows.
    let example = r.join("usr/share/doc/vnode/examples/config.toml");
    let plan = installed(&["--config", example.to_str().unwrap(), "plan", "0-3"]);
    for (name, mac) in [
        ("vnode00", "52:54:00:00:00:00"),
        ("vnode03", "52:54:00:00:00:03"),
    ] {
        assert!(
            plan.lines().any(|l| l.contains(name) && l.contains(mac)),
            "{plan}"
        );
    }
    assert_eq!(
        plan.lines().filter(|l| l.starts_with("vnode0")).count(),
        4,
        "{plan}"
    );
    let plan_default = installed(&["plan", "0-3"]);
    assert!(plan_default.contains("vnode03"), "{plan_default}");
    // The installed bash completion is the one `vnode completions bash` prints.
    let script =
        std::fs::read_to_string(r.join("usr/share/bash-completion/completions/vnode")).unwrap();
    assert_eq!(script, installed(&["completions", "bash"]));
    let man = r.join("usr/share/man/man1/vnode.1.gz");
    let page = ok("man", "man-db", &["-l", man.to_str().unwrap()]);
    assert!(page.contains("EXIT STATUS"), "{page}");
}

#[test]
fn lintian_finds_no_error() {
    let out = run(
        "lintian",
        "lintian",
        &["--tag-display-limit", "0", "--display-info", deb()],
    );
    let report = String::from_utf8_lossy(&out.stdout);
    // The tags, for the test log (README lists the warnings and why they stay).
    eprintln!("lintian:\n{report}{}", String::from_utf8_lossy(&out.stderr));
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E: ")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
    assert!(out.status.success(), "lintian exited {}", out.status);
}
