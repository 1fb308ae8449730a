//! Terminal conventions shared by every command: colours only on a terminal and never with
//! `NO_COLOR` (https://no-color.org: set and not empty), and `--quiet`. clap's help and usage
//! errors follow the same rule by themselves (its colour choice is `auto`).
//!
//! Progress (bars, spinners, per-stage lines) always goes to stderr, so stdout carries only the
//! final table or JSON; `--quiet` drops the progress too. Warnings and errors stay on stderr.
//!
//! Text from outside (specs and configs, distributions' catalogs, what guests and hypervisors
//! answer, console lines) reaches the terminal only through [`escaped`]: a character that could
//! move the cursor, recolour, reorder or hide what follows is written as an escape instead.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Set once from `--quiet`, before any command runs.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// `--quiet`: show no progress.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Whether output to `stream` may carry colour escapes.
pub fn colours_on(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && !no_color()
}

fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// `text` made safe to show on a terminal, on one line: every character that is not plain
/// printable text is written as its Rust escape (`\n`, `\t`, `\u{1b}`, `\u{202e}`), so a hostile
/// value cannot run a terminal escape sequence, break the line, or reorder or hide the text
/// around it. The one function for this: every shown string from outside goes through it.
pub fn escaped(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_to_show) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_to_show(c) {
            match c {
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                _ => {
                    let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
                }
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Characters a terminal does not show as themselves: C0 and C1 controls and DEL; format
/// characters (bidirectional marks, embeddings, overrides and isolates, zero-width ones, the
/// byte-order mark, tags, interlinear annotations); the line and paragraph separators; and
/// non-characters.
pub fn unsafe_to_show(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{ad}' | '\u{61c}' | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{fdd0}'..='\u{fdef}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e0000}'..='\u{e007f}')
        || (u32::from(c) & 0xfffe) == 0xfffe
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_text_is_left_alone_and_the_rest_is_escaped() {
        assert!(matches!(
            escaped("Debian GNU/Linux 12 (bookworm) ü 日本"),
            Cow::Borrowed(_)
        ));
        assert_eq!(escaped("a\nb\tc\rd"), "a\\nb\\tc\\rd");
        assert_eq!(escaped("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escaped("x\u{7f}\u{9b}\u{85}"), "x\\u{7f}\\u{9b}\\u{85}");
        assert_eq!(
            escaped("\u{202e}evil\u{2066}\u{2069}"),
            "\\u{202e}evil\\u{2066}\\u{2069}"
        );
        assert_eq!(escaped("a\u{2028}b\u{2029}"), "a\\u{2028}b\\u{2029}");
        assert_eq!(
            escaped("\u{200b}\u{feff}\u{fffe}\u{ffff}\u{10ffff}"),
            "\\u{200b}\\u{feff}\\u{fffe}\\u{ffff}\\u{10ffff}"
        );
        assert_eq!(escaped("\u{e0041}"), "\\u{e0041}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)))]
        /// Whatever comes in, what goes out has no character a terminal acts on, and the
        /// printable characters are kept in order.
        #[test]
        fn nothing_unsafe_comes_out(text in proptest::collection::vec(any::<char>(), 0..64)
            .prop_map(String::from_iter)) {
            let out = escaped(&text);
            prop_assert!(!out.chars().any(unsafe_to_show), "{:?}", out);
            let kept: String = text.chars().filter(|c| !unsafe_to_show(*c)).collect();
            let shown: String = out.chars().filter(|c| !unsafe_to_show(*c)).collect();
            prop_assert!(shown.len() >= kept.len());
            if !text.chars().any(unsafe_to_show) {
                prop_assert_eq!(out.as_ref(), text.as_str());
            }
        }
    }
}
