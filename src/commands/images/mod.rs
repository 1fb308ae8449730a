//! `vnode images ...`: pull, list, import, rm, verify. Names on the command line may be catalog
//! aliases (`f43`); the cache knows images by their canonical names (`fedora-43`).

pub mod derive;
pub mod push;

use indicatif::HumanBytes;
use serde::Serialize;

use crate::cli::{ImagesCommand, ImportArgs};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::images::catalog::{CatalogEntry, Checksum, ImageKind};
use crate::images::{
    self, Cache, ImageError, ImageMeta, Import, KeySource, Progress, PullOptions, State,
};
use crate::text::table::Table;

pub fn run(ctx: &Context, cmd: ImagesCommand) -> Result<()> {
    match cmd {
        ImagesCommand::List { available: true } => available(ctx),
        ImagesCommand::List { available: false } => list(ctx),
        ImagesCommand::Pull {
            names,
            force,
            no_signature,
        } => pull(
            ctx,
            &names,
            PullOptions {
                force,
                check_signatures: !no_signature,
                max_image_mib: ctx.config.max_image_mib,
            },
        ),
        ImagesCommand::Import(args) => import(ctx, args),
        ImagesCommand::Rm { names } => rm(ctx, &names),
        ImagesCommand::Verify { names } => verify(ctx, &names),
        ImagesCommand::Push { names, host } => push::run(ctx, &names, host.as_deref()),
        ImagesCommand::Derive {
            base,
            name,
            node,
            script,
            timeout,
            command,
        } => derive(
            ctx,
            &crate::commands::images::derive::DeriveRequest {
                base,
                name,
                node,
                script,
                command,
                timeout,
            },
        ),
    }
}

fn cache(ctx: &Context) -> Result<Cache> {
    Ok(Cache::open(&ctx.config.cache_dir)?)
}

/// The cache name a command-line name means: a catalog entry's canonical name, or itself.
fn cache_name(ctx: &Context, name: &str) -> String {
    ctx.catalog
        .lookup(name)
        .map_or_else(|| name.to_ascii_lowercase(), |e| e.name.clone())
}

/// `vnode images pull NAME...`.
fn pull(ctx: &Context, names: &[String], options: PullOptions) -> Result<()> {
    let local = ctx.local_images();
    let entries = names
        .iter()
        .map(|n| pullable(ctx, n, &local))
        .collect::<Result<Vec<_>>>()?;
    let cache = cache(ctx)?;
    // One thread is enough for the network side: hashing and writing run on threads of their
    // own, and a single-threaded runtime saves the hops between hyper's connection task and
    // the download (measured: ~5% faster for a 1 GiB pull from a local mirror).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(crate::process::runtime::RuntimeError)?;
    let progress = Progress::auto();
    if !options.check_signatures {
        progress.note(
            "warning: --no-signature: the checksum files' OpenPGP signatures are not checked; \
             a mirror could hand out a forged image with a matching checksum file",
        );
    }
    // Ctrl-C drops the pull: its `.part` files stay for resume, nothing enters the cache (an
    // image appears only by the rename at the end of its pull, never half way).
    let pulled = runtime.block_on(async {
        tokio::select! {
            pulled = images::pull_with(&cache, &entries, options, &progress) => Some(pulled),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    let Some(pulled) = pulled else {
        // Do not wait for a blocking task (hashing a large `.part` before a resume) to finish.
        runtime.shutdown_background();
        return Err(images::pull_interrupted(&cache, &entries).into());
    };
    let pulled = pulled?;
    if ctx.json {
        ctx.print_json(&pulled);
    }
    Ok(())
}

/// The catalog entry behind a name given to `pull`.
fn pullable(ctx: &Context, name: &str, local: &[String]) -> Result<CatalogEntry> {
    let image = ctx.catalog.resolve(name, local)?;
    match &image.kind {
        ImageKind::Catalog => Ok(ctx
            .catalog
            .get(&image.name)
            .expect("resolved to a catalog entry")
            .clone()),
        ImageKind::Local => Err(Error::Usage(format!(
            "{name} is an imported image, not a catalog image: there is nothing to pull"
        ))),
        ImageKind::Derived { base, variant } => Err(Error::Usage(format!(
            "{name} is not in the catalog; pull {base}, then make {} with `vnode images derive {base} {variant} -- COMMAND...`",
            image.name
        ))),
    }
}

/// One row of `vnode images list --json`.
#[derive(Serialize)]
struct ListRow<'a> {
    name: &'a str,
    status: &'static str,
    path: &'a std::path::Path,
    size: u64,
    meta: Option<&'a ImageMeta>,
}

/// `vnode images list`: what the cache holds, partial downloads included.
fn list(ctx: &Context) -> Result<()> {
    let cache = cache(ctx)?;
    let listed = cache.list()?;
    let status = |s: &State| match s {
        State::Complete(_) => "ok",
        State::Partial => "partial",
        State::Unverified => "unverified",
    };
    if ctx.json {
        let rows: Vec<ListRow> = listed
            .iter()
            .map(|l| ListRow {
                name: &l.name,
                status: status(&l.state),
                path: &l.path,
                size: l.size,
                meta: match &l.state {
                    State::Complete(meta) => Some(meta),
                    _ => None,
                },
            })
            .collect();
        ctx.print_json(&rows);
        return Ok(());
    }
    if listed.is_empty() {
        eprintln!(
            "no images in the cache ({}); `vnode images pull NAME` fetches one, `vnode images list --available` shows the catalog",
            cache.dir().display()
        );
        return Ok(());
    }
    let mut t = Table::new([
        "NAME",
        "VERSION",
        "SIZE",
        "DISK",
        "ADDED",
        "ORIGIN",
        "PARENT",
        "DIGEST",
        "SIGNATURE",
        "STATUS",
    ]);
    for l in &listed {
        let version = || ctx.catalog.get(&l.name).map(|e| e.version.clone());
        let row: [String; 10] = match &l.state {
            State::Complete(m) => [
                l.name.clone(),
                m.version.clone().or_else(version).unwrap_or("-".into()),
                HumanBytes(l.size).to_string(),
                HumanBytes(m.virtual_size).to_string(),
                m.created.get(..16).unwrap_or(&m.created).replace('T', " "),
                format!("{:?}", m.origin).to_lowercase(),
                m.parent.clone().unwrap_or("-".into()),
                format!("{}:{}", m.algo, m.digest.get(..12).unwrap_or(&m.digest)),
                m.trust.summary(),
                "ok".into(),
            ],
            state => [
                l.name.clone(),
                version().unwrap_or("-".into()),
                HumanBytes(l.size).to_string(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                status(state).into(),
            ],
        };
        t.row(row);
    }
    print!("{}", t.render());
    Ok(())
}

/// `vnode images derive BASE NAME [--node SPEC] [--script FILE] [-- CMD...]`.
fn derive(ctx: &Context, req: &crate::commands::images::derive::DeriveRequest) -> Result<()> {
    let image = crate::commands::images::derive::derive(ctx, req)?;
    if ctx.json {
        ctx.print_json(&image);
    } else {
        println!("{}", image.name);
    }
    Ok(())
}

/// What `vnode images import` was given.
/// `vnode images import FILE --name NAME [--sha256 HEX | --checksums FILE [--signature FILE]]`.
fn import(ctx: &Context, args: ImportArgs) -> Result<()> {
    let name = args.name.to_ascii_lowercase();
    if let Some(id) = &args.osinfo {
        crate::libvirt::osinfo::check_requested(&ctx.config.state_dir, id)?;
    }
    // An alias would be shadowed by its catalog image in specs. A canonical catalog name is fine:
    // that is how an image carried in on a disk replaces a download.
    let entry = ctx.catalog.lookup(&name);
    if let Some(e) = entry.filter(|e| e.name != name) {
        return Err(Error::Usage(format!(
            "'{name}' means catalog image {} in specs; import as --name {} or choose another name",
            e.name, e.name
        )));
    }
    // The keys: as given (names or paths, relative to the working directory), else the catalog
    // entry's, which is what makes a carried-in image as trusted as a pulled one.
    let signing_keys = if args.signing_keys.is_empty() {
        match entry.map(|e| &e.checksum) {
            Some(Checksum::File { signing_keys, .. }) => signing_keys.clone(),
            _ => Vec::new(),
        }
    } else {
        args.signing_keys
            .iter()
            .map(|k| KeySource::parse(k, std::path::Path::new(".")))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Usage(format!("--signing-key: {e}")))?
    };
    let request = Import {
        file: args.file,
        osinfo: args.osinfo.or_else(|| entry.map(|e| e.osinfo.clone())),
        sha256: args.sha256,
        checksums: args.checksums,
        signature: args.signature,
        signing_keys,
        listed_as: entry
            .map(|e| crate::images::url_file_name(&e.url))
            .into_iter()
            .collect(),
        name,
        force: args.force,
    };
    let image = request.run(&cache(ctx)?, &Progress::auto())?;
    if ctx.json {
        ctx.print_json(&image);
    } else {
        println!(
            "imported {} ({}, {} {}, {}) as {}",
            image.name,
            HumanBytes(image.meta.size),
            image.meta.algo,
            image.meta.digest,
            image.meta.trust.summary(),
            image.path.display()
        );
    }
    Ok(())
}

/// `vnode images rm NAME...`: all of them or, when one is unknown, none.
fn rm(ctx: &Context, names: &[String]) -> Result<()> {
    let cache = cache(ctx)?;
    let present: Vec<String> = cache.list()?.into_iter().map(|l| l.name).collect();
    let names: Vec<String> = names.iter().map(|n| cache_name(ctx, n)).collect();
    if let Some(missing) = names.iter().find(|n| !present.contains(n)) {
        return Err(ImageError::NotInCache {
            name: missing.clone(),
            dir: cache.dir().to_path_buf(),
        }
        .into());
    }
    let mut removed = Vec::new();
    let state_dir = &ctx.config.state_dir;
    let hosts = crate::hosts::Hosts::from_config(&ctx.config);
    for name in &names {
        // The states are backed by the image: they go first, wherever they are (an image
        // without them is fine).
        let states = crate::fresh_state::store::built_on(state_dir, name);
        let gone = crate::process::runtime::block_on(
            crate::process::runtime::Flavor::CurrentThread,
            async {
                for node in &states {
                    hosts.remove_state(node).await?;
                }
                Ok::<_, crate::hosts::hypervisor::RemoveError>(())
            },
        )?;
        gone.map_err(|source| crate::commands::CommandError::StatesNotRemoved {
            image: name.clone(),
            source: Box::new(source),
        })?;
        let files = cache.remove(name)?;
        if !ctx.json {
            println!("removed {name}");
            for node in &states {
                println!("removed the fresh state of {node} (built on {name})");
            }
        }
        removed.push(serde_json::json!({ "name": name, "removed": files }));
    }
    if ctx.json {
        ctx.print_json(&removed);
    }
    Ok(())
}

/// `vnode images verify [NAME...]`.
fn verify(ctx: &Context, names: &[String]) -> Result<()> {
    let cache = cache(ctx)?;
    let names: Vec<String> = names.iter().map(|n| cache_name(ctx, n)).collect();
    let results = images::verify(&cache, &names, &Progress::auto())?;
    if ctx.json {
        ctx.print_json(&results);
    } else {
        let mut t = Table::new(["NAME", "RESULT", "DIGEST"]);
        for r in &results {
            let verdict = if r.ok { "ok" } else { "MISMATCH" };
            let digest = if r.ok {
                format!("{}:{}", r.algo, r.actual)
            } else {
                format!("{}:{} (recorded {})", r.algo, r.actual, r.expected)
            };
            t.row([r.name.clone(), verdict.into(), digest]);
        }
        print!("{}", t.render());
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.name.clone())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(ImageError::VerifyFailed { names: failed }.into())
    }
}

/// `vnode images list --available`: the catalog, each entry with its trust (signed, digest or
/// none) and where it comes from (built-in, or a catalog file's path).
fn available(ctx: &Context) -> Result<()> {
    let entries = ctx.catalog.entries();
    if ctx.json {
        ctx.print_json(&entries);
        return Ok(());
    }
    let mut t = Table::new([
        "NAME",
        "ALIASES",
        "FAMILY",
        "VERSION",
        "OSINFO",
        "SIGNATURE",
        "TRUST",
        "SOURCE",
        "DEFAULT",
    ]);
    let default = &ctx.catalog.default_image().name;
    for e in entries {
        let mark = if &e.name == default {
            "default"
        } else if e.family_default {
            "family"
        } else {
            ""
        };
        t.row([
            e.name.clone(),
            e.aliases.join(","),
            e.family.clone(),
            e.version.clone(),
            e.osinfo.clone(),
            signature_check(e),
            e.trust().to_string(),
            e.source.to_string(),
            mark.into(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

/// How a catalog entry's digest is vouched for, for `images list --available`.
fn signature_check(entry: &CatalogEntry) -> String {
    match &entry.checksum {
        Checksum::Inline { .. } => "no (inline digest)".into(),
        Checksum::File { signing_keys, .. } if signing_keys.is_empty() => {
            "NO KEY (pull needs --no-signature)".into()
        }
        Checksum::File {
            signature_url,
            signing_keys,
            ..
        } => {
            let form = if signature_url.is_some() {
                "detached"
            } else {
                "clear-signed"
            };
            let keys: Vec<String> = signing_keys
                .iter()
                .map(|k| match k {
                    KeySource::Builtin(name) => name.clone(),
                    KeySource::File(path) => path.display().to_string(),
                })
                .collect();
            format!("{form}: {}", keys.join(","))
        }
    }
}
