//! URL percent-decoding, the one way vnode reads `%XX` escapes (libvirt URIs, checksum-file URLs).

/// `%XX` escapes decoded; a `%` not followed by two hex digits stays as it is.
pub fn decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn escapes_are_decoded_and_stray_percents_kept() {
        assert_eq!(decode("a%20b"), b"a b");
        assert_eq!(decode("%2Froot%2f"), b"/root/");
        assert_eq!(decode("100%"), b"100%");
        assert_eq!(decode("%zz%4"), b"%zz%4");
        assert_eq!(decode("%C3%A9"), "é".as_bytes());
    }
}
