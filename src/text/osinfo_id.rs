//! osinfo short ids (`debian12`, `ubuntu24.04`, `centos-stream9`, `dragonflybsd1.0A`), the only
//! form of virt-install's `--osinfo` vnode passes. virt-install reads `--osinfo` as a list of
//! sub-options (`name=`, `id=`, `detect=on`, `require=off`), so a ',' or '=' in an id from a
//! catalog or `images import --osinfo` would hand it options of the user's choosing; ids are
//! refused unless they are plain short ids.

use super::names::quoted;

/// The longest id accepted (osinfo-db's longest is about 30).
pub const MAX_OSINFO_ID: usize = 64;

/// An id that is not a plain osinfo short id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} is not an osinfo short id: use 1-{MAX_OSINFO_ID} ASCII letters, digits, '.', '+', '_' \
     or '-', starting with a letter or digit, e.g. debian12 (`virt-install --osinfo list` \
     shows the ids this host knows)",
    quoted(.0)
)]
pub struct BadOsinfoId(pub String);

/// `[A-Za-z0-9][A-Za-z0-9.+_-]*`, at most [`MAX_OSINFO_ID`] bytes.
pub fn check_osinfo_id(id: &str) -> Result<(), BadOsinfoId> {
    let ok = id.len() <= MAX_OSINFO_ID
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(BadOsinfoId(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_pass_and_sub_options_do_not() {
        for id in [
            "debian12",
            "ubuntu24.04",
            "centos-stream9",
            "dragonflybsd1.0A",
            "win2k22",
        ] {
            check_osinfo_id(id).unwrap();
        }
        for id in [
            "",
            "debian11,require=off",
            "detect=on",
            "name=fedora43",
            "http://fedoraproject.org/fedora/43",
            "-debian",
            ".x",
            "deb ian",
            "debian\n12",
            &"a".repeat(65),
        ] {
            let e = check_osinfo_id(id).unwrap_err();
            assert!(e.to_string().contains("not an osinfo short id"), "{e}");
        }
    }

    /// Whatever passes is one argument virt-install cannot split into sub-options.
    #[test]
    fn nothing_that_passes_holds_a_separator() {
        use proptest::prelude::*;
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(256);
        proptest!(ProptestConfig::with_cases(cases), |(id in "\\PC{0,70}")| {
            if check_osinfo_id(&id).is_ok() {
                prop_assert!(!id.contains([',', '=', ' ', ':', '/']) && !id.starts_with('-'));
            }
        });
    }
}
