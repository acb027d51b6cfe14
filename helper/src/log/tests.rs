use super::*;
use crate::firewall::ruleset::{TagOwner, TagRule};
use palisade_dbus::policy::Verdict;
use palisade_nfnetlink::Counted;

fn tag(vm: &str, rule: u32) -> RuleTag {
    RuleTag {
        owner: TagOwner::Vm(VmName::parse(vm).unwrap_or_else(|e| panic!("{e}"))),
        rule: TagRule::Numbers {
            first: rule,
            last: rule,
        },
        action: Verdict::Accept,
    }
}

fn read(counts: &[(&str, u64)]) -> HashMap<String, Counted> {
    counts
        .iter()
        .map(|(name, packets)| {
            let counted = Counted {
                packets: *packets,
                bytes: packets * 60,
            };
            ((*name).to_owned(), counted)
        })
        .collect()
}

#[test]
fn a_rule_is_hit_when_its_counter_goes_up_and_forgotten_when_it_goes() {
    let mut st = State::default();
    let tags = vec![
        ("c_a".to_owned(), tag("work", 1)),
        ("c_b".to_owned(), tag("work", 2)),
    ];
    let (one, two) = (logged_rule(&tags[0].1), logged_rule(&tags[1].1));
    // A first reading only learns where each counter stands.
    st.note_counts(&tags, &read(&[("c_a", 5), ("c_b", 0)]), 100);
    assert!(st.last_hit.is_empty());
    st.note_counts(&tags, &read(&[("c_a", 5), ("c_b", 3)]), 200);
    assert_eq!(st.last_hit.get(&two), Some(&200));
    assert_eq!(st.last_hit.get(&one), None);
    st.note_counts(&tags, &read(&[("c_a", 6), ("c_b", 3)]), 300);
    assert_eq!(st.last_hit.get(&one), Some(&300));
    assert_eq!(st.last_hit.get(&two), Some(&200));
    // Rule 2 gone: its hit and its counter's reading go with it.
    st.note_counts(&tags[..1], &read(&[("c_a", 6)]), 400);
    assert_eq!(st.last_hit.get(&two), None);
    assert_eq!(st.counted.keys().collect::<Vec<_>>(), vec!["c_a"]);
    // A changed rule 1 counts under a new counter, which starts from its own first reading.
    let changed = vec![("c_a2".to_owned(), tag("work", 1))];
    st.note_counts(&changed, &read(&[("c_a2", 2)]), 500);
    assert_eq!(st.last_hit.get(&one), Some(&300));
    assert_eq!(st.counted.keys().collect::<Vec<_>>(), vec!["c_a2"]);
}
