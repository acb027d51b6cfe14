//! One policy from several files: the vendor's and the admin's drop-ins and the local policy.
//!
//! The helper reads the files (it decides their order: drop-ins by file name, a same-named admin
//! file replacing the vendor's, the local policy last); this module combines their contents, so
//! the app can show where a section comes from with the same rules the helper applies.
//!
//! Invariants: VMs, remote consoles and blocklists are each defined in one file; host rules from
//! all files are concatenated in file order; a setting is set in at most one file. Every conflict
//! is an error naming both files — nothing is silently overridden. A single file is taken
//! verbatim, so a machine without drop-ins keeps its document byte for byte (comments included);
//! several are re-serialized as one TOML document, the one the generation records.

use crate::types::{Finding, PolicySource, Severity, SourceKind};
use std::collections::HashMap;

/// The sections that hold named entries, one file each.
const NAMED_SECTIONS: [&str; 4] = ["vm", "remote_console", "blocklist", "network"];
/// Every top-level key a policy may have.
const SECTIONS: [&str; 6] = [
    "vm",
    "host_rule",
    "remote_console",
    "blocklist",
    "network",
    "settings",
];

/// The combined policy and which file wrote what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The document to validate, compile and record.
    pub document: String,
    origins: Origins,
}

/// Which source (by index into the names) defined each part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Origins {
    names: Vec<String>,
    kinds: Vec<SourceKind>,
    /// `vm[work]`, `blocklist[ads]`, ... → source.
    named: HashMap<String, usize>,
    /// The merged host rules' sources, in order.
    host_rules: Vec<usize>,
    /// `settings.dns.upstream`, ... → source.
    settings: HashMap<String, usize>,
}

impl Merged {
    /// The file that wrote the part of the policy at `path` (a finding's path: `vm[work].rule[2]`,
    /// `host_rule[3]`, `settings.dns.upstream`), or `None` when the path names no single part.
    pub fn source_of(&self, path: &str) -> Option<(&str, SourceKind)> {
        let o = &self.origins;
        if let ([name], [kind]) = (o.names.as_slice(), o.kinds.as_slice()) {
            return Some((name.as_str(), *kind));
        }
        let index = if let Some(rest) = path.strip_prefix("host_rule[") {
            let n: usize = rest.split(']').next()?.parse().ok()?;
            o.host_rules.get(n.checked_sub(1)?).copied()
        } else if path.starts_with("settings.") {
            o.settings
                .iter()
                .filter(|(k, _)| path == k.as_str() || path.starts_with(&format!("{k}.")))
                .max_by_key(|(k, _)| k.len())
                .map(|(_, i)| *i)
        } else {
            let head = &path[..path.find(']').map_or(path.len(), |i| i + 1)];
            o.named.get(head).copied()
        }?;
        Some((o.names.get(index)?.as_str(), *o.kinds.get(index)?))
    }

    /// `findings` about the merged document, each about a drop-in saying which: the local policy
    /// is the one its editor has open, the others are files it must be told about.
    pub fn attribute(&self, findings: Vec<Finding>) -> Vec<Finding> {
        findings
            .into_iter()
            .map(|mut f| {
                if let Some((name, kind)) = self.source_of(&f.path) {
                    if kind != SourceKind::Local {
                        f.message = format!("{} (in {name})", f.message);
                    }
                }
                f
            })
            .collect()
    }
}

/// Combines `sources`, in the order given, into one policy document.
pub fn merge(sources: &[PolicySource]) -> Result<Merged, Vec<Finding>> {
    if sources.len() <= 1 {
        // A lone file owns everything in it, so nothing of it is read here (a 10,000-rule
        // policy took 40-60 ms to parse just to note that): `source_of` answers it for every
        // path.
        let mut origins = Origins::default();
        if let Some(s) = sources.first() {
            origins.names.push(s.name.clone());
            origins.kinds.push(s.kind);
        }
        return Ok(Merged {
            document: sources
                .first()
                .map(|s| s.document.clone())
                .unwrap_or_default(),
            origins,
        });
    }
    let mut m = Merger::default();
    for (i, s) in sources.iter().enumerate() {
        m.origins.names.push(s.name.clone());
        m.origins.kinds.push(s.kind);
        match s.document.parse::<toml::Table>() {
            Ok(table) => m.add(i, table),
            Err(e) => m.error(
                &s.name,
                format!("{}{}", e.message().trim(), line_of(&s.document, &e)),
            ),
        }
    }
    if !m.errors.is_empty() {
        return Err(m.errors);
    }
    let document = toml::to_string(&m.out).map_err(|e| {
        vec![Finding {
            severity: Severity::Error,
            path: "policy".into(),
            message: format!("the merged policy cannot be written as TOML: {e}"),
        }]
    })?;
    Ok(Merged {
        document,
        origins: m.origins,
    })
}

#[derive(Default)]
struct Merger {
    out: toml::Table,
    origins: Origins,
    errors: Vec<Finding>,
}

impl Merger {
    fn error(&mut self, name: &str, message: String) {
        self.errors.push(Finding {
            severity: Severity::Error,
            path: format!("source[{name}]"),
            message,
        });
    }

    fn name(&self, i: usize) -> String {
        self.origins.names.get(i).cloned().unwrap_or_default()
    }

    fn add(&mut self, i: usize, table: toml::Table) {
        let file = self.name(i);
        for (key, value) in table {
            match key.as_str() {
                "settings" => match value {
                    toml::Value::Table(t) => self.settings(i, "settings", t),
                    _ => self.error(&file, "`settings` must be a table ([settings])".into()),
                },
                "host_rule" => match value {
                    toml::Value::Array(rules) => {
                        self.origins
                            .host_rules
                            .extend(std::iter::repeat_n(i, rules.len()));
                        self.append("host_rule", rules);
                    }
                    _ => self.error(&file, "`host_rule` must be a list ([[host_rule]])".into()),
                },
                section if NAMED_SECTIONS.contains(&section) => match value {
                    toml::Value::Array(entries) => self.named(i, section, entries),
                    _ => self.error(&file, format!("`{section}` must be a list ([[{section}]])")),
                },
                other => self.error(
                    &file,
                    format!(
                        "unknown section `{other}`; a policy has {}",
                        SECTIONS.map(|s| format!("`{s}`")).join(", ")
                    ),
                ),
            }
        }
    }

    fn append(&mut self, section: &str, entries: Vec<toml::Value>) {
        if let toml::Value::Array(all) = self
            .out
            .entry(section)
            .or_insert_with(|| toml::Value::Array(Vec::new()))
        {
            all.extend(entries);
        }
    }

    fn named(&mut self, i: usize, section: &str, entries: Vec<toml::Value>) {
        let file = self.name(i);
        let mut kept = Vec::with_capacity(entries.len());
        for entry in entries {
            // A missing or malformed name is validation's to report, with its path.
            if let Some(name) = entry.get("name").and_then(|n| n.as_str()) {
                let key = format!("{section}[{name}]");
                if let Some(&first) = self.origins.named.get(&key) {
                    if first != i {
                        let other = self.name(first);
                        self.error(&file,
                            format!(
                                "{} `{name}` is defined in both {other} and {file}; define it in one",
                                what(section)
                            ),
                        );
                        continue;
                    }
                } else {
                    self.origins.named.insert(key, i);
                }
            }
            kept.push(entry);
        }
        self.append(section, kept);
    }

    /// Merges a settings table key by key; a leaf set twice is a conflict.
    fn settings(&mut self, i: usize, path: &str, table: toml::Table) {
        let file = self.name(i);
        for (key, value) in table {
            let here = format!("{path}.{key}");
            match value {
                toml::Value::Table(t) => {
                    let exists = lookup_mut(&mut self.out, &here).is_some_and(|v| v.is_table());
                    if !exists && !self.set(&here, toml::Value::Table(toml::Table::new())) {
                        self.conflict(&file, &here);
                        continue;
                    }
                    self.settings(i, &here, t);
                }
                leaf => {
                    if let Some(&first) = self.origins.settings.get(&here) {
                        let other = self.name(first);
                        self.error(
                            &file,
                            format!("{here} is set in both {other} and {file}; set it in one"),
                        );
                        continue;
                    }
                    if !self.set(&here, leaf) {
                        self.conflict(&file, &here);
                        continue;
                    }
                    self.origins.settings.insert(here, i);
                }
            }
        }
    }

    fn conflict(&mut self, file: &str, path: &str) {
        let other = self
            .origins
            .settings
            .get(path)
            .map(|&f| self.name(f))
            .unwrap_or_else(|| "another file".into());
        self.error(
            file,
            format!("{path} is set in both {other} and {file}; set it in one"),
        );
    }

    /// Puts `value` at the dotted `path` (whose parents exist or are created); false when a
    /// parent is not a table.
    fn set(&mut self, path: &str, value: toml::Value) -> bool {
        let mut parts: Vec<&str> = path.split('.').collect();
        let Some(last) = parts.pop() else {
            return false;
        };
        let mut table = &mut self.out;
        for p in parts {
            let next = table
                .entry(p)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match next {
                toml::Value::Table(t) => table = t,
                _ => return false,
            }
        }
        table.insert(last.to_owned(), value);
        true
    }
}

fn lookup_mut<'a>(table: &'a mut toml::Table, path: &str) -> Option<&'a mut toml::Value> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut value = table.get_mut(first)?;
    for p in parts {
        value = value.as_table_mut()?.get_mut(p)?;
    }
    Some(value)
}

fn what(section: &str) -> &'static str {
    match section {
        "vm" => "the VM",
        "remote_console" => "the remote console",
        "network" => "the network",
        _ => "the blocklist",
    }
}

fn line_of(text: &str, e: &toml::de::Error) -> String {
    e.span()
        .map(|s| {
            let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    fn source(name: &str, kind: SourceKind, document: &str) -> PolicySource {
        PolicySource {
            name: name.into(),
            kind,
            path: format!("/etc/palisade/policy.d/{name}"),
            document: document.into(),
        }
    }

    fn messages(e: Vec<Finding>) -> String {
        e.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn one_file_is_taken_verbatim_comments_and_all() {
        let doc = "# ours\n[[vm]]\nname = \"work\"\n";
        let m = merge(&[source("policy.toml", SourceKind::Local, doc)])
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(m.document, doc);
        assert_eq!(
            m.source_of("vm[work].rule[1]"),
            Some(("policy.toml", SourceKind::Local))
        );
        assert_eq!(
            m.source_of("settings.dns.upstream"),
            Some(("policy.toml", SourceKind::Local)),
            "a lone file owns every part"
        );
        let empty = merge(&[]).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(empty.document, "");
        assert_eq!(empty.source_of("vm[work]"), None);
    }

    #[test]
    fn vms_lists_and_host_rules_from_every_file_form_one_policy_in_file_order() {
        let a = source(
            "10-office.toml",
            SourceKind::Admin,
            "[[host_rule]]\naction = \"reject\"\ndestination = \"192.0.2.1\"\n\
             [[blocklist]]\nname = \"bad\"\nentries = [\"198.51.100.0/24\"]\n\
             [settings.dns]\nttl_floor_seconds = 60\n",
        );
        let b = source(
            "policy.toml",
            SourceKind::Local,
            "[[vm]]\nname = \"work\"\n[[vm.rule]]\naction = \"accept\"\nproto = \"tcp\"\nports = 443\n\
             [[host_rule]]\naction = \"reject\"\nblocklist = \"bad\"\n\
             [settings]\naccel = \"tcg\"\n",
        );
        let m = merge(&[a, b]).unwrap_or_else(|e| panic!("{e:?}"));
        let p = Policy::parse(m.document.as_bytes())
            .unwrap_or_else(|e| panic!("{e:?}"))
            .policy;
        assert_eq!(p.vms.len(), 1);
        assert_eq!(p.host_rules.len(), 2);
        assert!(p.host_rules[0].comment.is_empty());
        assert!(matches!(
            p.host_rules[1].destination,
            crate::policy::Destination::Blocklist(_)
        ));
        assert_eq!(p.settings.dns.ttl_floor_seconds, 60);
        assert_eq!(
            m.source_of("host_rule[1]"),
            Some(("10-office.toml", SourceKind::Admin))
        );
        assert_eq!(
            m.source_of("host_rule[2]"),
            Some(("policy.toml", SourceKind::Local))
        );
        assert_eq!(
            m.source_of("settings.dns.ttl_floor_seconds"),
            Some(("10-office.toml", SourceKind::Admin))
        );
        assert_eq!(
            m.source_of("vm[work].rule[1].ports"),
            Some(("policy.toml", SourceKind::Local))
        );
    }

    #[test]
    fn a_vm_in_two_files_is_refused_naming_both() {
        let vm = "[[vm]]\nname = \"work\"\n";
        let e = merge(&[
            source("10-a.toml", SourceKind::Vendor, vm),
            source("20-b.toml", SourceKind::Admin, vm),
        ])
        .err()
        .unwrap_or_else(|| panic!("expected an error"));
        let text = messages(e);
        assert!(
            text.contains("10-a.toml") && text.contains("20-b.toml"),
            "{text}"
        );
        assert!(text.contains("`work`"), "{text}");
    }

    #[test]
    fn a_setting_set_twice_is_refused_naming_both_files() {
        let e = merge(&[
            source(
                "10-a.toml",
                SourceKind::Admin,
                "[settings.dns]\ngrace_seconds = 5\n",
            ),
            source(
                "policy.toml",
                SourceKind::Local,
                "[settings.dns]\ngrace_seconds = 9\n",
            ),
        ])
        .err()
        .unwrap_or_else(|| panic!("expected an error"));
        let text = messages(e);
        assert!(text.contains("settings.dns.grace_seconds"), "{text}");
        assert!(
            text.contains("10-a.toml") && text.contains("policy.toml"),
            "{text}"
        );
        // Different settings of one table from two files combine.
        let m = merge(&[
            source(
                "10-a.toml",
                SourceKind::Admin,
                "[settings.dns]\ngrace_seconds = 5\n",
            ),
            source(
                "policy.toml",
                SourceKind::Local,
                "[settings.dns]\nttl_floor_seconds = 9\n",
            ),
        ])
        .unwrap_or_else(|e| panic!("{e:?}"));
        let p = Policy::parse(m.document.as_bytes())
            .unwrap_or_else(|e| panic!("{e:?}"))
            .policy;
        assert_eq!(
            (
                p.settings.dns.grace_seconds,
                p.settings.dns.ttl_floor_seconds
            ),
            (5, 9)
        );
    }

    #[test]
    fn a_file_that_is_not_toml_or_has_unknown_sections_is_named() {
        let e = merge(&[
            source("10-a.toml", SourceKind::Admin, "[[vm]\n"),
            source("20-b.toml", SourceKind::Admin, "[[wm]]\nname = \"x\"\n"),
            source("30-c.toml", SourceKind::Admin, "vm = 3\n"),
        ])
        .err()
        .unwrap_or_else(|| panic!("expected an error"));
        assert_eq!(e.len(), 3, "{e:?}");
        assert_eq!(e[0].path, "source[10-a.toml]");
        assert!(e[0].message.contains("line 1"), "{}", e[0].message);
        assert!(e[1].message.contains("unknown section `wm`"));
        assert!(e[2].message.contains("[[vm]]"));
    }

    #[test]
    fn findings_about_a_drop_in_name_it_and_the_local_ones_do_not() {
        let m = merge(&[
            source(
                "10-office.toml",
                SourceKind::Admin,
                "[[vm]]\nname = \"lab\"\n[[vm.rule]]\naction = \"accept\"\nproto = \"tcp\"\nports = 70000\n",
            ),
            source(
                "policy.toml",
                SourceKind::Local,
                "[[vm]]\nname = \"work\"\n[[vm.rule]]\naction = \"accept\"\nproto = \"tcp\"\nports = 0\n",
            ),
        ])
        .unwrap_or_else(|e| panic!("{e:?}"));
        let findings = m.attribute(
            Policy::parse(m.document.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("expected an error")),
        );
        let lab = findings
            .iter()
            .find(|f| f.path.starts_with("vm[lab]"))
            .unwrap_or_else(|| panic!("no such finding"));
        assert!(
            lab.message.ends_with("(in 10-office.toml)"),
            "{}",
            lab.message
        );
        let work = findings
            .iter()
            .find(|f| f.path.starts_with("vm[work]"))
            .unwrap_or_else(|| panic!("no such finding"));
        assert!(!work.message.contains("(in "), "{}", work.message);
    }

    #[test]
    fn merging_is_deterministic() {
        let sources = [
            source(
                "10-a.toml",
                SourceKind::Admin,
                "[[vm]]\nname = \"a\"\n[settings]\naccel = \"tcg\"\n",
            ),
            source("policy.toml", SourceKind::Local, "[[vm]]\nname = \"b\"\n"),
        ];
        assert_eq!(
            merge(&sources).unwrap_or_else(|e| panic!("{e:?}")).document,
            merge(&sources).unwrap_or_else(|e| panic!("{e:?}")).document
        );
    }
}
