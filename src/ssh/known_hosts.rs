//! The user's known_hosts, read the way OpenSSH reads it, to vouch for a libvirt host's key:
//! host patterns with `*`, `?` and `!`, comma lists, `[host]:port`, hashed `|1|salt|hash`
//! entries, `@revoked` keys. `@cert-authority` lines are skipped (vnode does not ask hosts for
//! certificates). This is not vnode's known_hosts for its nodes (`node::known_hosts`), whose keys
//! vnode generated itself.
//!
//! A line that cannot be read is skipped, as ssh skips it: a damaged line must not make every
//! host unknown, and it can never vouch for a key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_encoding::base64::{Base64, Encoding};
use russh::keys::{Algorithm, PublicKey};
use sha1::Sha1;

/// Every usable line of some known_hosts files.
#[derive(Debug, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    file: Arc<Path>,
    line: usize,
    revoked: bool,
    patterns: String,
    key: PublicKey,
}

/// Why known_hosts does not vouch for the key a host presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distrust {
    /// No entry for the host has this key; `other_types` lists the key types it has entries for.
    Unknown { other_types: Vec<String> },
    /// An entry for the host holds another key of the same type.
    Changed { file: PathBuf, line: usize },
    /// The key is on a `@revoked` line.
    Revoked { file: PathBuf, line: usize },
}

impl KnownHosts {
    /// Reads `files`; one that does not exist holds nothing.
    pub fn load(files: &[PathBuf]) -> Result<KnownHosts, (PathBuf, std::io::Error)> {
        let mut known = KnownHosts::default();
        for file in files {
            match std::fs::read(file) {
                Ok(bytes) => known.add(file, &String::from_utf8_lossy(&bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err((file.clone(), e)),
            }
        }
        Ok(known)
    }

    /// The entries of `text`, read from `file`.
    pub fn parse(file: &Path, text: &str) -> KnownHosts {
        let mut known = KnownHosts::default();
        known.add(file, text);
        known
    }

    fn add(&mut self, file: &Path, text: &str) {
        let file: Arc<Path> = Arc::from(file);
        let entries = text.lines().enumerate();
        self.entries
            .extend(entries.filter_map(|(i, line)| parse_line(line, &file, i + 1)));
    }

    /// Judges `key`, presented by the host known as `name` (see
    /// [`super::JumpHost::known_hosts_name`]). As in ssh, a recorded key that matches wins over
    /// another recorded key of the same type; unlike ssh, a revoked key is refused whichever host
    /// its line names.
    pub fn verify(&self, name: &str, key: &PublicKey) -> Result<(), Distrust> {
        let name = name.to_ascii_lowercase();
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| e.revoked && e.key.key_data() == key.key_data())
        {
            return Err(Distrust::Revoked {
                file: e.file.to_path_buf(),
                line: e.line,
            });
        }
        let for_host: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| !e.revoked && host_matches(&e.patterns, &name))
            .collect();
        if for_host.iter().any(|e| e.key.key_data() == key.key_data()) {
            return Ok(());
        }
        if let Some(e) = for_host
            .iter()
            .find(|e| e.key.algorithm() == key.algorithm())
        {
            return Err(Distrust::Changed {
                file: e.file.to_path_buf(),
                line: e.line,
            });
        }
        let mut other_types: Vec<String> = Vec::new();
        for e in &for_host {
            let name = e.key.algorithm().as_str().to_string();
            if !other_types.contains(&name) {
                other_types.push(name);
            }
        }
        Err(Distrust::Unknown { other_types })
    }

    /// The key types recorded for `name`, so that the client asks for one of those first (as ssh
    /// orders its host key algorithms by what known_hosts has).
    pub fn key_types(&self, name: &str) -> Vec<Algorithm> {
        let name = name.to_ascii_lowercase();
        let mut types: Vec<Algorithm> = Vec::new();
        for e in self
            .entries
            .iter()
            .filter(|e| !e.revoked && host_matches(&e.patterns, &name))
        {
            if !types.contains(&e.key.algorithm()) {
                types.push(e.key.algorithm());
            }
        }
        types
    }
}

/// `[@marker] patterns keytype base64 [comment]`, line `line` of `file`; `None` for comments,
/// blank lines, `@cert-authority`, unknown markers and anything unreadable.
fn parse_line(text: &str, file: &Arc<Path>, line: usize) -> Option<Entry> {
    let mut fields = text.split([' ', '\t']).filter(|f| !f.is_empty());
    let mut first = fields.next()?;
    if first.starts_with('#') {
        return None;
    }
    let revoked = match first {
        "@revoked" => true,
        m if m.starts_with('@') => return None,
        _ => false,
    };
    if revoked {
        first = fields.next()?;
    }
    let (key_type, blob) = (fields.next()?, fields.next()?);
    let key = PublicKey::from_openssh(&format!("{key_type} {blob}")).ok()?;
    Some(Entry {
        file: file.clone(),
        line,
        revoked,
        patterns: first.to_string(),
        key,
    })
}

/// Whether the comma list `patterns` names `name` (already lowercase): some element matches and
/// no negated (`!`) element does.
fn host_matches(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if element_matches(negated, name) {
                return false;
            }
        } else if element_matches(pattern, name) {
            matched = true;
        }
    }
    matched
}

fn element_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("|1|") {
        Some(hashed) => hashed_matches(hashed, name),
        None => wildcard(&pattern.to_ascii_lowercase(), name),
    }
}

/// `salt|hash`, both base64: HMAC-SHA1 of the name keyed with the salt.
fn hashed_matches(hashed: &str, name: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (Base64::decode_vec(salt), Base64::decode_vec(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// A hashed known_hosts host field for `name`, as `ssh-keygen -H` writes it.
pub fn hash_name(name: &str, salt: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha1>::new_from_slice(salt).expect("HMAC accepts any key length");
    mac.update(name.as_bytes());
    let hash = mac.finalize().into_bytes();
    format!(
        "|1|{}|{}",
        Base64::encode_string(salt),
        Base64::encode_string(&hash)
    )
}

/// `*` any run of characters, `?` any one; everything else literal. Linear backtracking (one
/// saved `*` position), so a hostile pattern cannot make it explode.
fn wildcard(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == '?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use russh::keys::PrivateKey;

    fn key() -> PublicKey {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .unwrap()
            .public_key()
            .clone()
    }

    fn line(hosts: &str, key: &PublicKey) -> String {
        format!("{hosts} {}", key.to_openssh().unwrap())
    }

    fn known(lines: &[String]) -> KnownHosts {
        KnownHosts::parse(Path::new("/k"), &(lines.join("\n") + "\n"))
    }

    #[test]
    fn plain_comma_and_bracketed_names() {
        let k = key();
        let kh = known(&[line("hv1,10.0.0.1", &k), line("[hv2]:2222", &k)]);
        assert_eq!(kh.verify("hv1", &k), Ok(()));
        assert_eq!(kh.verify("HV1", &k), Ok(()));
        assert_eq!(kh.verify("10.0.0.1", &k), Ok(()));
        assert_eq!(kh.verify("[hv2]:2222", &k), Ok(()));
        let unknown = Err(Distrust::Unknown {
            other_types: vec![],
        });
        assert_eq!(kh.verify("hv2", &k), unknown);
        assert_eq!(kh.verify("[hv1]:2222", &k), unknown);
        assert_eq!(kh.verify("hv10", &k), unknown);
    }

    #[test]
    fn wildcards_and_negation() {
        let k = key();
        let kh = known(&[line("*.lab,!bad.lab,hv?", &k)]);
        assert_eq!(kh.verify("a.lab", &k), Ok(()));
        assert_eq!(kh.verify("hv3", &k), Ok(()));
        assert!(matches!(
            kh.verify("bad.lab", &k),
            Err(Distrust::Unknown { .. })
        ));
        assert!(matches!(
            kh.verify("hv33", &k),
            Err(Distrust::Unknown { .. })
        ));
        assert!(wildcard("a*b*c", "aXXbYYc"));
        assert!(!wildcard("a*b*c", "aXXbYY"));
        assert!(wildcard("**", ""));
    }

    #[test]
    fn hashed_names() {
        let k = key();
        let kh = known(&[line(&hash_name("[hv1]:2222", b"0123456789abcdefghij"), &k)]);
        assert_eq!(kh.verify("[hv1]:2222", &k), Ok(()));
        assert!(matches!(
            kh.verify("hv1", &k),
            Err(Distrust::Unknown { .. })
        ));
        // An entry hashed by OpenSSH (the vector of russh's own known_hosts test).
        let openssh = "|1|O33ESRMWPVkMYIwJ1Uw+n877jTo=|nuuC5vEqXlEZ/8BXQR7m619W6Ak= ssh-ed25519 \
                       AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";
        let kh = known(&[openssh.into()]);
        let k = PublicKey::from_openssh(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF",
        )
        .unwrap();
        assert_eq!(kh.verify("example.com", &k), Ok(()));
        assert!(matches!(
            kh.verify("example.org", &k),
            Err(Distrust::Unknown { .. })
        ));
    }

    #[test]
    fn a_changed_key_names_its_line_and_a_revoked_one_is_refused() {
        let (old, new) = (key(), key());
        let kh = known(&[
            "# comment".into(),
            String::new(),
            line("hv1", &old),
            line("@cert-authority *", &new),
        ]);
        assert_eq!(
            kh.verify("hv1", &new),
            Err(Distrust::Changed {
                file: "/k".into(),
                line: 3
            })
        );
        let kh = known(&[line("hv1", &new), line("@revoked *", &new)]);
        assert_eq!(
            kh.verify("hv1", &new),
            Err(Distrust::Revoked {
                file: "/k".into(),
                line: 2
            })
        );
        // A matching entry wins over another key of the same type.
        let kh = known(&[line("hv1", &old), line("hv1", &new)]);
        assert_eq!(kh.verify("hv1", &new), Ok(()));
    }

    #[test]
    fn other_key_types_are_named() {
        let rsa = "hv1 ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7";
        let ecdsa = PrivateKey::random(
            &mut rand::rng(),
            Algorithm::Ecdsa {
                curve: russh::keys::EcdsaCurve::NistP256,
            },
        )
        .unwrap();
        let kh = known(&[rsa.into(), line("hv1", ecdsa.public_key())]);
        assert_eq!(
            kh.verify("hv1", &key()),
            Err(Distrust::Unknown {
                other_types: vec!["ecdsa-sha2-nistp256".into()]
            })
        );
        assert_eq!(kh.key_types("hv1"), vec![ecdsa.public_key().algorithm()]);
    }

    #[test]
    fn a_missing_file_holds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let kh = KnownHosts::load(&[dir.path().join("none")]).unwrap();
        assert!(matches!(
            kh.verify("hv1", &key()),
            Err(Distrust::Unknown { .. })
        ));
        let (file, _) = KnownHosts::load(&[dir.path().to_path_buf()]).unwrap_err();
        assert_eq!(file, dir.path());
    }

    fn hostile_field() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("@revoked".to_string()),
            Just("@cert-authority".to_string()),
            Just("|1|".to_string()),
            Just("|1|AAAA|AAAA".to_string()),
            Just("ssh-ed25519".to_string()),
            Just("ssh-rsa".to_string()),
            Just("AAAAC3NzaC1lZDI1NTE5AAAAI".to_string()),
            Just("[h]:".to_string()),
            "[*?!,|\\[\\]:@#=+/A-Za-z0-9é\u{0}-\u{1f}]{0,24}",
            ".{0,16}",
        ]
    }

    proptest! {
        #[test]
        fn hostile_lines_never_panic(
            lines in prop::collection::vec(
                prop::collection::vec(hostile_field(), 0..6).prop_map(|f| f.join(" ")),
                0..6,
            ),
            name in "[*?!,|\\[\\]:a-z0-9.]{0,16}",
        ) {
            let kh = KnownHosts::parse(Path::new("/k"), &lines.join("\n"));
            let _ = kh.verify(&name, &key());
            let _ = kh.key_types(&name);
            for l in &lines {
                for pattern in l.split(' ') {
                    let _ = host_matches(pattern, &name);
                }
            }
        }

        #[test]
        fn a_real_key_survives_any_host_field(hosts in "[^ \t\r\n]{1,40}") {
            let k = key();
            let kh = known(&[line(&hosts, &k)]);
            let verdict = kh.verify("some-name", &k);
            let plausible = matches!(verdict, Ok(()) | Err(Distrust::Unknown { .. }));
            prop_assert!(plausible, "{:?}", verdict);
        }
    }
}
