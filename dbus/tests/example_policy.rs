//! The example policy shipped in `data/examples/policy.toml` must stay valid as the model
//! evolves: it is what `make demo` applies and what admins copy from. No errors, no warnings.

use palisade_dbus::policy::{Destination, Policy, Verdict};
use std::path::Path;

fn example() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/examples/policy.toml");
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn example_policy_is_valid_without_warnings() {
    let parsed = match Policy::parse(&example()) {
        Ok(p) => p,
        Err(findings) => panic!("the example policy is refused: {findings:#?}"),
    };
    assert!(
        parsed.warnings.is_empty(),
        "the example policy has warnings: {:#?}",
        parsed.warnings
    );
}

#[test]
fn example_policy_shows_what_the_readme_promises() {
    let policy = match Policy::parse(&example()) {
        Ok(p) => p.policy,
        Err(findings) => panic!("the example policy is refused: {findings:#?}"),
    };
    let work = policy
        .vm("work")
        .unwrap_or_else(|| panic!("no VM named work"));
    assert_eq!(work.default_action, Verdict::Drop);
    assert_eq!(work.rules.len(), 1, "work may reach the mail server only");
    assert!(work.dns, "work resolves names through the forwarder");
    assert!(work.rules.iter().all(|r| r.action == Verdict::Accept));
    assert!(work
        .rules
        .iter()
        .any(|r| matches!(r.destination, Destination::Host(_))));
    let banking = policy
        .vm("banking")
        .unwrap_or_else(|| panic!("no VM named banking"));
    assert!(banking.strict_dns, "banking shows strict DNS");
    assert!(banking
        .rules
        .iter()
        .any(|r| matches!(r.destination, Destination::Wildcard(_))));
    assert!(policy
        .host_rules
        .iter()
        .any(|r| matches!(r.destination, Destination::Blocklist(_))));
    assert!(!policy.blocklists.is_empty());
    assert!(!policy.remote_consoles.is_empty());
    assert!(
        policy
            .vms
            .iter()
            .flat_map(|v| &v.rules)
            .any(|r| r.expires.is_some()),
        "the example shows an expiring rule"
    );
}
