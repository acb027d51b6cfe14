//! What the forwarder did, for `palisadectl dns log`, status and the app: a bounded ring of the
//! latest questions and the state of every name the rules mention (last answer, addresses,
//! failure). Memory is bounded by the ring's size and the number of names in the policy,
//! whatever the guests ask.

use crate::clock::unix_now;
use palisade_dbus::types::{DnsEvent, DnsNameState, DnsOutcome};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// Questions kept.
const RING: usize = 4096;
/// Most events one read returns.
const MAX_READ: usize = 1000;
/// Longest name kept in an event (names are at most 253 bytes; this keeps events small).
const MAX_NAME: usize = 253;

/// The log and the names' states.
#[derive(Debug, Default)]
pub struct Journal {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_seq: u64,
    ring: VecDeque<DnsEvent>,
    /// By (vm, pattern): only the names of the live policy.
    names: BTreeMap<(String, String), DnsNameState>,
}

/// One question's outcome, as the forwarder records it.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// The VM.
    pub vm: &'a str,
    /// The name.
    pub name: &'a str,
    /// The record type.
    pub kind: String,
    /// What happened.
    pub outcome: DnsOutcome,
    /// Admitted addresses.
    pub admitted: Vec<String>,
    /// Rules or list.
    pub rules: Vec<u32>,
    /// Words.
    pub detail: String,
    /// The patterns of the VM's name rules that matched, so their state follows the answer.
    pub patterns: Vec<String>,
    /// Microseconds the admission took.
    pub admit_us: u64,
}

impl Journal {
    /// Records one question.
    pub fn record(&self, e: Entry<'_>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let now = unix_now();
        for pattern in &e.patterns {
            if let Some(state) = inner.names.get_mut(&(e.vm.to_owned(), pattern.clone())) {
                state.last_answer_at = now;
                match e.outcome {
                    DnsOutcome::Failed => state.problem = e.detail.clone(),
                    _ => {
                        state.problem.clear();
                        if !e.admitted.is_empty() {
                            state.addresses = e.admitted.clone();
                        }
                    }
                }
            }
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        if inner.ring.len() == RING {
            inner.ring.pop_front();
        }
        let mut name = e.name.to_owned();
        name.truncate(MAX_NAME);
        inner.ring.push_back(DnsEvent {
            seq,
            at: now,
            vm: e.vm.to_owned(),
            name,
            kind: e.kind,
            outcome: e.outcome,
            admitted: e.admitted,
            rules: e.rules,
            detail: e.detail,
            admit_us: e.admit_us,
        });
    }

    /// Events after `after_seq` (all when 0 and nothing was read yet), of `vm` if given.
    pub fn events(&self, vm: Option<&str>, after_seq: Option<u64>) -> Vec<DnsEvent> {
        let Ok(inner) = self.inner.lock() else {
            return Vec::new();
        };
        let mut out: Vec<DnsEvent> = inner
            .ring
            .iter()
            .rev()
            .filter(|e| after_seq.is_none_or(|s| e.seq > s))
            .filter(|e| vm.is_none_or(|v| e.vm == v))
            .take(MAX_READ)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    /// The state of every name of the live policy.
    pub fn names(&self) -> Vec<DnsNameState> {
        self.inner
            .lock()
            .map(|i| i.names.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The names of a new generation: states of names still named are kept, the rest dropped.
    pub fn follow(&self, names: Vec<(String, String, Vec<u32>)>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let mut next = BTreeMap::new();
        for (vm, pattern, rules) in names {
            let key = (vm.clone(), pattern.clone());
            let mut state = inner.names.remove(&key).unwrap_or(DnsNameState {
                vm,
                pattern,
                rules: Vec::new(),
                addresses: Vec::new(),
                last_answer_at: 0,
                problem: String::new(),
            });
            state.rules = rules;
            next.insert(key, state);
        }
        inner.names = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(vm: &'a str, name: &'a str, outcome: DnsOutcome) -> Entry<'a> {
        Entry {
            vm,
            name,
            kind: "A".into(),
            outcome,
            admitted: vec!["192.0.2.1".into()],
            rules: vec![1],
            detail: "upstream down".into(),
            patterns: vec![name.to_owned()],
            admit_us: 0,
        }
    }

    #[test]
    fn the_ring_is_bounded_and_read_after_a_sequence_number() {
        let j = Journal::default();
        for _ in 0..RING + 10 {
            j.record(entry("work", "a.test", DnsOutcome::Answered));
        }
        let all = j.events(None, None);
        assert_eq!(all.len(), MAX_READ);
        assert_eq!(all.last().map(|e| e.seq), Some((RING + 9) as u64));
        assert_eq!(j.events(None, Some((RING + 8) as u64)).len(), 1);
        assert!(j.events(Some("other"), None).is_empty());
    }

    #[test]
    fn a_failing_name_is_reported_on_its_own_and_clears_on_success() {
        let j = Journal::default();
        j.follow(vec![
            ("work".into(), "a.test".into(), vec![1]),
            ("work".into(), "b.test".into(), vec![2]),
        ]);
        j.record(entry("work", "a.test", DnsOutcome::Failed));
        j.record(entry("work", "b.test", DnsOutcome::Admitted));
        let names = j.names();
        assert_eq!(names[0].problem, "upstream down");
        assert!(names[1].problem.is_empty());
        assert_eq!(names[1].addresses, vec!["192.0.2.1".to_string()]);
        j.record(entry("work", "a.test", DnsOutcome::Admitted));
        assert!(j.names()[0].problem.is_empty());
        j.follow(vec![("work".into(), "b.test".into(), vec![1])]);
        assert_eq!(j.names().len(), 1);
        assert_eq!(j.names()[0].rules, vec![1]);
        assert_eq!(j.names()[0].addresses, vec!["192.0.2.1".to_string()]);
    }
}
