//! `vnode images derive BASE NAME [--node SPEC] [--script FILE] [-- CMD...]`: a new image made by
//! running commands in a temporary node of BASE.
//!
//! The node is spawned like any other (so it is ready, reachable with its pinned host key), the
//! commands run as root over ssh with `set -e` and live output, and the first failure stops
//! everything: the node is destroyed and nothing is added to the cache. On success the guest is
//! cleaned for reuse (cloud-init state, machine-id, ssh host keys, the keys vnode authorized),
//! powered off through ACPI, and its disk flattened into a standalone qcow2 that enters the cache
//! as `BASE-NAME` with its parent recorded ([`crate::images::commit_flattened`]). The temporary
//! node is destroyed in every case.
//!
//! Ctrl-C while the node comes up (the spawn's own handling) or while the commands run stops
//! them, removes the temporary node (domain and files) and exits 130. Once the removal has begun
//! further Ctrl-Cs are ignored, and said to be: a removal stopped half way would leave a domain
//! without its files or files without a domain. (Flattening the disk is not interruptible
//! either: it is a local copy that ends on its own.)

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::commands::DeriveError;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::hosts::hypervisor::{Hypervisor, Keep, RemoveError};
use crate::images::catalog::check_name;
use crate::images::{Cache, CachedImage, DerivedImage, commit_flattened};
use crate::node;
use crate::node::ready::ReadyRecord;
use crate::plan::spec::NodeRequest;
use crate::process::runtime::{self, Flavor};
use crate::spawn::report::Outcome;
use crate::spawn::{SpawnOptions, Target, WaitFor, WaitOn};
use crate::ssh::{ClientKey, Session};

/// How long the guest may take to power off after the ACPI request.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(120);
/// Where the commands are copied in the guest (tmpfs: never part of the image).
const GUEST_SCRIPT: &str = "/run/vnode-derive.sh";
/// The authorized keys vnode put in the guest, one key body a line, for the cleanup.
const GUEST_KEYS: &str = "/run/vnode-derive.keys";

/// What `vnode images derive` was asked.
#[derive(Clone, Debug)]
pub struct DeriveRequest {
    pub base: String,
    pub name: String,
    pub node: Option<String>,
    pub script: Option<PathBuf>,
    pub command: Vec<String>,
    /// Seconds the temporary node may take to be ready.
    pub timeout: u64,
}

/// The script to run and how the metadata describes it.
fn script_of(req: &DeriveRequest) -> Result<(String, String)> {
    match (&req.script, req.command.is_empty()) {
        (Some(_), false) => Err(Error::Usage(
            "give either --script FILE or -- COMMAND..., not both".into(),
        )),
        (None, true) => Err(Error::Usage(
            "nothing to run: give --script FILE or -- COMMAND...".into(),
        )),
        (Some(path), true) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::Usage(format!("cannot read the script {}: {e}", path.display()))
            })?;
            Ok((text.clone(), format!("script {}:\n{text}", path.display())))
        }
        (None, false) => {
            let line = crate::text::shell::join(&req.command);
            Ok((format!("{line}\n"), line))
        }
    }
}

/// The shell command that runs the uploaded script: through its own interpreter when it has a
/// `#!` line, else with `sh -e` (stop at the first failure).
fn run_command(script: &str) -> String {
    if script.starts_with("#!") {
        format!("chmod 700 {GUEST_SCRIPT} && exec {GUEST_SCRIPT} </dev/null")
    } else {
        format!("exec sh -e {GUEST_SCRIPT} </dev/null")
    }
}

/// Makes the guest reusable as a base image: the next boot is a first boot for cloud-init, with a
/// new machine-id and the host keys of the new node's seed.
fn cleanup_script() -> String {
    format!(
        r#"set -e
cloud-init clean --logs
truncate -s 0 /etc/machine-id
rm -f /var/lib/dbus/machine-id /etc/ssh/ssh_host_*
for f in /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys; do
  [ -f "$f" ] || continue
  grep -v -F -f {GUEST_KEYS} "$f" > "$f.vnode-derive" || true
  if [ -s "$f.vnode-derive" ]; then cat "$f.vnode-derive" > "$f"; fi
  rm -f "$f.vnode-derive"
  [ -s "$f" ] || rm -f "$f"
done
rm -f {GUEST_KEYS} {GUEST_SCRIPT}
sync
"#
    )
}

/// The key bodies vnode authorized in the node (its client key, the config's keys and users').
fn injected_keys(ctx: &Context, client: &ClientKey) -> Result<String> {
    let mut keys =
        node::authorized_keys::resolve(&ctx.config.ssh_keys).map_err(node::NodeError::from)?;
    for user in &ctx.config.users {
        keys.extend(
            node::authorized_keys::resolve_user(&user.ssh_keys).map_err(node::NodeError::from)?,
        );
    }
    keys.push(client.public_openssh.clone());
    let mut out = String::new();
    for k in keys {
        if let Some(body) = k.split_whitespace().nth(1) {
            out.push_str(body);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Runs `vnode images derive`; returns the new image.
pub fn derive(ctx: &Context, req: &DeriveRequest) -> Result<CachedImage> {
    let local = ctx.local_images();
    let base = ctx.catalog.resolve(&req.base, &local)?;
    let cache = Cache::open(&ctx.config.cache_dir)?;
    let base_image = cache.require(&base)?;
    let name = new_image_name(&cache, &base.name, &req.name)?;
    let (script, source) = script_of(req)?;
    let host = Hypervisor::local(&ctx.config);
    let rt = runtime::build(Flavor::MultiThread)?;
    let request = rt.block_on(temporary_node(ctx, &host, req.node.as_deref(), &base))?;
    let node_name = request.name.to_string();
    if !ctx.json {
        eprintln!(
            "vnode: deriving {name} from {} in temporary node {node_name}",
            base.name
        );
    }
    let nodes =
        crate::plan::planned_node::plan_cached(vec![request], &cache, &ctx.catalog, host.name())?;
    let result = rt.block_on(spawn_and_build(ctx, req, &host, nodes, &node_name, &script));
    let interrupted = matches!(result, Err(Error::Interrupted));
    if interrupted {
        eprintln!(
            "vnode: interrupted; removing the temporary node {node_name} (Ctrl-C is ignored until it is removed)"
        );
    }
    let result = result.and_then(|()| {
        let overlay = host.node_paths(&node_name).active_disk();
        if !ctx.json {
            eprintln!("vnode: flattening {} into {name}", overlay.display());
        }
        let image = DerivedImage {
            name: name.clone(),
            parent: base_image.name.clone(),
            osinfo: base_image
                .meta
                .osinfo
                .clone()
                .or_else(|| ctx.catalog.get(&base.name).map(|e| e.osinfo.clone())),
            source: source.clone(),
        };
        Ok(commit_flattened(&cache, &overlay, &image)?)
    });
    let removed = rt.block_on(remove_ignoring_ctrl_c(&host, &node_name));
    outcome(name, node_name, interrupted, result, removed)
}

/// `BASE-NAME`, which must be a valid image name not in the cache yet.
fn new_image_name(cache: &Cache, base: &str, name: &str) -> Result<String> {
    let name = format!("{base}-{}", name.to_ascii_lowercase());
    check_name(&name)
        .map_err(|reason| Error::Usage(format!("'{name}' cannot name an image: {reason}")))?;
    if cache.image_path(&name).exists() {
        return Err(Error::Usage(format!(
            "image {name} is already in the cache; `vnode images rm {name}` first to make it again"
        )));
    }
    Ok(name)
}

/// Spawns the temporary node (waiting for cloud-init's end), then runs the commands in it and
/// powers it off. Ctrl-C at any point: `Error::Interrupted`.
async fn spawn_and_build(
    ctx: &Context,
    req: &DeriveRequest,
    host: &Hypervisor,
    nodes: Vec<crate::plan::planned_node::PlannedNode>,
    node_name: &str,
    script: &str,
) -> Result<()> {
    let target = Target {
        host: host.clone(),
        accel: crate::hosts::kvm_probe::resolve(ctx.config.virt_type).accel(),
        cpus: None,
    };
    let options = SpawnOptions {
        timeout: Duration::from_secs(req.timeout),
        wait_on: WaitOn::default(),
        // The commands must not race cloud-init, nor its cleanup a cloud-init still running.
        wait: WaitFor::CloudInit,
        force: false,
        libvirt_grace: Duration::from_secs(ctx.config.libvirt_grace_secs),
        // The temporary node is reached on its private address; its public one is not needed.
        public_optional: true,
        // One node: nothing to cap.
        parallel: crate::spawn::slots::BootCapChoice {
            flag: Some(crate::spawn::slots::BootCap::All),
            config: None,
        },
        // The temporary node is made once and flattened: no state to keep.
        fresh: crate::spawn::FreshOptions::off(),
    };
    let report = crate::spawn::spawn(&ctx.config, &[target], &options, nodes)
        .await?
        .into_iter()
        .next()
        .expect("one node, one report");
    if report.outcome == Outcome::Interrupted {
        return Err(Error::Interrupted);
    }
    if report.outcome != Outcome::Ready {
        return Err(DeriveError::NotReady {
            node: node_name.to_string(),
            outcome: report.outcome,
            error: report.error.unwrap_or_default(),
        }
        .into());
    }
    tokio::select! {
        built = build(ctx, host, node_name, script) => built,
        _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
    }
}

/// The command's end from what happened to the image and to the temporary node.
fn outcome(
    name: String,
    node_name: String,
    interrupted: bool,
    result: Result<CachedImage>,
    removed: Result<(), RemoveError>,
) -> Result<CachedImage> {
    if interrupted {
        return Err(match removed {
            Ok(()) => Error::InterruptedWith(format!(
                "the temporary node {node_name} is removed; nothing was added to the cache"
            )),
            Err(e) => Error::InterruptedWith(format!(
                "nothing was added to the cache, but the temporary node could not be removed: {e}; `vnode destroy {node_name}`"
            )),
        });
    }
    match (result, removed) {
        (Ok(image), Ok(())) => Ok(image),
        (Ok(_), Err(removal)) => Err(DeriveError::MadeButNotRemoved {
            name,
            node: node_name,
            removal: Box::new(removal),
        }
        .into()),
        (Err(e), Ok(())) => Err(Error::DeriveFailed {
            source: Box::new(e),
            node: node_name,
        }),
        (Err(e), Err(removal)) => Err(Error::DeriveFailedNotRemoved {
            source: Box::new(e),
            node: node_name,
            removal: Box::new(removal),
        }),
    }
}

/// Removes the temporary node; a Ctrl-C meanwhile is answered with a line, not obeyed.
async fn remove_ignoring_ctrl_c(
    host: &Hypervisor,
    node_name: &str,
) -> Result<(), crate::hosts::hypervisor::RemoveError> {
    let removal = host.remove_node(node_name, Keep::Nothing);
    tokio::pin!(removal);
    loop {
        tokio::select! {
            removed = &mut removal => return removed,
            _ = tokio::signal::ctrl_c() => eprintln!(
                "vnode: still removing the temporary node {node_name}; Ctrl-C is ignored until it is removed"
            ),
        }
    }
}

/// The temporary node: `--node SPEC` (which must not exist), or the lowest free number of the
/// default pool (no domain, no node directory).
async fn temporary_node(
    ctx: &Context,
    host: &Hypervisor,
    spec: Option<&str>,
    base: &crate::images::catalog::ImageRef,
) -> Result<NodeRequest> {
    let domains = host.virsh().domains().await?;
    let free =
        |name: &str| !domains.iter().any(|d| d == name) && !host.node_paths(name).dir.exists();
    let (pool, name) = match spec {
        Some(spec) => {
            let mut nodes =
                crate::plan::spec::resolve_names(&[spec.to_string()], &ctx.config.pools)?;
            if nodes.len() != 1 {
                return Err(Error::Usage(format!("--node {spec}: name one node")));
            }
            let (pool, name) = nodes.remove(0);
            if !free(&name.to_string()) {
                return Err(Error::Usage(format!(
                    "--node {spec}: {name} exists; destroy it or choose another node"
                )));
            }
            (pool, name)
        }
        None => {
            let pool = ctx.config.pools.default_pool().clone();
            let name = (pool.first..=pool.last)
                .map(|n| pool.node(n))
                .find(|n| free(&n.to_string()))
                .ok_or_else(|| DeriveError::NoFreeNode {
                    pool: pool.stem.clone(),
                })?;
            (pool, name)
        }
    };
    Ok(NodeRequest {
        name,
        pool,
        image: base.clone(),
        host: None,
    })
}

/// In the ready node: the commands, the cleanup, then a clean power-off.
async fn build(ctx: &Context, host: &Hypervisor, node_name: &str, script: &str) -> Result<()> {
    let (session, client) = connect(host, node_name).await?;
    run_script(&session, node_name, script).await?;
    clean_for_reuse(ctx, &session, &client, node_name).await?;
    session.close().await;
    shutdown(host, node_name).await
}

/// An ssh session to the ready node, with the pinned host key and vnode's client key.
async fn connect(host: &Hypervisor, node_name: &str) -> Result<(Session, ClientKey)> {
    let paths = host.node_paths(node_name);
    let address = ReadyRecord::load(&paths)
        .and_then(|r| r.address())
        .ok_or_else(|| DeriveError::NoAddress {
            node: node_name.to_string(),
        })?;
    let host_key_path = paths.host_key_pub();
    let host_key =
        std::fs::read_to_string(&host_key_path).map_err(|source| DeriveError::ReadHostKey {
            path: host_key_path.clone(),
            source,
        })?;
    let client =
        ClientKey::load_or_create(&host.client_key()).map_err(crate::spawn::SpawnError::from)?;
    let session = Session::connect(
        &host.guest_ssh(address).to_string(),
        host_key.trim(),
        &client,
        Duration::from_secs(30),
    )
    .await
    .map_err(crate::spawn::SpawnError::from)?;
    Ok((session, client))
}

fn ssh_err(e: crate::ssh::SshError) -> Error {
    Error::from(crate::spawn::SpawnError::from(e))
}

/// Uploads the script, then runs it with its output shown live. Uploaded first: the script
/// reads no stdin, so a command in it cannot eat the rest of it.
async fn run_script(session: &Session, node_name: &str, script: &str) -> Result<()> {
    let quiet = |_: &[u8]| {};
    let live = |data: &[u8]| {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(data);
        let _ = err.flush();
    };
    let status = session
        .exec_streaming(
            &format!("umask 077 && cat > {GUEST_SCRIPT}"),
            script.as_bytes(),
            quiet,
        )
        .await
        .map_err(ssh_err)?;
    if status != Some(0) {
        return Err(DeriveError::CopyCommands {
            node: node_name.to_string(),
            status,
        }
        .into());
    }
    let status = session
        .exec_streaming(&run_command(script), b"", live)
        .await
        .map_err(ssh_err)?;
    match status {
        Some(0) => Ok(()),
        Some(n) => Err(DeriveError::CommandsFailed {
            node: node_name.to_string(),
            status: n,
        }
        .into()),
        None => Err(DeriveError::CommandsKilled {
            node: node_name.to_string(),
        }
        .into()),
    }
}

/// Copies the list of keys vnode authorized, then runs the cleanup that removes them (and the
/// node's identity) from the guest.
async fn clean_for_reuse(
    ctx: &Context,
    session: &Session,
    client: &ClientKey,
    node_name: &str,
) -> Result<()> {
    let keys = injected_keys(ctx, client)?;
    let status = session
        .exec_streaming(&format!("cat > {GUEST_KEYS}"), keys.as_bytes(), |_| {})
        .await
        .map_err(ssh_err)?;
    if status != Some(0) {
        return Err(DeriveError::CopyKeys {
            node: node_name.to_string(),
            status,
        }
        .into());
    }
    let mut out = Vec::new();
    let status = session
        .exec_streaming("exec sh -s", cleanup_script().as_bytes(), |d| {
            out.extend_from_slice(d)
        })
        .await
        .map_err(ssh_err)?;
    if status != Some(0) {
        return Err(DeriveError::Cleanup {
            node: node_name.to_string(),
            status,
            output: String::from_utf8_lossy(&out).trim().to_string(),
        }
        .into());
    }
    Ok(())
}

/// ACPI power-off, repeated now and then (a guest may miss the first event), until the domain is
/// off.
async fn shutdown(host: &Hypervisor, node_name: &str) -> Result<()> {
    let virsh = host.virsh();
    let start = Instant::now();
    let mut asked = None::<Instant>;
    loop {
        match virsh.domain_state(node_name).await? {
            None => {
                return Err(DeriveError::Disappeared {
                    node: node_name.to_string(),
                }
                .into());
            }
            Some(s) if s == "shut off" => return Ok(()),
            Some(_) => {}
        }
        if start.elapsed() > SHUTDOWN_TIMEOUT {
            return Err(DeriveError::NoPowerOff {
                node: node_name.to_string(),
                seconds: SHUTDOWN_TIMEOUT.as_secs(),
            }
            .into());
        }
        if asked.is_none_or(|t| t.elapsed() > Duration::from_secs(20)) {
            // A guest that is already on its way down may refuse; the state decides.
            let _ = virsh.shutdown(node_name).await;
            asked = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_comes_from_the_command_or_the_file_never_both() {
        let mut req = DeriveRequest {
            base: "b".into(),
            name: "n".into(),
            node: None,
            script: None,
            command: vec!["sh".into(), "-c".into(), "echo hi > /etc/m".into()],
            timeout: 1,
        };
        let (script, source) = script_of(&req).unwrap();
        assert_eq!(script, "sh -c 'echo hi > /etc/m'\n");
        assert_eq!(source, "sh -c 'echo hi > /etc/m'");
        assert!(run_command(&script).contains("sh -e"));
        req.script = Some("/nonexistent".into());
        assert!(matches!(script_of(&req), Err(Error::Usage(_))));
        req.command.clear();
        assert!(matches!(script_of(&req), Err(Error::Usage(_))));
        req.script = None;
        assert!(matches!(script_of(&req), Err(Error::Usage(_))));
        assert!(run_command("#!/bin/bash\n").contains("exec /run"));
    }
}
