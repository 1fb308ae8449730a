//! The cloud-init releases tests judge vnode's seeds with: Debian 12's 22.4 (the host's package,
//! see .ci/install-deps), Debian 13's 25.1 and sid's 26.2 or later, which
//! `tests/cloud-init-releases/fetch.sh` downloads from Debian's archive and unpacks into a cache
//! (nothing is installed). Each is run as `python3` with its package on PYTHONPATH.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the host's cloud-init package (Debian 12's 22.4) keeps its Python package.
pub const HOST_PACKAGE: &str = "/usr/lib/python3/dist-packages";

/// One cloud-init release: its version and where its Python package is.
pub struct CloudInit {
    /// Upstream version, e.g. `25.1.4` (the Debian revision cut off).
    pub version: String,
    /// None: the host's package, in [`HOST_PACKAGE`].
    pub pythonpath: Option<PathBuf>,
}

impl CloudInit {
    /// `(major, minor)`, for "before 26.2" decisions.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        major_minor(&self.version) >= (major, minor)
    }

    pub fn python(&self) -> Command {
        let mut cmd = Command::new("/usr/bin/python3");
        match &self.pythonpath {
            Some(p) => cmd.env("PYTHONPATH", p),
            None => cmd.env_remove("PYTHONPATH"),
        };
        cmd
    }

    pub fn package_root(&self) -> PathBuf {
        self.pythonpath
            .clone()
            .unwrap_or_else(|| PathBuf::from(HOST_PACKAGE))
    }

    /// Where the `cloudinit` package comes from and the version it reports, so the test knows it
    /// runs the release it names.
    pub fn check_origin(&self) {
        let out = self
            .python()
            .args([
                "-c",
                "import cloudinit, cloudinit.version as v; print(cloudinit.__file__); print(v.version_string())",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cloud-init {}: {}",
            self.version,
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (file, version) = text.trim().split_once('\n').unwrap();
        assert!(
            Path::new(file).starts_with(self.package_root()),
            "cloud-init {} imported from {file}",
            self.version
        );
        assert!(
            version.starts_with(&self.version),
            "cloud-init {} reports {version}",
            self.version
        );
    }

    /// `net-convert` of `config` for `renderer` as on `distro`; returns the output directory.
    pub fn convert(&self, config: &Path, distro: &str, renderer: &str, out: &Path) -> PathBuf {
        let dir = out.join(format!("{}-{renderer}", self.version));
        let result = self
            .python()
            .args([
                "-m",
                "cloudinit.cmd.main",
                "devel",
                "net-convert",
                "-k",
                "yaml",
            ])
            .args(["-D", distro, "-O", renderer, "-p"])
            .arg(config)
            .arg("-d")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "cloud-init {} net-convert -O {renderer}: {}",
            self.version,
            String::from_utf8_lossy(&result.stderr)
        );
        dir
    }
}

/// `25.1.4-1+deb13u1` → (25, 1).
pub fn major_minor(version: &str) -> (u32, u32) {
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let mut next = || {
        parts
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("not a cloud-init version: {version}"))
    };
    (next(), next())
}

/// The releases under test: the host's, then those fetch.sh unpacks (fetched on first use).
pub fn releases() -> Vec<CloudInit> {
    assert!(
        Path::new(HOST_PACKAGE).join("cloudinit").is_dir(),
        "cloud-init 22.4 is the Debian package `cloud-init` (see .ci/install-deps); it also \
         brings the Python modules the other releases need"
    );
    let fetch = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cloud-init-releases/fetch.sh");
    let out = Command::new(&fetch).output().unwrap();
    assert!(
        out.status.success(),
        "{} failed: the renderer matrix needs cloud-init from Debian's archive:\n{}",
        fetch.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut releases = vec![CloudInit {
        version: "22.4".into(),
        pythonpath: None,
    }];
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let [suite, debian_version, pythonpath] = fields[..] else {
            panic!("fetch.sh printed {line:?}, not SUITE VERSION PYTHONPATH");
        };
        let upstream = debian_version.split('-').next().unwrap();
        let release = CloudInit {
            version: upstream.to_string(),
            pythonpath: Some(PathBuf::from(pythonpath)),
        };
        match suite {
            // The matrix spans 26.2's NetworkManager route-metric fix.
            "trixie" => assert!(!release.at_least(26, 2), "trixie has {upstream}"),
            "sid" => assert!(release.at_least(26, 2), "sid has {upstream}, before 26.2"),
            other => panic!("fetch.sh named an unknown suite {other}"),
        }
        releases.push(release);
    }
    assert_eq!(releases.len(), 3, "the host's release, trixie's and sid's");
    for ci in &releases {
        ci.check_origin();
    }
    releases
}
