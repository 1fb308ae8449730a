//! The one way vnode starts its async runtime: a command builds one runtime and runs its async
//! work on it (never one runtime per node or per call).

use std::future::Future;

/// How much parallelism the work needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// One thread: network I/O and child processes (pulls, virsh queries).
    CurrentThread,
    /// Worker threads: many nodes at once, with blocking artifact work beside the waits.
    MultiThread,
}

/// The async runtime could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the async runtime: {0}")]
pub struct RuntimeError(#[source] pub std::io::Error);

pub fn build(flavor: Flavor) -> Result<tokio::runtime::Runtime, RuntimeError> {
    let mut builder = match flavor {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build().map_err(RuntimeError)
}

/// Runs `future` to its end on a new runtime of `flavor`.
pub fn block_on<F: Future>(flavor: Flavor, future: F) -> Result<F::Output, RuntimeError> {
    Ok(build(flavor)?.block_on(future))
}
