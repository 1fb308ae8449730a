//! Every command-line flag of vnode, and nothing else. Parsed once into these types; the rest of
//! the program works on the validated values they lead to.
//!
//! These definitions are also the one source of vnode's user-facing text: `Cli::command()` is
//! what `--help` shows, what the man pages are rendered from (`commands::manpage`) and what the
//! shell completions walk (`commands::completion`). The spec grammar in that text is
//! [`GRAMMAR`], never a copy.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::config::VirtType;
use crate::plan::site_dhcp::PlanFormat;
use crate::plan::spec::GRAMMAR;
use crate::spawn::slots::BootCap;
use crate::spawn::{WaitFor, WaitOn};

/// `ValueEnum` for the library's own enums, so that the library needs no clap: the names on the
/// command line, with their help.
macro_rules! value_enum {
    ($ty:ty { $($variant:path => $name:literal $(, $help:literal)?;)* }) => {
        impl ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                &[$($variant),*]
            }
            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(match self {
                    $($variant => PossibleValue::new($name)$(.help($help))?,)*
                })
            }
        }
    };
}

value_enum!(VirtType {
    VirtType::Auto => "auto", "Probe the host: use KVM only when a guest can really run under it, else TCG";
    VirtType::Kvm => "kvm", "Hardware virtualization";
    VirtType::Qemu => "qemu", "Software emulation (TCG): slow, but works everywhere";
});

value_enum!(PlanFormat {
    PlanFormat::Table => "table";
    PlanFormat::Json => "json";
    PlanFormat::Csv => "csv";
    PlanFormat::Dnsmasq => "dnsmasq";
    PlanFormat::IscDhcpd => "isc-dhcpd";
    PlanFormat::Hosts => "hosts";
});

value_enum!(WaitFor {
    WaitFor::Ssh => "ssh", "Ready at the first login with the pinned host key (facts read)";
    WaitFor::CloudInit => "cloud-init", "Ready when cloud-init has finished without error";
    WaitFor::Auto => "auto", "cloud-init when the config gives it later work (packages, runcmd, users), else ssh";
});

value_enum!(WaitOn {
    WaitOn::Private => "private", "The private address from libvirt's DHCP lease";
    WaitOn::Public => "public", "The plan's (or DNS's) public address";
});

#[derive(Debug, Parser)]
#[command(
    name = "vnode",
    version,
    about = "Spawn many fresh libvirt/qemu VMs at once from cloud images; returns when every one answers on ssh",
    long_about = None,
    after_help = specs_note()
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// Config file (default: $VNODE_CONFIG, ~/.config/vnode/config.toml, /etc/vnode/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// Act inside vnode's namespace lab (`vnode lab up`); `--lab=NAME` for another lab than "vnode".
    #[arg(long, global = true, value_name = "NAME", num_args = 0..=1, require_equals = true, default_missing_value = "vnode", env = "VNODE_LAB")]
    pub lab: Option<String>,
    /// Debug log on stderr: every external command with its duration and exit status (-vv: more).
    /// RUST_LOG=vnode=debug does the same.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress lines or bars: only the final table (or JSON) and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create nodes in parallel and wait until every one answers on ssh.
    Spawn(SpawnArgs),
    /// vnode's nodes with state, image, MACs and addresses.
    List,
    /// Destroy nodes and remove everything vnode made for them (their fresh states stay unless
    /// --purge).
    Destroy(DestroyArgs),
    /// Bring running nodes back to their fresh state in seconds (restored from the state saved
    /// at their first ready); nodes without one are re-created cold, and their state saved.
    Reset(ResetArgs),
    /// Prepare fresh states ahead of time: boot the nodes, save each one's state, remove the
    /// nodes. A later `vnode SPECS` restores them in seconds.
    Warm(WarmArgs),
    /// The fresh states: node, image, size, when made and last used, usable or why not.
    States,
    /// ssh into a node (vnode's known_hosts, strict host key checking).
    Ssh(SshArgs),
    /// The serial console of a node (`virsh console`).
    Console { node: String },
    /// The console log of a node.
    Log { node: String },
    /// An ssh_config for the ready nodes.
    SshConfig,
    /// An Ansible inventory of the ready nodes.
    Inventory {
        #[arg(long, value_enum, default_value_t = InventoryFormat::Ini)]
        format: InventoryFormat,
    },
    /// The DHCP/DNS plan (MAC -> name [-> address]) for the site's admin.
    Plan(PlanArgs),
    /// The config's [[hosts]]: reachable or why not, libvirt, virt types, CPUs, free memory,
    /// vnode's nodes and the base images each has.
    Hosts,
    /// The image cache: pull, list, import, rm, verify, derive.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Show the effective config, or print a commented example.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// vnode's self-contained namespace lab (libvirtd, networks and a site DHCP, all in namespaces).
    #[command(subcommand)]
    Lab(LabCommand),
    /// Check or prepare this host.
    #[command(subcommand)]
    Host(HostCommand),
    /// Print the shell completion script (`source <(vnode completions bash)`).
    Completions {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Write the man pages and completion scripts into DIR (for packaging).
    #[command(hide = true)]
    GenerateAssets { dir: PathBuf },
}

/// The shells vnode's completions support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args, Clone, Default)]
pub struct SpawnArgs {
    #[arg(value_name = "SPECS", help = specs_help())]
    pub specs: Vec<String>,
    /// Image for specs without ":DISTRO" (default: the catalog's default).
    #[arg(short, long)]
    pub distro: Option<String>,
    /// Print what would be created; touch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Create the nodes' files (disk, seed, keys) and print them and the virt-install command; do not define VMs.
    #[arg(long, conflicts_with = "dry_run")]
    pub prepare_only: bool,
    /// Destroy and undefine an existing node of the same name first.
    #[arg(long)]
    pub force: bool,
    /// Pull missing catalog images first (spawn never downloads otherwise).
    #[arg(long)]
    pub pull: bool,
    #[command(flatten)]
    pub ready: ReadyArgs,
    /// Hypervisor: kvm, qemu (TCG) or auto (overrides the config).
    #[arg(long, value_enum)]
    pub virt_type: Option<VirtType>,
    /// Seconds the waits ride out libvirt not answering (libvirtd restarting); overrides the
    /// config's libvirt_grace_secs (default 30).
    #[arg(long, value_name = "SECS")]
    pub libvirt_grace: Option<u64>,
    /// At most N nodes boot at once on each host (each host's CPU is its own); the others wait,
    /// "queued", with their files ready. A node holds its slot from its domain's start until it
    /// is ready or has failed; --timeout counts from then. `auto` (the default): one per host
    /// CPU under TCG, no cap under KVM. `all`: no cap. Overrides the config's parallel_boots.
    #[arg(long, value_name = "N|auto|all", value_parser = parse_boot_cap)]
    pub parallel: Option<BootCap>,
    /// Put every node of the command on this one of the config's [[hosts]] (a spec's @HOST
    /// still wins). Without it nodes are spread: fewest vnode nodes first, then most free memory.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Leave these [[hosts]] out of the spread (e.g. one that is down); repeatable.
    #[arg(long, value_name = "NAME")]
    pub skip_host: Vec<String>,
    /// Boot cold even when the node has a matching fresh state.
    #[arg(long)]
    pub cold: bool,
    /// Save every cold-booted node's fresh state at its first ready, once cloud-init is done
    /// (fresh_states = true; the default, auto, saves the nodes that wait for cloud-init anyway).
    #[arg(long, conflicts_with = "no_fresh_states")]
    pub fresh_states: bool,
    /// Neither restore nor save fresh states.
    #[arg(long)]
    pub no_fresh_states: bool,
}

/// How long and for what a command waits for its nodes (spawn and reset).
#[derive(Debug, Args, Clone)]
pub struct ReadyArgs {
    /// Seconds each node may take to become ready.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub timeout: u64,
    /// Which address readiness is checked on.
    #[arg(long, value_enum, default_value_t = WaitOn::Private)]
    pub wait_on: WaitOn,
    /// Which moment a node is ready at: ssh, cloud-init, or auto (cloud-init only when the config
    /// gives cloud-init's later stages work: packages, runcmd, extra users).
    #[arg(long, value_enum, default_value_t = WaitFor::Auto)]
    pub wait: WaitFor,
    /// A node whose public NIC gets no address from the site DHCP is still ready (by default it
    /// is reported as failed, with the DHCP line the site lacks).
    #[arg(long)]
    pub public_optional: bool,
}

impl Default for ReadyArgs {
    /// The flags' defaults.
    fn default() -> ReadyArgs {
        ReadyArgs {
            timeout: 300,
            wait_on: WaitOn::Private,
            wait: WaitFor::Auto,
            public_optional: false,
        }
    }
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Nodes to reset (specs without distro: each keeps its image).
    #[arg(required = true)]
    pub specs: Vec<String>,
    #[command(flatten)]
    pub ready: ReadyArgs,
    /// Re-create the nodes cold (and save new states) even when their states match.
    #[arg(long)]
    pub cold: bool,
}

#[derive(Debug, Args)]
pub struct WarmArgs {
    #[arg(required = true, value_name = "SPECS", help = specs_help())]
    pub specs: Vec<String>,
    /// Image for specs without ":DISTRO" (default: the catalog's default).
    #[arg(short, long)]
    pub distro: Option<String>,
    /// Pull missing catalog images first.
    #[arg(long)]
    pub pull: bool,
    /// Seconds each node may take to become ready.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub timeout: u64,
    /// Hypervisor: kvm, qemu (TCG) or auto (overrides the config).
    #[arg(long, value_enum)]
    pub virt_type: Option<VirtType>,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Nodes to destroy (specs without distro).
    #[arg(required = true)]
    pub specs: Vec<String>,
    /// Keep the node's disk (the domain is still undefined).
    #[arg(long)]
    pub keep_disk: bool,
    /// Remove the nodes' fresh states too.
    #[arg(long)]
    pub purge: bool,
}

#[derive(Debug, Args)]
pub struct SshArgs {
    pub node: String,
    /// Command to run instead of a login shell.
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InventoryFormat {
    Ini,
    Yaml,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Nodes to plan for (default: every node of every pool).
    pub specs: Vec<String>,
    /// Only this pool's nodes.
    #[arg(long, conflicts_with = "specs")]
    pub pool: Option<String>,
    #[arg(long, value_enum, default_value_t = PlanFormat::Table)]
    pub format: PlanFormat,
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Download catalog images into the cache (verified, resumable).
    Pull {
        #[arg(required = true)]
        names: Vec<String>,
        /// Download again even when cached.
        #[arg(long)]
        force: bool,
        /// Trust the checksum file without checking its OpenPGP signature (recorded in the
        /// image's metadata).
        #[arg(long)]
        no_signature: bool,
    },
    /// Cached images (with --available: the catalog).
    List {
        #[arg(long)]
        available: bool,
    },
    /// Add a local qcow2 file to the cache under NAME.
    Import(ImportArgs),
    /// Remove images from the cache.
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Re-hash cached images against their recorded digests.
    Verify { names: Vec<String> },
    /// Upload cached images to the [[hosts]] (each once per host, by digest; spawn does it
    /// when a host lacks one).
    Push {
        #[arg(required = true)]
        names: Vec<String>,
        /// Only to this host (default: every host).
        #[arg(long, value_name = "NAME")]
        host: Option<String>,
    },
    /// Make a new image BASE-NAME by running commands in a fresh node of BASE.
    Derive {
        base: String,
        name: String,
        /// The temporary node (default: a free number of the default pool).
        #[arg(long)]
        node: Option<String>,
        /// A script to run as root in the node.
        #[arg(long)]
        script: Option<PathBuf>,
        /// Seconds to wait for the temporary node to be ready.
        #[arg(long, default_value_t = 300, value_name = "SECS")]
        timeout: u64,
        #[arg(last = true)]
        command: Vec<String>,
    },
}

/// `vnode images import FILE --name NAME ...`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    pub file: PathBuf,
    #[arg(long)]
    pub name: String,
    /// Expected sha256 of the file.
    #[arg(long, conflicts_with = "checksums")]
    pub sha256: Option<String>,
    /// The distribution's checksum file listing FILE (CHECKSUM, SHA256SUMS, SHA512SUMS);
    /// its OpenPGP signature is checked like a pull checks it.
    #[arg(long, value_name = "FILE")]
    pub checksums: Option<PathBuf>,
    /// The detached signature of --checksums (SHA256SUMS.gpg, SHA512SUMS.sign); without it
    /// the checksum file must be clear-signed.
    #[arg(long, value_name = "FILE", requires = "checksums")]
    pub signature: Option<PathBuf>,
    /// A key the checksums must be signed by: a built-in key name or a key file (default:
    /// the keys of the catalog entry of the same name). Repeatable.
    #[arg(long = "signing-key", value_name = "KEY", requires = "checksums")]
    pub signing_keys: Vec<String>,
    /// osinfo id for virt-install.
    #[arg(long)]
    pub osinfo: Option<String>,
    /// Replace an image of the same name.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The effective config and where it came from.
    Show,
    /// A commented example config.
    Example,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Create the lab (namespaces, libvirtd, private network, public bridge with its DHCP).
    Up {
        /// Make it a site with N hypervisor hosts (h1..hN, each with its own libvirtd and sshd,
        /// reached as qemu+ssh://root@ADDRESS/system); 0: the lab is its own single host.
        #[arg(long, value_name = "N", default_value_t = 0,
              value_parser = clap::value_parser!(u8).range(0..=crate::lab::MAX_HOSTS as i64))]
        hosts: u8,
    },
    /// Stop everything the lab started and remove its namespaces.
    Down,
    /// What runs in the lab.
    Status,
    /// Run a command inside the lab's namespaces (the site's, or a host's with --host).
    Exec {
        /// Run it in this host of the lab (h1, h2, ...) instead of the site.
        #[arg(long, value_name = "HOST")]
        host: Option<String>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Can this host run vnode? Each check: ok, warn or fail, with the fix.
    Check,
    /// Create or delete the public bridge.
    #[command(subcommand)]
    Bridge(BridgeCommand),
}

#[derive(Debug, Subcommand)]
pub enum BridgeCommand {
    /// Create the public bridge on an uplink (prints the plan, asks before changing anything).
    Create {
        #[arg(long)]
        uplink: String,
        #[command(flatten)]
        target: BridgeTarget,
    },
    /// Delete the public bridge and give its addresses back to the uplink.
    Delete {
        #[command(flatten)]
        target: BridgeTarget,
    },
}

/// Which bridge, and how a change to the host's network is confirmed.
#[derive(Debug, Args)]
pub struct BridgeTarget {
    #[arg(long, default_value = "br0")]
    pub name: String,
    /// Show the steps; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

impl Cli {
    /// Parses vnode's arguments; `vnode SPECS...` is read as `vnode spawn SPECS...`.
    pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Cli::try_parse_from(with_implicit_spawn(
            args.into_iter().map(Into::into).collect(),
        ))
    }
}

/// Help of spawn's SPECS: the grammar, from the one place that defines it.
fn specs_help() -> String {
    format!("Node specs: {GRAMMAR}")
}

/// The closing note of `vnode --help` (and of vnode(1)'s description).
fn specs_note() -> String {
    format!(
        "{}, e.g. `vnode 3:f43 vnode4 vnode18:u24.04 20-22`.\n\
         `vnode SPECS...` is short for `vnode spawn SPECS...`.",
        specs_help()
    )
}

/// A `--parallel` value that is not a cap on boots.
#[derive(Debug, thiserror::Error)]
pub enum BootCapError {
    #[error("0 nodes at a time would boot none: give 1 or more, `auto` or `all`")]
    Zero,
    #[error("{0:?} is not a number of nodes: give a number (1 or more), `auto` or `all`")]
    NotANumber(String),
}

/// `--parallel`: a number of nodes, at least 1, `auto` or `all`.
fn parse_boot_cap(value: &str) -> Result<BootCap, BootCapError> {
    match value {
        "all" => return Ok(BootCap::All),
        "auto" => return Ok(BootCap::Auto),
        _ => {}
    }
    let n: usize = value
        .parse()
        .map_err(|_| BootCapError::NotANumber(value.to_string()))?;
    std::num::NonZeroUsize::new(n)
        .map(BootCap::At)
        .ok_or(BootCapError::Zero)
}

/// Inserts `spawn` after the program name when the first positional argument is not a
/// subcommand (`vnode --dry-run 3:f43` → `vnode spawn --dry-run 3:f43`). Global options are
/// accepted after the subcommand too, so inserting right after the program name is enough.
fn with_implicit_spawn(mut args: Vec<OsString>) -> Vec<OsString> {
    let cmd = Cli::command();
    let spawn = cmd.find_subcommand("spawn").expect("spawn exists");
    let subcommands: Vec<&str> = cmd
        .get_subcommands()
        .map(|c| c.get_name())
        .chain(["help"])
        .collect();
    // Options that take their value as the next argument (`--config FILE`, `-d f43`).
    let valued: Vec<String> = cmd
        .get_arguments()
        .chain(spawn.get_arguments())
        .filter(|a| {
            !a.is_positional() && a.get_action().takes_values() && !a.is_require_equals_set()
        })
        .flat_map(|a| {
            let long = a.get_long().map(|l| format!("--{l}"));
            let short = a.get_short().map(|s| format!("-{s}"));
            long.into_iter().chain(short)
        })
        .collect();
    let mut rest = args.iter().skip(1).map(|a| a.to_string_lossy());
    let mut first_positional = None;
    let mut asks_for_help = false;
    while let Some(arg) = rest.next() {
        if arg == "--" {
            first_positional = rest.next().map(|a| a.into_owned());
            break;
        } else if valued.iter().any(|v| *v == arg) {
            rest.next();
        } else if ["-h", "--help", "-V", "--version"].contains(&arg.as_ref()) {
            asks_for_help = true;
        } else if !arg.starts_with('-') {
            first_positional = Some(arg.into_owned());
            break;
        }
    }
    let is_subcommand = first_positional
        .as_deref()
        .is_some_and(|p| subcommands.contains(&p));
    let help_only = first_positional.is_none() && asks_for_help;
    if !is_subcommand && !help_only && !args.is_empty() {
        args.insert(1, "spawn".into());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn_args(args: &[&str]) -> SpawnArgs {
        match Cli::parse_args(args).unwrap().command {
            Command::Spawn(s) => s,
            other => panic!("not spawn: {other:?}"),
        }
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bare_specs_mean_spawn() {
        let s = spawn_args(&["vnode", "--dry-run", "3:f33", "vnode4"]);
        assert_eq!(s.specs, ["3:f33", "vnode4"]);
        assert!(s.dry_run);
        let s = spawn_args(&["vnode", "--config", "plan", "-d", "list", "3"]);
        assert_eq!(s.specs, ["3"]);
        assert_eq!(s.distro.as_deref(), Some("list"));
        assert!(matches!(
            Cli::parse_args(["vnode", "--config", "x", "plan"])
                .unwrap()
                .command,
            Command::Plan(_)
        ));
        assert!(matches!(
            Cli::parse_args(["vnode", "--json", "list"])
                .unwrap()
                .command,
            Command::List
        ));
        let help = Cli::parse_args(["vnode", "--help"]).unwrap_err();
        assert!(help.to_string().contains("Commands:"), "{help}");
    }

    #[test]
    fn lab_flag_does_not_eat_a_spec() {
        let cli = Cli::parse_args(["vnode", "--lab", "3"]).unwrap();
        assert_eq!(cli.global.lab.as_deref(), Some("vnode"));
        assert!(matches!(cli.command, Command::Spawn(s) if s.specs == ["3"]));
        let cli = Cli::parse_args(["vnode", "--lab=other", "plan"]).unwrap();
        assert_eq!(cli.global.lab.as_deref(), Some("other"));
    }

    #[test]
    fn lab_up_takes_up_to_eight_hosts() {
        let hosts = |args: &[&str]| match Cli::parse_args(args).map(|c| c.command) {
            Ok(Command::Lab(LabCommand::Up { hosts })) => Ok(hosts),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.exit_code()),
        };
        assert_eq!(hosts(&["vnode", "lab", "up"]), Ok(0));
        assert_eq!(hosts(&["vnode", "lab", "up", "--hosts", "3"]), Ok(3));
        assert_eq!(hosts(&["vnode", "lab", "up", "--hosts", "9"]), Err(2));
        let cli = Cli::parse_args([
            "vnode", "lab", "exec", "--host", "h2", "--", "virsh", "list",
        ])
        .unwrap();
        let Command::Lab(LabCommand::Exec { host, command }) = cli.command else {
            panic!()
        };
        assert_eq!((host.as_deref(), command.len()), (Some("h2"), 2));
    }
}
