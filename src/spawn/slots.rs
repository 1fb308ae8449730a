//! The cap on concurrent boots (`--parallel N|auto|all`): a node holds one of its host's slots
//! from the start of its domain (virt-install) until it is ready or has failed. Artifacts, uploads
//! and the preflight are not capped: they are cheap next to a boot, and doing them early means a
//! node that gets a slot starts at once. The cap is per host because a boot's cost is its host's
//! CPU. The default, `auto`, is one boot per host CPU under TCG, where a boot is CPU-bound from
//! start to login and boots beyond the CPUs slow every guest down by more than they add (guest
//! clocks were seen to lose their TSC and fall back to slow clock sources; see docs/performance.md,
//! scale.sh), except that a batch of at most the CPUs plus one boots at once (capping it would
//! leave its last node to boot alone); no cap under KVM.

use std::num::NonZeroUsize;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::libvirt::virt_install::Accel;

/// How many nodes may boot at once on one host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BootCap {
    /// Under TCG one per host CPU; under KVM every node at once.
    #[default]
    Auto,
    /// Every node at once.
    All,
    At(NonZeroUsize),
}

impl BootCap {
    /// The cap on one host, whose guests run under `accel`, which has `cpus` CPUs (`None`:
    /// unknown, then no cap) and gets `nodes` nodes. Under TCG a batch of at most the CPUs plus
    /// one boots at once: capped at the CPUs, its last node would boot alone once the others are
    /// done (3 nodes on 2 cores: 5 % sooner uncapped, docs/performance.md); a larger batch gets one boot per
    /// CPU (6 nodes on 2 cores: 5 % sooner than 3 at a time, each node ready sooner).
    pub fn on_host(self, accel: Accel, cpus: Option<u32>, nodes: usize) -> BootCap {
        match self {
            BootCap::Auto => match (accel, cpus.and_then(|c| NonZeroUsize::new(c as usize))) {
                (Accel::Tcg, Some(n)) if nodes > n.get() + 1 => BootCap::At(n),
                _ => BootCap::All,
            },
            cap => cap,
        }
    }
}

/// What decides a host's boot cap, strongest first: `--parallel`, the host's own
/// `parallel_boots` (`[[hosts]]`), the config's `parallel_boots`, then `auto`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootCapChoice {
    /// `--parallel`.
    pub flag: Option<BootCap>,
    /// The config's top-level `parallel_boots`.
    pub config: Option<u32>,
}

/// Which of [`BootCapChoice`]'s sources gave a host its cap (what the queued stage says).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapSource {
    Flag,
    Host,
    Config,
    Auto,
}

impl BootCapChoice {
    /// The cap a host gets before `auto` is resolved, and why; `host`: its `parallel_boots`.
    pub fn for_host(self, host: Option<u32>) -> (BootCap, CapSource) {
        let at = |n: u32| NonZeroUsize::new(n as usize).map(BootCap::At);
        if let Some(cap) = self.flag {
            (cap, CapSource::Flag)
        } else if let Some(cap) = host.and_then(at) {
            (cap, CapSource::Host)
        } else if let Some(cap) = self.config.and_then(at) {
            (cap, CapSource::Config)
        } else {
            (BootCap::Auto, CapSource::Auto)
        }
    }
}

impl CapSource {
    /// Why a node waits for a slot, `n` at once on its host.
    pub fn why_queued(self, n: NonZeroUsize) -> String {
        let because = match self {
            CapSource::Flag => "--parallel",
            CapSource::Host => "the host's parallel_boots",
            CapSource::Config => "the config's parallel_boots",
            CapSource::Auto => "TCG, one per CPU for this many nodes; --parallel all lifts it",
        };
        format!("waiting for a boot slot ({n} at once here: {because})")
    }
}

/// One host's boot slots, and their number (`None`: no cap).
#[derive(Clone, Debug)]
pub struct Slots(Option<(Arc<Semaphore>, NonZeroUsize)>);

/// A held slot; dropping it frees the slot (also when the node's task is aborted).
pub struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Slots {
    pub fn new(cap: BootCap) -> Slots {
        Slots(match cap {
            // Resolved per host before (on_host); unresolved it caps nothing.
            BootCap::All | BootCap::Auto => None,
            BootCap::At(n) => Some((Arc::new(Semaphore::new(n.get())), n)),
        })
    }

    /// How many nodes may boot at once (`None`: every node).
    pub fn limit(&self) -> Option<NonZeroUsize> {
        self.0.as_ref().map(|(_, n)| *n)
    }

    /// A slot at once, or `None` when all are taken (then [`Slots::wait`] for one).
    pub fn try_take(&self) -> Option<Slot> {
        match &self.0 {
            None => Some(Slot { _permit: None }),
            Some((s, _)) => s
                .clone()
                .try_acquire_owned()
                .ok()
                .map(|p| Slot { _permit: Some(p) }),
        }
    }

    /// Waits for a free slot; slots are handed out in the order nodes asked.
    pub async fn wait(&self) -> Slot {
        match &self.0 {
            None => Slot { _permit: None },
            Some((s, _)) => Slot {
                _permit: Some(
                    s.clone()
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed"),
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// 10 "boots" with a cap of 3: never more than 3 at once, and 3 do run at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn at_most_n_boot_at_once() {
        let slots = Slots::new(BootCap::At(NonZeroUsize::new(3).unwrap()));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let (slots, running, peak) = (slots.clone(), running.clone(), peak.clone());
            tasks.spawn(async move {
                let _slot = match slots.try_take() {
                    Some(s) => s,
                    None => slots.wait().await,
                };
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                running.fetch_sub(1, Ordering::SeqCst);
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_slot_comes_free_when_dropped_also_when_its_task_is_aborted() {
        let slots = Slots::new(BootCap::At(NonZeroUsize::new(1).unwrap()));
        let held = slots.try_take().unwrap();
        assert!(slots.try_take().is_none());
        drop(held);
        let waiting = {
            let slots = slots.clone();
            tokio::spawn(async move {
                let _slot = slots.wait().await;
                std::future::pending::<()>().await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(slots.try_take().is_none(), "the waiting task holds it");
        waiting.abort();
        let _ = waiting.await;
        assert!(slots.try_take().is_some());
    }

    #[test]
    fn auto_is_one_boot_per_cpu_under_tcg_past_the_cpus_plus_one_and_no_cap_under_kvm() {
        let two = NonZeroUsize::new(2).unwrap();
        assert_eq!(
            BootCap::Auto.on_host(Accel::Tcg, Some(2), 4),
            BootCap::At(two)
        );
        assert_eq!(
            BootCap::Auto.on_host(Accel::Tcg, Some(2), 31),
            BootCap::At(two)
        );
        // No lone last wave: up to the CPUs plus one boot together.
        assert_eq!(BootCap::Auto.on_host(Accel::Tcg, Some(2), 3), BootCap::All);
        assert_eq!(BootCap::Auto.on_host(Accel::Tcg, Some(2), 1), BootCap::All);
        assert_eq!(BootCap::Auto.on_host(Accel::Kvm, Some(2), 31), BootCap::All);
        assert_eq!(BootCap::Auto.on_host(Accel::Tcg, None, 31), BootCap::All);
        assert_eq!(BootCap::Auto.on_host(Accel::Tcg, Some(0), 31), BootCap::All);
        // A cap given, or `all`, is what it says on every host.
        let five = BootCap::At(NonZeroUsize::new(5).unwrap());
        assert_eq!(five.on_host(Accel::Tcg, Some(2), 31), five);
        assert_eq!(five.on_host(Accel::Tcg, Some(2), 2), five);
        assert_eq!(BootCap::All.on_host(Accel::Tcg, Some(2), 31), BootCap::All);
    }

    #[test]
    fn the_flag_beats_the_host_which_beats_the_config_which_beats_auto() {
        let n = |n: usize| BootCap::At(NonZeroUsize::new(n).unwrap());
        let none = BootCapChoice::default();
        assert_eq!(none.for_host(None), (BootCap::Auto, CapSource::Auto));
        assert_eq!(none.for_host(Some(1)), (n(1), CapSource::Host));
        let config = BootCapChoice {
            flag: None,
            config: Some(4),
        };
        assert_eq!(config.for_host(None), (n(4), CapSource::Config));
        assert_eq!(config.for_host(Some(1)), (n(1), CapSource::Host));
        let flag = BootCapChoice {
            flag: Some(BootCap::All),
            config: Some(4),
        };
        assert_eq!(flag.for_host(Some(1)), (BootCap::All, CapSource::Flag));
        assert_eq!(
            CapSource::Host.why_queued(NonZeroUsize::new(1).unwrap()),
            "waiting for a boot slot (1 at once here: the host's parallel_boots)"
        );
    }

    #[tokio::test]
    async fn without_a_cap_every_node_gets_a_slot() {
        let slots = Slots::new(BootCap::All);
        let all: Vec<Slot> = (0..100).map(|_| slots.try_take().unwrap()).collect();
        assert_eq!(all.len(), 100);
    }
}
