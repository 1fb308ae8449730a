//! The machine's guest boots, shared by the VM tests that run at once (threads of this binary).
//! `let _boots = budget::boots(n)` before a step that boots `n` guests at once, and
//! `budget::alone()` before one that restores guests; the boots go back when it is dropped. The
//! budget is one boot more than the machine has CPUs (`VNODE_TEST_BOOTS`
//! overrides it): TCG boots are CPU-bound, and on two cores three boots at once finish as many
//! boots per minute as two (1.7 against 1.6 per 100 s, measured when the budget was set), four far
//! fewer (0.95). One more than the CPUs lets a test that boots two guests run beside one that boots
//! one, instead of a core idling while the two-boot test waits. A request for more than the whole
//! budget waits for all of it, and then runs alone.
//!
//! Requests are served in the order they were made, so a test that needs the whole budget is not
//! passed over by the smaller requests that keep coming (served by whoever was quickest when boots
//! came back, a six-node test that needed all three got them only 28 minutes into a run, and the
//! suite waited for its boots at the end). While it waits, the boots already running keep the
//! CPUs busy.

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Instant;

struct Budget {
    queue: Mutex<Queue>,
    changed: Condvar,
    total: usize,
}

/// The free boots and the order of the requests: tickets are handed out in turn, and only the
/// oldest unserved one may take boots.
struct Queue {
    free: usize,
    next_ticket: u64,
    serving: u64,
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
            queue: Mutex::new(Queue {
                free: total,
                next_ticket: 0,
                serving: 0,
            }),
            changed: Condvar::new(),
            total,
        }
    })
}

/// The whole budget, for a step that restores guests from their fresh states: no other test
/// boots beside it. Restored guests beside other tests' boots answered 7-15 times later than
/// alone (about 8 s), and in two suite runs one did not answer at all within its patience, while
/// the same restore beside five CPU hogs answered in 14-16 s. A restore alone takes seconds.
pub fn alone() -> Boots {
    boots(usize::MAX)
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
    let mut q = b.queue.lock().unwrap_or_else(|e| e.into_inner());
    let ticket = q.next_ticket;
    q.next_ticket += 1;
    while q.serving != ticket || q.free < n {
        q = b.changed.wait(q).unwrap_or_else(|e| e.into_inner());
    }
    q.free -= n;
    q.serving += 1;
    drop(q);
    // The next request in line may fit in what is left.
    b.changed.notify_all();
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
        b.queue.lock().unwrap_or_else(|e| e.into_inner()).free += self.n;
        b.changed.notify_all();
    }
}
