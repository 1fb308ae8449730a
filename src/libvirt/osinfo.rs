//! Which `--osinfo` ids the host's virt-install accepts, and a fallback when it lacks one.
//!
//! virt-install 4.x refuses to run without `--osinfo`, and a host's osinfo-db may not know a new
//! release (Debian bookworm's lacks `debian12`). vnode asks `virt-install --osinfo list` once,
//! caches the answer in the state directory (keyed by the modification times of virt-install and
//! of the osinfo-db directories, so a package upgrade invalidates it), and falls back to the newest
//! release of the same family it knows (`debian12` → `debian11`), else to a generic Linux id —
//! and says so.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use serde::Serialize;

use crate::text::osinfo_id::{BadOsinfoId, check_osinfo_id};

/// The osinfo ids (and their aliases) one host knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OsinfoDb {
    ids: BTreeSet<String>,
}

/// The id vnode passes to virt-install for an image, and why it differs from the catalog's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OsinfoChoice {
    /// What the catalog (or the image's metadata) asked for.
    pub requested: String,
    /// What virt-install gets.
    pub id: String,
    /// Set when `id` is not `requested`, or when the host could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// File name of the cache in the state directory.
pub const CACHE_FILE: &str = ".osinfo-ids";

impl OsinfoDb {
    /// Parses `virt-install --osinfo list`: one OS per line, aliases separated by ", ".
    pub fn parse_list(text: &str) -> OsinfoDb {
        let ids = text
            .lines()
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|id| !id.is_empty() && !id.contains(' '))
            .map(str::to_string)
            .collect();
        OsinfoDb { ids }
    }

    pub fn knows(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// `wanted` if known; else the newest known release of its family not newer than it; else the
    /// newest generic `linuxYYYY` id; else `generic`. An id that is not an osinfo short id
    /// (see [`check_osinfo_id`]) gets the generic one: it never reaches virt-install.
    pub fn choose(&self, wanted: &str) -> OsinfoChoice {
        let mut choice = OsinfoChoice {
            requested: wanted.to_string(),
            id: wanted.to_string(),
            note: None,
        };
        let malformed = check_osinfo_id(wanted).err();
        if malformed.is_none() && self.knows(wanted) {
            return choice;
        }
        let family = split_version(wanted).0;
        let (id, why) = match self.same_family(wanted).filter(|_| malformed.is_none()) {
            Some(id) => (id.clone(), format!("the newest {family} release it knows")),
            None => self.generic(),
        };
        choice.note = Some(match malformed {
            Some(e) => format!("{e}; using '{id}' ({why}) for virt-install --osinfo"),
            None => format!(
                "the host's osinfo-db does not know '{wanted}'; using '{id}' ({why}) for \
                 virt-install --osinfo"
            ),
        });
        choice.id = id;
        choice
    }

    /// Whether the host knows `id` or an older release of its family (which [`OsinfoDb::choose`]
    /// falls back to): false for a misspelt family, which would only get a generic id.
    pub fn knows_family(&self, id: &str) -> bool {
        self.knows(id) || self.same_family(id).is_some()
    }

    /// The newest known release of `wanted`'s family not newer than it.
    fn same_family(&self, wanted: &str) -> Option<&String> {
        let (family, version) = split_version(wanted);
        self.ids
            .iter()
            .filter_map(|id| match split_version(id) {
                (f, Some(v)) if f == family && version.as_ref().is_none_or(|w| v <= *w) => {
                    Some((v, id))
                }
                _ => None,
            })
            .max()
            .map(|(_, id)| id)
    }

    /// The newest generic `linuxYYYY` id, else `generic`; and how to say which.
    fn generic(&self) -> (String, String) {
        let linux = self
            .ids
            .iter()
            .filter(|id| {
                id.strip_prefix("linux")
                    .is_some_and(|y| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()))
            })
            .max();
        match linux {
            Some(id) => (id.clone(), "a generic Linux id".to_string()),
            None => ("generic".to_string(), "the generic id".to_string()),
        }
    }

    /// The host's ids, from the cache in `state_dir` or from `virt-install --osinfo list`.
    /// Asked at most once per process and state directory.
    pub fn host(state_dir: &Path) -> Result<Arc<OsinfoDb>, OsinfoError> {
        static SEEN: Mutex<Vec<(PathBuf, Arc<OsinfoDb>)>> = Mutex::new(Vec::new());
        let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, db)) = seen.iter().find(|(d, _)| d == state_dir) {
            return Ok(db.clone());
        }
        let db = Arc::new(load_or_ask(state_dir)?);
        seen.push((state_dir.to_path_buf(), db.clone()));
        Ok(db)
    }
}

/// Chooses the id for `wanted` on this host; if the host cannot be asked, passes `wanted` as is
/// when it is an osinfo short id, else `generic`.
pub fn choose_on_host(state_dir: &Path, wanted: &str) -> OsinfoChoice {
    match OsinfoDb::host(state_dir) {
        Ok(db) => db.choose(wanted),
        Err(e) if check_osinfo_id(wanted).is_err() => OsinfoChoice {
            requested: wanted.to_string(),
            id: "generic".to_string(),
            note: Some(format!(
                "{}; using 'generic' (the host's osinfo-db could not be read: {e})",
                BadOsinfoId(wanted.to_string())
            )),
        },
        Err(e) => OsinfoChoice {
            requested: wanted.to_string(),
            id: wanted.to_string(),
            note: Some(format!(
                "could not check '{wanted}' against the host's osinfo-db ({e}); passing it as is"
            )),
        },
    }
}

/// Why an id given for an image (`images import --osinfo`) is refused.
#[derive(Debug, thiserror::Error)]
pub enum OsinfoIdError {
    #[error("--osinfo: {0}")]
    Malformed(#[from] BadOsinfoId),
    #[error(
        "--osinfo: this host's osinfo-db knows neither '{id}' nor any release of its family{}; \
         `virt-install --osinfo list` shows the ids it knows",
        match .suggestions.is_empty() {
            true => String::new(),
            false => format!(" (did you mean {}?)", .suggestions.join(", ")),
        }
    )]
    Unknown {
        id: String,
        suggestions: Vec<String>,
    },
}

/// Checks an id given for an image: a short id always; and when this host's ids can be read,
/// one it knows, or a newer release of a family it knows (spawn then falls back to that
/// family's newest, and says so). A host whose list cannot be read gets the short-id check only.
pub fn check_requested(state_dir: &Path, id: &str) -> Result<(), OsinfoIdError> {
    check_osinfo_id(id)?;
    let Ok(db) = OsinfoDb::host(state_dir) else {
        return Ok(());
    };
    if db.knows_family(id) {
        return Ok(());
    }
    let mut scored: Vec<(f64, &String)> = db
        .ids
        .iter()
        .map(|known| (strsim::jaro_winkler(id, known), known))
        .filter(|(score, _)| *score > 0.8)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    Err(OsinfoIdError::Unknown {
        id: id.to_string(),
        suggestions: scored.into_iter().take(3).map(|(_, k)| k.clone()).collect(),
    })
}

/// `debian12` → ("debian", [12]); `ubuntu24.04` → ("ubuntu", [24, 4]); `centos-stream9` →
/// ("centos-stream", [9]); ids without a numeric version → (id, None).
fn split_version(id: &str) -> (&str, Option<Vec<u32>>) {
    let Some(at) = id.find(|c: char| c.is_ascii_digit()) else {
        return (id, None);
    };
    let (family, rest) = id.split_at(at);
    let version: Option<Vec<u32>> = rest.split('.').map(|p| p.parse().ok()).collect();
    (family, version)
}

fn load_or_ask(state_dir: &Path) -> Result<OsinfoDb, OsinfoError> {
    let cache = state_dir.join(CACHE_FILE);
    let stamp = stamp();
    if let Ok(text) = std::fs::read_to_string(&cache)
        && let Some(list) = text.strip_prefix(&stamp).and_then(|t| t.strip_prefix('\n'))
    {
        return Ok(OsinfoDb::parse_list(list));
    }
    let list = ask_virt_install(state_dir)?;
    // A cache that cannot be written only costs the next run half a second. Written beside and
    // renamed, so a concurrent reader never sees half of it.
    let _ = std::fs::create_dir_all(state_dir)
        .and_then(|()| crate::files::write_atomic(&cache, format!("{stamp}\n{list}"), 0o644));
    Ok(OsinfoDb::parse_list(&list))
}

/// Why the host's osinfo ids could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum OsinfoError {
    #[error("cannot run virt-install: {0}")]
    CannotRun(#[source] std::io::Error),
    #[error("virt-install --osinfo list failed: {stderr}")]
    ListFailed { stderr: String },
    #[error("virt-install printed non-UTF-8 ids")]
    NotUtf8(#[source] std::string::FromUtf8Error),
}

fn ask_virt_install(state_dir: &Path) -> Result<String, OsinfoError> {
    let out = Command::new("virt-install")
        .args(["--osinfo", "list"])
        // virt-install logs every run under $XDG_CACHE_HOME; this query's log is of no use.
        .env("XDG_CACHE_HOME", state_dir.join(".virt-install"))
        .output()
        .map_err(OsinfoError::CannotRun)?;
    if !out.status.success() {
        return Err(OsinfoError::ListFailed {
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    String::from_utf8(out.stdout).map_err(OsinfoError::NotUtf8)
}

/// Changes when virt-install or the osinfo-db is upgraded or extended.
fn stamp() -> String {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut paths: Vec<PathBuf> = vec![
        crate::process::exec::which("virt-install").unwrap_or_else(|| "virt-install".into()),
        std::env::var_os("OSINFO_SYSTEM_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/usr/share/osinfo".into()),
        std::env::var_os("OSINFO_LOCAL_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/etc/osinfo".into()),
    ];
    if let Some(dir) = std::env::var_os("OSINFO_USER_DIR").map(PathBuf::from) {
        paths.push(dir);
    } else if let Some(h) = home {
        paths.push(h.join(".config/osinfo"));
    }
    let extra: Vec<PathBuf> = paths[1..]
        .iter()
        .flat_map(|d| [d.join("VERSION"), d.join("os")])
        .collect();
    paths.extend(extra);
    let parts: Vec<String> = paths
        .iter()
        .map(|p| {
            let t = std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or("-".to_string(), |d| d.as_nanos().to_string());
            format!("{}={t}", p.display())
        })
        .collect();
    format!("vnode osinfo cache v1 {}", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOKWORM: &str = "debian11, debianbullseye\ndebian10, debianbuster\ndebian1.3, debianbo\n\
        debiantesting\nfedora37\nfedora36\nfedora-rawhide, fedora-unknown\nubuntu22.10, ubuntukinetic\n\
        ubuntu22.04, ubuntujammy\nlinux2020\nlinux2022\ngeneric\ncentos-stream9\nwin2k22\n";

    #[test]
    fn known_ids_and_aliases_pass_unchanged() {
        let db = OsinfoDb::parse_list(BOOKWORM);
        for id in [
            "debian11",
            "debianbullseye",
            "fedora-rawhide",
            "ubuntu22.04",
        ] {
            assert_eq!(db.choose(id).id, id);
            assert_eq!(db.choose(id).note, None);
        }
    }

    #[test]
    fn unknown_releases_fall_back_to_their_family_then_to_generic_linux() {
        let db = OsinfoDb::parse_list(BOOKWORM);
        let c = db.choose("debian12");
        assert_eq!(c.id, "debian11");
        assert!(
            c.note
                .as_deref()
                .unwrap()
                .contains("does not know 'debian12'"),
            "{c:?}"
        );
        assert_eq!(db.choose("debian13").id, "debian11");
        assert_eq!(db.choose("fedora43").id, "fedora37");
        assert_eq!(db.choose("ubuntu24.04").id, "ubuntu22.10");
        assert_eq!(db.choose("ubuntu22.05").id, "ubuntu22.04");
        assert_eq!(db.choose("centos-stream10").id, "centos-stream9");
        assert_eq!(db.choose("almalinux9").id, "linux2022");
        assert_eq!(db.choose("fedora-next").id, "linux2022");
        assert_eq!(OsinfoDb::parse_list("generic\n").choose("x1").id, "generic");
    }

    #[test]
    fn this_hosts_virt_install_is_asked_once_and_cached() {
        let dir = tempfile::tempdir().unwrap();
        let db = load_or_ask(dir.path()).expect("virt-install (virtinst) is needed for this test");
        assert!(db.knows("generic") && db.knows("debian11"), "{db:?}");
        let cached = std::fs::read_to_string(dir.path().join(CACHE_FILE)).unwrap();
        assert!(cached.starts_with(&stamp()));
        // The cache is what is read the second time.
        let fake = format!("{}\nonlyme\n", stamp());
        std::fs::write(dir.path().join(CACHE_FILE), fake).unwrap();
        assert!(load_or_ask(dir.path()).unwrap().knows("onlyme"));
        // A stale stamp is ignored.
        std::fs::write(dir.path().join(CACHE_FILE), "old stamp\nonlyme\n").unwrap();
        assert!(!load_or_ask(dir.path()).unwrap().knows("onlyme"));
    }

    /// An id from an old cache entry or a hand-edited metadata file never reaches virt-install
    /// unless it is a short id, whether or not the host could be asked.
    #[test]
    fn an_id_that_is_not_a_short_id_never_reaches_virt_install() {
        let db = OsinfoDb::parse_list(BOOKWORM);
        for bad in ["debian11,require=off", "detect=on", "linux2022,name=x"] {
            let c = db.choose(bad);
            assert_eq!(c.id, "linux2022", "{c:?}");
            assert!(c.note.unwrap().contains("not an osinfo short id"));
        }
        let dir = tempfile::tempdir().unwrap();
        let c = choose_on_host(&dir.path().join("missing/\0"), "debian11,require=off");
        crate::text::osinfo_id::check_osinfo_id(&c.id).unwrap();
    }

    #[test]
    fn a_family_the_host_knows_nothing_of_is_told_apart_from_a_newer_release() {
        let db = OsinfoDb::parse_list(BOOKWORM);
        assert!(db.knows_family("debian12") && db.knows_family("debian11"));
        assert!(!db.knows_family("debain12") && !db.knows_family("almalinux9"));
    }
}
