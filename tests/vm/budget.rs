//! The machine's guest boots, shared by the VM tests that run at once (threads of this binary).
//! `let _boots = budget::boots(n)` before a step that boots or restores `n` guests at once (guests
//! resumed beside other tests' boots answered 7-15 times later than alone); the
//! boots go back when it is dropped. The budget is one boot more than the machine has CPUs (`VNODE_TEST_BOOTS`
//! overrides it): TCG boots are CPU-bound, and on two cores three boots at once finish as many
//! boots per minute as two (1.7 against 1.6 per 100 s, measured when the budget was set), four far fewer (0.95). One more
//! than the CPUs lets a test that boots two guests run beside one that boots one, instead of a
//! core idling while the two-boot test waits. A request for more than the whole budget waits for
//! all of it, and then runs alone.

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Instant;

struct Budget {
    free: Mutex<usize>,
    freed: Condvar,
    total: usize,
}

fn budget() -> &'static Budget {
    static BUDGET: OnceLock<Budget> = OnceLock::new();
    BUDGET.get_or_init(|| {
        let total = match std::env::var("VNODE_TEST_BOOTS") {
            Ok(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or_else(|| panic!("VNODE_TEST_BOOTS={v:?}: a number of boots, at least 1")),
            Err(_) => std::thread::available_parallelism().map_or(2, |n| n.get()) + 1,
        };
        Budget {
            free: Mutex::new(total),
            freed: Condvar::new(),
            total,
        }
    })
}

/// Boots taken from the budget; given back on drop.
#[must_use = "the boots go back at once when this is dropped"]
pub struct Boots {
    n: usize,
}

/// Waits until `n` boots are free (all of them when `n` is more) and takes them; says on stderr
/// how long it waited, so a slow test shows where its time went.
pub fn boots(n: usize) -> Boots {
    let b = budget();
    let n = n.clamp(1, b.total);
    let asked = Instant::now();
    let mut free = b.free.lock().unwrap_or_else(|e| e.into_inner());
    while *free < n {
        free = b.freed.wait(free).unwrap_or_else(|e| e.into_inner());
    }
    *free -= n;
    let waited = asked.elapsed();
    if waited.as_secs_f64() >= 1.0 {
        eprintln!(
            "budget: waited {:.1} s for {n} of {} boots",
            waited.as_secs_f64(),
            b.total
        );
    }
    Boots { n }
}

impl Drop for Boots {
    fn drop(&mut self) {
        let b = budget();
        *b.free.lock().unwrap_or_else(|e| e.into_inner()) += self.n;
        b.freed.notify_all();
    }
}
