//! Which commits to the ruleset were this process's own, per network namespace.
//!
//! The kernel numbers its ruleset's generations: every commit, of any table, by any process,
//! adds one. A transaction sent here asks for the generation it commits (an echo on the
//! batch's begin marker), and the log keeps them. So a caller that knows the ruleset as it was
//! at generation *g* ([`mark`]) and finds the generation now to be *n* knows that nothing but
//! this process changed it exactly when every generation after *g* up to *n* is one of its
//! own ([`only_ours`]). A ruleset written another way (one `nft -f` run) is marked known only
//! when that run was the one commit between the generation read before it and the one after
//! (`NftSocket::mark_known_after_one`). That lets the helper change a few rules of its table in place, trusting
//! its record of the table, and fall back to replacing the whole table the moment anyone else
//! (an admin with `nft`, another firewall manager) committed anything.
//!
//! Invariants: generations are compared in the kernel's order, which skips 0 when it wraps.
//! Memory is bounded: a namespace keeps at most [`MAX_PENDING`] generations above its
//! contiguous run; past that (a gap that never closes means someone else committed) it is
//! forgotten, which only means "not only ours".

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

/// Own generations kept above a gap before the namespace's log is given up.
pub const MAX_PENDING: usize = 4096;

#[derive(Debug, Default)]
struct Log {
    /// Every generation up to this one is known: the marked one, then own commits.
    known: u32,
    /// Own commits above `known` not yet joined to it (out of order, or after a gap).
    pending: BTreeSet<u32>,
}

static LOGS: Mutex<Option<HashMap<u64, Log>>> = Mutex::new(None);

/// The generation after `g`, as the kernel counts (it skips 0).
pub fn next(g: u32) -> u32 {
    match g.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

fn with_logs<R>(f: impl FnOnce(&mut HashMap<u64, Log>) -> R) -> R {
    let mut guard = LOGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(guard.get_or_insert_with(HashMap::new))
}

/// The ruleset of namespace `netns` at `generation` is known to the caller.
pub fn mark(netns: u64, generation: u32) {
    with_logs(|logs| {
        logs.insert(
            netns,
            Log {
                known: generation,
                pending: BTreeSet::new(),
            },
        );
    });
}

/// Nothing is known of `netns`'s ruleset any more.
pub fn forget(netns: u64) {
    with_logs(|logs| {
        logs.remove(&netns);
    });
}

/// This process committed `generation` in `netns` (`None`: the kernel did not say which, so
/// the log can vouch for nothing after it).
pub fn record(netns: u64, generation: Option<u32>) {
    with_logs(|logs| {
        let Some(generation) = generation else {
            logs.remove(&netns);
            return;
        };
        let Some(log) = logs.get_mut(&netns) else {
            return;
        };
        log.pending.insert(generation);
        while log.pending.remove(&next(log.known)) {
            log.known = next(log.known);
        }
        if log.pending.len() > MAX_PENDING {
            logs.remove(&netns);
        }
    });
}

/// Whether every commit in `netns` after the marked generation, up to `now`, was recorded.
pub fn only_ours(netns: u64, now: u32) -> bool {
    with_logs(|logs| logs.get(&netns).is_some_and(|log| log.known == now))
}

/// The inode of the calling thread's network namespace (0 if it cannot be read, which puts
/// every such socket in one log: the helper runs in one namespace).
pub fn current_netns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unbroken_run_of_own_commits_counts() {
        let ns = 0xdead_0001;
        assert!(!only_ours(ns, 5), "nothing marked");
        mark(ns, 5);
        assert!(only_ours(ns, 5));
        record(ns, Some(7));
        assert!(!only_ours(ns, 7), "6 was someone else's, so far");
        record(ns, Some(6));
        assert!(only_ours(ns, 7), "6 came late: the run is whole");
        assert!(!only_ours(ns, 8), "8 is not ours");
        record(ns, None);
        assert!(
            !only_ours(ns, 7),
            "a commit of unknown generation forgets the log"
        );
    }

    #[test]
    fn generations_wrap_past_zero_and_pending_is_bounded() {
        let ns = 0xdead_0002;
        mark(ns, u32::MAX);
        record(ns, Some(1));
        assert!(only_ours(ns, 1), "the kernel skips 0");
        for g in 3..(3 + MAX_PENDING as u32 + 1) {
            record(ns, Some(g));
        }
        assert!(!only_ours(ns, 2));
        record(ns, Some(2));
        assert!(
            !only_ours(ns, 3 + MAX_PENDING as u32),
            "the log was given up"
        );
    }
}
