//! The entry point the binary calls: parse arguments, dispatch to a command, map errors to exit codes.

use std::ffi::OsString;
use std::process::ExitCode;

use crate::cli::{Cli, Command, ConfigCommand};
use crate::commands;
use crate::commands::CommandError;
use crate::context::Context;
use crate::error::Result;

pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().collect();
    if let Some(code) = crate::commands::completion::respond(&args) {
        return code;
    }
    let cli = match Cli::parse_args(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap uses 2 for usage errors and 0 for --help/--version, as vnode does.
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vnode: {}", shown(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

/// Whether a command reads or writes the image cache or the state directory (which must then
/// pass [`Context::check_dirs`]). Planning, the config, the lab and the host checks do not.
fn uses_cache_or_state(command: &Command) -> bool {
    !matches!(
        command,
        Command::Plan(_)
            | Command::Config(_)
            | Command::Lab(_)
            | Command::Host(_)
            | Command::Completions { .. }
            | Command::GenerateAssets { .. }
    )
}

/// An error message made safe for the terminal (it may quote hypervisors, guests and files),
/// line by line: its own line breaks stay.
fn shown(message: &str) -> String {
    message
        .split('\n')
        .map(crate::text::terminal::escaped)
        .collect::<Vec<_>>()
        .join("\n")
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    let Cli { global, command } = cli;
    crate::process::debug_log::init(global.verbose);
    crate::text::terminal::set_quiet(global.quiet);
    match &command {
        Command::Completions { shell } => {
            crate::commands::completion::write_script(*shell, &mut std::io::stdout().lock())
                .map_err(CommandError::WriteScript)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::GenerateAssets { dir } => {
            for path in crate::commands::assets::generate(dir).map_err(|source| {
                CommandError::WriteAssets {
                    dir: dir.clone(),
                    source,
                }
            })? {
                println!("{}", path.display());
            }
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    // Lab commands manage the lab itself; every other command may run inside one. Entering the
    // lab's namespaces must happen before any thread starts (setns into a mount namespace fails
    // in a multi-threaded process), so it is the first thing done.
    if let (Some(lab), false) = (&global.lab, matches!(command, Command::Lab(_))) {
        crate::lab::enter(lab)?;
    }
    if let Command::Config(ConfigCommand::Example) = command {
        print!("{}", crate::config::EXAMPLE);
        return Ok(ExitCode::SUCCESS);
    }
    let ctx = Context::load(global.config.as_deref(), global.lab.as_deref(), global.json)?;
    if uses_cache_or_state(&command) {
        ctx.check_dirs()?;
    }
    let done = match command {
        Command::Spawn(args) => return commands::spawn::run(&ctx, &args),
        Command::Reset(args) => return commands::reset::run(&ctx, &args),
        Command::Warm(args) => return commands::warm::run(&ctx, &args),
        Command::States => commands::states::run(&ctx),
        Command::Plan(args) => commands::plan::run(&ctx, &args),
        Command::Config(ConfigCommand::Show) => commands::config::show(&ctx),
        Command::Config(ConfigCommand::Example) => unreachable!("handled above"),
        Command::Images(cmd) => commands::images::run(&ctx, cmd),
        Command::Lab(cmd) => commands::lab::run(&ctx, cmd),
        Command::List => commands::list::run(&ctx),
        Command::Hosts => commands::hosts::run(&ctx),
        Command::Destroy(args) => commands::destroy::run(&ctx, &args),
        Command::Ssh(args) => commands::ssh::run(&ctx, &args),
        Command::Console { node } => commands::console::console(&ctx, &node),
        Command::Log { node } => commands::console::log(&ctx, &node),
        Command::SshConfig => commands::ssh::config(&ctx),
        Command::Inventory { format } => commands::inventory::run(&ctx, format),
        Command::Host(cmd) => commands::host::run(&ctx, cmd),
        Command::Completions { .. } | Command::GenerateAssets { .. } => {
            unreachable!("handled above")
        }
    };
    done.map(|()| ExitCode::SUCCESS)
}
