//! `vnode images ...` through the real binary, against a real HTTP server on 127.0.0.1 that
//! serves real qcow2 files (made by qemu-img) and misbehaves on request. Every test ends by
//! checking exactly what the cache directory holds.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::Duration;

use assert_cmd::Command;
use assert_cmd::assert::Assert;
use predicates::prelude::*;
use predicates::str::contains;
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};
use tempfile::TempDir;

use common::http_server::{Behaviour, Server};
use common::signing::TestKey;

/// How a test image's digest reaches vnode.
#[derive(Clone, Copy, PartialEq)]
enum DigestSource {
    /// Fedora-style clear-signed `CHECKSUM` (BSD lines, sha256).
    FedoraChecksum,
    /// Debian-style `SHA512SUMS` (GNU lines) with a detached `SHA512SUMS.sign`.
    Sha512Sums,
    /// Ubuntu-style `SHA256SUMS` (GNU lines) with a detached `SHA256SUMS.gpg`.
    Sha256Sums,
    /// `sha256 = "..."` in the catalog.
    Inline,
}

struct Img {
    name: String,
    body: Vec<u8>,
    sums: DigestSource,
    /// Whether the checksum file lists it.
    listed: bool,
    /// Whether its catalog entry pins the test key.
    pinned: bool,
}

fn img(name: &str, body: &[u8]) -> Img {
    Img {
        name: name.into(),
        body: body.to_vec(),
        sums: DigestSource::FedoraChecksum,
        listed: true,
        pinned: true,
    }
}

impl Img {
    fn sums(self, sums: DigestSource) -> Img {
        Img { sums, ..self }
    }

    /// A catalog entry without signing_keys, as a user catalog may have.
    fn unpinned(self) -> Img {
        Img {
            pinned: false,
            ..self
        }
    }

    fn unlisted(self) -> Img {
        Img {
            listed: false,
            ..self
        }
    }
}

/// A temp dir with a config, a user catalog pointing at the test server, and the cache.
struct Images {
    dir: TempDir,
    server: Server,
    /// Where catalog URLs point: the server, or a fake host reached through a proxy.
    base: String,
    images: Vec<Img>,
    /// The key the checksum files are signed with; its public half is `test-key.asc`.
    key: TestKey,
    /// Lines added to the config file.
    extra_config: String,
}

impl Images {
    fn new() -> Images {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start();
        let base = server.url("");
        let key = TestKey::generate("vnode test <test@vnode.invalid>");
        fs::write(dir.path().join("test-key.asc"), key.public_armored()).unwrap();
        let t = Images {
            dir,
            server,
            base,
            images: Vec::new(),
            key,
            extra_config: String::new(),
        };
        t.write_files();
        t
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// A real qcow2 file of `mib` MiB virtual size, fully allocated so that the body is not tiny.
    fn qcow2(&self, mib: u32) -> Vec<u8> {
        let path = self.dir.path().join(format!("made-{mib}.qcow2"));
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "preallocation=full",
            path.to_str().unwrap(),
            &format!("{mib}M"),
        ]);
        let body = fs::read(&path).unwrap();
        fs::remove_file(&path).unwrap();
        body
    }

    /// Serves the image at /NAME.qcow2 and adds it to the catalog and the checksum files.
    fn add(&mut self, image: Img) -> &mut Self {
        self.server
            .serve(&format!("/{}.qcow2", image.name), image.body.clone());
        self.images.push(image);
        self.write_files();
        self
    }

    /// Sets the config file's lines beyond cache_dir and catalog.
    fn configure(&mut self, lines: &str) -> &mut Self {
        self.extra_config = lines.to_string();
        self.write_files();
        self
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn write_files(&self) {
        let mut checksum = String::new();
        let mut sha512sums = String::new();
        let mut sha256sums = String::new();
        let mut catalog = String::new();
        for i in &self.images {
            let file = format!("{}.qcow2", i.name);
            if i.listed {
                checksum.push_str(&format!("# {file}: {} bytes\n", i.body.len()));
                checksum.push_str(&format!("SHA256 ({file}) = {}\n", sha256(&i.body)));
                sha512sums.push_str(&format!("{}  {file}\n", sha512(&i.body)));
                sha256sums.push_str(&format!("{} *{file}\n", sha256(&i.body)));
            }
            let key = if i.pinned {
                "\nsigning_keys = [\"test-key.asc\"]"
            } else {
                ""
            };
            let digest = match i.sums {
                DigestSource::FedoraChecksum => format!(
                    "checksum_url = \"{}\"\nchecksum_algo = \"sha256\"{key}",
                    self.url("/CHECKSUM")
                ),
                DigestSource::Sha512Sums => format!(
                    "checksum_url = \"{}\"\nchecksum_algo = \"sha512\"\nsignature_url = \"{}\"{key}",
                    self.url("/SHA512SUMS"),
                    self.url("/SHA512SUMS.sign")
                ),
                DigestSource::Sha256Sums => format!(
                    "checksum_url = \"{}\"\nchecksum_algo = \"sha256\"\nsignature_url = \"{}\"{key}",
                    self.url("/SHA256SUMS"),
                    self.url("/SHA256SUMS.gpg")
                ),
                DigestSource::Inline => format!("sha256 = \"{}\"", sha256(&i.body)),
            };
            catalog.push_str(&format!(
                "[[image]]\nname = \"{}\"\nfamily = \"test\"\nversion = \"1.0\"\nosinfo = \"linux2022\"\nurl = \"{}\"\n{digest}\n\n",
                i.name,
                self.url(&format!("/{file}"))
            ));
        }
        // One line for a file nobody asks for, as real checksum files have.
        checksum.push_str(&format!("SHA256 (other.raw.xz) = {}\n", "0".repeat(64)));
        self.server
            .serve("/CHECKSUM", self.key.clear_sign(&checksum).into_bytes());
        self.server
            .serve("/SHA512SUMS.sign", self.key.detached(sha512sums.as_bytes()));
        self.server.serve("/SHA512SUMS", sha512sums.into_bytes());
        self.server
            .serve("/SHA256SUMS.gpg", self.key.detached(sha256sums.as_bytes()));
        self.server.serve("/SHA256SUMS", sha256sums.into_bytes());
        let catalog_path = self.dir.path().join("images.toml");
        fs::write(&catalog_path, catalog).unwrap();
        fs::write(
            self.dir.path().join("config.toml"),
            format!(
                "cache_dir = {:?}\ncatalog = {:?}\n{}",
                self.cache().to_str().unwrap(),
                catalog_path.to_str().unwrap(),
                self.extra_config
            ),
        )
        .unwrap();
    }

    /// `vnode ARGS...` with this test's config, no proxy, and stderr not a terminal.
    fn vnode(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vnode"));
        // Global flags after the subcommand: `vnode --config FILE images ...` is taken for
        // spawn specs by the foundation's clap setup (args_conflicts_with_subcommands).
        cmd.args(args)
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .env("HOME", self.dir.path())
            .timeout(Duration::from_secs(60));
        for var in [
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "no_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "NO_PROXY",
            "VNODE_CONFIG",
            "VNODE_LAB",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Assert {
        self.vnode(args).assert()
    }

    /// Every file in the cache directory, hidden ones included, sorted.
    fn cache_files(&self) -> Vec<String> {
        let Ok(dir) = fs::read_dir(self.cache()) else {
            return Vec::new();
        };
        let mut names: Vec<String> = dir
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn cached(&self, file: &str) -> Vec<u8> {
        fs::read(self.cache().join(file)).unwrap()
    }

    fn list_json(&self) -> Value {
        let out = self.run(&["images", "list", "--json"]).success();
        serde_json::from_slice(&out.get_output().stdout).unwrap()
    }

    /// The Range headers of the requests for a path, in order.
    fn ranges(&self, path: &str) -> Vec<Option<String>> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .map(|r| r.range)
            .collect()
    }
}

fn qemu_img(args: &[&str]) {
    let status = StdCommand::new("qemu-img")
        .args(args)
        .status()
        .expect("qemu-img is needed for these tests (Debian package qemu-utils)");
    assert!(status.success(), "qemu-img {args:?}");
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn sha512(data: &[u8]) -> String {
    hex::encode(Sha512::digest(data))
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_clean_pull_verifies_and_records_the_image() {
    let mut t = Images::new();
    let alpha = t.qcow2(1);
    t.add(img("alpha", &alpha));
    t.run(&["images", "pull", "alpha"])
        .success()
        .stderr(contains("alpha: downloading").and(contains("sha256 verified")));
    assert_eq!(t.cache_files(), ["alpha.meta.json", "alpha.qcow2"]);
    assert_eq!(t.cached("alpha.qcow2"), alpha);
    let meta: Value = serde_json::from_slice(&t.cached("alpha.meta.json")).unwrap();
    assert_eq!(meta["origin"], "pulled");
    assert_eq!(meta["source"], t.url("/alpha.qcow2"));
    assert_eq!(meta["algo"], "sha256");
    assert_eq!(meta["digest"], sha256(&alpha));
    assert_eq!(meta["size"], alpha.len());
    assert_eq!(meta["virtual_size"], 1 << 20);
    assert_eq!(meta["version"], "1.0");
    // The qemu user must be able to read what vnode wrote.
    assert_eq!(mode(&t.cache()), 0o755);
    assert_eq!(mode(&t.cache().join("alpha.qcow2")), 0o644);
    let list = t.list_json();
    assert_eq!(list[0]["name"], "alpha");
    assert_eq!(list[0]["status"], "ok");
    assert_eq!(list[0]["meta"]["digest"], sha256(&alpha));
    t.run(&["images", "list"])
        .success()
        .stdout(contains("alpha").and(contains("1.0")).and(contains(" ok")));
    assert_eq!(t.cache_files(), ["alpha.meta.json", "alpha.qcow2"]);
}

#[test]
fn a_cache_the_qemu_user_cannot_reach_is_reported() {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let Some(user) = ["libvirt-qemu", "qemu"]
        .into_iter()
        .find(|u| passwd.lines().any(|l| l.starts_with(&format!("{u}:"))))
    else {
        panic!(
            "no qemu system user (libvirt-qemu or qemu) in /etc/passwd: install libvirt's system \
             daemon (Debian package libvirt-daemon-system; bash .ci/install-deps)"
        );
    };
    let mut t = Images::new();
    let alpha = t.qcow2(1);
    t.add(img("alpha", &alpha));
    // As a home directory often is.
    fs::set_permissions(t.dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    t.run(&["images", "pull", "alpha"])
        .success()
        .stderr(contains(format!(
            "warning: the qemu user {user} cannot enter {} (mode 0700)",
            t.dir.path().display()
        )));
    fs::set_permissions(t.dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
    t.run(&["images", "pull", "--force", "alpha"])
        .success()
        .stderr(contains("warning").not());
    assert_eq!(t.cache_files(), ["alpha.meta.json", "alpha.qcow2"]);
}

#[test]
fn a_cut_download_keeps_its_part_and_resumes_with_a_range_request() {
    let mut t = Images::new();
    let alpha = t.qcow2(4);
    let half = alpha.len() / 2;
    t.add(img("alpha", &alpha));
    t.server.behave("/alpha.qcow2", Behaviour::CutAfter(half));
    t.run(&["images", "pull", "alpha"]).code(1).stderr(
        contains("download of image alpha from")
            .and(contains(t.url("/alpha.qcow2")))
            .and(contains("run `vnode images pull alpha` again to resume")),
    );
    assert_eq!(t.cache_files(), ["alpha.qcow2.part"]);
    assert_eq!(t.cached("alpha.qcow2.part"), alpha[..half]);
    assert_eq!(t.list_json()[0]["status"], "partial");
    t.run(&["images", "list"])
        .success()
        .stdout(contains("partial"));

    t.server.behave("/alpha.qcow2", Behaviour::Normal);
    t.run(&["images", "pull", "alpha"])
        .success()
        .stderr(contains("resuming at"));
    assert_eq!(
        t.ranges("/alpha.qcow2"),
        [None, Some(format!("bytes={half}-"))]
    );
    assert_eq!(t.cache_files(), ["alpha.meta.json", "alpha.qcow2"]);
    assert_eq!(t.cached("alpha.qcow2"), alpha);
}

#[test]
fn a_server_that_ignores_range_gets_a_download_from_zero() {
    let mut t = Images::new();
    let alpha = t.qcow2(2);
    t.add(img("alpha", &alpha));
    t.server
        .behave("/alpha.qcow2", Behaviour::CutAfter(alpha.len() / 3));
    t.run(&["images", "pull", "alpha"]).code(1);
    assert_eq!(t.cache_files(), ["alpha.qcow2.part"]);
    t.server.behave("/alpha.qcow2", Behaviour::IgnoreRange);
    t.run(&["images", "pull", "alpha"])
        .success()
        .stderr(contains("ignored the range request"));
    assert_eq!(t.cache_files(), ["alpha.meta.json", "alpha.qcow2"]);
    assert_eq!(t.cached("alpha.qcow2"), alpha);
}

#[test]
fn a_stale_part_is_rehashed_and_the_download_starts_over() {
    let mut t = Images::new();
    let alpha = t.qcow2(2);
    t.add(img("alpha", &alpha));
    fs::create_dir_all(t.cache()).unwrap();
    // The start of another file: resuming after it cannot give the right digest.
    fs::write(
        t.cache().join("alpha.qcow2.part"),
        vec![0xa5; alpha.len() / 3],
    )
    .unwrap();
    t.run(&["images", "pull", "alpha"])
        .success()
        .stderr(contains("the resumed download does not match"));
    assert_eq!(
        t.ranges("/alpha.qcow2"),
        [Some(format!("bytes={}-", alpha.len() / 3)), None]
    );
    assert_eq!(t.cache_files(), ["alpha.meta.json", "alpha.qcow2"]);
    assert_eq!(t.cached("alpha.qcow2"), alpha);
}

#[test]
fn a_part_that_is_already_whole_needs_no_body() {
    let mut t = Images::new();
    let alpha = t.qcow2(1);
    t.add(img("alpha", &alpha));
    fs::create_dir_all(t.cache()).unwrap();
    fs::write(t.cache().join("alpha.qcow2.part"), &alpha).unwrap();
    t.run(&["images", "pull", "alpha"]).success();
    // One request, answered 416 "bytes */LEN".
    assert_eq!(
        t.ranges("/alpha.qcow2"),
        [Some(format!("bytes={}-", alpha.len()))]
    );
    assert_eq!(t.cache_files(), ["alpha.meta.json", "alpha.qcow2"]);
    assert_eq!(t.cached("alpha.qcow2"), alpha);
}

#[test]
fn a_digest_mismatch_leaves_the_cache_as_it_was() {
    let mut t = Images::new();
    let (alpha, beta) = (t.qcow2(2), t.qcow2(1));
    t.add(img("alpha", &alpha)).add(img("beta", &beta));
    t.run(&["images", "pull", "beta"]).success();
    let before = t.cache_files();
    t.server.behave("/alpha.qcow2", Behaviour::Corrupt);
    t.run(&["images", "pull", "alpha"]).code(1).stderr(
        contains("image alpha from")
            .and(contains(t.url("/alpha.qcow2")))
            .and(contains("does not match its published sha256 digest"))
            .and(contains(sha256(&alpha))),
    );
    assert_eq!(before, ["beta.meta.json", "beta.qcow2"]);
    assert_eq!(t.cache_files(), before);
}

#[test]
fn a_404_names_the_url_and_leaves_nothing() {
    let mut t = Images::new();
    let alpha = t.qcow2(1);
    t.add(img("alpha", &alpha));
    t.server.behave("/alpha.qcow2", Behaviour::NotFound);
    t.run(&["images", "pull", "alpha"])
        .code(1)
        .stderr(contains(format!(
            "{} answered 404 Not Found for image alpha",
            t.url("/alpha.qcow2")
        )));
    assert_eq!(t.cache_files(), Vec::<String>::new());
}

#[test]
fn a_body_that_is_not_qcow2_is_refused() {
    let mut t = Images::new();
    let page = b"<!DOCTYPE html>\n<html><body>Moved to the archive</body></html>\n".repeat(100);
    t.add(img("alpha", &page));
    t.run(&["images", "pull", "alpha"]).code(1).stderr(
        contains("image alpha from")
            .and(contains("is not a qcow2 image"))
            .and(contains("<!DOCTYPE html>")),
    );
    assert_eq!(t.cache_files(), Vec::<String>::new());
}

#[test]
fn a_checksum_file_without_the_image_is_an_error_before_any_download() {
    let mut t = Images::new();
    let alpha = t.qcow2(1);
    t.add(img("alpha", &alpha).unlisted());
    t.run(&["images", "pull", "alpha"]).code(1).stderr(
        contains(format!(
            "the checksum file {} has no sha256 line for alpha.qcow2",
            t.url("/CHECKSUM")
        ))
        .and(contains("other.raw.xz")),
    );
    assert_eq!(t.ranges("/alpha.qcow2"), Vec::<Option<String>>::new());
    assert_eq!(t.cache_files(), Vec::<String>::new());
}

#[test]
fn two_images_are_pulled_in_parallel() {
    let mut t = Images::new();
    let (alpha, beta) = (t.qcow2(2), t.qcow2(1));
    t.add(img("alpha", &alpha)).add(img("beta", &beta));
    t.server
        .behave("/alpha.qcow2", Behaviour::Slow(Duration::from_millis(25)));
    t.server
        .behave("/beta.qcow2", Behaviour::Slow(Duration::from_millis(25)));
    t.run(&["images", "pull", "alpha", "beta"])
        .success()
        .stderr(contains("alpha: downloading").and(contains("beta: downloading")));
    assert_eq!(t.server.max_concurrent(), 2);
    assert_eq!(
        t.cache_files(),
        [
            "alpha.meta.json",
            "alpha.qcow2",
            "beta.meta.json",
            "beta.qcow2"
        ]
    );
    assert_eq!(
        (t.cached("alpha.qcow2"), t.cached("beta.qcow2")),
        (alpha, beta)
    );
}

#[test]
fn sha512sums_and_inline_digests() {
    let mut t = Images::new();
    let (gamma, delta) = (t.qcow2(1), t.qcow2(2));
    t.add(img("gamma", &gamma).sums(DigestSource::Sha512Sums))
        .add(img("delta", &delta).sums(DigestSource::Inline));
    t.run(&["images", "pull", "gamma", "delta", "--json"])
        .success()
        .stderr(contains("sha512 verified"));
    let meta: Value = serde_json::from_slice(&t.cached("gamma.meta.json")).unwrap();
    assert_eq!(
        (meta["algo"].as_str(), meta["digest"].as_str()),
        (Some("sha512"), Some(sha512(&gamma).as_str()))
    );
    assert_eq!(
        t.cache_files(),
        [
            "delta.meta.json",
            "delta.qcow2",
            "gamma.meta.json",
            "gamma.qcow2"
        ]
    );
}

#[test]
fn a_cached_image_is_not_downloaded_again_unless_forced() {
    let mut t = Images::new();
    let alpha = t.qcow2(1);
    t.add(img("alpha", &alpha));
    t.run(&["images", "pull", "alpha"]).success();
    t.run(&["images", "pull", "alpha"])
        .success()
        .stderr(contains("already in the cache"));
    assert_eq!(t.ranges("/alpha.qcow2").len(), 1);
    t.run(&["images", "pull", "--force", "alpha"])
        .success()
        .stderr(contains("sha256 verified"));
    assert_eq!(t.ranges("/alpha.qcow2").len(), 2);
    assert_eq!(t.cache_files(), ["alpha.meta.json", "alpha.qcow2"]);
}

#[test]
fn the_proxy_variables_are_honoured() {
    let mut t = Images::new();
    t.base = "http://images.vnode-test.invalid".into();
    let alpha = t.qcow2(1);
    t.add(img("alpha", &alpha));
    t.vnode(&["images", "pull", "alpha"])
        .env("http_proxy", t.server.url(""))
        .assert()
        .success();
    let targets: Vec<String> = t.server.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(
        targets,
        [
            "http://images.vnode-test.invalid/CHECKSUM",
            "http://images.vnode-test.invalid/alpha.qcow2"
        ]
    );
    assert_eq!(t.cache_files(), ["alpha.meta.json", "alpha.qcow2"]);
}

#[test]
fn an_imported_image_is_usable_in_specs() {
    let t = Images::new();
    let file = t.dir.path().join("carried-in.qcow2");
    fs::write(&file, t.qcow2(1)).unwrap();
    let data = fs::read(&file).unwrap();
    t.run(&[
        "images",
        "import",
        file.to_str().unwrap(),
        "--name",
        "mylab",
        "--osinfo",
        "debian12",
        "--sha256",
        &sha256(&data).to_uppercase(),
    ])
    .success()
    .stdout(contains("imported mylab"));
    assert_eq!(t.cache_files(), ["mylab.meta.json", "mylab.qcow2"]);
    assert_eq!(t.cached("mylab.qcow2"), data);
    let meta: Value = serde_json::from_slice(&t.cached("mylab.meta.json")).unwrap();
    assert_eq!(meta["origin"], "imported");
    assert_eq!(meta["osinfo"], "debian12");
    assert_eq!(meta["source"], file.to_str().unwrap());
    let out = t.run(&["--dry-run", "3:mylab", "--json"]).success();
    let plan: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(plan["nodes"][0]["image"]["name"], "mylab");
    assert_eq!(plan["nodes"][0]["image"]["kind"], "local");
    assert_eq!(t.cache_files(), ["mylab.meta.json", "mylab.qcow2"]);
}

#[test]
fn imports_that_are_refused_leave_nothing() {
    let t = Images::new();
    let good = t.dir.path().join("good.qcow2");
    fs::write(&good, t.qcow2(1)).unwrap();
    let path = good.to_str().unwrap();
    t.run(&[
        "images",
        "import",
        path,
        "--name",
        "x",
        "--sha256",
        &"0".repeat(64),
    ])
    .code(1)
    .stderr(contains("does not match --sha256"));
    t.run(&["images", "import", path, "--name", "x", "--sha256", "abc"])
        .code(2)
        .stderr(contains("is not a sha256 digest"));
    t.run(&["images", "import", path, "--name", "f43"])
        .code(2)
        .stderr(contains("means catalog image fedora-43"));
    t.run(&["images", "import", path, "--name", "Bad/Name"])
        .code(2)
        .stderr(contains("cannot name an image"));
    // osinfo: a short id (virt-install would read ',' and '=' as its own sub-options), and one
    // whose family this host's osinfo-db knows (debian12 on bookworm: a newer debian).
    t.run(&[
        "images",
        "import",
        path,
        "--name",
        "x",
        "--osinfo",
        "debian11,require=off",
    ])
    .code(2)
    .stderr(contains(
        "--osinfo: 'debian11,require=off' is not an osinfo short id",
    ));
    t.run(&[
        "images", "import", path, "--name", "x", "--osinfo", "debain12",
    ])
    .code(2)
    .stderr(contains(
        "knows neither 'debain12' nor any release of its family",
    ))
    .stderr(contains("did you mean debian"));
    let text = t.dir.path().join("notes.txt");
    fs::write(&text, "not an image\n".repeat(20)).unwrap();
    t.run(&["images", "import", text.to_str().unwrap(), "--name", "x"])
        .code(1)
        .stderr(contains("is not a qcow2 image"));
    let overlay = t.dir.path().join("overlay.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "qcow2",
        "-b",
        path,
        overlay.to_str().unwrap(),
    ]);
    t.run(&["images", "import", overlay.to_str().unwrap(), "--name", "x"])
        .code(1)
        .stderr(contains("has a backing file"));
    assert_eq!(t.cache_files(), Vec::<String>::new());
    t.run(&["images", "import", path, "--name", "x"]).success();
    t.run(&["images", "import", path, "--name", "x"])
        .code(2)
        .stderr(contains("already in the cache; pass --force"));
    t.run(&["images", "import", path, "--name", "x", "--force"])
        .success();
    assert_eq!(t.cache_files(), ["x.meta.json", "x.qcow2"]);
}

#[test]
fn verify_detects_a_flipped_byte() {
    let mut t = Images::new();
    let alpha = t.qcow2(1);
    t.add(img("alpha", &alpha));
    t.run(&["images", "pull", "alpha"]).success();
    let file = t.dir.path().join("beta.qcow2");
    fs::write(&file, t.qcow2(1)).unwrap();
    t.run(&["images", "import", file.to_str().unwrap(), "--name", "beta"])
        .success();
    t.run(&["images", "verify"])
        .success()
        .stdout(contains("alpha  ok").and(contains("beta   ok")));

    let path = t.cache().join("alpha.qcow2");
    let mut bytes = fs::read(&path).unwrap();
    bytes[alpha.len() - 100] ^= 0x10;
    fs::write(&path, &bytes).unwrap();
    t.run(&["images", "verify"])
        .code(1)
        .stdout(contains("alpha  MISMATCH").and(contains("beta   ok")))
        .stderr(contains("alpha failed verification"));
    t.run(&["images", "verify", "beta"]).success();
    let out = t.run(&["images", "verify", "alpha", "--json"]).code(1);
    let results: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(results[0]["ok"], false);
    assert_eq!(results[0]["expected"], sha256(&alpha));
    assert_eq!(
        t.cache_files(),
        [
            "alpha.meta.json",
            "alpha.qcow2",
            "beta.meta.json",
            "beta.qcow2"
        ]
    );
}

#[test]
fn rm_removes_images_and_partial_downloads_or_nothing() {
    let mut t = Images::new();
    let (alpha, beta) = (t.qcow2(1), t.qcow2(2));
    t.add(img("alpha", &alpha)).add(img("beta", &beta));
    t.run(&["images", "pull", "alpha"]).success();
    t.server
        .behave("/beta.qcow2", Behaviour::CutAfter(beta.len() / 2));
    t.run(&["images", "pull", "beta"]).code(1);
    assert_eq!(
        t.cache_files(),
        ["alpha.meta.json", "alpha.qcow2", "beta.qcow2.part"]
    );
    t.run(&["images", "rm", "alpha", "nosuch"])
        .code(2)
        .stderr(contains("no image nosuch in the cache"));
    assert_eq!(t.cache_files().len(), 3);
    t.run(&["images", "rm", "alpha", "beta"])
        .success()
        .stdout(contains("removed alpha").and(contains("removed beta")));
    assert_eq!(t.cache_files(), Vec::<String>::new());
}

#[test]
fn pull_refuses_names_that_are_not_catalog_images() {
    let t = Images::new();
    t.run(&["images", "pull", "nosuchdistro"])
        .code(2)
        .stderr(contains("unknown distro 'nosuchdistro'"));
    t.run(&["images", "pull", "f43-k8s"])
        .code(2)
        .stderr(contains("vnode images derive fedora-43 k8s"));
    assert_eq!(t.cache_files(), Vec::<String>::new());
}

/// Pulls `alpha` (clear-signed CHECKSUM) after `tamper` changed what the server hands out, and
/// checks the refusal: exit 1, the message, no request for the image, the cache as before.
fn refused_pull(t: &Images, name: &str, message: &str) {
    let before = t.cache_files();
    t.run(&["images", "pull", name])
        .code(1)
        .stderr(contains(message).and(contains(format!("image {name}"))));
    assert_eq!(
        t.ranges(&format!("/{name}.qcow2")),
        Vec::<Option<String>>::new()
    );
    assert_eq!(t.cache_files(), before);
}

#[test]
fn signed_checksums_clear_and_detached_are_verified_and_recorded() {
    let mut t = Images::new();
    let (alpha, beta) = (t.qcow2(1), t.qcow2(2));
    t.add(img("alpha", &alpha))
        .add(img("beta", &beta).sums(DigestSource::Sha256Sums));
    t.run(&["images", "pull", "alpha", "beta"])
        .success()
        .stderr(contains(format!("signature by {} verified", t.key.fingerprint())).count(2));
    assert_eq!(
        t.cache_files(),
        [
            "alpha.meta.json",
            "alpha.qcow2",
            "beta.meta.json",
            "beta.qcow2"
        ]
    );
    let meta: Value = serde_json::from_slice(&t.cached("beta.meta.json")).unwrap();
    assert_eq!(meta["trust"]["kind"], "signed");
    assert_eq!(meta["trust"]["signer"], t.key.fingerprint());
    assert_eq!(meta["trust"]["checksums"], t.url("/SHA256SUMS"));
    t.run(&["images", "list"])
        .success()
        .stdout(contains("SIGNATURE").and(contains("signed ")));
    t.run(&["images", "list", "--available"]).success().stdout(
        contains("clear-signed: fedora-43")
            .and(contains("detached: ubuntu-cloud-uec,ubuntu-cloud-builder"))
            .and(contains("detached: debian-cd-2011,debian-cd-2009")),
    );
}

#[test]
fn forged_or_unsigned_checksums_are_refused_and_leave_the_cache_as_it_was() {
    let mut t = Images::new();
    let (alpha, beta, gamma) = (t.qcow2(1), t.qcow2(2), t.qcow2(1));
    t.add(img("alpha", &alpha))
        .add(img("beta", &beta).sums(DigestSource::Sha256Sums))
        .add(img("gamma", &gamma));
    t.run(&["images", "pull", "gamma"]).success();
    assert_eq!(t.cache_files(), ["gamma.meta.json", "gamma.qcow2"]);
    let sums: String = [("alpha", &alpha), ("beta", &beta), ("gamma", &gamma)]
        .iter()
        .map(|(n, b)| format!("{} *{n}.qcow2\n", sha256(b)))
        .collect();
    let forged = t.qcow2(3);

    // The CHECKSUM altered after signing: a forged digest for alpha in the signed text.
    let checksum = t
        .key
        .clear_sign(&format!("SHA256 (alpha.qcow2) = {}\n", sha256(&alpha)));
    let altered = checksum.replace(&sha256(&alpha), &sha256(&forged));
    assert_ne!(altered, checksum);
    t.server.serve("/CHECKSUM", altered.into_bytes());
    refused_pull(&t, "alpha", "was changed after it was signed");

    // Signed by another key.
    let other = TestKey::generate("mallory <m@example.invalid>");
    let text = format!("SHA256 (alpha.qcow2) = {}\n", sha256(&forged));
    t.server
        .serve("/CHECKSUM", other.clear_sign(&text).into_bytes());
    refused_pull(
        &t,
        "alpha",
        &format!(
            "is signed by key {}, not by the key pinned",
            other.fingerprint()
        ),
    );

    // Not signed at all.
    t.server.serve("/CHECKSUM", text.clone().into_bytes());
    refused_pull(&t, "alpha", "is not signed");

    // The detached signature missing.
    t.server.behave("/SHA256SUMS.gpg", Behaviour::NotFound);
    refused_pull(&t, "beta", "SHA256SUMS.gpg of the checksum file");
    refused_pull(&t, "beta", "is missing: it answered 404");

    // A good signature by the pinned key, but of another file.
    t.server.behave("/SHA256SUMS.gpg", Behaviour::Normal);
    t.server
        .serve("/SHA256SUMS.gpg", t.key.detached(b"some other file\n"));
    refused_pull(&t, "beta", "is not a signature of the checksum file");

    // Signature and checksum file in order, the image altered on the way.
    t.server
        .serve("/SHA256SUMS.gpg", t.key.detached(sums.as_bytes()));
    t.server.behave("/beta.qcow2", Behaviour::Corrupt);
    let before = t.cache_files();
    t.run(&["images", "pull", "beta"]).code(1).stderr(
        contains("image beta from").and(contains("does not match its published sha256 digest")),
    );
    assert_eq!(t.cache_files(), before);
    assert_eq!(before, ["gamma.meta.json", "gamma.qcow2"]);
}

#[test]
fn an_entry_without_a_key_needs_no_signature_and_is_recorded_unsigned() {
    let mut t = Images::new();
    let alpha = t.qcow2(1);
    t.add(img("alpha", &alpha).unpinned());
    refused_pull(&t, "alpha", "no signing key is pinned");
    t.run(&["images", "list", "--available"])
        .success()
        .stdout(contains("NO KEY"));
    t.run(&["images", "pull", "alpha", "--no-signature"])
        .success()
        .stderr(
            contains("--no-signature: the checksum files' OpenPGP signatures are not checked")
                .and(contains("NO signature checked: --no-signature")),
        );
    let meta: Value = serde_json::from_slice(&t.cached("alpha.meta.json")).unwrap();
    assert_eq!(meta["trust"]["kind"], "unsigned");
    assert_eq!(meta["trust"]["reason"], "--no-signature");
    t.run(&["images", "list"])
        .success()
        .stdout(contains("UNSIGNED (--no-signature)"));
}

#[test]
fn import_with_signed_checksums_verifies_like_a_pull() {
    let t = Images::new();
    let body = t.qcow2(1);
    let dir = t.dir.path();
    let image = dir.join("carried.qcow2");
    fs::write(&image, &body).unwrap();
    let sums = format!("{}  carried.qcow2\n", sha512(&body));
    fs::write(dir.join("SHA512SUMS"), &sums).unwrap();
    fs::write(dir.join("SHA512SUMS.sign"), t.key.detached(sums.as_bytes())).unwrap();
    fs::write(
        dir.join("CHECKSUM"),
        t.key
            .clear_sign(&format!("SHA256 (carried.qcow2) = {}\n", sha256(&body))),
    )
    .unwrap();
    let key = dir.join("test-key.asc");
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let import = |extra: &[&str]| {
        let mut args = vec![
            "images",
            "import",
            image.to_str().unwrap(),
            "--name",
            "carried",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--signing-key", key.to_str().unwrap()]);
        t.run(&args)
    };
    // The signature of another file, then one by another key: refused, nothing imported.
    let wrong = dir.join("wrong.sign");
    fs::write(&wrong, t.key.detached(b"other\n")).unwrap();
    import(&[
        "--checksums",
        &p("SHA512SUMS"),
        "--signature",
        wrong.to_str().unwrap(),
    ])
    .code(1)
    .stderr(contains("is not a signature of the checksum file"));
    let other = TestKey::generate("mallory <m@example.invalid>");
    fs::write(&wrong, other.detached(sums.as_bytes())).unwrap();
    import(&[
        "--checksums",
        &p("SHA512SUMS"),
        "--signature",
        wrong.to_str().unwrap(),
    ])
    .code(1)
    .stderr(contains("not by the key pinned"));
    import(&["--checksums", &p("SHA512SUMS")])
        .code(1)
        .stderr(contains("is not signed"));
    assert_eq!(t.cache_files(), Vec::<String>::new());
    // Detached, then clear-signed.
    import(&[
        "--checksums",
        &p("SHA512SUMS"),
        "--signature",
        &p("SHA512SUMS.sign"),
    ])
    .success()
    .stdout(contains("sha512").and(contains("signed ")));
    let meta: Value = serde_json::from_slice(&t.cached("carried.meta.json")).unwrap();
    assert_eq!(meta["algo"], "sha512");
    assert_eq!(meta["trust"]["signer"], t.key.fingerprint());
    import(&["--checksums", &p("CHECKSUM"), "--force"]).success();
    assert_eq!(t.cache_files(), ["carried.meta.json", "carried.qcow2"]);
}

#[test]
fn an_image_larger_than_max_image_mib_is_refused_up_front_and_leaves_nothing() {
    let mut t = Images::new();
    let big = t.qcow2(3);
    assert!(big.len() > 2 << 20);
    t.add(img("big", &big)).configure("max_image_mib = 2\n");
    t.run(&["images", "pull", "big"]).code(1).stderr(
        contains("image big")
            .and(contains("larger than max_image_mib (2 MiB)"))
            .and(contains("set max_image_mib")),
    );
    assert_eq!(t.cache_files(), Vec::<String>::new());
}

#[test]
fn a_body_without_a_length_is_cut_at_max_image_mib_and_removed() {
    let mut t = Images::new();
    let big = t.qcow2(3);
    t.add(img("big", &big)).configure("max_image_mib = 2\n");
    t.server.behave("/big.qcow2", Behaviour::NoLength);
    t.run(&["images", "pull", "big"]).code(1).stderr(
        contains("image big")
            .and(contains("larger than max_image_mib (2 MiB)"))
            .and(contains("the partial file was removed")),
    );
    assert_eq!(t.cache_files(), Vec::<String>::new());
    // Within the cap, a body without a length is fine.
    t.configure("max_image_mib = 4\n");
    t.run(&["images", "pull", "big"]).success();
    assert_eq!(t.cached("big.qcow2"), big);
}

#[test]
fn a_redirect_from_http_to_http_is_followed() {
    let mut t = Images::new();
    let alpha = t.qcow2(1);
    t.add(img("alpha", &alpha));
    t.server.serve("/mirror/alpha.qcow2", alpha.clone());
    t.server
        .redirect("/alpha.qcow2", &t.server.url("/mirror/alpha.qcow2"));
    t.run(&["images", "pull", "alpha"]).success();
    assert_eq!(t.cached("alpha.qcow2"), alpha);
    let paths: Vec<String> = t.server.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.contains(&"/mirror/alpha.qcow2".to_string()),
        "{paths:?}"
    );
}

#[test]
fn signatures_by_an_expired_subkey_or_without_a_creation_time_are_refused() {
    let t = Images::new();
    let body = t.qcow2(1);
    let dir = t.dir.path();
    let image = dir.join("carried.qcow2");
    fs::write(&image, &body).unwrap();
    let sums = format!("{}  carried.qcow2\n", sha512(&body));
    fs::write(dir.join("SHA512SUMS"), &sums).unwrap();
    let import = |key: &TestKey, signature: Vec<u8>| {
        let key_file = dir.join("signer.asc");
        fs::write(&key_file, key.public_armored()).unwrap();
        let sig = dir.join("SHA512SUMS.sign");
        fs::write(&sig, signature).unwrap();
        let p = |p: &Path| p.to_str().unwrap().to_string();
        t.run(&[
            "images",
            "import",
            &p(&image),
            "--name",
            "carried",
            "--checksums",
            &p(&dir.join("SHA512SUMS")),
            "--signature",
            &p(&sig),
            "--signing-key",
            &p(&key_file),
        ])
    };
    let expired = TestKey::with_signing_subkey("old <old@vnode.invalid>", true);
    import(&expired, expired.detached_by_subkey(sums.as_bytes()))
        .code(1)
        .stderr(
            contains("subkey")
                .and(contains(expired.fingerprint()))
                .and(contains("had expired when it made the signature")),
        );
    let undated = TestKey::generate("undated <u@vnode.invalid>");
    import(
        &undated,
        undated.detached_without_creation_time(sums.as_bytes()),
    )
    .code(1)
    .stderr(contains("states no creation time"));
    assert_eq!(t.cache_files(), Vec::<String>::new());
    // The same subkey without the expiry, and a dated signature: accepted.
    let current = TestKey::with_signing_subkey("new <new@vnode.invalid>", false);
    import(&current, current.detached_by_subkey(sums.as_bytes())).success();
    assert_eq!(t.cache_files(), ["carried.meta.json", "carried.qcow2"]);
}
