//! What a package ships besides the binary, generated from the clap definitions so it never
//! drifts from them: `vnode generate-assets DIR` writes
//!
//! ```text
//! DIR/man/vnode.1, DIR/man/vnode-VERB.1 ...
//! DIR/completions/vnode.bash, DIR/completions/_vnode, DIR/completions/vnode.fish
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::cli::CompletionShell;

/// Where each shell's script goes below `DIR/completions` (named as each shell's vendor
/// directory expects it once installed).
pub fn completion_file(shell: CompletionShell) -> &'static str {
    match shell {
        CompletionShell::Bash => "vnode.bash",
        CompletionShell::Zsh => "_vnode",
        CompletionShell::Fish => "vnode.fish",
    }
}

/// Writes the man pages and completion scripts below `dir`; returns every file written.
pub fn generate(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    fs::create_dir_all(&man)?;
    fs::create_dir_all(&completions)?;
    let mut written = crate::commands::manpage::write_all(&man)?;
    for shell in [
        CompletionShell::Bash,
        CompletionShell::Zsh,
        CompletionShell::Fish,
    ] {
        let path = completions.join(completion_file(shell));
        let mut script = Vec::new();
        crate::commands::completion::write_script(shell, &mut script)?;
        fs::write(&path, script)?;
        written.push(path);
    }
    Ok(written)
}
