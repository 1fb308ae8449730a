//! Published checksum files: Fedora's BSD-style `CHECKSUM` (`SHA256 (FILE) = HEX`, usually
//! OpenPGP clear-signed), and the GNU-style `SHA256SUMS` / `SHA512SUMS` of Ubuntu and Debian
//! (`HEX  FILE`, or `HEX *FILE` in binary mode).
//!
//! The parser is strict about what it does not recognise: a line that is neither a comment nor a
//! checksum line is an error with its number. A mirror that answers with an HTML error page then
//! fails loudly instead of "not listing" the image.

use crate::images::catalog::DigestAlgo;

/// One checksum line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// `None` for algorithms vnode does not use (MD5, SHA1, BLAKE2 of unusual lengths, ...).
    pub algo: Option<DigestAlgo>,
    pub file: String,
    /// Lowercase hex.
    pub digest: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

/// Where a line is in an OpenPGP clear-signed document.
#[derive(Clone, Copy, PartialEq)]
enum Armor {
    Text,
    /// After `-----BEGIN PGP SIGNED MESSAGE-----`, until the blank line that ends `Hash:` headers.
    Headers,
    Signature,
}

/// Parses a whole checksum file.
pub fn parse(text: &str) -> Result<Vec<Line>, ParseError> {
    let mut lines = Vec::new();
    let mut armor = Armor::Text;
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        match (armor, line.trim_end()) {
            (Armor::Text, "-----BEGIN PGP SIGNED MESSAGE-----") => armor = Armor::Headers,
            (Armor::Text, "-----BEGIN PGP SIGNATURE-----") => armor = Armor::Signature,
            (Armor::Headers, "") => armor = Armor::Text,
            (Armor::Signature, "-----END PGP SIGNATURE-----") => armor = Armor::Text,
            (Armor::Headers | Armor::Signature, _) => {}
            (Armor::Text, _) => {
                // Clear-signed text escapes lines that start with '-' as "- -...".
                let line = line.strip_prefix("- ").unwrap_or(line);
                if line.trim().is_empty() || line.starts_with('#') {
                    continue;
                }
                let parsed = parse_line(line).ok_or_else(|| ParseError {
                    line: i + 1,
                    reason: format!("not a checksum line: {}", preview(line)),
                })?;
                lines.push(parsed);
            }
        }
    }
    Ok(lines)
}

/// The digest `lines` give for `file` (compared by its last path component) with `algo`.
pub fn find<'a>(lines: &'a [Line], file: &str, algo: DigestAlgo) -> Option<&'a str> {
    lines
        .iter()
        .find(|l| l.algo == Some(algo) && base_name(&l.file) == file)
        .map(|l| l.digest.as_str())
}

/// The file name part of a URL (`.../Fedora-Cloud-Base-43-1.6.x86_64.qcow2`), %-decoded, as
/// checksum files name it.
pub fn url_file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    String::from_utf8_lossy(&crate::text::percent::decode(base_name(path))).into_owned()
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// GNU first: its line starts with a long hex digest, which no BSD algorithm name is, and a GNU
/// file name may itself contain "(...) = ...".
fn parse_line(line: &str) -> Option<Line> {
    // GNU and BSD (`--tag`) lines start with a backslash when the file name is escaped.
    let (escaped, body) = match line.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let (algo, file, digest) = parse_gnu(body).or_else(|| parse_bsd(body))?;
    let file = if escaped {
        unescape(file)?
    } else {
        file.to_string()
    };
    if file.is_empty() {
        return None;
    }
    Some(Line {
        algo,
        file,
        digest: digest.to_ascii_lowercase(),
    })
}

/// `HEX  FILE`, `HEX *FILE` (binary mode) or, from some tools, `HEX FILE`.
fn parse_gnu(line: &str) -> Option<(Option<DigestAlgo>, &str, &str)> {
    let hex_len = line.bytes().take_while(u8::is_ascii_hexdigit).count();
    if hex_len < 32 {
        return None;
    }
    let (digest, rest) = line.split_at(hex_len);
    let rest = rest.strip_prefix(' ')?;
    let file = rest
        .strip_prefix(' ')
        .or_else(|| rest.strip_prefix('*'))
        .unwrap_or(rest);
    let algo = match hex_len {
        64 => Some(DigestAlgo::Sha256),
        128 => Some(DigestAlgo::Sha512),
        _ => None,
    };
    Some((algo, file, digest))
}

/// `SHA256 (FILE) = HEX`, and OpenSSL's `SHA2-256(FILE)= HEX`.
fn parse_bsd(line: &str) -> Option<(Option<DigestAlgo>, &str, &str)> {
    let (head, digest) = line.rsplit_once('=')?;
    let digest = digest.trim();
    if digest.is_empty() || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let open = head.find('(')?;
    let name = head[..open].trim_end();
    let file = head[open + 1..].trim_end().strip_suffix(')')?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let algo = match name.to_ascii_uppercase().replace(['-', '_'], "").as_str() {
        "SHA256" | "SHA2256" if digest.len() == 64 => Some(DigestAlgo::Sha256),
        "SHA512" | "SHA2512" if digest.len() == 128 => Some(DigestAlgo::Sha512),
        "SHA256" | "SHA2256" | "SHA512" | "SHA2512" => return None,
        _ => None,
    };
    Some((algo, file, digest))
}

/// coreutils' escaping of file names with a backslash or newline: `\\`, `\n`, `\r`.
fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            '\\' => '\\',
            'n' => '\n',
            'r' => '\r',
            _ => return None,
        });
    }
    Some(out)
}

fn preview(line: &str) -> String {
    let short: String = line.chars().take(60).collect();
    if short.len() < line.len() {
        format!("{short:?}...")
    } else {
        format!("{short:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FEDORA: &str = "\
-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

# Fedora-Cloud-Base-Generic-43-1.6.x86_64.qcow2: 584714240 bytes
SHA256 (Fedora-Cloud-Base-Generic-43-1.6.x86_64.qcow2) = 846574c8a97cd2d8dc1f231062d73107cc85cbbbda56335e264a46e3a6c8ab2f
# Fedora-Cloud-Base-Generic-43-1.6.x86_64.raw.xz: 468154092 bytes
SHA256 (Fedora-Cloud-Base-Generic-43-1.6.x86_64.raw.xz) = 1bc24a71da9e4cd5b4a2ba3ac4ff7e4a1be0e6a1e70b1d5a6c2ea0b7f1f0aa12
-----BEGIN PGP SIGNATURE-----

iQIzBAEBCAAdFiEEhQ7UNp6UpNUHFRMIUD0XnbW/NKoFAmc0
=ab12
-----END PGP SIGNATURE-----
";

    #[test]
    fn fedora_clearsigned_checksum() {
        let lines = parse(FEDORA).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            find(
                &lines,
                "Fedora-Cloud-Base-Generic-43-1.6.x86_64.qcow2",
                DigestAlgo::Sha256
            ),
            Some("846574c8a97cd2d8dc1f231062d73107cc85cbbbda56335e264a46e3a6c8ab2f")
        );
        assert_eq!(
            find(
                &lines,
                "Fedora-Cloud-Base-Generic-43-1.6.x86_64.qcow2",
                DigestAlgo::Sha512
            ),
            None
        );
    }

    #[test]
    fn ubuntu_sha256sums_binary_mode_and_debian_sha512sums() {
        let d256 = "a".repeat(64);
        let ubuntu = format!(
            "{d256} *noble-server-cloudimg-amd64.img\n{} *noble-server-cloudimg-arm64.img\n",
            "b".repeat(64)
        );
        let lines = parse(&ubuntu).unwrap();
        assert_eq!(
            find(
                &lines,
                "noble-server-cloudimg-amd64.img",
                DigestAlgo::Sha256
            ),
            Some(d256.as_str())
        );
        let d512 = "C".repeat(128);
        let debian = format!(
            "{d512}  debian-13-generic-amd64.qcow2\n{}  debian-13-generic-amd64.raw\n",
            "d".repeat(128)
        );
        let lines = parse(&debian).unwrap();
        assert_eq!(
            find(&lines, "debian-13-generic-amd64.qcow2", DigestAlgo::Sha512),
            Some("c".repeat(128).as_str())
        );
    }

    #[test]
    fn other_algorithms_are_kept_but_not_found() {
        let text = format!(
            "MD5 (x.qcow2) = {}\nSHA2-256(y.qcow2)= {}\n",
            "1".repeat(32),
            "2".repeat(64)
        );
        let lines = parse(&text).unwrap();
        assert_eq!(lines[0].algo, None);
        assert_eq!(find(&lines, "x.qcow2", DigestAlgo::Sha256), None);
        assert_eq!(
            find(&lines, "y.qcow2", DigestAlgo::Sha256),
            Some("2".repeat(64).as_str())
        );
    }

    #[test]
    fn paths_in_checksum_files_match_by_file_name() {
        let text = format!("{}  ./images/z.qcow2\n", "e".repeat(64));
        let lines = parse(&text).unwrap();
        assert!(find(&lines, "z.qcow2", DigestAlgo::Sha256).is_some());
    }

    #[test]
    fn html_is_not_a_checksum_file() {
        let e = parse("\n<!DOCTYPE html>\n<html><body>Not Found</body></html>\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("<!DOCTYPE html>"), "{e}");
    }

    #[test]
    fn a_bsd_digest_of_the_wrong_length_is_an_error() {
        assert!(parse("SHA256 (x) = abcd\n").is_err());
    }

    #[test]
    fn url_file_names() {
        assert_eq!(
            url_file_name("https://h/p/Fedora%2043.qcow2?x=1#f"),
            "Fedora 43.qcow2"
        );
        assert_eq!(url_file_name("http://h/a/b.img"), "b.img");
        assert_eq!(url_file_name("http://h/a/100%.img"), "100%.img");
    }

    /// Renders lines the way sha256sum/sha512sum (with and without `--tag`) write them.
    fn render(line: &Line, bsd: bool, binary: bool) -> String {
        let escaped = line.file.contains(['\\', '\n', '\r']);
        let file = line
            .file
            .replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\r', "\\r");
        let prefix = if escaped { "\\" } else { "" };
        if bsd {
            let name = match line.algo {
                Some(DigestAlgo::Sha256) => "SHA256",
                _ => "SHA512",
            };
            format!("{prefix}{name} ({file}) = {}", line.digest)
        } else {
            let mode = if binary { '*' } else { ' ' };
            format!("{prefix}{} {mode}{file}", line.digest)
        }
    }

    fn arb_line() -> impl Strategy<Value = Line> {
        let algo = prop_oneof![Just(DigestAlgo::Sha256), Just(DigestAlgo::Sha512)];
        // File names with the awkward characters: spaces, parentheses, '=', '*', backslashes,
        // newlines, non-ASCII.
        let file = "[A-Za-z0-9._+-][A-Za-z0-9 ._+()=*\\\\\n\u{e9}-]{0,40}";
        (algo, file, any::<[u8; 64]>()).prop_map(|(algo, file, bytes)| Line {
            algo: Some(algo),
            file,
            digest: hex::encode(&bytes[..algo.hex_len() / 2]),
        })
    }

    proptest! {
        #[test]
        fn parses_what_it_renders(
            lines in prop::collection::vec((arb_line(), any::<bool>(), any::<bool>()), 0..8),
            signed in any::<bool>(),
            crlf in any::<bool>(),
            comments in any::<bool>(),
        ) {
            let mut text = String::new();
            if signed {
                text.push_str("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n");
            }
            for (line, bsd, binary) in &lines {
                if comments {
                    text.push_str("# a comment\n\n");
                }
                text.push_str(&render(line, *bsd, *binary));
                text.push('\n');
            }
            if signed {
                text.push_str("-----BEGIN PGP SIGNATURE-----\n\nabc+/=\n-----END PGP SIGNATURE-----\n");
            }
            if crlf {
                text = text.replace('\n', "\r\n");
            }
            let parsed = parse(&text).unwrap();
            let expected: Vec<Line> = lines.into_iter().map(|(l, _, _)| l).collect();
            prop_assert_eq!(parsed, expected);
        }

        #[test]
        fn finds_each_listed_file(lines in prop::collection::vec(arb_line(), 1..6), pick in any::<prop::sample::Index>()) {
            let text: String = lines.iter().map(|l| render(l, false, true) + "\n").collect();
            let parsed = parse(&text).unwrap();
            let want = pick.get(&lines);
            // The first line for a file wins, as with sha256sum -c.
            let first = lines.iter().find(|l| l.file == want.file && l.algo == want.algo).unwrap();
            prop_assert_eq!(find(&parsed, &want.file, want.algo.unwrap()), Some(first.digest.as_str()));
        }

        #[test]
        fn never_panics(text in "\\PC*(\n\\PC*){0,4}") {
            let _ = parse(&text);
        }
    }
}
