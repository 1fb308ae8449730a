//! vnode under faults that need no VM: a full state directory while nodes are prepared, a full
//! image cache while an image is pulled or imported, and Ctrl-C during a pull. Each test asserts
//! what vnode prints, its exit code, and exactly what is left on disk. The full-disk tests mount a
//! small tmpfs (root, gated); the Ctrl-C test runs as any user.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{Vnode, stderr, stdout};
use common::gate::{Needs, require_root_or_skip};
use common::http_server::{Behaviour, Server};
use common::tmpfs::Tmpfs;
use sha2::{Digest, Sha256};

/// A qcow2 image of `mib` MiB virtual size made by qemu-img, fully allocated when `full`.
fn qcow2(dir: &Path, name: &str, mib: u32, full: bool) -> PathBuf {
    let path = dir.join(name);
    let mut cmd = Command::new("qemu-img");
    cmd.args(["create", "-q", "-f", "qcow2"]);
    if full {
        cmd.args(["-o", "preallocation=full"]);
    }
    let status = cmd
        .arg(&path)
        .arg(format!("{mib}M"))
        .status()
        .expect("qemu-img is needed for these tests (Debian package qemu-utils)");
    assert!(status.success());
    path
}

/// Every file in `dir`, hidden ones included, sorted.
fn files(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != ".filler")
        .collect();
    names.sort();
    names
}

/// A scratch directory with a config naming `state_dir`, `cache_dir` and a user catalog whose
/// images are served by a loopback HTTP server with inline digests.
struct Site {
    scratch: tempfile::TempDir,
    state: PathBuf,
    cache: PathBuf,
    server: Server,
}

impl Site {
    fn new(state: PathBuf, cache: PathBuf) -> Site {
        let site = Site {
            scratch: tempfile::tempdir().unwrap(),
            state,
            cache,
            server: Server::start(),
        };
        site.catalog(&[]);
        site
    }

    /// Serves `images` (name, body) and writes the catalog and config for them.
    fn catalog(&self, images: &[(&str, &[u8])]) {
        let mut catalog = String::new();
        for (name, body) in images {
            let path = format!("/{name}.qcow2");
            self.server.serve(&path, body.to_vec());
            catalog.push_str(&format!(
                "[[image]]\nname = \"{name}\"\nfamily = \"test\"\nversion = \"1.0\"\nosinfo = \"linux2022\"\n\
                 url = \"{}\"\nsha256 = \"{}\"\n\n",
                self.server.url(&path),
                hex::encode(Sha256::digest(body))
            ));
        }
        let catalog_path = self.scratch.path().join("images.toml");
        fs::write(&catalog_path, catalog).unwrap();
        let key = vnode::node::host_key::HostKey::generate("me@host").unwrap();
        fs::write(
            self.scratch.path().join("config.toml"),
            format!(
                "state_dir = {:?}\ncache_dir = {:?}\ncatalog = {:?}\nssh_keys = [\"{} me@host\"]\n\
                 [resources]\nmemory_mib = 512\nvcpus = 1\ndisk_gib = 4\n",
                self.state.to_str().unwrap(),
                self.cache.to_str().unwrap(),
                catalog_path.to_str().unwrap(),
                key.public
            ),
        )
        .unwrap();
    }

    fn cli(&self) -> Vnode {
        Vnode::at(self.scratch.path())
            .config_file(self.scratch.path().join("config.toml"))
            .env("no_proxy", "*")
    }

    fn vnode(&self, args: &[&str]) -> std::process::Output {
        self.cli().args(args).output()
    }

    /// A 1 MiB image imported as `small`, so the cache is not empty.
    fn import_small(&self, scratch: &Path) {
        let small = qcow2(scratch, "small.qcow2", 1, false);
        self.ok(&[
            "images",
            "import",
            small.to_str().unwrap(),
            "--name",
            "small",
        ]);
    }

    fn ok(&self, args: &[&str]) -> String {
        self.cli().args(args).ok()
    }

    fn list(&self) -> serde_json::Value {
        self.cli().args(["--json", "images", "list"]).json()
    }
}

#[test]
fn a_full_state_dir_fails_the_nodes_that_do_not_fit_and_leaves_none_of_their_files() {
    if require_root_or_skip(Needs::Mount) {
        return;
    }
    let fs = Tmpfs::mount(2048);
    let state = fs.join("nodes");
    let scratch = tempfile::tempdir().unwrap();
    let site = Site::new(state.clone(), scratch.path().join("cache"));
    let base = qcow2(scratch.path(), "base.qcow2", 1024, false);
    site.ok(&[
        "images",
        "import",
        base.to_str().unwrap(),
        "--name",
        "debian-12",
    ]);
    let prepare = |specs: &[&str]| {
        let mut args = vec![
            "spawn",
            "--prepare-only",
            "--virt-type",
            "qemu",
            "-d",
            "debian-12",
        ];
        args.extend(specs);
        site.vnode(&args)
    };

    // One node, to learn what a node takes (its files, its known_hosts line, vnode's client key).
    let before = fs.free();
    let out = prepare(&["3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let per_node = before - fs.free();
    // Room for one more node and a half: vnode04 fits, vnode05 and vnode06 do not.
    fs.fill_leaving(per_node + per_node / 2);

    let out = prepare(&["4", "5", "6"]);
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}\n{err}");
    assert!(text.contains("vnode04  "), "{text}");
    assert!(
        text.contains("(not prepared, see above: vnode05, vnode06)"),
        "{text}"
    );
    for node in ["vnode05", "vnode06"] {
        let line = err
            .lines()
            .find(|l| l.starts_with(&format!("vnode: {node}: ")))
            .unwrap_or_else(|| panic!("no line for {node}:\n{err}"));
        eprintln!("{line}");
        assert!(
            line.starts_with(&format!(
                "vnode: {node}: no space left on device: cannot write the "
            )),
            "{line}"
        );
        assert!(
            line.contains(&format!("{}/{node}/", state.display())),
            "{line}"
        );
        assert!(
            line.ends_with(&format!(
                ", so the node was not created and its partial files were removed; free space in {} \
                 or set state_dir in the config to a larger file system",
                state.display()
            )),
            "{line}"
        );
    }
    assert_eq!(err.matches("no space left on device").count(), 2, "{err}");

    // Nothing of the failed nodes: no directory, no hidden staging directory, no known_hosts line.
    let nodes: Vec<String> = files(&state)
        .into_iter()
        .filter(|f| f.contains("vnode"))
        .collect();
    assert_eq!(nodes, ["vnode03", "vnode04"], "{:?}", files(&state));
    let kh = fs::read_to_string(state.join("known_hosts")).unwrap();
    let hosts: Vec<&str> = kh.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(hosts, ["vnode03", "vnode04"], "{kh}");

    // With the space back, the failed nodes can be prepared.
    fs::remove_file(fs.join(".filler")).unwrap();
    let out = prepare(&["5", "6"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_full_cache_fails_pull_and_import_and_leaves_the_cache_as_it_was() {
    if require_root_or_skip(Needs::Mount) {
        return;
    }
    let fs = Tmpfs::mount(4096);
    let scratch = tempfile::tempdir().unwrap();
    let cache = fs.join("images");
    let site = Site::new(scratch.path().join("nodes"), cache.clone());
    site.import_small(scratch.path());
    // Larger than the whole file system.
    let big = qcow2(scratch.path(), "big.qcow2", 8, true);
    site.catalog(&[("big", &fs::read(&big).unwrap())]);
    let listed = site.list();
    let cached = files(&cache);
    assert_eq!(cached, ["small.meta.json", "small.qcow2"]);

    let out = site.vnode(&["images", "pull", "big"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("vnode: "))
        .unwrap_or_else(|| panic!("{err}"));
    eprintln!("{line}");
    assert_eq!(
        line,
        format!(
            "vnode: image big: no space left on device: cannot write {}/big.qcow2.part; nothing was \
             added to the cache and the partial file was removed; free space in {} or set cache_dir \
             in the config to a larger file system, then try again",
            cache.display(),
            cache.display()
        )
    );
    assert_eq!(files(&cache), cached);
    assert_eq!(site.list(), listed);
    site.ok(&["images", "verify"]);

    let out = site.vnode(&["images", "import", big.to_str().unwrap(), "--name", "big2"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("vnode: "))
        .unwrap_or_else(|| panic!("{err}"));
    eprintln!("{line}");
    assert!(
        line.starts_with(&format!(
            "vnode: image big2: no space left on device: cannot write {}/.big2.qcow2.import; \
             nothing was added to the cache and the partial file was removed; free space in {}",
            cache.display(),
            cache.display()
        )),
        "{line}"
    );
    assert_eq!(files(&cache), cached);
    assert_eq!(site.list(), listed);
    site.ok(&["images", "verify"]);
}

#[test]
fn ctrl_c_stops_a_pull_keeps_its_part_and_the_next_pull_resumes() {
    let scratch = tempfile::tempdir().unwrap();
    let cache = scratch.path().join("images");
    let site = Site::new(scratch.path().join("nodes"), cache.clone());
    site.import_small(scratch.path());
    let body = fs::read(qcow2(scratch.path(), "big.qcow2", 16, true)).unwrap();
    site.catalog(&[("big", &body)]);
    // 16 pieces, 0.4 s apart: about 6 s for the whole body.
    site.server
        .behave("/big.qcow2", Behaviour::Slow(Duration::from_millis(400)));
    let listed = site.list();

    let mut child = site
        .cli()
        .args(["images", "pull", "big"])
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let part = cache.join("big.qcow2.part");
    let t0 = Instant::now();
    while fs::metadata(&part).map_or(0, |m| m.len()) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "no bytes arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on the child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(2) {
            let _ = child.kill();
            panic!("the pull did not exit within 2 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = sent.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("vnode: "))
        .unwrap_or_else(|| panic!("{err}"));
    eprintln!("{line} (exited {took:?} after SIGINT)");
    assert_eq!(
        line,
        format!(
            "vnode: interrupted: nothing was added to the cache; the partial download big.qcow2.part \
             stays in {} and `vnode images pull big` resumes it",
            cache.display()
        )
    );
    let kept = fs::metadata(&part).unwrap().len();
    assert!(
        kept > 0 && kept < body.len() as u64,
        "{kept} of {}",
        body.len()
    );
    assert_eq!(
        files(&cache),
        ["big.qcow2.part", "small.meta.json", "small.qcow2"]
    );
    // The complete images are as before; the partial download shows as such.
    let now = site.list();
    let complete = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        v.as_array()
            .unwrap()
            .iter()
            .filter(|i| i["status"] != "partial")
            .cloned()
            .collect()
    };
    assert_eq!(complete(&now), complete(&listed));
    assert!(
        now.as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "big" && i["status"] == "partial"),
        "{now:#}"
    );

    site.server.behave("/big.qcow2", Behaviour::Normal);
    let out = site.vnode(&["images", "pull", "big"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("resuming at"), "{}", stderr(&out));
    let ranges: Vec<Option<String>> = site
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/big.qcow2")
        .map(|r| r.range)
        .collect();
    assert_eq!(ranges, [None, Some(format!("bytes={kept}-"))]);
    assert_eq!(fs::read(cache.join("big.qcow2")).unwrap(), body);
    assert_eq!(
        files(&cache),
        [
            "big.meta.json",
            "big.qcow2",
            "small.meta.json",
            "small.qcow2"
        ]
    );
    site.ok(&["images", "verify"]);
}
