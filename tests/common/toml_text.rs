//! TOML written by tests: a basic string literal that holds exactly a given value, on one line
//! (control characters as `\uXXXX`), so that every key stays on the line its value starts on.

use std::fmt::Write as _;

/// A TOML basic string literal holding exactly `s`.
pub fn basic_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
