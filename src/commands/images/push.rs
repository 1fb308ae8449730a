//! `vnode images push`: cached images up to the hosts' storage pools.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::hosts::Hosts;
use crate::images::Cache;
use crate::process::runtime::{self, Flavor};

/// `vnode images push NAMES [--host H]`: each image to each host (hosts in parallel), with a
/// progress bar per upload; an image a host has already is not sent again.
pub fn run(ctx: &Context, names: &[String], only: Option<&str>) -> Result<()> {
    let hosts = Hosts::from_config(&ctx.config);
    if !hosts.configured() {
        return Err(Error::Usage(
            "the config has no [[hosts]]: this host's nodes use the cache directly, there is \
             nothing to push"
                .into(),
        ));
    }
    let targets = match only {
        Some(h) => vec![hosts.get(h)?.clone()],
        None => hosts.all().to_vec(),
    };
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
        let jobs = targets.iter().map(|host| {
            let bar_for = |image: &str| {
                bars.add(
                    ProgressBar::new(0)
                        .with_style(style.clone())
                        .with_prefix(format!("{image} → {}", host.name())),
                )
            };
            let work = images
                .iter()
                .zip(&bases)
                .map(|(image, base)| (bar_for(&image.name), image, base))
                .collect::<Vec<_>>();
            async move {
                let storage = host.storage().expect("a [[hosts]] host has storage");
                let mut out = Vec::new();
                if let Err(e) = storage.ensure_pool().await {
                    out.push(Err(format!("host {}: {e}", host.name())));
                    return out;
                }
                // One image at a time per host: the pool's operations are serialized anyway.
                for (bar, image, base) in work {
                    let progress = |done: u64, total: u64| {
                        bar.set_length(total);
                        bar.set_position(done);
                    };
                    let r = storage.push_base(&base.path, &base.digest, &progress).await;
                    bar.finish_and_clear();
                    out.push(match r {
                        Ok(p) => Ok(serde_json::json!({
                            "host": host.name(),
                            "image": image.name,
                            "volume": p.path,
                            "uploaded_bytes": p.uploaded_bytes,
                            "seconds": p.seconds,
                        })),
                        Err(e) => Err(format!("{} to host {}: {e}", image.name, host.name())),
                    });
                }
                out
            }
        });
        futures_util::future::join_all(jobs).await
    })?;
    let (done, failed): (Vec<_>, Vec<_>) = results.into_iter().flatten().partition(|r| r.is_ok());
    let done: Vec<serde_json::Value> = done.into_iter().map(|r| r.expect("ok")).collect();
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "pushed": done }));
    } else {
        for d in &done {
            let bytes = d["uploaded_bytes"].as_u64().unwrap_or(0);
            let what = if bytes == 0 {
                "already there".to_string()
            } else {
                format!(
                    "uploaded {:.1} MiB in {:.1} s",
                    bytes as f64 / 1048576.0,
                    d["seconds"].as_f64().unwrap_or(0.0)
                )
            };
            println!(
                "{} on {}: {what}",
                d["image"].as_str().unwrap_or("?"),
                d["host"].as_str().unwrap_or("?")
            );
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(
            failed
                .into_iter()
                .map(|r| r.expect_err("err"))
                .collect::<Vec<_>>()
                .join("\n"),
        ))
    }
}
