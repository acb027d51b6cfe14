//! The live state machine of generations: which one is live, which one is confirmed, and what
//! each event does to them — start, apply, confirm, the end of a confirmation window, rollback.
//!
//! Pure: every function takes the pointers as they are and returns what they become plus what
//! must happen (which generation to load, which record to mark). The firewall service performs
//! those effects (kernel, disk) around it, and changes its pointers only after the effects
//! succeeded. So the rules of the game are unit-tested here without root.
//!
//! Invariants: `confirmed` is always a generation that was confirmed (or 0, none); `live` differs
//! from `confirmed` only while `pending_until > 0`; boot never loads a pending generation.

use crate::store::{LiveState, Outcome};
use palisade_dbus::types::GenerationState;
use palisade_dbus::Error;

/// What starting the helper does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boot {
    /// The generation to load: the last confirmed one.
    pub load: u64,
    /// A generation that was pending when the helper stopped: nobody confirmed it, so it is
    /// marked reverted.
    pub reverted: Option<u64>,
}

/// Starting: the last confirmed generation comes back, whatever was pending.
pub fn boot(p: LiveState) -> Boot {
    Boot {
        load: p.confirmed,
        reverted: (p.live != p.confirmed).then_some(p.live),
    }
}

/// The pointers once `generation` is loaded at start (or adopted from an edited policy file).
pub fn loaded(generation: u64) -> LiveState {
    LiveState {
        live: generation,
        confirmed: generation,
        pending_until: 0,
    }
}

/// A new generation about to be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applying {
    /// The pointers once it is in the kernel and on disk.
    pub next: LiveState,
    /// What its record says.
    pub outcome: Outcome,
}

/// Applying `generation` on top of `base`, with a confirmation window of `confirm_seconds`
/// (0: none) starting at `now`. Refused with `Conflict` if another generation went live since
/// the caller read `base`.
pub fn apply(
    p: LiveState,
    base: u64,
    generation: u64,
    confirm_seconds: u32,
    now: u64,
) -> Result<Applying, Error> {
    if p.live != base {
        return Err(Error::Conflict(format!(
            "generation {} is live now, not {base}: someone applied a change since you read the \
             policy; reload it, redo your edit and apply again",
            p.live
        )));
    }
    Ok(if confirm_seconds > 0 {
        Applying {
            next: LiveState {
                live: generation,
                confirmed: p.confirmed,
                pending_until: now + u64::from(confirm_seconds),
            },
            outcome: Outcome::Pending,
        }
    } else {
        Applying {
            next: loaded(generation),
            outcome: Outcome::Confirmed,
        }
    })
}

/// What `Confirm(generation)` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirming {
    /// It is live and confirmed already: confirming twice is harmless.
    AlreadyConfirmed,
    /// It becomes the confirmed generation: these are the pointers then.
    Confirm(LiveState),
}

/// Confirming `generation`: only the live, pending generation can be.
pub fn confirm(p: LiveState, generation: u64) -> Result<Confirming, Error> {
    if p.live != generation {
        return Err(Error::NotFound(format!(
            "generation {generation} is not waiting for confirmation (generation {} is live)",
            p.live
        )));
    }
    if p.pending_until == 0 {
        return Ok(Confirming::AlreadyConfirmed);
    }
    Ok(Confirming::Confirm(loaded(generation)))
}

/// The window of `generation` ran out: if it is still live and pending, the last confirmed
/// generation returns. `None` when nothing is to be done (confirmed meanwhile, or superseded).
pub fn window_ended(p: LiveState, generation: u64) -> Option<Boot> {
    (p.live == generation && p.pending_until > 0).then_some(Boot {
        load: p.confirmed,
        reverted: Some(generation),
    })
}

/// How the history shows a generation, given what is live now.
pub fn shown_state(live: u64, generation: u64, outcome: Outcome) -> GenerationState {
    match (generation == live, outcome) {
        (true, Outcome::Pending) => GenerationState::Pending,
        (true, _) => GenerationState::Live,
        (false, Outcome::Confirmed) => GenerationState::Confirmed,
        (false, Outcome::Reverted) => GenerationState::Reverted,
        (false, Outcome::Pending) => GenerationState::Superseded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    fn confirmed(generation: u64) -> LiveState {
        loaded(generation)
    }

    #[test]
    fn an_apply_without_a_window_is_confirmed_at_once() {
        let a = apply(confirmed(3), 3, 4, 0, NOW).expect("applies");
        assert_eq!(a.next, confirmed(4));
        assert_eq!(a.outcome, Outcome::Confirmed);
    }

    #[test]
    fn an_apply_with_a_window_is_pending_and_keeps_the_confirmed_one() {
        let a = apply(confirmed(3), 3, 4, 60, NOW).expect("applies");
        assert_eq!(
            a.next,
            LiveState {
                live: 4,
                confirmed: 3,
                pending_until: NOW + 60
            }
        );
        assert_eq!(a.outcome, Outcome::Pending);
    }

    #[test]
    fn an_apply_on_a_stale_base_is_a_conflict() {
        let e = apply(confirmed(5), 3, 6, 0, NOW).expect_err("conflict");
        assert!(matches!(e, Error::Conflict(ref m) if m.contains("generation 5 is live")));
    }

    #[test]
    fn confirming_the_pending_generation_confirms_it_once() {
        let pending = apply(confirmed(3), 3, 4, 60, NOW).expect("applies").next;
        assert_eq!(
            confirm(pending, 4).expect("pending"),
            Confirming::Confirm(confirmed(4))
        );
        assert_eq!(
            confirm(confirmed(4), 4).expect("harmless"),
            Confirming::AlreadyConfirmed
        );
        assert!(matches!(confirm(pending, 3), Err(Error::NotFound(_))));
    }

    #[test]
    fn a_window_that_runs_out_brings_the_confirmed_generation_back() {
        let pending = apply(confirmed(3), 3, 4, 60, NOW).expect("applies").next;
        assert_eq!(
            window_ended(pending, 4),
            Some(Boot {
                load: 3,
                reverted: Some(4)
            })
        );
        // Confirmed in time, or replaced by a later apply: the old timer does nothing.
        assert_eq!(window_ended(confirmed(4), 4), None);
        let later = apply(pending, 4, 5, 60, NOW).expect("applies on top").next;
        assert_eq!(window_ended(later, 4), None);
        assert_eq!(later.confirmed, 3, "still the last confirmed one");
    }

    #[test]
    fn boot_loads_the_confirmed_generation_and_reverts_a_pending_one() {
        let pending = apply(confirmed(3), 3, 4, 60, NOW).expect("applies").next;
        assert_eq!(
            boot(pending),
            Boot {
                load: 3,
                reverted: Some(4)
            }
        );
        assert_eq!(
            boot(confirmed(7)),
            Boot {
                load: 7,
                reverted: None
            }
        );
        assert_eq!(
            boot(LiveState::default()),
            Boot {
                load: 0,
                reverted: None
            }
        );
    }

    #[test]
    fn history_names_every_outcome() {
        assert_eq!(
            shown_state(4, 4, Outcome::Pending),
            GenerationState::Pending
        );
        assert_eq!(shown_state(4, 4, Outcome::Confirmed), GenerationState::Live);
        assert_eq!(
            shown_state(4, 3, Outcome::Confirmed),
            GenerationState::Confirmed
        );
        assert_eq!(
            shown_state(4, 2, Outcome::Reverted),
            GenerationState::Reverted
        );
        assert_eq!(
            shown_state(4, 1, Outcome::Pending),
            GenerationState::Superseded
        );
    }
}
