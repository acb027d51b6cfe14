//! The Access page, filled by the policy editor from its one draft: who may operate each local
//! VM and open its console, and the remote consoles (host, port, TLS, who may connect), each
//! edited in a dialog of `access_dialog.rs` that judges the change with the contract's own
//! validation before it is saved into the draft. VMs and consoles a drop-in defines are shown
//! with their file and a lock, never offered for editing.
//!
//! It lives beside the Firewall editor rather than in a component of its own because both pages
//! change the same draft and share its bar: an access change and a rule change are applied
//! together, and neither page's Apply can drop the other's edits. The page is shown only to a
//! user polkit lets manage the policy, like the editor's controls.

use super::{clone_input, validate, Change, PolicyEditor, PolicyEditorInput};
use crate::a11y;
use crate::access_dialog;
use crate::i18n::{gettext, i18n_f};
use crate::lock;
use crate::managed::ManagedBy;
use crate::rule_dialog::FieldFinding;
use palisade_dbus::policy::edit::{
    access_path, console_path, AccessKind, AccessLists, PolicyDocument, RemoteConsoleFields,
};
use palisade_dbus::types::{Finding, Severity};
use relm4::adw::prelude::*;
use relm4::{adw, gtk, ComponentSender, RelmWidgetExt};
use std::cell::RefCell;

impl PolicyEditor {
    /// Rebuilds the Access page from the draft, and shows it in the window's stack only to a
    /// user who may manage the policy.
    pub(super) fn render_access(&self, sender: &ComponentSender<Self>) {
        let visible = self.can_edit();
        if let Some(stack) = self
            .access_page
            .ancestor(adw::ViewStack::static_type())
            .and_downcast::<adw::ViewStack>()
        {
            stack.page(&self.access_page).set_visible(visible);
        }
        while let Some(child) = self.access_groups.first_child() {
            self.access_groups.remove(&child);
        }
        let (Some((draft, _)), true) = (&self.draft, visible) else {
            return;
        };
        let local = draft.vm_names();
        let focus = self.access_focus.take();
        let target: RefCell<Option<gtk::Button>> = RefCell::new(None);
        let button = |label: String, icon: &str, input: PolicyEditorInput| {
            let b = a11y::icon_button(icon, &label);
            if focus.as_deref() == Some(label.as_str()) {
                target.replace(Some(b.clone()));
            }
            b.add_css_class("flat");
            b.set_valign(gtk::Align::Center);
            let sender = sender.input_sender().clone();
            b.connect_clicked(move |_| sender.emit(clone_input(&input)));
            b
        };
        for vm in &local {
            let group = adw::PreferencesGroup::new();
            group.set_title(vm);
            for kind in [AccessKind::Operators, AccessKind::Console] {
                let lists = draft.access(vm, kind).unwrap_or_default();
                let row = adw::ActionRow::new();
                row.set_use_markup(false);
                let (title, edit) = match kind {
                    AccessKind::Operators => (
                        i18n_f("Who may start and stop {vm}", &[("vm", vm)]),
                        i18n_f("Edit who may operate {vm}", &[("vm", vm)]),
                    ),
                    AccessKind::Console => (
                        i18n_f("Who may open the console of {vm}", &[("vm", vm)]),
                        i18n_f("Edit who may open the console of {vm}", &[("vm", vm)]),
                    ),
                };
                row.set_title(&title);
                let findings = under(&self.findings, &access_path(vm, kind));
                let mut lines = vec![describe(&lists)];
                lines.extend(findings.iter().map(|((_, m), _)| m.clone()));
                row.set_subtitle(&lines.join("\n"));
                if findings.iter().any(|(_, error)| *error) {
                    row.add_css_class("error");
                }
                row.add_suffix(&button(
                    edit,
                    "document-edit-symbolic",
                    PolicyEditorInput::OpenAccess(vm.clone(), kind),
                ));
                group.add(&row);
            }
            self.access_groups.append(&group);
        }
        // VMs and consoles of drop-ins: shown with their file, not offered for editing.
        let mut consoles_elsewhere = Vec::new();
        for source in &self.drop_ins {
            let Ok(doc) = PolicyDocument::parse(&source.document) else {
                continue;
            };
            let managed = ManagedBy {
                file: source.name.clone(),
                kind: source.kind,
            };
            for vm in doc.vm_names().into_iter().filter(|v| !local.contains(v)) {
                let group = adw::PreferencesGroup::new();
                group.set_title(&vm);
                for kind in [AccessKind::Operators, AccessKind::Console] {
                    let title = match kind {
                        AccessKind::Operators => {
                            i18n_f("Who may start and stop {vm}", &[("vm", &vm)])
                        }
                        AccessKind::Console => {
                            i18n_f("Who may open the console of {vm}", &[("vm", &vm)])
                        }
                    };
                    let lists = doc.access(&vm, kind).unwrap_or_default();
                    group.add(&locked_row(&title, &describe(&lists), &managed));
                }
                self.access_groups.append(&group);
            }
            for console in doc.remote_consoles() {
                consoles_elsewhere.push((console, managed.clone()));
            }
        }
        let group = adw::PreferencesGroup::new();
        group.set_title(&gettext("Remote consoles"));
        group.set_description(Some(&gettext(
            "Spice servers on other computers, and who may connect to them",
        )));
        let add = a11y::text_button(&gettext("Add"), &gettext("Add a remote console"));
        add.add_css_class("flat");
        {
            let input = sender.input_sender().clone();
            add.connect_clicked(move |_| input.emit(PolicyEditorInput::OpenConsole(None)));
        }
        if focus.as_deref() == Some(gettext("Add a remote console").as_str()) {
            target.replace(Some(add.clone()));
        }
        group.set_header_suffix(Some(&add));
        let consoles = draft.remote_consoles();
        for (i, console) in consoles.iter().enumerate() {
            let row = adw::ActionRow::new();
            row.set_use_markup(false);
            row.set_title(&console.name);
            let mut lines = vec![console_line(console)];
            let mut findings = under(&self.findings, &console_path(&console.name));
            findings.extend(under(&self.findings, &format!("remote_console#{}", i + 1)));
            lines.extend(findings.iter().map(|((_, m), _)| m.clone()));
            row.set_subtitle(&lines.join("\n"));
            if findings.iter().any(|(_, error)| *error) {
                row.add_css_class("error");
            }
            let name = [("name", console.name.as_str())];
            row.add_suffix(&button(
                i18n_f("Edit remote console {name}", &name),
                "document-edit-symbolic",
                PolicyEditorInput::OpenConsole(Some(console.name.clone())),
            ));
            row.add_suffix(&button(
                i18n_f("Remove remote console {name}", &name),
                "user-trash-symbolic",
                PolicyEditorInput::Change(Change::RemoveConsole(console.name.clone())),
            ));
            group.add(&row);
        }
        for (console, managed) in &consoles_elsewhere {
            group.add(&locked_row(&console.name, &console_line(console), managed));
        }
        if consoles.is_empty() && consoles_elsewhere.is_empty() {
            let row = adw::ActionRow::new();
            row.set_title(&gettext("No remote consoles"));
            group.add(&row);
        }
        self.access_groups.append(&group);
        if let Some(button) = target.take() {
            button.grab_focus();
        }
    }

    /// Opens the dialog for VM `vm`'s `kind` list.
    pub(super) fn open_access(
        &self,
        vm: String,
        kind: AccessKind,
        root: &gtk::Box,
        sender: &ComponentSender<Self>,
    ) {
        let Some((draft, _)) = &self.draft else {
            return;
        };
        let Ok(lists) = draft.access(&vm, kind) else {
            return;
        };
        let heading = match kind {
            AccessKind::Operators => i18n_f("Who may start and stop {vm}", &[("vm", &vm)]),
            AccessKind::Console => i18n_f("Who may open the console of {vm}", &[("vm", &vm)]),
        };
        let (draft, drop_ins, check_vm) = (draft.clone(), self.drop_ins.clone(), vm.clone());
        let check = move |lists: &AccessLists| {
            let mut doc = draft.clone();
            match doc.set_access(&check_vm, kind, lists) {
                Ok(()) => errors_of(under(
                    &validate(&doc, &drop_ins),
                    &access_path(&check_vm, kind),
                )),
                Err(e) => vec![(String::new(), e.to_string())],
            }
        };
        let input = sender.input_sender().clone();
        access_dialog::open_lists(
            root.toplevel_window().as_ref(),
            &heading,
            &lists,
            check,
            move |lists| {
                input.emit(PolicyEditorInput::Change(Change::Access(
                    vm.clone(),
                    kind,
                    lists,
                )));
            },
        );
    }

    /// Opens the dialog for the remote console `name` (`None`: a new one).
    pub(super) fn open_console(
        &self,
        name: Option<String>,
        root: &gtk::Box,
        sender: &ComponentSender<Self>,
    ) {
        let Some((draft, _)) = &self.draft else {
            return;
        };
        let consoles = draft.remote_consoles();
        let current = name
            .as_ref()
            .and_then(|n| consoles.iter().find(|c| &c.name == n).cloned());
        let index = name
            .as_ref()
            .and_then(|n| consoles.iter().position(|c| &c.name == n))
            .unwrap_or(consoles.len());
        let heading = match &name {
            Some(n) => i18n_f("Remote console {name}", &[("name", n)]),
            None => gettext("New remote console"),
        };
        let (draft, drop_ins, old) = (draft.clone(), self.drop_ins.clone(), name.clone());
        let check = move |fields: &RemoteConsoleFields| {
            let mut doc = draft.clone();
            let result = match &old {
                Some(n) => doc.set_remote_console(n, fields),
                None => doc.add_remote_console(fields),
            };
            match result {
                Ok(()) => {
                    let findings = validate(&doc, &drop_ins);
                    let mut out = under(&findings, &console_path(&fields.name));
                    out.extend(under(&findings, &format!("remote_console#{}", index + 1)));
                    errors_of(out)
                }
                Err(e) => vec![("name".into(), e.to_string())],
            }
        };
        let input = sender.input_sender().clone();
        access_dialog::open_console(
            root.toplevel_window().as_ref(),
            &heading,
            current.as_ref(),
            check,
            move |fields| {
                input.emit(PolicyEditorInput::Change(match &name {
                    Some(n) => Change::SetConsole(n.clone(), fields),
                    None => Change::AddConsole(fields),
                }));
            },
        );
    }
}

/// Account names in a row: "Users: alice · Groups: family", or "Nobody".
fn describe(lists: &AccessLists) -> String {
    let mut parts = Vec::new();
    if !lists.users.is_empty() {
        parts.push(i18n_f(
            "Users: {names}",
            &[("names", &lists.users.join(", "))],
        ));
    }
    if !lists.groups.is_empty() {
        parts.push(i18n_f(
            "Groups: {names}",
            &[("names", &lists.groups.join(", "))],
        ));
    }
    if parts.is_empty() {
        gettext("Nobody")
    } else {
        parts.join(" · ")
    }
}

/// The findings under `prefix` (a VM's list, a remote console), with the rest of their path:
/// `users[2]` for `vm[work].console.users[2]`.
fn under(findings: &[Finding], prefix: &str) -> Vec<(FieldFinding, bool)> {
    findings
        .iter()
        .filter_map(|f| {
            let rest = f.path.strip_prefix(prefix)?;
            let field = match rest.strip_prefix('.') {
                Some(field) => field,
                None if rest.is_empty() => "",
                None => return None,
            };
            Some((
                (field.to_owned(), f.message.clone()),
                f.severity == Severity::Error,
            ))
        })
        .collect()
}

/// A lock row for a part a drop-in defines: `title`, `details` and the file's caption.
fn locked_row(title: &str, details: &str, managed: &ManagedBy) -> adw::ActionRow {
    let row = adw::ActionRow::new();
    row.set_use_markup(false);
    row.set_title(title);
    row.set_subtitle(&crate::managed::with_caption(details, Some(managed)));
    row.add_suffix(&lock::icon(Some(managed)));
    row
}

/// The errors of `findings`, for a dialog's fields.
fn errors_of(findings: Vec<(FieldFinding, bool)>) -> Vec<FieldFinding> {
    findings
        .into_iter()
        .filter(|(_, error)| *error)
        .map(|(finding, _)| finding)
        .collect()
}

/// A remote console in one line: `host:port · TLS · Users: alice`.
fn console_line(console: &RemoteConsoleFields) -> String {
    let mut parts = vec![format!("{}:{}", console.host, console.port)];
    if console.tls {
        parts.push("TLS".to_owned());
    }
    parts.push(describe(&console.access));
    parts.join(" · ")
}
