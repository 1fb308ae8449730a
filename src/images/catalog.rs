//! The image catalog: `images.toml` at the top of the repository, embedded in the binary, and
//! extended or overridden by a user's catalog file. It maps distro names and aliases to download
//! URLs, checksums and osinfo ids, and resolves the distro part of node specs.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::images::KeySource;
use crate::text::osinfo_id::check_osinfo_id;
use crate::text::toml_file::{self, FileError, line_of};

/// The catalog shipped with vnode.
pub const BUILTIN: &str = include_str!("../../images.toml");
/// How the built-in catalog is named in messages.
pub const BUILTIN_PATH: &str = "<built-in images.toml>";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestAlgo {
    Sha256,
    Sha512,
}

impl DigestAlgo {
    /// Hex digits in a digest of this kind.
    pub fn hex_len(self) -> usize {
        match self {
            DigestAlgo::Sha256 => 64,
            DigestAlgo::Sha512 => 128,
        }
    }
}

impl fmt::Display for DigestAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DigestAlgo::Sha256 => "sha256",
            DigestAlgo::Sha512 => "sha512",
        })
    }
}

/// The cloud-init network renderer an image's cloud-init picks for vnode's network-config (its
/// `system_info: network: renderers`), which decides how the NICs' route metrics and the public
/// NIC's `optional` reach the guest (see tests/renderers.rs and docs/guests.md, "Renderers").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Renderer {
    Netplan,
    NetworkManager,
    Networkd,
    Sysconfig,
    Eni,
}

impl fmt::Display for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Renderer::Netplan => "netplan",
            Renderer::NetworkManager => "network-manager",
            Renderer::Networkd => "networkd",
            Renderer::Sysconfig => "sysconfig",
            Renderer::Eni => "eni",
        })
    }
}

/// Where the expected digest of an image comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Checksum {
    /// The distribution's published checksum file (Fedora CHECKSUM, Ubuntu SHA256SUMS, Debian
    /// SHA512SUMS) and how its OpenPGP signature is checked.
    File {
        url: String,
        algo: DigestAlgo,
        /// A detached signature (SHA256SUMS.gpg, SHA512SUMS.sign); without one the checksum file
        /// itself must be clear-signed (Fedora's CHECKSUM).
        signature_url: Option<String>,
        /// The keys the signature must be made by. Empty: none is pinned, and `vnode images pull`
        /// refuses the entry unless told `--no-signature`.
        signing_keys: Vec<KeySource>,
    },
    /// A digest written into the catalog.
    Inline { algo: DigestAlgo, digest: String },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CatalogEntry {
    pub name: String,
    pub aliases: Vec<String>,
    pub family: String,
    pub version: String,
    /// osinfo short id for virt-install's `--osinfo`.
    pub osinfo: String,
    /// The network renderer the image's cloud-init uses (unknown for user entries without one).
    pub renderer: Option<Renderer>,
    /// The distribution's default user (cloud-config `users: [default]`).
    pub default_user: Option<String>,
    pub url: String,
    pub checksum: Checksum,
    /// The entry a bare family name (and the catalog default) means.
    pub family_default: bool,
    /// Where the entry was read.
    pub source: EntrySource,
}

/// Where a catalog entry comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "kebab-case")]
pub enum EntrySource {
    /// vnode's own `images.toml`.
    BuiltIn,
    /// A user catalog file.
    File(PathBuf),
}

impl fmt::Display for EntrySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntrySource::BuiltIn => f.write_str("built-in"),
            EntrySource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// How far a catalog entry's image is vouched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryTrust {
    /// A checksum file signed by pinned keys.
    Signed,
    /// A digest written into the catalog: as trustworthy as the catalog file.
    Digest,
    /// A checksum file without pinned keys: from the same mirror as the image.
    None,
}

impl fmt::Display for EntryTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntryTrust::Signed => "signed",
            EntryTrust::Digest => "digest",
            EntryTrust::None => "none",
        })
    }
}

impl CatalogEntry {
    pub fn trust(&self) -> EntryTrust {
        match &self.checksum {
            Checksum::File { signing_keys, .. } if !signing_keys.is_empty() => EntryTrust::Signed,
            Checksum::File { .. } => EntryTrust::None,
            Checksum::Inline { .. } => EntryTrust::Digest,
        }
    }

    /// Its name and aliases.
    fn names(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.name).chain(&self.aliases)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    default_family: Option<Spanned<String>>,
    #[serde(default, rename = "image")]
    images: Vec<EntryFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    name: Spanned<String>,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
    family: String,
    version: String,
    osinfo: Spanned<String>,
    renderer: Option<Renderer>,
    default_user: Option<String>,
    url: String,
    checksum_url: Option<String>,
    checksum_algo: Option<DigestAlgo>,
    signature_url: Option<String>,
    #[serde(default)]
    signing_keys: Vec<Spanned<String>>,
    sha256: Option<String>,
    sha512: Option<String>,
    #[serde(default)]
    family_default: bool,
    /// A user entry that shadows a built-in one (by name or alias) must say so.
    #[serde(default)]
    replaces_builtin: bool,
}

/// A checked entry of a catalog file, with what [`Catalog::load`] needs to place it.
struct Parsed {
    entry: CatalogEntry,
    replaces_builtin: bool,
    /// Where its `name` is, for messages.
    line: usize,
    index: usize,
}

/// A `FileError` at a span of image entry `index` of a catalog file.
struct EntryErrors<'a> {
    path: &'a Path,
    text: &'a str,
    index: usize,
}

impl EntryErrors<'_> {
    fn at(&self, span: std::ops::Range<usize>, field: &str, message: String) -> FileError {
        FileError {
            path: self.path.into(),
            line: Some(line_of(self.text, span.start)),
            field: Some(format!("image[{}].{field}", self.index)),
            message,
        }
    }
}

impl EntryFile {
    /// The entry as the catalog holds it, once its names, keys, checksum and URL pass.
    fn check(self, path: &Path, text: &str, index: usize) -> Result<Parsed, FileError> {
        let e = self;
        let errors = EntryErrors { path, text, index };
        let at = |span, field: &str, message| errors.at(span, field, message);
        let name_span = e.name.span();
        check_name(e.name.get_ref()).map_err(|m| at(name_span.clone(), "name", m.to_string()))?;
        for a in &e.aliases {
            check_name(a.get_ref()).map_err(|m| at(a.span(), "aliases", m.to_string()))?;
        }
        check_osinfo_id(e.osinfo.get_ref())
            .map_err(|m| at(e.osinfo.span(), "osinfo", m.to_string()))?;
        let catalog_dir = path.parent().unwrap_or(Path::new("."));
        let mut signing_keys = Vec::new();
        for k in &e.signing_keys {
            signing_keys.push(
                KeySource::parse(k.get_ref(), catalog_dir)
                    .map_err(|m| at(k.span(), "signing_keys", m.to_string()))?,
            );
        }
        let checksum = e.checksum(signing_keys, &errors)?;
        if !e.url.starts_with("http://") && !e.url.starts_with("https://") {
            return Err(at(
                name_span,
                "url",
                format!("'{}' is not an http(s) URL", e.url),
            ));
        }
        let source = if path == Path::new(BUILTIN_PATH) {
            EntrySource::BuiltIn
        } else {
            EntrySource::File(path.to_path_buf())
        };
        let (replaces_builtin, line) = (e.replaces_builtin, line_of(text, name_span.start));
        let entry = CatalogEntry {
            name: e.name.into_inner(),
            aliases: e.aliases.into_iter().map(Spanned::into_inner).collect(),
            family: e.family,
            version: e.version,
            osinfo: e.osinfo.into_inner(),
            renderer: e.renderer,
            default_user: e.default_user,
            url: e.url,
            checksum,
            family_default: e.family_default,
            source,
        };
        Ok(Parsed {
            entry,
            replaces_builtin,
            line,
            index,
        })
    }

    /// A checksum file (with its signature and keys), or one inline digest of the right length.
    fn checksum(
        &self,
        signing_keys: Vec<KeySource>,
        errors: &EntryErrors,
    ) -> Result<Checksum, FileError> {
        let name_span = self.name.span();
        let signed = self.signature_url.is_some() || !signing_keys.is_empty();
        let checksum = match (
            self.checksum_url.clone(),
            self.checksum_algo,
            self.sha256.clone(),
            self.sha512.clone(),
        ) {
            (Some(url), Some(algo), None, None) => Checksum::File {
                url,
                algo,
                signature_url: self.signature_url.clone(),
                signing_keys,
            },
            (None, None, _, _) if signed => {
                return Err(errors.at(
                    name_span,
                    "signing_keys",
                    "signature_url and signing_keys belong to a checksum_url; an inline digest \
                     is trusted as written"
                        .into(),
                ));
            }
            (None, None, Some(d), None) => inline(DigestAlgo::Sha256, d),
            (None, None, None, Some(d)) => inline(DigestAlgo::Sha512, d),
            _ => {
                return Err(errors.at(
                    name_span,
                    "checksum",
                    "give either checksum_url with checksum_algo (sha256 or sha512), or one \
                     inline sha256 = \"HEX\" / sha512 = \"HEX\""
                        .into(),
                ));
            }
        };
        if let Checksum::Inline { algo, digest } = &checksum
            && (digest.len() != algo.hex_len() || !digest.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(errors.at(
                name_span,
                &algo.to_string(),
                format!("not a {algo} digest ({} hex digits)", algo.hex_len()),
            ));
        }
        Ok(checksum)
    }
}

/// What a distro name in a spec resolved to. `name` is the image's canonical name, which is also
/// its name in the image cache.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ImageRef {
    pub name: String,
    #[serde(flatten)]
    pub kind: ImageKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ImageKind {
    /// A catalog entry, downloaded by `vnode images pull`.
    Catalog,
    /// An image derived from `base` (`f43-k8s`: `k8s` made from fedora-43).
    Derived { base: String, variant: String },
    /// A local image added with `vnode images import`.
    Local,
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CatalogError {
    #[error("{0}")]
    File(#[from] FileError),
    #[error("unknown distro '{name}'{}", suggest(.suggestions))]
    UnknownDistro {
        name: String,
        suggestions: Vec<String>,
    },
}

fn suggest(names: &[String]) -> String {
    if names.is_empty() {
        "; `vnode images list --available` shows the catalog".into()
    } else {
        format!(
            "; did you mean {}? (`vnode images list --available` shows all)",
            names.join(", ")
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Catalog {
    entries: Vec<CatalogEntry>,
    default_family: String,
}

impl Catalog {
    /// The built-in catalog, extended by `user` (path, text). A user entry whose name or an
    /// alias is a built-in entry's name or alias is refused unless it says
    /// `replaces_builtin = true`; then it replaces those built-in entries.
    pub fn load(user: Option<(&Path, &str)>) -> Result<Catalog, FileError> {
        let mut catalog = Catalog::parse(Path::new(BUILTIN_PATH), BUILTIN)?;
        if let Some((path, text)) = user {
            let extra = Catalog::parse_file(path, text)?;
            for parsed in extra.1 {
                catalog.replace_builtins(path, &parsed)?;
                catalog.entries.push(parsed.entry);
            }
            if let Some(family) = extra.0 {
                catalog.default_family = family;
            }
            catalog.check(path, text)?;
        }
        Ok(catalog)
    }

    /// Removes the built-in entries `user` shadows, which it must allow explicitly.
    fn replace_builtins(&mut self, path: &Path, user: &Parsed) -> Result<(), FileError> {
        let shadows = |e: &CatalogEntry| {
            e.source == EntrySource::BuiltIn
                && e.names().any(|n| user.entry.names().any(|u| u == n))
        };
        let shadowed: Vec<String> = self
            .entries
            .iter()
            .filter(|e| shadows(e))
            .map(|e| format!("{} ({} checksums)", e.name, e.trust()))
            .collect();
        let error = |field: &str, message: String| FileError {
            path: path.into(),
            line: Some(user.line),
            field: Some(format!("image[{}].{field}", user.index)),
            message,
        };
        match (shadowed.is_empty(), user.replaces_builtin) {
            (true, false) => Ok(()),
            (true, true) => Err(error(
                "replaces_builtin",
                format!(
                    "'{}' replaces no built-in entry (none is named like it or its aliases); \
                     remove `replaces_builtin = true`",
                    user.entry.name
                ),
            )),
            (false, false) => Err(error(
                "name",
                format!(
                    "'{}' would replace the built-in entry {}; an entry that replaces a \
                     built-in one must say so: add `replaces_builtin = true` to it, or give it \
                     a name and aliases of its own",
                    user.entry.name,
                    shadowed.join(", ")
                ),
            )),
            (false, true) => {
                self.entries.retain(|e| !shadows(e));
                Ok(())
            }
        }
    }

    /// Parses one complete catalog file.
    pub fn parse(path: &Path, text: &str) -> Result<Catalog, FileError> {
        let (default_family, parsed) = Catalog::parse_file(path, text)?;
        let entries = parsed.into_iter().map(|p| p.entry).collect();
        let default_family = default_family.ok_or_else(|| FileError {
            path: path.into(),
            line: None,
            field: Some("default_family".into()),
            message: "missing: name the family whose default image a spec without distro gets"
                .into(),
        })?;
        let catalog = Catalog {
            entries,
            default_family,
        };
        catalog.check(path, text)?;
        Ok(catalog)
    }

    fn parse_file(path: &Path, text: &str) -> Result<(Option<String>, Vec<Parsed>), FileError> {
        let file: CatalogFile = toml_file::parse(path, text)?;
        let entries = file
            .images
            .into_iter()
            .enumerate()
            .map(|(i, e)| EntryFile::check(e, path, text, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((file.default_family.map(Spanned::into_inner), entries))
    }

    /// Whole-catalog rules: unique names and aliases, one default per family.
    fn check(&self, path: &Path, text: &str) -> Result<(), FileError> {
        // Find where a name is written, for the line number; the entry may come from another file.
        let locate = |name: &str| text.find(&format!("\"{name}\"")).map(|o| line_of(text, o));
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for e in &self.entries {
            for n in std::iter::once(&e.name).chain(&e.aliases) {
                if let Some(other) = seen.insert(n.as_str(), e.name.as_str()) {
                    return Err(FileError {
                        path: path.into(),
                        line: locate(n),
                        field: Some("aliases".into()),
                        message: format!("'{n}' names both '{other}' and '{}'", e.name),
                    });
                }
            }
        }
        let mut defaults: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for e in self.entries.iter().filter(|e| e.family_default) {
            defaults.entry(&e.family).or_default().push(&e.name);
        }
        if let Some((family, names)) = defaults.iter().find(|(_, n)| n.len() > 1) {
            return Err(FileError {
                path: path.into(),
                line: locate(names[1]),
                field: Some("family_default".into()),
                message: format!(
                    "family '{family}' has more than one default: {}",
                    names.join(", ")
                ),
            });
        }
        if !defaults.contains_key(self.default_family.as_str()) {
            return Err(FileError {
                path: path.into(),
                line: None,
                field: Some("default_family".into()),
                message: format!(
                    "family '{}' has no entry with family_default = true",
                    self.default_family
                ),
            });
        }
        Ok(())
    }

    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    pub fn get(&self, name: &str) -> Option<&CatalogEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The catalog entry a name or alias means (case-insensitive), or a family's default.
    pub fn lookup(&self, name: &str) -> Option<&CatalogEntry> {
        let name = name.to_ascii_lowercase();
        self.entries
            .iter()
            .find(|e| e.name == name || e.aliases.contains(&name))
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|e| e.family_default && e.family == name)
            })
    }

    /// The image a spec without distro gets.
    pub fn default_image(&self) -> &CatalogEntry {
        self.lookup(&self.default_family)
            .expect("checked: the default family has a default")
    }

    /// Resolves a distro name from a spec. `local` lists the names of images in the cache that are
    /// not catalog entries (imported and derived ones).
    pub fn resolve(&self, name: &str, local: &[String]) -> Result<ImageRef, CatalogError> {
        let lower = name.to_ascii_lowercase();
        if let Some(e) = self.lookup(&lower) {
            return Ok(ImageRef {
                name: e.name.clone(),
                kind: ImageKind::Catalog,
            });
        }
        if local.contains(&lower) {
            return Ok(ImageRef {
                name: lower,
                kind: ImageKind::Local,
            });
        }
        // BASE-VARIANT, with the longest BASE that is a catalog image or a local one.
        for (i, _) in lower
            .match_indices('-')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let (base, variant) = (&lower[..i], &lower[i + 1..]);
            if variant.is_empty() || check_name(variant).is_err() {
                continue;
            }
            let base = match self.lookup(base) {
                Some(e) => e.name.clone(),
                None if local.iter().any(|l| l == base) => base.to_string(),
                None => continue,
            };
            return Ok(ImageRef {
                name: format!("{base}-{variant}"),
                kind: ImageKind::Derived {
                    base,
                    variant: variant.to_string(),
                },
            });
        }
        Err(CatalogError::UnknownDistro {
            name: name.to_string(),
            suggestions: self.closest(&lower, local),
        })
    }

    /// Up to three known names closest to `name`.
    fn closest(&self, name: &str, local: &[String]) -> Vec<String> {
        let mut scored: Vec<(f64, String)> = self
            .entries
            .iter()
            .flat_map(|e| std::iter::once(&e.name).chain(&e.aliases))
            .chain(local)
            .map(|n| {
                // Same leading letters (`f` of f99 and f43, `ubuntu-` of ubuntu-25.04): same family.
                let letters = |s: &str| {
                    s.chars()
                        .take_while(|c| !c.is_ascii_digit())
                        .collect::<String>()
                };
                let family = !letters(name).is_empty() && letters(name) == letters(n);
                (
                    strsim::jaro_winkler(name, n) + if family { 0.3 } else { 0.0 },
                    n.clone(),
                )
            })
            .filter(|(s, _)| *s > 0.7)
            .collect();
        // Best first; among equals the newest (highest version sorts last by name).
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
        scored.into_iter().take(3).map(|(_, n)| n).collect()
    }
}

fn inline(algo: DigestAlgo, digest: String) -> Checksum {
    Checksum::Inline {
        algo,
        digest: digest.to_ascii_lowercase(),
    }
}

/// A name that cannot name an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a valid image name (lowercase letters, digits, '.', '-', '_'; at most 64)")]
pub struct BadImageName(pub String);

/// Image names and aliases: lowercase letters, digits, '.', '-', '_', starting with a letter or digit.
pub fn check_name(name: &str) -> Result<(), BadImageName> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(BadImageName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> Catalog {
        Catalog::load(None).unwrap()
    }

    #[test]
    fn builtin_catalog_has_the_seeds_names_and_current_releases() {
        let c = builtin();
        for n in [
            "f33", "f34", "f35", "u18.04", "u20.04", "u21.04", "u21.10", "u22.04", "u24.04",
            "u26.04", "d12", "d13", "f43",
        ] {
            assert!(c.lookup(n).is_some(), "{n}");
        }
        assert_eq!(c.default_image().family, "fedora");
    }

    #[test]
    fn every_builtin_entry_knows_its_renderer_default_user_and_osinfo() {
        for e in builtin().entries() {
            let renderer = e
                .renderer
                .unwrap_or_else(|| panic!("{}: no renderer", e.name));
            let user = e
                .default_user
                .as_deref()
                .unwrap_or_else(|| panic!("{}: no default_user", e.name));
            let (want_user, osinfo) = match e.family.as_str() {
                "fedora" => ("fedora", format!("fedora{}", e.version)),
                "ubuntu" => ("ubuntu", format!("ubuntu{}", e.version)),
                "debian" => ("debian", format!("debian{}", e.version)),
                other => panic!("{}: unexpected family {other}", e.name),
            };
            assert_eq!(user, want_user, "{}", e.name);
            assert_eq!(e.osinfo, osinfo, "{}", e.name);
            let want = match (e.family.as_str(), e.version.parse::<f32>().unwrap()) {
                // cloud-init's own NetworkManager renderer became Fedora's default with F36.
                ("fedora", v) if v < 36.0 => Renderer::Sysconfig,
                ("fedora", _) => Renderer::NetworkManager,
                _ => Renderer::Netplan,
            };
            assert_eq!(renderer, want, "{}", e.name);
        }
    }

    #[test]
    fn a_user_entry_may_leave_renderer_and_user_out_but_not_misspell_them() {
        let entry = |extra: &str| {
            format!(
                "default_family = \"x\"\n[[image]]\nname = \"x-1\"\nfamily = \"x\"\nversion = \"1\"\n\
                 osinfo = \"linux2022\"\nurl = \"https://example.org/x.qcow2\"\n\
                 sha256 = \"{}\"\nfamily_default = true\n{extra}",
                "0".repeat(64)
            )
        };
        let c = Catalog::parse(Path::new("u.toml"), &entry("")).unwrap();
        assert_eq!(c.entries()[0].renderer, None);
        let c = Catalog::parse(
            Path::new("u.toml"),
            &entry("renderer = \"network-manager\"\ndefault_user = \"cloud-user\"\n"),
        )
        .unwrap();
        assert_eq!(c.entries()[0].renderer, Some(Renderer::NetworkManager));
        assert_eq!(c.entries()[0].default_user.as_deref(), Some("cloud-user"));
        assert!(Catalog::parse(Path::new("u.toml"), &entry("renderer = \"nm\"\n")).is_err());
    }

    #[test]
    fn resolves_names_aliases_and_case() {
        let c = builtin();
        assert_eq!(c.resolve("F33", &[]).unwrap().name, "fedora-33");
        assert_eq!(c.resolve("ubuntu-24.04", &[]).unwrap().name, "ubuntu-24.04");
        assert_eq!(c.resolve("u24.04", &[]).unwrap().name, "ubuntu-24.04");
    }

    #[test]
    fn resolves_derived_and_local_images() {
        let c = builtin();
        let r = c.resolve("f43-k8s", &[]).unwrap();
        assert_eq!(r.name, "fedora-43-k8s");
        assert_eq!(
            r.kind,
            ImageKind::Derived {
                base: "fedora-43".into(),
                variant: "k8s".into()
            }
        );
        assert_eq!(c.resolve("fedora-43-k8s", &[]).unwrap(), r);
        let local = vec!["mylab".to_string()];
        assert_eq!(c.resolve("mylab", &local).unwrap().kind, ImageKind::Local);
        let r = c.resolve("mylab-v2", &local).unwrap();
        assert_eq!(
            r.kind,
            ImageKind::Derived {
                base: "mylab".into(),
                variant: "v2".into()
            }
        );
    }

    #[test]
    fn unknown_distro_suggests_close_names() {
        let e = builtin().resolve("f99", &[]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("unknown distro 'f99'; did you mean"),
            "{msg}"
        );
        let e = builtin().resolve("zzzzzz", &[]).unwrap_err().to_string();
        assert!(e.contains("vnode images list --available"), "{e}");
    }

    #[test]
    fn malformed_catalogs_name_file_line_and_field() {
        let p = Path::new("my.toml");
        let e = Catalog::parse(
            p,
            "default_family = \"x\"\n[[image]]\nname = \"a\"\nfamily = 3\n",
        )
        .unwrap_err();
        assert_eq!((e.path.as_path(), e.line), (p, Some(4)), "{e}");
        let dup = r#"default_family = "x"
[[image]]
name = "a"
family = "x"
version = "1"
osinfo = "x"
url = "https://e/a"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
family_default = true
[[image]]
name = "b"
aliases = ["a"]
family = "x"
version = "2"
osinfo = "x"
url = "https://e/b"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
"#;
        let e = Catalog::parse(p, dup).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.to_string().contains("'a' names both 'a' and 'b'"), "{e}");
        let bad_digest = dup.replace("sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\nfamily_default", "sha256 = \"00\"\nfamily_default");
        let e = Catalog::parse(p, &bad_digest).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("image[0].sha256"), "{e}");
        let e = Catalog::parse(p, "default_family = \"x\"\nbogus = 1\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn an_osinfo_that_is_not_a_short_id_is_refused_on_its_line() {
        let text = format!(
            "default_family = \"x\"\n[[image]]\nname = \"x-1\"\nfamily = \"x\"\nversion = \"1\"\n\
             osinfo = \"debian11,require=off\"\nurl = \"https://example.org/x.qcow2\"\n\
             sha256 = \"{}\"\nfamily_default = true\n",
            "0".repeat(64)
        );
        let e = Catalog::parse(Path::new("u.toml"), &text).unwrap_err();
        assert_eq!(
            (e.line, e.field.as_deref()),
            (Some(6), Some("image[0].osinfo")),
            "{e}"
        );
        assert!(e.to_string().contains("not an osinfo short id"), "{e}");
    }

    fn user_entry(name: &str, extra: &str) -> String {
        format!(
            "[[image]]\nname = \"{name}\"\n{extra}family = \"fedora\"\nversion = \"43\"\n\
             osinfo = \"fedora43\"\nurl = \"http://mirror.example/f.qcow2\"\nsha256 = \"{}\"\n",
            "0".repeat(64)
        )
    }

    #[test]
    fn a_user_entry_that_shadows_a_builtin_one_must_say_so() {
        let p = Path::new("/home/u/.config/vnode/images.toml");
        // By name, and by alias.
        for text in [
            user_entry("fedora-43", ""),
            user_entry("mine", "aliases = [\"f43\"]\n"),
        ] {
            let e = Catalog::load(Some((p, &text))).unwrap_err();
            assert_eq!(
                (e.line, e.field.as_deref()),
                (Some(2), Some("image[0].name")),
                "{e}"
            );
            let msg = e.to_string();
            assert!(
                msg.contains("would replace the built-in entry fedora-43 (signed checksums)")
                    && msg.contains("replaces_builtin = true"),
                "{msg}"
            );
        }
        let text = user_entry(
            "fedora-43",
            "replaces_builtin = true\nfamily_default = true\n",
        );
        let c = Catalog::load(Some((p, &text))).unwrap();
        let e = c.lookup("fedora-43").unwrap();
        assert_eq!(e.source, EntrySource::File(p.into()));
        assert_eq!(e.trust(), EntryTrust::Digest);
        // Its aliases went with the built-in entry.
        assert!(c.lookup("f43").is_none());
        assert_eq!(
            builtin().lookup("f43").unwrap().source,
            EntrySource::BuiltIn
        );
        assert_eq!(builtin().lookup("f43").unwrap().trust(), EntryTrust::Signed);
        let text = user_entry("alma-9", "replaces_builtin = true\n");
        let e = Catalog::load(Some((p, &text))).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("image[0].replaces_builtin"), "{e}");
    }
}
