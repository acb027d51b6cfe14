//! Which parts of the live policy come from files this app does not edit: the vendor's and the
//! admin's drop-ins (`/usr/lib/palisade/policy.d`, `/etc/palisade/policy.d`), merged before the
//! local policy (`/etc/palisade/policy.toml`). The Firewall page shows those parts with a lock and
//! their file, and an editor must not offer to change them: an apply replaces the local policy
//! only.
//!
//! Pure: built from the contract's merge (`palisade_dbus::policy::merge`, the same rules the
//! helper merges with) and the policy parsed from its document; no GTK.

use crate::i18n::i18n_f;
use palisade_dbus::policy::merge::Merged;
use palisade_dbus::policy::Policy;
use palisade_dbus::types::SourceKind;
use std::collections::HashMap;

/// A file other than the local policy that defines a part of the live policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedBy {
    /// Its file name (`50-office.toml`).
    pub file: String,
    /// Whether a package or an admin put it there (never [`SourceKind::Local`]).
    pub kind: SourceKind,
}

impl ManagedBy {
    /// The part at `path` of `merged` (`vm[work]`, `host_rule[3]`), when a drop-in defines it;
    /// `None` for the local policy's parts and for paths no file is known to define.
    pub fn of(merged: &Merged, path: &str) -> Option<ManagedBy> {
        match merged.source_of(path)? {
            (_, SourceKind::Local) => None,
            (file, kind) => Some(ManagedBy {
                file: file.to_owned(),
                kind,
            }),
        }
    }

    /// The caption under a managed part, naming its file: "Managed by your organisation
    /// (50-office.toml)", or for a package's file "Installed with a package (NAME)". Also the
    /// lock icon's name for screen readers. (A local part has no caption; were one asked for, it
    /// would read as managed rather than as editable.)
    pub fn caption(&self) -> String {
        let file = [("file", self.file.as_str())];
        match self.kind {
            // Translators: under a part of the firewall policy that a software package installed
            // (a file in /usr/lib/palisade/policy.d); {file} is its file name.
            SourceKind::Vendor => i18n_f("Installed with a package ({file})", &file),
            SourceKind::Admin | SourceKind::Local => {
                // Translators: under a part of the firewall policy that the organisation's
                // administrators put in place (a file in /etc/palisade/policy.d, usually from
                // configuration management), so it cannot be changed in the app; {file} is its
                // file name.
                i18n_f("Managed by your organisation ({file})", &file)
            }
        }
    }
}

/// `text` with the caption of `managed` on a line of its own below it, for a row's subtitle.
pub fn with_caption(text: &str, managed: Option<&ManagedBy>) -> String {
    match managed {
        None => text.to_owned(),
        Some(m) if text.is_empty() => m.caption(),
        Some(m) => format!("{text}\n{}", m.caption()),
    }
}

/// For each part of a policy the Firewall page shows, the drop-in that defines it, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Managed {
    /// VMs by name.
    vms: HashMap<String, ManagedBy>,
    /// Host rules by 0-based place; `None` for the local policy's.
    host_rules: Vec<Option<ManagedBy>>,
    /// Remote consoles by name.
    consoles: HashMap<String, ManagedBy>,
    /// Blocklists by name.
    blocklists: HashMap<String, ManagedBy>,
}

impl Managed {
    /// Where the parts of `policy`, parsed from `merged.document`, come from.
    pub fn new(merged: &Merged, policy: &Policy) -> Managed {
        let named = |section: &str, names: Vec<String>| -> HashMap<String, ManagedBy> {
            names
                .into_iter()
                .filter_map(|name| {
                    let by = ManagedBy::of(merged, &format!("{section}[{name}]"))?;
                    Some((name, by))
                })
                .collect()
        };
        Managed {
            vms: named(
                "vm",
                policy.vms.iter().map(|v| v.name.to_string()).collect(),
            ),
            host_rules: (1..=policy.host_rules.len())
                .map(|n| ManagedBy::of(merged, &format!("host_rule[{n}]")))
                .collect(),
            consoles: named(
                "remote_console",
                policy
                    .remote_consoles
                    .iter()
                    .map(|c| c.name.to_string())
                    .collect(),
            ),
            blocklists: named(
                "blocklist",
                policy
                    .blocklists
                    .iter()
                    .map(|b| b.name.to_string())
                    .collect(),
            ),
        }
    }

    /// The drop-in defining the VM `name`.
    pub fn vm(&self, name: &str) -> Option<ManagedBy> {
        self.vms.get(name).cloned()
    }

    /// The drop-in defining the host rule at 1-based `position`.
    pub fn host_rule(&self, position: usize) -> Option<ManagedBy> {
        self.host_rules
            .get(position.checked_sub(1)?)
            .cloned()
            .flatten()
    }

    /// The drop-in defining the remote console `name`.
    pub fn console(&self, name: &str) -> Option<ManagedBy> {
        self.consoles.get(name).cloned()
    }

    /// The drop-in defining the blocklist `name`.
    pub fn blocklist(&self, name: &str) -> Option<ManagedBy> {
        self.blocklists.get(name).cloned()
    }

    /// Whether any shown part comes from a drop-in.
    pub fn any(&self) -> bool {
        !self.vms.is_empty()
            || self.host_rules.iter().any(Option::is_some)
            || !self.consoles.is_empty()
            || !self.blocklists.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_dbus::policy::merge::merge;
    use palisade_dbus::types::PolicySource;

    fn source(name: &str, kind: SourceKind, document: &str) -> PolicySource {
        PolicySource {
            name: name.into(),
            kind,
            path: format!("/etc/palisade/policy.d/{name}"),
            document: document.into(),
        }
    }

    fn managed(sources: &[PolicySource]) -> Managed {
        let merged = merge(sources).unwrap_or_else(|e| panic!("{e:?}"));
        let policy = Policy::parse(merged.document.as_bytes())
            .unwrap_or_else(|e| panic!("{e:?}"))
            .policy;
        Managed::new(&merged, &policy)
    }

    const VENDOR: &str = "[[blocklist]]\nname = \"malware\"\nentries = [\"203.0.113.0/24\"]\n\
        [[host_rule]]\naction = \"drop\"\nblocklist = \"malware\"\n";
    const OFFICE: &str = "[[vm]]\nname = \"lab\"\n[[vm.rule]]\naction = \"accept\"\n\
        proto = \"tcp\"\nports = 443\n\
        [[host_rule]]\naction = \"reject\"\ndestination = \"192.0.2.1\"\n\
        [[remote_console]]\nname = \"server\"\nhost = \"192.0.2.10\"\nport = 5900\n\
        users = [\"alice\"]\n";
    const LOCAL: &str = "[[vm]]\nname = \"work\"\n\
        [[host_rule]]\naction = \"accept\"\ndestination = \"192.0.2.2\"\n\
        [[blocklist]]\nname = \"ads\"\nentries = [\"198.51.100.0/24\"]\n";

    #[test]
    fn drop_ins_parts_name_their_file_and_the_local_policys_parts_nothing() {
        let m = managed(&[
            source("10-vendor.toml", SourceKind::Vendor, VENDOR),
            source("50-office.toml", SourceKind::Admin, OFFICE),
            source("policy.toml", SourceKind::Local, LOCAL),
        ]);
        let office = Some(ManagedBy {
            file: "50-office.toml".into(),
            kind: SourceKind::Admin,
        });
        let vendor = Some(ManagedBy {
            file: "10-vendor.toml".into(),
            kind: SourceKind::Vendor,
        });
        assert_eq!(m.vm("lab"), office);
        assert_eq!(m.vm("work"), None);
        // Host rules in file order: the vendor's, the office's, then the local one.
        assert_eq!(m.host_rule(1), vendor);
        assert_eq!(m.host_rule(2), office);
        assert_eq!(m.host_rule(3), None);
        assert_eq!(m.host_rule(0), None);
        assert_eq!(m.host_rule(4), None);
        assert_eq!(m.console("server"), office);
        assert_eq!(m.blocklist("malware"), vendor);
        assert_eq!(m.blocklist("ads"), None);
        assert_eq!(m.vm("nowhere"), None);
        assert!(m.any());
    }

    #[test]
    fn a_local_policy_alone_has_nothing_managed() {
        let m = managed(&[source("policy.toml", SourceKind::Local, LOCAL)]);
        assert_eq!(m.vm("work"), None);
        assert_eq!(m.host_rule(1), None);
        assert!(!m.any());
        assert_eq!(Managed::default(), managed(&[]));
    }

    #[test]
    fn a_lone_drop_in_without_a_local_policy_is_managed_all_the_same() {
        let m = managed(&[source("50-office.toml", SourceKind::Admin, OFFICE)]);
        assert_eq!(m.vm("lab").map(|b| b.file), Some("50-office.toml".into()));
        assert_eq!(m.host_rule(1).map(|b| b.kind), Some(SourceKind::Admin));
    }

    #[test]
    fn captions_say_who_manages_the_part_and_its_file() {
        let office = ManagedBy {
            file: "50-office.toml".into(),
            kind: SourceKind::Admin,
        };
        assert_eq!(
            office.caption(),
            "Managed by your organisation (50-office.toml)"
        );
        let vendor = ManagedBy {
            file: "10-palisade.toml".into(),
            kind: SourceKind::Vendor,
        };
        assert_eq!(
            vendor.caption(),
            "Installed with a package (10-palisade.toml)"
        );
        assert_eq!(
            with_caption("2 rules", Some(&office)),
            "2 rules\nManaged by your organisation (50-office.toml)"
        );
        assert_eq!(
            with_caption("", Some(&vendor)),
            "Installed with a package (10-palisade.toml)"
        );
        assert_eq!(with_caption("2 rules", None), "2 rules");
    }
}
