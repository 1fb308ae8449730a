//! Quoting for a POSIX shell: the one place vnode turns a word into shell syntax, for commands it
//! shows to the user (`--prepare-only`) and for command lines it runs in a guest over ssh.

/// `word` as one POSIX shell word: unchanged when it holds only characters no shell treats
/// specially, else in single quotes (a `'` inside written as `'\''`).
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The words joined into one command line.
pub fn join<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> String {
    words
        .into_iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn words_are_quoted_only_when_needed() {
        assert_eq!(quote("echo"), "echo");
        assert_eq!(quote("path=/a/b,format=qcow2"), "path=/a/b,format=qcow2");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(
            quote("description=vnode:v1 pool=x"),
            "'description=vnode:v1 pool=x'"
        );
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("echo hi > /x"), "'echo hi > /x'");
        assert_eq!(join(["sh", "-c", "echo $HOME"]), "sh -c 'echo $HOME'");
    }

    proptest! {
        /// What sh reads back is the word itself.
        #[test]
        fn sh_reads_back_the_word(word in "[ -~\n]{0,12}") {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(&word)))
                .output()
                .unwrap();
            prop_assert_eq!(String::from_utf8_lossy(&out.stdout), word);
        }
    }
}
