//! JSON that YAML 1.1 loaders read back exactly: what vnode writes into cloud-init's documents.
//!
//! JSON is YAML, and its always-quoted strings mean what they say under any YAML version, but a
//! YAML 1.1 loader (PyYAML, which cloud-init uses) refuses the **whole** stream when it holds a
//! character outside YAML's printable set (C0 controls other than tab, LF and CR; DEL; C1
//! controls other than U+0085; U+FFFE, U+FFFF), and reads U+0085, U+2028 and U+2029 inside a
//! double-quoted string as line breaks, which it folds. serde_json writes all of those raw. Here
//! every one of them (and the byte-order mark U+FEFF) is written as a `\uXXXX` escape, which JSON
//! and YAML both read as the character itself. Characters beyond the BMP are printable in YAML
//! and stay as they are (a JSON surrogate-pair escape would be two characters to YAML).

use std::fmt::Write as _;

use serde::Serialize;

/// `value` as pretty-printed JSON in which every string is safe for a YAML 1.1 loader. serde_json
/// escapes the C0 controls itself, and its structure is ASCII, so what is left to escape stands
/// inside strings, where `\uXXXX` means the character itself.
pub fn to_string_pretty<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let json = serde_json::to_string_pretty(value)?;
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if raw_in_yaml(c) {
            out.push(c);
        } else {
            // Never beyond the BMP: those are all printable.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        }
    }
    Ok(out)
}

/// Whether YAML 1.1 reads `c` raw inside a double-quoted string as itself.
pub fn raw_in_yaml(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r' | ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}'
        | '\u{10000}'..='\u{10ffff}')
        && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn what_yaml_1_1_cannot_read_raw_is_escaped() {
        let v = serde_json::json!({"k\u{9b}": ["a\u{7f}b\u{86}c\u{9b}d\u{fffe}\u{ffff}", "\u{85}\u{2028}\u{2029}\u{feff}", "tab\tnl\n", "ü日😀"]});
        let text = to_string_pretty(&v).unwrap();
        assert_eq!(
            text,
            "{\n  \"k\\u009b\": [\n    \"a\\u007fb\\u0086c\\u009bd\\ufffe\\uffff\",\n    \
             \"\\u0085\\u2028\\u2029\\ufeff\",\n    \"tab\\tnl\\n\",\n    \"ü日😀\"\n  ]\n}"
        );
        // The same pretty layout as serde_json's, and the same value read back.
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
        let plain = serde_json::json!({"a": [1, {"b": null}], "c": []});
        assert_eq!(
            to_string_pretty(&plain).unwrap(),
            serde_json::to_string_pretty(&plain).unwrap()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)))]
        /// Any string: JSON reads back the same value, and nothing outside YAML's raw set is
        /// left in the text (cloud-init's own loaders judge it in tests/seeds.rs).
        #[test]
        fn any_string_reads_back(s in proptest::collection::vec(any::<char>(), 0..40)
            .prop_map(String::from_iter)) {
            let text = to_string_pretty(&[&s]).unwrap();
            prop_assert!(text.chars().all(raw_in_yaml), "{:?}", text);
            let back: Vec<String> = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&back[0], &s);
        }
    }
}
