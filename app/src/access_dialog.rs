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

/// The dialog around `group`, its Save judged by `judge` on every change of `rows`.
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
    let fields = Rc::new(vec![
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
    ]);
    let read = {
        let (users, groups) = (users.clone(), groups.clone());
        Rc::new(move || AccessLists {
            users: names(&users.text()),
            groups: names(&groups.text()),
        })
    };
    let dialog = dialog(parent, heading, None, &group);
    let check = Rc::new(check);
    let judge = {
        let (dialog, check, read, fields) = (
            dialog.clone(),
            Rc::clone(&check),
            Rc::clone(&read),
            Rc::clone(&fields),
        );
        Rc::new(move || {
            let ok = show(&fields, &general, &check(&read()));
            dialog.set_response_enabled("save", ok);
        })
    };
    for row in [&users, &groups] {
        let judge = Rc::clone(&judge);
        row.connect_changed(move |_| judge());
    }
    judge();
    dialog.connect_response(None, move |_, response| {
        let lists = read();
        if response == "save" && check(&lists).is_empty() {
            save(lists);
        }
    });
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
    let fields = Rc::new(fields);
    let read = {
        let (name, host, port, users, groups, tls) = (
            name.clone(),
            host.clone(),
            port.clone(),
            users.clone(),
            groups.clone(),
            tls.clone(),
        );
        Rc::new(move || RemoteConsoleFields {
            name: name.text().trim().to_owned(),
            host: host.text().trim().to_owned(),
            port: port.text().trim().to_owned(),
            tls: tls.is_active(),
            access: AccessLists {
                users: names(&users.text()),
                groups: names(&groups.text()),
            },
        })
    };
    let dialog = dialog(
        parent,
        heading,
        Some(&gettext(
            "A Spice server on another computer, and the local accounts that may reach it",
        )),
        &group,
    );
    let check = Rc::new(check);
    let judge = {
        let (dialog, check, read, fields) = (
            dialog.clone(),
            Rc::clone(&check),
            Rc::clone(&read),
            Rc::clone(&fields),
        );
        Rc::new(move || {
            let ok = show(&fields, &general, &check(&read()));
            dialog.set_response_enabled("save", ok);
        })
    };
    for row in [&name, &host, &port, &users, &groups] {
        let judge = Rc::clone(&judge);
        row.connect_changed(move |_| judge());
    }
    {
        let judge = Rc::clone(&judge);
        tls.connect_active_notify(move |_| judge());
    }
    judge();
    dialog.connect_response(None, move |_, response| {
        let console = read();
        if response == "save" && check(&console).is_empty() {
            save(console);
        }
    });
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
