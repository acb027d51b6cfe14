//! Edits of the local policy document in place, for the app's policy editor: add, change,
//! duplicate, remove, move, turn on and off a VM's or the host's rules, and set a VM's default
//! action; and who may operate a VM or open its console, and the remote consoles
//! (`edit/access.rs`). Pure: text in, text out.
//!
//! Invariant: an edit changes the rule it is about and nothing else. Everything the editor has
//! no widgets for — other sections, unknown settings, comments, blank lines, key order, the
//! way a value was written — stays byte for byte (toml_edit keeps the document's own text for
//! every part not touched). A changed value keeps the comment written after it. Rule fields
//! arrive as the text the admin typed: the edit writes them as TOML the policy model reads
//! (a port as a number, a range as a string, a time as a TOML date-time) and leaves judging
//! them to [`super::Policy::parse`], whose findings name the rule by [`rule_path`].

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, Value};

mod access;
pub use access::{access_path, console_path, AccessKind, AccessLists, RemoteConsoleFields};

/// Whose ordered rule list an edit is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleList {
    /// `[[host_rule]]`: every local process.
    Host,
    /// `[[vm.rule]]` of the `[[vm]]` with this name.
    Vm(String),
}

/// Where a rule sends traffic: at most one of the policy's three ways to say it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RuleTarget {
    /// No destination: every address.
    #[default]
    Anywhere,
    /// `destination`: an address, a network, a host name or a `*.domain` wildcard.
    Destination(String),
    /// `special_target` (`dns`).
    Special(String),
    /// `blocklist`: a list by name.
    Blocklist(String),
}

/// A rule's fields as the editor shows them: text as typed, judged only by validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFields {
    /// `accept`, `drop` or `reject`.
    pub action: String,
    pub target: RuleTarget,
    /// Empty: any protocol.
    pub proto: String,
    /// `443`, `8000-8100`, `80, 443`; empty: every port.
    pub ports: String,
    /// A number or a name; empty: every type.
    pub icmp_type: String,
    /// An RFC 3339 time; empty: never.
    pub expires: String,
    pub log: bool,
    pub comment: String,
    pub enabled: bool,
}

impl Default for RuleFields {
    fn default() -> Self {
        Self {
            action: "accept".into(),
            target: RuleTarget::Anywhere,
            proto: String::new(),
            ports: String::new(),
            icmp_type: String::new(),
            expires: String::new(),
            log: false,
            comment: String::new(),
            enabled: true,
        }
    }
}

/// Why an edit cannot be made; the document is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("the policy is not TOML the editor can read: {0}")]
    Unreadable(String),
    #[error("the local policy has no VM named {0}: it may come from a file of your organisation")]
    NoVm(String),
    #[error("there is no rule {number} (the list has {len})")]
    NoRule { number: usize, len: usize },
    #[error("the rules here are not written as [[...]] tables the editor can change")]
    NotAList,
    #[error("{0} is not written as a table of users and groups the editor can change")]
    NotAccessList(String),
    #[error("the local policy has no remote console named {0}: it may come from a file of your organisation")]
    NoConsole(String),
    #[error("there is a remote console named {0} already")]
    ConsoleExists(String),
}

/// The local policy as the editor changes it.
#[derive(Debug, Clone)]
pub struct PolicyDocument {
    doc: DocumentMut,
}

/// The validation path of rule `index` (0-based) of `list`, as findings name it:
/// `host_rule[3]`, `vm[work].rule[2]`.
pub fn rule_path(list: &RuleList, index: usize) -> String {
    match list {
        RuleList::Host => format!("host_rule[{}]", index + 1),
        RuleList::Vm(vm) => format!("vm[{vm}].rule[{}]", index + 1),
    }
}

/// The field of rule `index` of `list` a finding's `path` names: `Some("")` for the rule as a
/// whole, `Some("ports")` for one field, `None` for a finding about something else.
pub fn finding_field<'p>(path: &'p str, list: &RuleList, index: usize) -> Option<&'p str> {
    let rest = path.strip_prefix(&rule_path(list, index))?;
    match rest.strip_prefix('.') {
        Some(field) => Some(field),
        None if rest.is_empty() => Some(""),
        None => None,
    }
}

impl PolicyDocument {
    /// Reads `text` (an empty policy is an empty document).
    pub fn parse(text: &str) -> Result<Self, EditError> {
        let doc = text
            .parse::<DocumentMut>()
            .map_err(|e| EditError::Unreadable(e.to_string()))?;
        Ok(Self { doc })
    }

    /// The document as text.
    pub fn text(&self) -> String {
        self.doc.to_string()
    }

    /// How many rules `list` has (0 for a VM without rules).
    pub fn rule_count(&self, list: &RuleList) -> Result<usize, EditError> {
        Ok(self.stored_rules(list)?.map_or(0, |r| r.len()))
    }

    /// The fields of rule `index` (0-based) of `list`.
    pub fn rule(&self, list: &RuleList, index: usize) -> Result<RuleFields, EditError> {
        let rules = self.stored_rules(list)?;
        let len = rules.as_ref().map_or(0, |r| r.len());
        rules
            .and_then(|r| r.into_iter().nth(index))
            .ok_or(EditError::NoRule {
                number: index + 1,
                len,
            })
    }

    /// Every rule of `list`, in order, read in one pass (the editor shows them all after each
    /// change: reading them one by one would walk the list once per rule).
    pub fn rules_of(&self, list: &RuleList) -> Result<Vec<RuleFields>, EditError> {
        Ok(self.stored_rules(list)?.unwrap_or_default())
    }

    /// Puts a new rule with `fields` at `index` (0-based; the length appends).
    pub fn insert_rule(
        &mut self,
        list: &RuleList,
        index: usize,
        fields: &RuleFields,
    ) -> Result<(), EditError> {
        let rules = self.rules(list, true)?.ok_or(EditError::NotAList)?;
        if index > rules.len() {
            return Err(EditError::NoRule {
                number: index + 1,
                len: rules.len(),
            });
        }
        let mut table = Table::new();
        write_fields(&mut table, fields);
        rules.insert(index, table);
        renumber(rules);
        Ok(())
    }

    /// Changes rule `index` to `fields`: only the keys whose meaning changes are written.
    pub fn set_rule(
        &mut self,
        list: &RuleList,
        index: usize,
        fields: &RuleFields,
    ) -> Result<(), EditError> {
        write_fields(self.rule_mut(list, index)?, fields);
        Ok(())
    }

    /// Turns rule `index` on or off (`enabled = false`; on is the key's absence).
    pub fn set_enabled(
        &mut self,
        list: &RuleList,
        index: usize,
        enabled: bool,
    ) -> Result<(), EditError> {
        let table = self.rule_mut(list, index)?;
        if enabled {
            table.remove("enabled");
        } else {
            set_value(table, "enabled", Value::from(false));
        }
        Ok(())
    }

    /// Puts a copy of rule `index` right after it.
    pub fn duplicate_rule(&mut self, list: &RuleList, index: usize) -> Result<(), EditError> {
        let mut copy = self.rule_mut(list, index)?.clone();
        copy.set_position(None);
        copy.decor_mut().clear();
        let rules = self.rules(list, false)?.ok_or(EditError::NotAList)?;
        rules.insert(index + 1, copy);
        renumber(rules);
        Ok(())
    }

    /// Removes rule `index`.
    pub fn remove_rule(&mut self, list: &RuleList, index: usize) -> Result<(), EditError> {
        self.rule_mut(list, index)?;
        let rules = self.rules(list, false)?.ok_or(EditError::NotAList)?;
        let removed = rules.remove(index);
        // The comment lines above the removed rule were about it; the next rule keeps its own.
        drop(removed);
        if rules.is_empty() {
            self.remove_empty(list)?;
        }
        Ok(())
    }

    /// Moves rule `from` to position `to` (both 0-based): rules are matched in order.
    pub fn move_rule(&mut self, list: &RuleList, from: usize, to: usize) -> Result<(), EditError> {
        self.rule_mut(list, from)?;
        let rules = self.rules(list, false)?.ok_or(EditError::NotAList)?;
        if to >= rules.len() {
            return Err(EditError::NoRule {
                number: to + 1,
                len: rules.len(),
            });
        }
        let table = rules.remove(from);
        rules.insert(to, table);
        renumber(rules);
        Ok(())
    }

    /// Sets VM `vm`'s default action (`default`).
    pub fn set_default(&mut self, vm: &str, action: &str) -> Result<(), EditError> {
        let table = self.vm_mut(vm)?;
        set_value(table, "default", Value::from(action));
        Ok(())
    }

    /// The rule table `index` of `list`.
    fn rule_mut(&mut self, list: &RuleList, index: usize) -> Result<&mut Table, EditError> {
        let rules = self.rules(list, false)?;
        let len = rules.as_ref().map_or(0, |r| r.len());
        rules
            .and_then(|r| r.get_mut(index))
            .ok_or(EditError::NoRule {
                number: index + 1,
                len,
            })
    }

    /// The fields of `list`'s rules as written (`[[...]]` tables or an inline array of tables),
    /// None when the list is absent. Reads only: nothing is converted, nothing is cloned but the
    /// fields.
    fn stored_rules(&self, list: &RuleList) -> Result<Option<Vec<RuleFields>>, EditError> {
        let (owner, key) = match list {
            RuleList::Host => (self.doc.as_table(), "host_rule"),
            RuleList::Vm(vm) => (self.vm(vm)?, "rule"),
        };
        let Some(item) = owner.get(key) else {
            return Ok(None);
        };
        if let Some(tables) = item.as_array_of_tables() {
            return Ok(Some(tables.iter().map(read_fields).collect()));
        }
        let array = item.as_array().ok_or(EditError::NotAList)?;
        array
            .iter()
            .map(|value| {
                value
                    .as_inline_table()
                    .map(|inline| read_fields(&inline.clone().into_table()))
                    .ok_or(EditError::NotAList)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// The rules of `list`, made (empty) when `create` says so; an inline array of rule tables
    /// is turned into `[[...]]` tables first, since only those can take a rule's comment lines.
    fn rules(
        &mut self,
        list: &RuleList,
        create: bool,
    ) -> Result<Option<&mut ArrayOfTables>, EditError> {
        let (owner, key) = match list {
            RuleList::Host => (self.doc.as_table_mut(), "host_rule"),
            RuleList::Vm(vm) => (self.vm_mut(vm)?, "rule"),
        };
        if !owner.contains_key(key) {
            if !create {
                return Ok(None);
            }
            owner.insert(key, Item::ArrayOfTables(ArrayOfTables::new()));
        }
        let item = owner.get_mut(key).ok_or(EditError::NotAList)?;
        if item.is_array() {
            let taken = std::mem::take(item);
            *item = match taken.into_array_of_tables() {
                Ok(tables) => Item::ArrayOfTables(tables),
                Err(original) => {
                    *item = original;
                    return Err(EditError::NotAList);
                }
            };
        }
        item.as_array_of_tables_mut()
            .map(Some)
            .ok_or(EditError::NotAList)
    }

    /// Drops an emptied `[[...]]` list's key (an empty array of tables writes nothing, but a
    /// `rule = []` the admin wrote is kept as written by never getting here).
    fn remove_empty(&mut self, list: &RuleList) -> Result<(), EditError> {
        let (owner, key) = match list {
            RuleList::Host => (self.doc.as_table_mut(), "host_rule"),
            RuleList::Vm(vm) => (self.vm_mut(vm)?, "rule"),
        };
        owner.remove(key);
        Ok(())
    }

    /// The `[[vm]]` table named `vm`, to read.
    fn vm(&self, vm: &str) -> Result<&Table, EditError> {
        self.doc
            .get("vm")
            .and_then(Item::as_array_of_tables)
            .and_then(|vms| {
                vms.iter()
                    .find(|t| t.get("name").and_then(Item::as_str) == Some(vm))
            })
            .ok_or_else(|| EditError::NoVm(vm.to_owned()))
    }

    /// The `[[vm]]` table named `vm`.
    fn vm_mut(&mut self, vm: &str) -> Result<&mut Table, EditError> {
        self.doc
            .get_mut("vm")
            .and_then(Item::as_array_of_tables_mut)
            .and_then(|vms| {
                vms.iter_mut()
                    .find(|t| t.get("name").and_then(Item::as_str) == Some(vm))
            })
            .ok_or_else(|| EditError::NoVm(vm.to_owned()))
    }
}

/// Gives the rule tables that came from the text their places in array order (the document is
/// written in the order of those places); new tables have none and follow the one before.
fn renumber(rules: &mut ArrayOfTables) {
    let mut places: Vec<isize> = rules.iter().filter_map(Table::position).collect();
    places.sort_unstable();
    let mut places = places.into_iter();
    for table in rules.iter_mut() {
        if table.position().is_some() {
            table.set_position(places.next());
        }
    }
}

/// The fields a rule table holds, as text.
fn read_fields(table: &Table) -> RuleFields {
    let text = |key: &str| table.get(key).map(value_text).unwrap_or_default();
    let target = if let Some(d) = table.get("destination") {
        RuleTarget::Destination(value_text(d))
    } else if let Some(s) = table.get("special_target") {
        RuleTarget::Special(value_text(s))
    } else if let Some(b) = table.get("blocklist") {
        RuleTarget::Blocklist(value_text(b))
    } else {
        RuleTarget::Anywhere
    };
    RuleFields {
        action: text("action"),
        target,
        proto: text("proto"),
        ports: text("ports"),
        icmp_type: text("icmp_type"),
        expires: text("expires"),
        log: table.get("log").and_then(Item::as_bool).unwrap_or(false),
        comment: text("comment"),
        enabled: table.get("enabled").and_then(Item::as_bool).unwrap_or(true),
    }
}

/// A value as the admin would type it: strings without quotes, arrays joined by ", ".
fn value_text(item: &Item) -> String {
    match item.as_value() {
        Some(Value::String(s)) => s.value().clone(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => s.value().clone(),
                other => bare(other),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => bare(other),
        None => String::new(),
    }
}

/// A value as written, without the spaces and comment around it.
fn bare(value: &Value) -> String {
    let mut value = value.clone();
    value.decor_mut().clear();
    value.to_string()
}

/// Writes `fields` into a rule table, touching only keys whose meaning changes.
fn write_fields(table: &mut Table, fields: &RuleFields) {
    set_value(table, "action", Value::from(fields.action.trim()));
    let (key, target) = match &fields.target {
        RuleTarget::Anywhere => ("", ""),
        RuleTarget::Destination(d) => ("destination", d.as_str()),
        RuleTarget::Special(s) => ("special_target", s.as_str()),
        RuleTarget::Blocklist(b) => ("blocklist", b.as_str()),
    };
    for other in ["destination", "special_target", "blocklist"] {
        if other != key {
            table.remove(other);
        }
    }
    if !key.is_empty() {
        set_value(table, key, Value::from(target.trim()));
    }
    set_optional(table, "proto", &fields.proto, |t| Value::from(t));
    set_optional(table, "ports", &fields.ports, ports_value);
    set_optional(table, "icmp_type", &fields.icmp_type, number_or_text);
    set_optional(table, "expires", &fields.expires, time_value);
    set_flag(table, "log", fields.log, false);
    set_optional(table, "comment", &fields.comment, |t| Value::from(t));
    set_flag(table, "enabled", fields.enabled, true);
}

/// `key` = the value of `text` (trimmed), or no `key` when it is empty.
fn set_optional(table: &mut Table, key: &str, text: &str, value: impl Fn(&str) -> Value) {
    let text = text.trim();
    if text.is_empty() {
        table.remove(key);
    } else if table.get(key).map(value_text).as_deref() != Some(text) {
        set_value(table, key, value(text));
    }
}

/// A flag written only when it differs from its default (an existing key is kept and set).
fn set_flag(table: &mut Table, key: &str, on: bool, default: bool) {
    if (table.contains_key(key) || on != default)
        && table.get(key).and_then(Item::as_bool) != Some(on)
    {
        set_value(table, key, Value::from(on));
    }
}

/// Replaces `key`'s value, keeping the spacing and comment around the old one.
fn set_value(table: &mut Table, key: &str, mut value: Value) {
    if let Some(old) = table.get(key).and_then(Item::as_value) {
        if bare(old) == bare(&value) {
            return;
        }
        *value.decor_mut() = old.decor().clone();
    }
    table.insert(key, Item::Value(value));
}

/// Ports as the policy reads them: a number, a range or name as a string, a list of those.
fn ports_value(text: &str) -> Value {
    if !text.contains(',') {
        return number_or_text(text);
    }
    let mut list = toml_edit::Array::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        list.push(number_or_text(part));
    }
    list.fmt();
    Value::Array(list)
}

/// A whole number as a TOML integer, anything else as a string.
fn number_or_text(text: &str) -> Value {
    match text.parse::<i64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::from(text),
    }
}

/// A time as a TOML date-time when it is one, else as the string typed (validation says why).
fn time_value(text: &str) -> Value {
    match text.parse::<toml_edit::Datetime>() {
        Ok(t) => Value::from(t),
        Err(_) => Value::from(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    const DOC: &str = r#"# The household's policy.
[settings]
accel = "kvm"   # fast

[settings.log]
keep_on_disk = true   # the office asked

[[host_rule]]
action = "drop"
blocklist = "bad"

[[blocklist]]
name = "bad"
entries = ["192.0.2.0/24"]

[[vm]]
name = "work"
default = "drop"    # the household's choice

# Mail first.
[[vm.rule]]
action = "accept"
destination = "192.0.2.10"
proto = "tcp"
ports = 443   # https
comment = "mail"

[[vm.rule]]
action = "reject"
destination = "198.51.100.0/24"

[[vm]]
name = "other"
"#;

    fn doc() -> PolicyDocument {
        PolicyDocument::parse(DOC).unwrap_or_else(|e| panic!("{e}"))
    }

    fn work() -> RuleList {
        RuleList::Vm("work".into())
    }

    fn parsed(text: &str) -> Policy {
        Policy::parse(text.as_bytes())
            .unwrap_or_else(|f| panic!("{f:?}\n{text}"))
            .policy
    }

    #[test]
    fn an_untouched_document_is_its_own_text() {
        assert_eq!(doc().text(), DOC);
    }

    #[test]
    fn a_changed_field_is_the_only_change() {
        let mut d = doc();
        let mut f = d.rule(&work(), 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (f.action.as_str(), f.ports.as_str(), f.comment.as_str()),
            ("accept", "443", "mail")
        );
        assert_eq!(f.target, RuleTarget::Destination("192.0.2.10".into()));
        f.ports = "8443".into();
        d.set_rule(&work(), 0, &f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            d.text(),
            DOC.replace("ports = 443   # https", "ports = 8443   # https")
        );
        // The same fields again change nothing.
        let again = d.text();
        d.set_rule(&work(), 0, &f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.text(), again);
    }

    #[test]
    fn ports_times_and_targets_are_written_as_the_model_reads_them() {
        let mut d = doc();
        let f = RuleFields {
            action: "accept".into(),
            target: RuleTarget::Destination("mail.example.com".into()),
            proto: "tcp".into(),
            ports: "80, 8000-8100".into(),
            expires: "2030-01-01T00:00:00Z".into(),
            log: true,
            comment: "new".into(),
            ..RuleFields::default()
        };
        d.insert_rule(&work(), 2, &f)
            .unwrap_or_else(|e| panic!("{e}"));
        let text = d.text();
        assert!(text.starts_with(&DOC[..DOC.find("[[vm]]\nname = \"other\"").unwrap_or(0)]));
        assert!(
            text.contains(
                "ports = [80, \"8000-8100\"]\nexpires = 2030-01-01T00:00:00Z\nlog = true\n"
            ),
            "{text}"
        );
        let p = parsed(&text);
        let rule = &p.vms[0].rules[2];
        assert!(rule.log && rule.expires.is_some() && rule.ports.is_some());
        assert_eq!(d.rule(&work(), 2).unwrap_or_else(|e| panic!("{e}")), f);
        // The new rule sits after the second and before the next VM.
        let at = |s: &str| text.find(s).unwrap_or(usize::MAX);
        assert!(at("198.51.100.0/24") < at("mail.example.com"));
        assert!(at("mail.example.com") < at("name = \"other\""));
    }

    #[test]
    fn moving_duplicating_removing_and_turning_off_keep_everything_else() {
        let mut d = doc();
        d.move_rule(&work(), 1, 0).unwrap_or_else(|e| panic!("{e}"));
        let p = parsed(&d.text());
        assert_eq!(p.vms[0].rules[0].destination.to_string(), "198.51.100.0/24");
        assert_eq!(p.vms[0].rules[1].comment, "mail");
        // The comment above the mail rule travels with it.
        let text = d.text();
        assert!(
            text.find("198.51.100.0/24").unwrap_or(usize::MAX)
                < text.find("# Mail first.").unwrap_or(0),
            "{text}"
        );
        d.move_rule(&work(), 0, 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.text(), DOC);

        d.set_enabled(&work(), 1, false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!parsed(&d.text()).vms[0].rules[1].enabled);
        d.set_enabled(&work(), 1, true)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.text(), DOC);

        d.duplicate_rule(&work(), 0)
            .unwrap_or_else(|e| panic!("{e}"));
        let p = parsed(&d.text());
        assert_eq!(p.vms[0].rules.len(), 3);
        assert_eq!(p.vms[0].rules[0], p.vms[0].rules[1]);
        d.remove_rule(&work(), 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed(&d.text()), parsed(DOC));

        for _ in 0..2 {
            d.remove_rule(&work(), 0).unwrap_or_else(|e| panic!("{e}"));
        }
        let p = parsed(&d.text());
        assert!(p.vms[0].rules.is_empty());
        assert!(d
            .text()
            .contains("keep_on_disk = true   # the office asked"));
        assert!(d.text().contains("accel = \"kvm\"   # fast"));
    }

    #[test]
    fn host_rules_defaults_and_vms_without_rules() {
        let mut d = doc();
        assert_eq!(d.rule_count(&RuleList::Host), Ok(1));
        let other = RuleList::Vm("other".into());
        assert_eq!(d.rule_count(&other), Ok(0));
        d.insert_rule(&other, 0, &RuleFields::default())
            .unwrap_or_else(|e| panic!("{e}"));
        d.set_default("other", "reject")
            .unwrap_or_else(|e| panic!("{e}"));
        d.set_default("work", "accept")
            .unwrap_or_else(|e| panic!("{e}"));
        let text = d.text();
        assert!(
            text.contains("default = \"accept\"    # the household's choice"),
            "{text}"
        );
        let p = parsed(&text);
        assert_eq!(p.vms[1].rules.len(), 1);
        assert_eq!(p.vms[1].default_action.to_string(), "reject");
        d.remove_rule(&RuleList::Host, 0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(parsed(&d.text()).host_rules.is_empty());
    }

    #[test]
    fn inline_rule_lists_become_tables_and_bad_requests_change_nothing() {
        let inline =
            "[[vm]]\nname = \"a\"\nrule = [{ action = \"drop\" }, { action = \"accept\" }]\n";
        let mut d = PolicyDocument::parse(inline).unwrap_or_else(|e| panic!("{e}"));
        // Reading an inline list converts nothing; all at once and one by one agree.
        let a = RuleList::Vm("a".into());
        let all = d.rules_of(&a).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].action, "accept");
        assert_eq!(d.rule(&a, 1), Ok(all[1].clone()));
        assert_eq!(d.rule_count(&a), Ok(2));
        assert_eq!(d.text(), inline);
        assert_eq!(
            PolicyDocument::parse("[[vm]]\nname = \"b\"\nrule = [1]\n")
                .and_then(|d| d.rules_of(&RuleList::Vm("b".into()))),
            Err(EditError::NotAList)
        );
        d.move_rule(&RuleList::Vm("a".into()), 1, 0)
            .unwrap_or_else(|e| panic!("{e}"));
        let p = parsed(&d.text());
        assert_eq!(p.vms[0].rules[0].action.to_string(), "accept");

        let mut d = doc();
        assert_eq!(
            d.set_enabled(&RuleList::Vm("nope".into()), 0, false),
            Err(EditError::NoVm("nope".into()))
        );
        assert_eq!(
            d.remove_rule(&work(), 5),
            Err(EditError::NoRule { number: 6, len: 2 })
        );
        assert_eq!(
            d.move_rule(&work(), 0, 2),
            Err(EditError::NoRule { number: 3, len: 2 })
        );
        assert_eq!(d.text(), DOC);
        assert!(PolicyDocument::parse("[[vm]\n").is_err());
    }

    /// Every rule of the shipped example, read into the editor's fields and written back
    /// unchanged, leaves the document as it was, byte for byte; a change to each rule changes
    /// that rule's meaning and nothing else's.
    #[test]
    fn the_example_policy_survives_the_editor() {
        let example = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../data/examples/policy.toml"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let original = parsed(&example);
        let lists = std::iter::once(RuleList::Host).chain(
            original
                .vms
                .iter()
                .map(|v| RuleList::Vm(v.name.to_string())),
        );
        for list in lists {
            let mut d = PolicyDocument::parse(&example).unwrap_or_else(|e| panic!("{e}"));
            let count = d.rule_count(&list).unwrap_or_else(|e| panic!("{e}"));
            for i in 0..count {
                let f = d.rule(&list, i).unwrap_or_else(|e| panic!("{e}"));
                d.set_rule(&list, i, &f).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(d.text(), example, "{list:?} rule {}", i + 1);
                let mut changed = d.clone();
                changed
                    .set_rule(
                        &list,
                        i,
                        &RuleFields {
                            comment: "edited".into(),
                            ..f
                        },
                    )
                    .unwrap_or_else(|e| panic!("{e}"));
                let mut p = parsed(&changed.text());
                let rules = match &list {
                    RuleList::Host => &mut p.host_rules,
                    RuleList::Vm(vm) => {
                        &mut p
                            .vms
                            .iter_mut()
                            .find(|v| v.name.as_str() == vm)
                            .unwrap_or_else(|| panic!("{vm}"))
                            .rules
                    }
                };
                assert_eq!(rules[i].comment, "edited");
                rules[i].comment = match &list {
                    RuleList::Host => original.host_rules[i].comment.clone(),
                    RuleList::Vm(vm) => original
                        .vms
                        .iter()
                        .find(|v| v.name.as_str() == vm)
                        .map(|v| v.rules[i].comment.clone())
                        .unwrap_or_default(),
                };
                assert_eq!(p, original, "{list:?} rule {}", i + 1);
            }
        }
    }

    #[test]
    fn findings_map_to_their_rule_and_field() {
        assert_eq!(rule_path(&work(), 2), "vm[work].rule[3]");
        assert_eq!(
            finding_field("vm[work].rule[3].ports", &work(), 2),
            Some("ports")
        );
        assert_eq!(finding_field("vm[work].rule[3]", &work(), 2), Some(""));
        assert_eq!(finding_field("vm[work].rule[30]", &work(), 2), None);
        assert_eq!(
            finding_field("host_rule[1].action", &RuleList::Host, 0),
            Some("action")
        );
    }
}
