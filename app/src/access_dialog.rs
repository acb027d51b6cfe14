//! The Access page's dialogs: who may operate a VM or open its console (users and groups, names
//! separated by commas), and a remote console (name, host, port, TLS, users and groups). As in
//! the rule dialog, every change is judged at once with the contract's own validation (the
//! editor's `check`, which puts the fields into a copy of the draft and validates it); each
//! finding shows under its field and **Save** stays disabled while there is one. Plain
//! functions, not relm4 components: the editor opens them and gets the fields back in `save`.

use crate::i18n::gettext;
use crate::rule_dialog::{entry, error_label, switch, FieldFinding};
use palisade_dbus::policy::edit::{AccessLists, RemoteConsoleFields};
use relm4::adw::prelude::*;
use relm4::{adw, gtk};
use std::rc::Rc;

/// Account names as typed: separated by commas or spaces.
pub fn names(text: &str) -> Vec<String> {
    text.split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An entry with its finding's label, and the finding fields it shows.
struct Field {
    keys: &'static [&'static str],
    row: adw::EntryRow,
    label: gtk::Label,
}

/// Shows `findings` under their fields (a finding no field claims under `general`); true when
/// there are none.
fn show(fields: &[Field], general: &gtk::Label, findings: &[FieldFinding]) -> bool {
    let mut rest = Vec::new();
    let mut shown = vec![false; fields.len()];
    for (field, message) in findings {
        match fields
            .iter()
            .position(|f| f.keys.iter().any(|k| field.starts_with(k)))
        {
            Some(i) => {
                if let Some(f) = fields.get(i) {
                    f.label.set_label(message);
                    f.label.set_visible(true);
                    f.row.add_css_class("error");
                    shown[i] = true;
                }
            }
            None => rest.push(message.clone()),
        }
    }
    for (f, shown) in fields.iter().zip(shown) {
        if !shown {
            f.label.set_visible(false);
            f.row.remove_css_class("error");
        }
    }
    general.set_label(&rest.join("\n"));
    general.set_visible(!rest.is_empty());
    findings.is_empty()
}

/// The dialog around `group`, with Cancel and Save (judged by [`judge_and_save`]).
fn dialog(
    parent: Option<&gtk::Window>,
    heading: &str,
    body: Option<&str>,
    group: &adw::PreferencesGroup,
) -> adw::MessageDialog {
    let dialog = adw::MessageDialog::new(parent, Some(heading), body);
    dialog.set_extra_child(Some(group));
    dialog.add_response("cancel", &gettext("_Cancel"));
    dialog.add_response("save", &gettext("_Save"));
    dialog.set_response_appearance("save", adw::ResponseAppearance::Suggested);
    dialog.set_default_response(Some("save"));
    dialog.set_close_response("cancel");
    dialog
}

/// Judges the form on every change of a field (each finding under its field, Save enabled only
/// while `check` finds nothing) and saves what `read` gives when Save is pressed. Returns the
/// judge, for controls that are not fields (a switch).
fn judge_and_save<T: 'static>(
    dialog: &adw::MessageDialog,
    fields: Vec<Field>,
    general: gtk::Label,
    read: impl Fn() -> T + 'static,
    check: impl Fn(&T) -> Vec<FieldFinding> + 'static,
    save: impl Fn(T) + 'static,
) -> Rc<dyn Fn()> {
    let rows: Vec<adw::EntryRow> = fields.iter().map(|f| f.row.clone()).collect();
    let read = Rc::new(read);
    let check = Rc::new(check);
    let judge: Rc<dyn Fn()> = {
        let (dialog, check, read) = (dialog.clone(), Rc::clone(&check), Rc::clone(&read));
        Rc::new(move || {
            let ok = show(&fields, &general, &check(&read()));
            dialog.set_response_enabled("save", ok);
        })
    };
    for row in rows {
        let judge = Rc::clone(&judge);
        row.connect_changed(move |_| judge());
    }
    judge();
    dialog.connect_response(None, move |_, response| {
        let value = read();
        if response == "save" && check(&value).is_empty() {
            save(value);
        }
    });
    judge
}

/// Opens the dialog for a VM's operators or console list.
pub fn open_lists(
    parent: Option<&gtk::Window>,
    heading: &str,
    lists: &AccessLists,
    check: impl Fn(&AccessLists) -> Vec<FieldFinding> + 'static,
    save: impl Fn(AccessLists) + 'static,
) {
    let group = adw::PreferencesGroup::new();
    group.set_description(Some(&gettext(
        "Account names, separated by commas. Every member of a group is granted.",
    )));
    let users = entry(&gettext("Users"), &lists.users.join(", "));
    group.add(&users);
    let users_error = error_label(&group);
    let groups = entry(&gettext("Groups"), &lists.groups.join(", "));
    group.add(&groups);
    let groups_error = error_label(&group);
    let general = error_label(&group);
    let fields = vec![
        Field {
            keys: &["users"],
            row: users.clone(),
            label: users_error,
        },
        Field {
            keys: &["groups"],
            row: groups.clone(),
            label: groups_error,
        },
    ];
    let read = move || AccessLists {
        users: names(&users.text()),
        groups: names(&groups.text()),
    };
    let dialog = dialog(parent, heading, None, &group);
    judge_and_save(&dialog, fields, general, read, check, save);
    dialog.present();
}

/// Opens the dialog for a remote console (`None`: a new one).
pub fn open_console(
    parent: Option<&gtk::Window>,
    heading: &str,
    console: Option<&RemoteConsoleFields>,
    check: impl Fn(&RemoteConsoleFields) -> Vec<FieldFinding> + 'static,
    save: impl Fn(RemoteConsoleFields) + 'static,
) {
    let start = console.cloned().unwrap_or_else(|| RemoteConsoleFields {
        port: "5900".into(),
        ..RemoteConsoleFields::default()
    });
    let group = adw::PreferencesGroup::new();
    let mut fields = Vec::new();
    let mut add = |title: String, text: String, keys: &'static [&'static str]| {
        let row = entry(&title, &text);
        group.add(&row);
        let label = error_label(&group);
        fields.push(Field {
            keys,
            row: row.clone(),
            label,
        });
        row
    };
    let name = add(gettext("Name"), start.name.clone(), &["name"]);
    let host = add(gettext("Host"), start.host.clone(), &["host"]);
    let port = add(gettext("Port"), start.port.clone(), &["port"]);
    let users = add(gettext("Users"), start.access.users.join(", "), &["users"]);
    let groups = add(
        gettext("Groups"),
        start.access.groups.join(", "),
        &["groups"],
    );
    let tls = switch(&group, &gettext("Spice over TLS"), start.tls);
    let general = error_label(&group);
    let read = {
        let tls = tls.clone();
        move || RemoteConsoleFields {
            name: name.text().trim().to_owned(),
            host: host.text().trim().to_owned(),
            port: port.text().trim().to_owned(),
            tls: tls.is_active(),
            access: AccessLists {
                users: names(&users.text()),
                groups: names(&groups.text()),
            },
        }
    };
    let dialog = dialog(
        parent,
        heading,
        Some(&gettext(
            "A Spice server on another computer, and the local accounts that may reach it",
        )),
        &group,
    );
    let judge = judge_and_save(&dialog, fields, general, read, check, save);
    tls.connect_active_notify(move |_| judge());
    dialog.present();
}

#[cfg(test)]
mod tests {
    use super::names;

    #[test]
    fn names_are_split_by_commas_and_spaces() {
        assert_eq!(
            names(" pal-alice, pal-bob  carol,,"),
            ["pal-alice", "pal-bob", "carol"]
        );
        assert!(names(" , ").is_empty());
    }
}
