//! Shell completions that know vnode's nodes, images and labs.
//!
//! One scheme for every shell: the script a shell sources (`vnode completions SHELL`) asks the
//! vnode binary for candidates at each Tab (clap_complete's dynamic completion: `COMPLETE=SHELL
//! vnode -- WORDS`). Verbs, flags and enumerated values come from the clap definitions; node
//! names, image names and lab names from vnode's own state at the moment of the Tab.

mod bash;
mod known;

use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};
use clap_complete::env::{CompleteEnv, EnvCompleter, Shells};

use crate::cli::{Cli, CompletionShell};

/// The environment variable that turns a run of vnode into a completion request.
const VAR: &str = "COMPLETE";

const SHELLS: Shells<'static> = Shells(&[
    &bash::Bash,
    &clap_complete::env::Zsh,
    &clap_complete::env::Fish,
]);

/// Answers a completion request (`COMPLETE=SHELL vnode -- WORDS`); None for an ordinary run.
pub fn respond(args: &[OsString]) -> Option<ExitCode> {
    if std::env::var_os(VAR).is_none_or(|v| v.is_empty() || v == "0") {
        return None;
    }
    known::remember_words(args);
    let current_dir = std::env::current_dir().ok();
    let answered = CompleteEnv::with_factory(command)
        .var(VAR)
        .shells(SHELLS)
        .bin("vnode")
        .completer("vnode")
        .try_complete(args.iter().cloned(), current_dir.as_deref());
    match answered {
        Ok(true) => Some(ExitCode::SUCCESS),
        Ok(false) => None,
        Err(e) => {
            let _ = e.print();
            Some(ExitCode::from(e.exit_code() as u8))
        }
    }
}

/// Writes the script `shell` sources to complete vnode (it calls `vnode` from PATH).
pub fn write_script(shell: CompletionShell, out: &mut dyn Write) -> io::Result<()> {
    adapter(shell).write_registration(VAR, "vnode", "vnode", "vnode", out)
}

fn adapter(shell: CompletionShell) -> &'static dyn EnvCompleter {
    match shell {
        CompletionShell::Bash => &bash::Bash,
        CompletionShell::Zsh => &clap_complete::env::Zsh,
        CompletionShell::Fish => &clap_complete::env::Fish,
    }
}

/// vnode's command tree as completion sees it: the clap definitions, with value completers on
/// the arguments that name nodes, images or labs.
fn command() -> clap::Command {
    let cmd = Cli::command()
        .mut_arg("lab", |a| a.add(names(known::labs)))
        .mut_subcommand("spawn", |c| {
            let c = with_completer(c, "specs", ArgValueCompleter::new(spec_distro));
            with_completer(c, "distro", names(known::distros))
        })
        .mut_subcommand("destroy", |c| {
            with_completer(c, "specs", names(known::nodes))
        })
        .mut_subcommand("reset", |c| with_completer(c, "specs", names(known::nodes)))
        .mut_subcommand("warm", |c| {
            let c = with_completer(c, "specs", ArgValueCompleter::new(spec_distro));
            with_completer(c, "distro", names(known::distros))
        })
        .mut_subcommand("ssh", |c| with_completer(c, "node", names(known::nodes)))
        .mut_subcommand("console", |c| {
            with_completer(c, "node", names(known::nodes))
        })
        .mut_subcommand("log", |c| with_completer(c, "node", names(known::nodes)))
        .mut_subcommand("images", |c| {
            c.mut_subcommand("pull", |c| {
                with_completer(c, "names", names(known::catalog))
            })
            .mut_subcommand("rm", |c| {
                with_completer(c, "names", names(known::cached_images))
            })
            .mut_subcommand("verify", |c| {
                with_completer(c, "names", names(known::cached_images))
            })
            .mut_subcommand("derive", |c| {
                with_completer(c, "base", names(known::distros))
            })
        });
    with_implicit_spawn(cmd)
}

/// Adds `completer` to argument `id` of `cmd`, in place (`Command::mut_arg` would move the
/// argument to the end, and with it a positional's index).
fn with_completer(cmd: clap::Command, id: &str, completer: ArgValueCompleter) -> clap::Command {
    assert!(
        cmd.get_arguments().any(|a| a.get_id() == id),
        "{} has no argument {id}",
        cmd.get_name()
    );
    cmd.mut_args(|a| {
        if a.get_id() == id {
            a.add(completer.clone())
        } else {
            a
        }
    })
}

/// `vnode SPECS...` means `vnode spawn SPECS...` (see `cli::with_implicit_spawn`), so the top
/// level completes spawn's arguments too: its specs and flags are mirrored there.
fn with_implicit_spawn(cmd: clap::Command) -> clap::Command {
    let spawn = cmd.find_subcommand("spawn").expect("spawn exists");
    let mirrored: Vec<clap::Arg> = spawn
        .get_arguments()
        .filter(|a| !a.is_global_set() && a.get_id() != "help")
        .cloned()
        .collect();
    cmd.args(mirrored)
}

/// Candidates from one of [`known`]'s lists that start with the word under the cursor.
fn names(list: fn() -> Vec<String>) -> ArgValueCompleter {
    ArgValueCompleter::new(move |current: &OsStr| {
        let current = current.to_string_lossy();
        list()
            .into_iter()
            .filter(|n| n.starts_with(current.as_ref()))
            .map(CompletionCandidate::new)
            .collect::<Vec<_>>()
    })
}

/// A spawn spec: after `NUMBER:`, the distros (`3:f` → `3:fedora-43`, ...). Before the colon
/// there is nothing to offer (any number of the pool is a new node).
fn spec_distro(current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    let Some((node, distro)) = current.rsplit_once(':') else {
        return Vec::new();
    };
    known::distros()
        .into_iter()
        .filter(|d| d.starts_with(distro))
        .map(|d| CompletionCandidate::new(format!("{node}:{d}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_tree_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn every_shell_has_a_script_that_calls_vnode() {
        for shell in [
            CompletionShell::Bash,
            CompletionShell::Zsh,
            CompletionShell::Fish,
        ] {
            let mut out = Vec::new();
            write_script(shell, &mut out).unwrap();
            let script = String::from_utf8(out).unwrap();
            assert!(
                script.contains("COMPLETE=") && script.contains("vnode"),
                "{shell:?}: {script}"
            );
        }
    }
}
