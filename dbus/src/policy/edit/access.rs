//! Edits of who may do what, for the app's Access page: a local VM's `operators` and `console`
//! lists, and the `[[remote_console]]` entries (added, changed, removed). Same invariant as the
//! rule edits beside it: only the keys whose meaning changes are written, every other byte of
//! the document stays as it was, and the names are judged by [`crate::policy::Policy::parse`]
//! afterwards (its findings name `vm[work].console.users[2]`, `remote_console[office].port`).

use super::{bare, set_value, value_text, EditError, PolicyDocument};
use toml_edit::{Array, ArrayOfTables, InlineTable, Item, Table, Value};

/// Which of a VM's access lists an edit is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    /// `operators`: may start, stop and attach devices.
    Operators,
    /// `console`: may open its console.
    Console,
}

impl AccessKind {
    /// The key in the `[[vm]]` table, and in validation paths.
    pub fn key(self) -> &'static str {
        match self {
            AccessKind::Operators => "operators",
            AccessKind::Console => "console",
        }
    }
}

/// Account names as the editor shows them: as typed, judged only by validation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessLists {
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

/// A remote console's fields as the editor shows them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteConsoleFields {
    pub name: String,
    /// An address or a host name.
    pub host: String,
    /// As typed; a whole number is written as one.
    pub port: String,
    pub tls: bool,
    pub access: AccessLists,
}

/// The validation path of the remote console `name`, as findings name it.
pub fn console_path(name: &str) -> String {
    format!("remote_console[{name}]")
}

/// The validation path of VM `vm`'s `kind` list.
pub fn access_path(vm: &str, kind: AccessKind) -> String {
    format!("vm[{vm}].{}", kind.key())
}

impl PolicyDocument {
    /// The names of the local policy's VMs, in order.
    pub fn vm_names(&self) -> Vec<String> {
        self.doc
            .get("vm")
            .and_then(Item::as_array_of_tables)
            .map(|vms| {
                vms.iter()
                    .filter_map(|t| t.get("name").and_then(Item::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// VM `vm`'s `kind` list (empty when the VM has none).
    pub fn access(&self, vm: &str, kind: AccessKind) -> Result<AccessLists, EditError> {
        let mut copy = self.clone();
        let table = copy.vm_mut(vm)?;
        Ok(table.get(kind.key()).map(read_access).unwrap_or_default())
    }

    /// Sets VM `vm`'s `kind` list. An existing table or inline table keeps its layout and
    /// comments; a list that becomes empty loses its key; a new one is written inline
    /// (`console = { users = ["alice"] }`), as the shipped example writes them.
    pub fn set_access(
        &mut self,
        vm: &str,
        kind: AccessKind,
        lists: &AccessLists,
    ) -> Result<(), EditError> {
        let table = self.vm_mut(vm)?;
        let key = kind.key();
        if table.get(key).map(read_access).as_ref() == Some(lists) {
            return Ok(());
        }
        match table.get_mut(key) {
            Some(Item::Table(t)) => write_lists_table(t, lists),
            Some(Item::Value(Value::InlineTable(t))) => write_lists_inline(t, lists),
            Some(_) => return Err(EditError::NotAccessList(key.to_owned())),
            None => {
                let mut t = InlineTable::new();
                write_lists_inline(&mut t, lists);
                table.insert(key, Item::Value(Value::InlineTable(t)));
            }
        }
        let empty = match table.get(key) {
            Some(Item::Table(t)) => t.is_empty(),
            Some(Item::Value(Value::InlineTable(t))) => t.is_empty(),
            _ => false,
        };
        if empty {
            table.remove(key);
        }
        Ok(())
    }

    /// The local policy's remote consoles, in order.
    pub fn remote_consoles(&self) -> Vec<RemoteConsoleFields> {
        self.doc
            .get("remote_console")
            .and_then(Item::as_array_of_tables)
            .map(|list| list.iter().map(read_console).collect())
            .unwrap_or_default()
    }

    /// Appends a remote console; refused when one of that name exists.
    pub fn add_remote_console(&mut self, fields: &RemoteConsoleFields) -> Result<(), EditError> {
        let name = fields.name.trim();
        if self.console_index(name).is_some() {
            return Err(EditError::ConsoleExists(name.to_owned()));
        }
        let list = self.consoles_mut(true)?;
        let mut table = Table::new();
        write_console(&mut table, fields);
        list.push(table);
        Ok(())
    }

    /// Changes the remote console `name` to `fields` (which may rename it, unless the new name
    /// is another's).
    pub fn set_remote_console(
        &mut self,
        name: &str,
        fields: &RemoteConsoleFields,
    ) -> Result<(), EditError> {
        let index = self
            .console_index(name)
            .ok_or_else(|| EditError::NoConsole(name.to_owned()))?;
        let new_name = fields.name.trim();
        if new_name != name && self.console_index(new_name).is_some() {
            return Err(EditError::ConsoleExists(new_name.to_owned()));
        }
        let table = self
            .consoles_mut(false)?
            .get_mut(index)
            .ok_or_else(|| EditError::NoConsole(name.to_owned()))?;
        write_console(table, fields);
        Ok(())
    }

    /// Removes the remote console `name`.
    pub fn remove_remote_console(&mut self, name: &str) -> Result<(), EditError> {
        let index = self
            .console_index(name)
            .ok_or_else(|| EditError::NoConsole(name.to_owned()))?;
        let list = self.consoles_mut(false)?;
        list.remove(index);
        if list.is_empty() {
            self.doc.remove("remote_console");
        }
        Ok(())
    }

    fn console_index(&self, name: &str) -> Option<usize> {
        self.doc
            .get("remote_console")
            .and_then(Item::as_array_of_tables)?
            .iter()
            .position(|t| t.get("name").and_then(Item::as_str) == Some(name))
    }

    /// `[[remote_console]]`, made (empty) when `create` says so.
    fn consoles_mut(&mut self, create: bool) -> Result<&mut ArrayOfTables, EditError> {
        if create && !self.doc.contains_key("remote_console") {
            self.doc
                .insert("remote_console", Item::ArrayOfTables(ArrayOfTables::new()));
        }
        self.doc
            .get_mut("remote_console")
            .and_then(Item::as_array_of_tables_mut)
            .ok_or(EditError::NotAList)
    }
}

/// The names of a `users`/`groups` array, as text.
fn names(item: Option<&Item>) -> Vec<String> {
    match item.and_then(Item::as_array) {
        Some(a) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => s.value().clone(),
                other => bare(other),
            })
            .collect(),
        // A single string or a number is shown as written; validation says why it is wrong.
        None => item.map(value_text).into_iter().collect(),
    }
}

fn read_access(item: &Item) -> AccessLists {
    AccessLists {
        users: names(item.get("users")),
        groups: names(item.get("groups")),
    }
}

fn read_console(table: &Table) -> RemoteConsoleFields {
    let text = |key: &str| table.get(key).map(value_text).unwrap_or_default();
    RemoteConsoleFields {
        name: text("name"),
        host: text("host"),
        port: text("port"),
        tls: table.get("tls").and_then(Item::as_bool).unwrap_or(false),
        access: AccessLists {
            users: names(table.get("users")),
            groups: names(table.get("groups")),
        },
    }
}

/// A list of names as a TOML array of strings, trimmed, empty ones left out.
fn array(names: &[String]) -> Array {
    let mut a = Array::new();
    for n in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        a.push(n);
    }
    a
}

/// `key` = the names, no key for none; an unchanged list keeps its text.
fn set_names_table(table: &mut Table, key: &str, list: &[String]) {
    if array(list).is_empty() {
        table.remove(key);
    } else if names(table.get(key)) != list {
        set_value(table, key, Value::Array(array(list)));
    }
}

fn write_lists_table(table: &mut Table, lists: &AccessLists) {
    set_names_table(table, "users", &lists.users);
    set_names_table(table, "groups", &lists.groups);
}

fn write_lists_inline(table: &mut InlineTable, lists: &AccessLists) {
    for (key, list) in [("users", &lists.users), ("groups", &lists.groups)] {
        let current = table.get(key).map(|v| names(Some(&Item::Value(v.clone()))));
        if array(list).is_empty() {
            table.remove(key);
        } else if current.as_deref() != Some(list.as_slice()) {
            let mut value = Value::Array(array(list));
            if let Some(old) = table.get(key) {
                *value.decor_mut() = old.decor().clone();
            }
            table.insert(key, value);
        }
    }
    table.fmt();
}

fn write_console(table: &mut Table, fields: &RemoteConsoleFields) {
    set_value(table, "name", Value::from(fields.name.trim()));
    set_value(table, "host", Value::from(fields.host.trim()));
    let port = fields.port.trim();
    if table.get("port").map(value_text).as_deref() != Some(port) {
        set_value(
            table,
            "port",
            port.parse::<i64>()
                .map_or_else(|_| Value::from(port), Value::from),
        );
    }
    if (table.contains_key("tls") || fields.tls)
        && table.get("tls").and_then(Item::as_bool) != Some(fields.tls)
    {
        set_value(table, "tls", Value::from(fields.tls));
    }
    set_names_table(table, "users", &fields.access.users);
    set_names_table(table, "groups", &fields.access.groups);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    const DOC: &str = r#"# Who may do what.
[[vm]]
name = "work"
operators = { users = ["alice"] }         # may start and stop it
console = { users = ["alice"] }           # may open its screen

[[vm]]
name = "kids"

[vm.console]
groups = ["family"]   # the whole family

# The office's server.
[[remote_console]]
name = "office"
host = "192.168.10.20"
port = 5901   # its TLS port
tls = true
users = ["alice"]
"#;

    fn doc() -> PolicyDocument {
        PolicyDocument::parse(DOC).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parsed(text: &str) -> Policy {
        Policy::parse(text.as_bytes())
            .unwrap_or_else(|f| panic!("{f:?}\n{text}"))
            .policy
    }

    fn lists(users: &[&str], groups: &[&str]) -> AccessLists {
        AccessLists {
            users: users.iter().map(|s| (*s).to_owned()).collect(),
            groups: groups.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn reading_and_writing_back_changes_nothing() {
        let mut d = doc();
        assert_eq!(d.vm_names(), ["work", "kids"]);
        for vm in ["work", "kids"] {
            for kind in [AccessKind::Operators, AccessKind::Console] {
                let l = d.access(vm, kind).unwrap_or_else(|e| panic!("{e}"));
                d.set_access(vm, kind, &l).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        for c in d.remote_consoles() {
            d.set_remote_console(&c.name.clone(), &c)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(d.text(), DOC);
        assert_eq!(
            d.access("kids", AccessKind::Console),
            Ok(lists(&[], &["family"]))
        );
        assert_eq!(
            d.remote_consoles(),
            [RemoteConsoleFields {
                name: "office".into(),
                host: "192.168.10.20".into(),
                port: "5901".into(),
                tls: true,
                access: lists(&["alice"], &[]),
            }]
        );
    }

    #[test]
    fn a_vms_lists_change_in_place() {
        let mut d = doc();
        d.set_access("work", AccessKind::Console, &lists(&["alice", "bob"], &[]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            d.text(),
            DOC.replace(
                "console = { users = [\"alice\"] }           # may open its screen",
                "console = { users = [\"alice\", \"bob\"] }           # may open its screen"
            )
        );
        let p = parsed(&d.text());
        assert_eq!(p.vms[0].console.users.len(), 2);

        // A [vm.console] table keeps its comment; a new list is written inline.
        d.set_access(
            "kids",
            AccessKind::Console,
            &lists(&[], &["family", "guests"]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        d.set_access("kids", AccessKind::Operators, &lists(&["carol"], &[]))
            .unwrap_or_else(|e| panic!("{e}"));
        let text = d.text();
        assert!(
            text.contains("groups = [\"family\", \"guests\"]   # the whole family"),
            "{text}"
        );
        assert!(
            text.contains("operators = { users = [\"carol\"] }"),
            "{text}"
        );
        let p = parsed(&text);
        assert_eq!(p.vms[1].operators.users[0].as_str(), "carol");
        assert_eq!(p.vms[1].console.groups.len(), 2);

        // Emptied lists lose their keys; the rest of the document is as it was.
        d.set_access("work", AccessKind::Operators, &AccessLists::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!d.text().contains("operators = { users = [\"alice\"] }"));
        assert!(parsed(&d.text()).vms[0].operators.is_empty());
        assert!(d
            .text()
            .starts_with("# Who may do what.\n[[vm]]\nname = \"work\"\n"));
    }

    #[test]
    fn remote_consoles_are_added_changed_and_removed() {
        let mut d = doc();
        let lab = RemoteConsoleFields {
            name: "lab".into(),
            host: "lab.example.com".into(),
            port: "5999".into(),
            tls: false,
            access: lists(&["bob"], &["staff"]),
        };
        d.add_remote_console(&lab).unwrap_or_else(|e| panic!("{e}"));
        let text = d.text();
        assert!(text.starts_with(DOC), "{text}");
        let p = parsed(&text);
        assert_eq!(p.remote_consoles.len(), 2);
        assert_eq!(p.remote_consoles[1].port, 5999);
        assert!(!p.remote_consoles[1].tls);

        let mut office = d.remote_consoles()[0].clone();
        office.port = "5902".into();
        office.tls = false;
        d.set_remote_console("office", &office)
            .unwrap_or_else(|e| panic!("{e}"));
        let text = d.text();
        assert!(
            text.contains("port = 5902   # its TLS port\ntls = false\n"),
            "{text}"
        );
        assert!(text.contains("# The office's server.\n[[remote_console]]"));

        d.remove_remote_console("lab")
            .unwrap_or_else(|e| panic!("{e}"));
        d.remove_remote_console("office")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(parsed(&d.text()).remote_consoles.is_empty());
        assert!(!d.text().contains("remote_console"));
    }

    #[test]
    fn bad_requests_change_nothing_and_bad_names_are_judged_by_validation() {
        let mut d = doc();
        assert_eq!(
            d.set_access("nope", AccessKind::Console, &AccessLists::default()),
            Err(EditError::NoVm("nope".into()))
        );
        assert_eq!(
            d.remove_remote_console("nope"),
            Err(EditError::NoConsole("nope".into()))
        );
        let office = d.remote_consoles()[0].clone();
        assert_eq!(
            d.add_remote_console(&office),
            Err(EditError::ConsoleExists("office".into()))
        );
        assert_eq!(d.text(), DOC);

        // A bad account name and a bad port reach the document as typed, and validation names
        // their paths.
        d.set_access(
            "work",
            AccessKind::Console,
            &lists(&["alice", "Bad Name"], &[]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut bad = office.clone();
        bad.port = "70000".into();
        d.set_remote_console("office", &bad)
            .unwrap_or_else(|e| panic!("{e}"));
        let findings = Policy::parse(d.text().as_bytes())
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        let paths: Vec<&str> = findings.iter().map(|f| f.path.as_str()).collect();
        assert!(paths.contains(&"vm[work].console.users[2]"), "{paths:?}");
        assert!(paths.contains(&"remote_console[office].port"), "{paths:?}");
        assert_eq!(access_path("work", AccessKind::Console), "vm[work].console");
        assert_eq!(console_path("office"), "remote_console[office]");
    }
}
