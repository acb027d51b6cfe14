//! The Firewall editor's quick actions on one VM's rules, as the rules they make: "Allow
//! everything for 15 minutes" (an expiring accept-all put on top), "HTTPS only" (TCP and UDP
//! port 443 anywhere, and the resolvers for a VM whose DNS does not go through Palisade's
//! forwarder, then drop) and "Only through the proxy" (the proxy's address and port, then drop).
//! A quick action only changes the editor's draft: the admin sees it, previews, applies and keeps
//! it as any other edit.
//!
//! Pure: what a quick action makes is decided here, without a display, and unit-tested by
//! applying it to a document and reading that back with the contract's validation.

use crate::expiry;
use crate::i18n::gettext;
use palisade_dbus::policy::edit::{EditError, PolicyDocument, RuleFields, RuleList, RuleTarget};
use std::time::{Duration, SystemTime};

/// How long "Allow everything" lasts.
pub const ALLOW_ALL_FOR: Duration = Duration::from_secs(15 * 60);

/// A quick action on one VM's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuickAction {
    /// An accept-all rule on top that expires after [`ALLOW_ALL_FOR`].
    AllowAll,
    /// HTTPS anywhere (and the resolvers when the VM needs them), nothing else.
    HttpsOnly,
    /// Only the proxy at this address and port (as typed; validation judges them).
    Proxy { host: String, port: String },
}

/// What a quick action does to a VM's rule list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Rules put on top of the list, the list otherwise kept.
    pub on_top: Vec<RuleFields>,
    /// Rules that replace the whole list, when the action replaces it.
    pub replace: Option<Vec<RuleFields>>,
    /// The VM's new default action, when it changes.
    pub default: Option<&'static str>,
}

impl Plan {
    /// Whether the plan throws the VM's present rules away (the editor shows them first).
    pub fn replaces(&self) -> bool {
        self.replace.is_some()
    }
}

fn accept(target: RuleTarget, proto: &str, ports: &str, comment: &str) -> RuleFields {
    RuleFields {
        action: "accept".into(),
        target,
        proto: proto.into(),
        ports: ports.into(),
        comment: comment.into(),
        ..RuleFields::default()
    }
}

/// The rules `action` makes for a VM whose guest resolves through Palisade (`vm_dns`: its
/// `dns = true`, where the forwarder is let through by itself), at `now`.
pub fn plan(action: &QuickAction, vm_dns: bool, now: SystemTime) -> Plan {
    match action {
        QuickAction::AllowAll => Plan {
            on_top: vec![RuleFields {
                expires: expiry::policy_text(now + ALLOW_ALL_FOR),
                ..accept(
                    RuleTarget::Anywhere,
                    "",
                    "",
                    &gettext("Allow everything for 15 minutes (quick action)"),
                )
            }],
            replace: None,
            default: None,
        },
        QuickAction::HttpsOnly => {
            let comment = gettext("HTTPS only (quick action)");
            let mut rules = vec![
                accept(RuleTarget::Anywhere, "tcp", "443", &comment),
                accept(RuleTarget::Anywhere, "udp", "443", &comment),
            ];
            if !vm_dns {
                // Without the forwarder the guest asks the host's resolvers itself.
                let dns = RuleTarget::Special("dns".into());
                rules.push(accept(dns.clone(), "udp", "53", &comment));
                rules.push(accept(dns, "tcp", "53", &comment));
            }
            Plan {
                on_top: Vec::new(),
                replace: Some(rules),
                default: Some("drop"),
            }
        }
        QuickAction::Proxy { host, port } => Plan {
            on_top: Vec::new(),
            replace: Some(vec![accept(
                RuleTarget::Destination(host.trim().to_owned()),
                "tcp",
                port.trim(),
                &gettext("Only through the proxy (quick action)"),
            )]),
            default: Some("drop"),
        },
    }
}

/// Makes `plan` in `doc` for VM `vm`.
pub fn apply(doc: &mut PolicyDocument, vm: &str, plan: &Plan) -> Result<(), EditError> {
    let list = RuleList::Vm(vm.to_owned());
    let mut work = doc.clone();
    if let Some(rules) = &plan.replace {
        for _ in 0..work.rule_count(&list)? {
            work.remove_rule(&list, 0)?;
        }
        for (i, rule) in rules.iter().enumerate() {
            work.insert_rule(&list, i, rule)?;
        }
    }
    for (i, rule) in plan.on_top.iter().enumerate() {
        work.insert_rule(&list, i, rule)?;
    }
    if let Some(default) = plan.default {
        work.set_default(vm, default)?;
    }
    *doc = work;
    Ok(())
}

/// Whether a VM of the document resolves through Palisade (`dns = true`).
pub fn vm_dns(text: &str, vm: &str) -> bool {
    let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
        return false;
    };
    doc.get("vm")
        .and_then(|v| v.as_array_of_tables())
        .and_then(|vms| {
            vms.iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(vm))
        })
        .and_then(|t| t.get("dns"))
        .and_then(|d| d.as_bool())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_dbus::policy::{Destination, Policy, Protocol, Verdict};
    use std::time::UNIX_EPOCH;

    const DOC: &str = "# kept\n[[vm]]\nname = \"work\"\ndefault = \"accept\"\n\n\
                       [[vm.rule]]\naction = \"accept\"\ndestination = \"192.0.2.10\"\n\
                       proto = \"tcp\"\nports = 25\n\n[[vm]]\nname = \"kids\"\ndns = true\n";

    fn run(action: QuickAction, vm: &str) -> Policy {
        let mut doc = PolicyDocument::parse(DOC).unwrap_or_else(|e| panic!("{e}"));
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let p = plan(&action, vm_dns(DOC, vm), now);
        apply(&mut doc, vm, &p).unwrap_or_else(|e| panic!("{e}"));
        let text = doc.text();
        assert!(text.starts_with("# kept\n"), "{text}");
        Policy::parse(text.as_bytes())
            .unwrap_or_else(|f| panic!("{f:?}\n{text}"))
            .policy
    }

    #[test]
    fn allow_all_goes_on_top_and_expires() {
        let p = run(QuickAction::AllowAll, "work");
        let rules = &p.vms[0].rules;
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].action, Verdict::Accept);
        assert_eq!(rules[0].protocol, Protocol::Any);
        assert!(rules[0].ports.is_none());
        assert_eq!(
            rules[0].expires,
            Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000 + 900))
        );
        assert!(rules[0].comment.contains("15 minutes"));
        // The old rule follows; the default is untouched.
        assert_eq!(rules[1].destination.to_string(), "192.0.2.10");
        assert_eq!(p.vms[0].default_action, Verdict::Accept);
    }

    #[test]
    fn https_only_replaces_the_rules_and_drops_the_rest() {
        let p = run(QuickAction::HttpsOnly, "work");
        let vm = &p.vms[0];
        assert_eq!(vm.default_action, Verdict::Drop);
        let described: Vec<String> = vm
            .rules
            .iter()
            .map(|r| {
                format!(
                    "{} {:?} {} {}",
                    r.action,
                    r.protocol,
                    r.destination,
                    r.ports.as_ref().map(|p| p.to_string()).unwrap_or_default()
                )
            })
            .collect();
        // work resolves without the forwarder: the resolvers are let through too.
        assert_eq!(described.len(), 4, "{described:?}");
        assert!(described[0].starts_with("accept Tcp "), "{described:?}");
        assert!(described[1].starts_with("accept Udp "), "{described:?}");
        assert!(vm.rules[..2]
            .iter()
            .all(|r| r.ports.as_ref().is_some_and(|p| p.to_string() == "443")));
        assert!(vm.rules[2..]
            .iter()
            .all(|r| r.destination == Destination::Dns));

        // kids has dns = true: HTTPS and nothing more.
        let p = run(QuickAction::HttpsOnly, "kids");
        assert_eq!(p.vms[1].rules.len(), 2);
        assert_eq!(p.vms[1].default_action, Verdict::Drop);
        // The other VM is untouched.
        assert_eq!(p.vms[0].rules.len(), 1);
    }

    #[test]
    fn only_the_proxy() {
        let p = run(
            QuickAction::Proxy {
                host: " 10.0.2.2 ".into(),
                port: "3128".into(),
            },
            "work",
        );
        let vm = &p.vms[0];
        assert_eq!(vm.rules.len(), 1);
        assert_eq!(vm.rules[0].destination.to_string(), "10.0.2.2");
        assert_eq!(vm.rules[0].protocol, Protocol::Tcp);
        assert_eq!(vm.default_action, Verdict::Drop);
        assert!(plan(
            &QuickAction::Proxy {
                host: String::new(),
                port: String::new()
            },
            false,
            SystemTime::now()
        )
        .replaces());
    }

    #[test]
    fn a_bad_proxy_port_is_left_to_validation_and_an_unknown_vm_changes_nothing() {
        let mut doc = PolicyDocument::parse(DOC).unwrap_or_else(|e| panic!("{e}"));
        let p = plan(
            &QuickAction::Proxy {
                host: "10.0.2.2".into(),
                port: "99999".into(),
            },
            false,
            SystemTime::now(),
        );
        apply(&mut doc, "work", &p).unwrap_or_else(|e| panic!("{e}"));
        let findings = Policy::parse(doc.text().as_bytes())
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert!(findings.iter().any(|f| f.path == "vm[work].rule[1].ports"));
        let mut doc = PolicyDocument::parse(DOC).unwrap_or_else(|e| panic!("{e}"));
        assert!(apply(&mut doc, "nope", &p).is_err());
        assert_eq!(doc.text(), DOC);
    }
}
