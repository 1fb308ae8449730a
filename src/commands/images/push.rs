//! `vnode images push`: cached images up to the hosts' storage pools.

use std::path::PathBuf;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::commands::CommandError;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::hosts::Hosts;
use crate::hosts::hypervisor::Hypervisor;
use crate::images::{BaseImage, Cache};
use crate::libvirt::storage::StorageError;
use crate::plan::planned_node::HostName;
use crate::process::runtime::{self, Flavor};

/// One image on one host, as `--json` lists it. The fields are in alphabetical order: the
/// output was once a JSON map (which sorts its keys) and keeps that order.
#[derive(Debug, Serialize)]
struct PushedImage {
    host: HostName,
    image: String,
    seconds: f64,
    /// 0 when the host had the image already.
    uploaded_bytes: u64,
    /// The base volume on the host.
    volume: PathBuf,
}

/// `--json`'s document.
#[derive(Serialize)]
struct PushReport<'a> {
    pushed: &'a [PushedImage],
}

/// A push that failed: a host's pool, or one image to one host.
#[derive(Debug, thiserror::Error)]
pub enum PushFailure {
    #[error("host {host}: {source}")]
    Pool {
        host: HostName,
        #[source]
        source: StorageError,
    },
    #[error("{image} to host {host}: {source}")]
    Image {
        image: String,
        host: HostName,
        #[source]
        source: StorageError,
    },
}

/// `vnode images push NAMES [--host H]`: each image to each host (hosts in parallel), with a
/// progress bar per upload; an image a host has already is not sent again.
pub fn run(ctx: &Context, names: &[String], only: Option<&str>) -> Result<()> {
    let targets = targets(ctx, only)?;
    let cache = Cache::open(&ctx.config.cache_dir)?;
    let local = ctx.local_images();
    let images = names
        .iter()
        .map(|n| ctx.catalog.resolve(n, &local))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let bases =
        crate::images::resolve_bases(&cache, &ctx.catalog, &images.iter().collect::<Vec<_>>())?;
    let bars = if crate::text::terminal::quiet() || ctx.json {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    } else {
        MultiProgress::new()
    };
    let style =
        ProgressStyle::with_template("{prefix:24} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("valid template");
    let results = runtime::block_on(Flavor::MultiThread, async {
        // Every bar is made before the first upload starts.
        let jobs = targets.iter().map(|host| {
            let work = images
                .iter()
                .zip(&bases)
                .map(|(image, base)| {
                    let bar = ProgressBar::new(0)
                        .with_style(style.clone())
                        .with_prefix(format!("{} → {}", image.name, host.name()));
                    (bars.add(bar), image.name.as_str(), base)
                })
                .collect::<Vec<_>>();
            push_to_host(host, work)
        });
        futures_util::future::join_all(jobs).await
    })?;
    let (done, failed): (Vec<_>, Vec<_>) = results.into_iter().flatten().partition(Result::is_ok);
    let done: Vec<PushedImage> = done.into_iter().filter_map(Result::ok).collect();
    let failed: Vec<PushFailure> = failed.into_iter().filter_map(Result::err).collect();
    if ctx.json {
        ctx.print_json(&PushReport { pushed: &done });
    } else {
        print_pushed(&done);
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CommandError::NotPushed(failed).into())
    }
}

/// The `[[hosts]]` hosts to push to: all, or the one `--host` names.
fn targets(ctx: &Context, only: Option<&str>) -> Result<Vec<Hypervisor>> {
    let hosts = Hosts::from_config(&ctx.config);
    if !hosts.configured() {
        return Err(Error::Usage(
            "the config has no [[hosts]]: this host's nodes use the cache directly, there is \
             nothing to push"
                .into(),
        ));
    }
    Ok(match only {
        Some(h) => vec![hosts.get(h)?.clone()],
        None => hosts.all().to_vec(),
    })
}

/// Pushes the images to one host, one at a time (the pool's operations are serialized anyway),
/// after making sure its pool exists.
async fn push_to_host(
    host: &Hypervisor,
    work: Vec<(ProgressBar, &str, &BaseImage)>,
) -> Vec<std::result::Result<PushedImage, PushFailure>> {
    let storage = host.storage().expect("a [[hosts]] host has storage");
    let mut out = Vec::new();
    if let Err(e) = storage.ensure_pool().await {
        out.push(Err(PushFailure::Pool {
            host: host.name().clone(),
            source: e,
        }));
        return out;
    }
    for (bar, image, base) in work {
        let progress = |done: u64, total: u64| {
            bar.set_length(total);
            bar.set_position(done);
        };
        let r = storage.push_base(&base.path, &base.digest, &progress).await;
        bar.finish_and_clear();
        out.push(match r {
            Ok(p) => Ok(PushedImage {
                host: host.name().clone(),
                image: image.to_string(),
                seconds: p.seconds,
                uploaded_bytes: p.uploaded_bytes,
                volume: p.path,
            }),
            Err(source) => Err(PushFailure::Image {
                image: image.to_string(),
                host: host.name().clone(),
                source,
            }),
        });
    }
    out
}

/// A line per image and host: uploaded (how much, how fast) or already there.
fn print_pushed(done: &[PushedImage]) {
    for d in done {
        let what = if d.uploaded_bytes == 0 {
            "already there".to_string()
        } else {
            format!(
                "uploaded {:.1} MiB in {:.1} s",
                d.uploaded_bytes as f64 / 1048576.0,
                d.seconds
            )
        };
        println!("{} on {}: {what}", d.image, d.host);
    }
}
