//! The cap on concurrent boots (`--parallel N|auto|all`): a node holds one of its host's slots
//! from the start of its domain (virt-install) until it is ready or has failed. Artifacts, uploads
//! and the preflight are not capped: they are cheap next to a boot, and doing them early means a
//! node that gets a slot starts at once. The cap is per host because a boot's cost is its host's
//! CPU. The default, `auto`, is one boot per host CPU under TCG, where a boot is CPU-bound from
//! start to login and boots beyond the CPUs slow every guest down by more than they add (guest
//! clocks were seen to lose their TSC and fall back to slow clock sources; see the README's
//! Performance), and no cap under KVM.

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
    /// The config's `parallel_boots` (unset: auto).
    pub fn from_config(parallel_boots: Option<u32>) -> BootCap {
        parallel_boots
            .and_then(|n| NonZeroUsize::new(n as usize))
            .map_or(BootCap::Auto, BootCap::At)
    }

    /// The cap on one host, whose guests run under `accel` and which has `cpus` CPUs (`None`:
    /// unknown, then no cap).
    pub fn on_host(self, accel: Accel, cpus: Option<u32>) -> BootCap {
        match self {
            BootCap::Auto => match (accel, cpus.and_then(|c| NonZeroUsize::new(c as usize))) {
                (Accel::Tcg, Some(n)) => BootCap::At(n),
                _ => BootCap::All,
            },
            cap => cap,
        }
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
    fn auto_is_one_boot_per_cpu_under_tcg_and_no_cap_under_kvm() {
        let two = NonZeroUsize::new(2).unwrap();
        assert_eq!(BootCap::Auto.on_host(Accel::Tcg, Some(2)), BootCap::At(two));
        assert_eq!(BootCap::Auto.on_host(Accel::Kvm, Some(2)), BootCap::All);
        assert_eq!(BootCap::Auto.on_host(Accel::Tcg, None), BootCap::All);
        assert_eq!(BootCap::Auto.on_host(Accel::Tcg, Some(0)), BootCap::All);
        // A cap given, or `all`, is what it says on every host.
        let five = BootCap::At(NonZeroUsize::new(5).unwrap());
        assert_eq!(five.on_host(Accel::Tcg, Some(2)), five);
        assert_eq!(BootCap::All.on_host(Accel::Tcg, Some(2)), BootCap::All);
        assert_eq!(BootCap::from_config(None), BootCap::Auto);
        assert_eq!(
            BootCap::from_config(Some(3)),
            BootCap::At(NonZeroUsize::new(3).unwrap())
        );
    }

    #[tokio::test]
    async fn without_a_cap_every_node_gets_a_slot() {
        let slots = Slots::new(BootCap::All);
        let all: Vec<Slot> = (0..100).map(|_| slots.try_take().unwrap()).collect();
        assert_eq!(all.len(), 100);
    }
}
