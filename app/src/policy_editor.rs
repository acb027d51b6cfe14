//! The Firewall page's editor: for a user polkit lets manage the policy (asked without a
//! password, as the Blocklists page does), an **Edit** toggle opens the local policy's rule
//! lists — each local VM's and the host's — with Add rule and, per rule, Edit, Duplicate, Turn
//! on/off, Move up, Move down and Delete, and each local VM's default action. Parts a drop-in
//! defines are not offered: the read-only view below shows them with their lock.
//!
//! The draft is a [`PolicyDocument`] of the local document `Policy.Get` returned, with that
//! generation as the base. After every change the draft is judged with the contract's own
//! validation (merged after the live drop-ins as the helper merges them, then
//! [`Policy::parse`]); each finding shows on its rule (and in the rule dialog on its field). A
//! bar at the top counts the unsaved changes and offers Discard and Apply; Apply says why it is
//! disabled while the draft has errors.
//!
//! Apply sends the draft with a 20 s confirmation window (interactively: the desktop may ask for
//! a password) and asks "Keep these settings?" with a countdown; Keep confirms, Revert or closing
//! the dialog lets the helper return to the previous generation at the deadline. The page then
//! follows `GenerationChanged` through the window. A draft based on a generation that is no
//! longer live is refused by the helper (`Conflict`): the editor says who applied what when, and
//! offers to reload (dropping the draft) or to apply the draft on top after showing its diff.
//!
//! Each VM's list has **Quick actions** ([`crate::quick`]: allow everything for 15 minutes,
//! HTTPS only, only through the proxy; the last two first show the rules they replace), and a
//! search over the rules hides those whose destination, ports, protocol and comment do not match
//! (moving is turned off meanwhile: a move among hidden rules would not be what it looks like).
//! A row of an expiring rule says how long it has left, again every [`TICK`].
//!
//! The editor also fills the **Access** page (`policy_editor/access_page.rs`; its widget,
//! [`PolicyEditor::access_page`], sits in the window's stack): both pages change the one draft
//! and show the same bar.

mod access_page;
mod rule_lists;

use crate::a11y;
use crate::expiry;
use crate::i18n::{gettext, i18n_f, ni18n_f};
use crate::interactive::{self, Permission};
use crate::quick::{self, QuickAction};
use crate::rule_dialog::{self, FieldFinding};
use palisade_dbus::names::Action;
use palisade_dbus::policy::edit::{
    finding_field, AccessKind, AccessLists, PolicyDocument, RemoteConsoleFields, RuleFields,
    RuleList, RuleTarget,
};
use palisade_dbus::policy::merge::merge;
use palisade_dbus::policy::Policy;
use palisade_dbus::proxy::PolicyProxy;
use palisade_dbus::types::{
    Applied, Finding, GenerationInfo, PolicySource, Preview, Severity, SourceKind,
};
use palisade_dbus::Error;
use relm4::adw::prelude::*;
use relm4::{adw, gtk, Component, ComponentParts, ComponentSender, RelmWidgetExt};
use std::cell::RefCell;
use std::time::{Duration, SystemTime};

/// How often rows of expiring rules say again how long they have left.
const TICK: Duration = Duration::from_secs(30);

/// How long the helper waits for Keep before it returns to the previous generation.
const CONFIRM_SECONDS: u32 = 20;

/// How long an apply may take, besides a password prompt.
const APPLY_WORK: Duration = Duration::from_secs(60);

/// A change the user made to the draft.
#[derive(Debug, Clone)]
pub enum Change {
    /// Rule `index` of the list gets `fields`; `None`: a new rule at the end.
    Save(RuleList, Option<usize>, RuleFields),
    /// A copy of the rule right after it.
    Duplicate(RuleList, usize),
    /// The rule goes.
    Delete(RuleList, usize),
    /// The rule moves from one place to another.
    Move(RuleList, usize, usize),
    /// The rule is turned on or off.
    Enable(RuleList, usize, bool),
    /// The VM's default action.
    Default(String, String),
    /// A VM's operators or console list.
    Access(String, AccessKind, AccessLists),
    /// A new remote console.
    AddConsole(RemoteConsoleFields),
    /// The remote console of this name gets these fields.
    SetConsole(String, RemoteConsoleFields),
    /// The remote console of this name goes.
    RemoveConsole(String),
    /// A quick action on a VM's rules.
    Quick(String, QuickAction),
}

/// The bar both pages show: unsaved changes, why Apply is disabled, Discard, Preview, Apply.
struct Bar {
    bar: gtk::Box,
    label: gtk::Label,
    reason: gtk::Label,
    apply: gtk::Button,
    preview: gtk::Button,
}

/// Which control of a rule list gets the keyboard focus after a change rebuilt the list, so
/// that a keyboard user stays where they were (on the moved rule's Move button, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Focus {
    Add,
    Edit,
    Duplicate,
    Toggle,
    Up,
    Down,
    Delete,
    Default,
}

/// The editor.
pub struct PolicyEditor {
    /// The window's bus connection, once it has one.
    connection: Option<zbus::Connection>,
    /// Whether polkit lets this user manage the policy.
    manage: Permission,
    /// Whether the edit controls are shown.
    editing: bool,
    /// The live generation and its local document, as last read.
    live: Option<(u64, String)>,
    /// The drop-ins of the live policy: merged before the draft to judge it.
    drop_ins: Vec<PolicySource>,
    /// The draft and the generation it is based on.
    draft: Option<(PolicyDocument, u64)>,
    /// How many changes the draft holds.
    changes: usize,
    /// Findings about the draft.
    findings: Vec<Finding>,
    /// Whether an apply is under way.
    busy: bool,
    /// The control to focus once the lists are rebuilt: its list, rule index and kind.
    focus: Option<(RuleList, usize, Focus)>,
    /// The accessible name of the Access page's button to focus once the page is rebuilt (the
    /// one whose dialog made the change, or Add after a removal), so a keyboard user stays put.
    access_focus: RefCell<Option<String>>,
    /// The box of the rule lists.
    lists: gtk::Box,
    /// The rule lists, updated in place.
    rule_lists: RefCell<rule_lists::RuleLists>,
    /// The Firewall page's bar and the Access page's.
    bars: [Bar; 2],
    /// The Edit toggle.
    toggle: gtk::ToggleButton,
    /// What the search over the rules looks for (empty: every rule shows).
    search: String,
    /// The search.
    search_entry: gtk::SearchEntry,
    /// "No rule matches", or why moving is off while searching.
    search_note: gtk::Label,
    /// The Access page, put in the window's stack.
    access_page: gtk::ScrolledWindow,
    /// Its groups, rebuilt after every change.
    access_groups: gtk::Box,
}

impl std::fmt::Debug for PolicyEditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEditor")
            .field("editing", &self.editing)
            .field("changes", &self.changes)
            .finish_non_exhaustive()
    }
}

/// Messages to the editor.
#[derive(Debug)]
pub enum PolicyEditorInput {
    /// Read the live local policy and this user's permission over this connection.
    Load(zbus::Connection),
    /// Show no editor: the policy could not be read.
    Clear,
    /// The Edit toggle was turned on or off.
    Editing(bool),
    /// Open the rule dialog for rule `index` of the list (`None`: a new rule).
    Open(RuleList, Option<usize>),
    /// Change the draft.
    Change(Change),
    /// Drop the draft.
    Discard,
    /// Apply the draft.
    Apply,
    /// Keep the pending generation.
    Keep(u64),
    /// Show what applying the draft would change.
    Preview,
    /// Drop the draft and read the live policy again (after a conflict).
    Reload,
    /// Base the draft on the live generation and show what applying it would change.
    OnTop,
    /// The search over the rules changed.
    Search(String),
    /// A quick action was chosen for a VM (the proxy's address is asked for, and what the
    /// action replaces shown, before the draft changes).
    Quick(String, QuickAction),
    /// Open the dialog for a VM's operators or console list.
    OpenAccess(String, AccessKind),
    /// Open the dialog for a remote console (`None`: a new one).
    OpenConsole(Option<String>),
}

/// What the editor asks the page to do.
#[derive(Debug)]
pub enum PolicyEditorOutput {
    /// Show this sentence as a toast.
    Toast(String),
    /// A pending generation was confirmed: the window reads the helper again.
    Changed,
}

/// Results of the editor's calls.
#[derive(Debug)]
pub enum PolicyEditorCmd {
    /// The live local policy, its drop-ins and the permission were read.
    Loaded {
        /// polkit's answer about `policy.manage`.
        manage: Permission,
        /// `Get()` and the drop-ins of `Sources()`.
        live: Result<(u64, String, Vec<PolicySource>), Error>,
    },
    /// `Apply()` answered.
    Applied(Result<Applied, Error>),
    /// `Confirm()` answered.
    Confirmed(Result<(), Error>),
    /// The helper refused the draft's base; the newest generation, its author's name, and the
    /// helper's sentence.
    Conflict(Option<(GenerationInfo, String)>, String),
    /// `Preview()` of the draft answered: the diff and the whole ruleset.
    Previewed(Result<Preview, Error>),
    /// The live generation and the diff applying the draft on top of it would make.
    OnTopPreview(Result<(u64, String), Error>),
    /// Time to say again how long expiring rules have left.
    Tick,
}

async fn load(connection: zbus::Connection) -> PolicyEditorCmd {
    let manage = interactive::permission(&connection, Action::PolicyManage);
    let live = async {
        let proxy = PolicyProxy::new(&connection).await?;
        let (generation, document) = proxy.get().await?;
        // A helper without drop-ins has no Sources: then there are none.
        let drop_ins = match proxy.sources().await {
            Ok(s) => s
                .sources
                .into_iter()
                .filter(|s| s.kind != SourceKind::Local)
                .collect(),
            Err(_) => Vec::new(),
        };
        Ok((generation, document, drop_ins))
    };
    let (manage, live) = tokio::join!(manage, live);
    PolicyEditorCmd::Loaded { manage, live }
}

async fn apply(connection: zbus::Connection, document: String, base: u64) -> PolicyEditorCmd {
    let result = async {
        let proxy = PolicyProxy::new(&connection).await?;
        interactive::apply_policy(
            &proxy,
            document.as_bytes(),
            base,
            CONFIRM_SECONDS,
            APPLY_WORK,
        )
        .await
    }
    .await;
    match result {
        Err(Error::Conflict(sentence)) => conflict(connection, sentence).await,
        other => PolicyEditorCmd::Applied(other),
    }
}

/// Who applied the newest generation, for the conflict dialog.
async fn conflict(connection: zbus::Connection, sentence: String) -> PolicyEditorCmd {
    let newest = async {
        let proxy = PolicyProxy::new(&connection).await?;
        proxy.history().await
    }
    .await
    .ok()
    .and_then(|h| h.into_iter().next())
    .map(|g| {
        let name = user_name(g.author_uid);
        (g, name)
    });
    PolicyEditorCmd::Conflict(newest, sentence)
}

/// The login name of `uid`, or the number.
fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}

async fn confirm(connection: zbus::Connection, generation: u64) -> PolicyEditorCmd {
    let result = async {
        let proxy = PolicyProxy::new(&connection).await?;
        interactive::confirm_policy(&proxy, generation, Duration::from_secs(30)).await
    }
    .await;
    PolicyEditorCmd::Confirmed(result)
}

async fn preview_only(connection: zbus::Connection, document: String) -> PolicyEditorCmd {
    let result = async {
        let proxy = PolicyProxy::new(&connection).await?;
        proxy.preview(document.as_bytes()).await
    }
    .await;
    PolicyEditorCmd::Previewed(result)
}

async fn preview(connection: zbus::Connection, document: String) -> PolicyEditorCmd {
    let result = async {
        let proxy = PolicyProxy::new(&connection).await?;
        let (generation, _) = proxy.get().await?;
        let preview = proxy.preview(document.as_bytes()).await?;
        Ok((generation, preview.diff))
    }
    .await;
    PolicyEditorCmd::OnTopPreview(result)
}

/// Judges `draft` as the helper would: merged after `drop_ins`, then parsed.
pub fn validate(draft: &PolicyDocument, drop_ins: &[PolicySource]) -> Vec<Finding> {
    let mut sources = drop_ins.to_vec();
    sources.push(PolicySource {
        name: String::new(),
        kind: SourceKind::Local,
        path: String::new(),
        document: draft.text(),
    });
    let merged = match merge(&sources) {
        Ok(merged) => merged,
        Err(findings) => return findings,
    };
    match Policy::parse(merged.document.as_bytes()) {
        Ok(parsed) => parsed.warnings,
        Err(findings) => findings,
    }
}

/// The findings of `findings` about rule `index` of `list`, with the field each names.
fn about_rule(findings: &[Finding], list: &RuleList, index: usize) -> Vec<(FieldFinding, bool)> {
    findings
        .iter()
        .filter_map(|f| {
            finding_field(&f.path, list, index).map(|field| {
                (
                    (field.to_owned(), f.message.clone()),
                    f.severity == Severity::Error,
                )
            })
        })
        .collect()
}

/// The local VMs of `text` with their default actions, in order.
fn local_vms(text: &str) -> Vec<(String, String)> {
    let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
        return Vec::new();
    };
    let Some(vms) = doc.get("vm").and_then(|v| v.as_array_of_tables()) else {
        return Vec::new();
    };
    vms.iter()
        .filter_map(|vm| {
            let name = vm.get("name")?.as_str()?.to_owned();
            let default = vm
                .get("default")
                .and_then(|d| d.as_str())
                .unwrap_or("drop")
                .to_owned();
            Some((name, default))
        })
        .collect()
}

/// The rule in one line: action, protocol and ports, destination.
fn summary(fields: &RuleFields) -> String {
    let target = match &fields.target {
        RuleTarget::Anywhere => gettext("anywhere"),
        RuleTarget::Destination(d) => d.clone(),
        RuleTarget::Special(s) => s.clone(),
        RuleTarget::Blocklist(b) => i18n_f("blocklist {name}", &[("name", b)]),
    };
    let mut parts = vec![fields.action.clone()];
    if !fields.proto.is_empty() {
        parts.push(fields.proto.clone());
    }
    parts.push(target);
    if !fields.ports.is_empty() {
        let single = !fields.ports.contains([',', '-']);
        parts.push(ni18n_f(
            "port {ports}",
            "ports {ports}",
            if single { 1 } else { 2 },
            &[("ports", &fields.ports)],
        ));
    }
    parts.join(" ")
}

/// How a list is named in the buttons' accessible names.
fn list_name(list: &RuleList) -> String {
    match list {
        RuleList::Host => gettext("the host"),
        RuleList::Vm(vm) => vm.clone(),
    }
}

const ACTIONS: [&str; 3] = ["accept", "drop", "reject"];

/// Whether the search `query` finds the rule: in its destination, ports, protocol or comment,
/// whatever the case.
fn matches(fields: &RuleFields, query: &str) -> bool {
    let query = query.trim().to_lowercase();
    if query.is_empty() {
        return true;
    }
    let target = match &fields.target {
        RuleTarget::Anywhere => String::new(),
        RuleTarget::Destination(d) | RuleTarget::Special(d) | RuleTarget::Blocklist(d) => d.clone(),
    };
    [&target, &fields.ports, &fields.proto, &fields.comment]
        .iter()
        .any(|field| field.to_lowercase().contains(&query))
}

/// A rule row's subtitle: `before`, the expiry's words at `now`, `after`, a line each.
fn subtitle(
    before: &[String],
    at: Option<SystemTime>,
    after: &[String],
    now: SystemTime,
) -> String {
    before
        .iter()
        .cloned()
        .chain(at.map(|at| expiry::words(at, now)))
        .chain(after.iter().cloned())
        .collect::<Vec<_>>()
        .join("\n")
}

impl PolicyEditor {
    /// Whether there is a draft to edit.
    fn can_edit(&self) -> bool {
        self.manage.offered() && self.draft.is_some()
    }

    /// Errors in the draft.
    fn errors(&self) -> Vec<&Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .collect()
    }

    /// Makes the draft the live local policy again.
    fn reset(&mut self) {
        self.changes = 0;
        self.draft = self.live.as_ref().and_then(|(generation, text)| {
            PolicyDocument::parse(text).ok().map(|d| (d, *generation))
        });
        self.judge();
    }

    fn judge(&mut self) {
        self.findings = match &self.draft {
            Some((draft, _)) => validate(draft, &self.drop_ins),
            None => Vec::new(),
        };
    }

    /// Makes `change` in the draft.
    fn change(&mut self, change: Change, sender: &ComponentSender<Self>) {
        let Some((draft, _)) = &mut self.draft else {
            return;
        };
        let focus = match &change {
            Change::Save(list, Some(i), _) => Some((list.clone(), *i, Focus::Edit)),
            Change::Save(list, None, _) => draft
                .rule_count(list)
                .ok()
                .map(|n| (list.clone(), n, Focus::Edit)),
            Change::Duplicate(list, i) => Some((list.clone(), *i, Focus::Duplicate)),
            Change::Delete(list, i) => {
                let left = draft.rule_count(list).unwrap_or(1).saturating_sub(1);
                Some(if *i < left {
                    (list.clone(), *i, Focus::Delete)
                } else if left > 0 {
                    (list.clone(), left - 1, Focus::Delete)
                } else {
                    (list.clone(), 0, Focus::Add)
                })
            }
            Change::Move(list, from, to) => {
                let last = draft.rule_count(list).unwrap_or(1).saturating_sub(1);
                let up = to < from;
                let kind = match (up, *to) {
                    (true, 0) => Focus::Down,
                    (true, _) => Focus::Up,
                    (false, t) if t >= last => Focus::Up,
                    (false, _) => Focus::Down,
                };
                Some((list.clone(), *to, kind))
            }
            Change::Enable(list, i, _) => Some((list.clone(), *i, Focus::Toggle)),
            Change::Default(vm, _) => Some((RuleList::Vm(vm.clone()), 0, Focus::Default)),
            Change::Access(..)
            | Change::AddConsole(_)
            | Change::SetConsole(..)
            | Change::RemoveConsole(_)
            | Change::Quick(..) => None,
        };
        self.focus = focus;
        let access_focus = match &change {
            Change::Access(vm, AccessKind::Operators, _) => {
                Some(i18n_f("Edit who may operate {vm}", &[("vm", vm)]))
            }
            Change::Access(vm, AccessKind::Console, _) => Some(i18n_f(
                "Edit who may open the console of {vm}",
                &[("vm", vm)],
            )),
            Change::SetConsole(_, fields) | Change::AddConsole(fields) => Some(i18n_f(
                "Edit remote console {name}",
                &[("name", fields.name.trim())],
            )),
            Change::RemoveConsole(_) => Some(gettext("Add a remote console")),
            _ => None,
        };
        self.access_focus.replace(access_focus);
        let result = match change {
            Change::Save(list, Some(i), fields) => draft.set_rule(&list, i, &fields),
            Change::Save(list, None, fields) => draft
                .rule_count(&list)
                .and_then(|n| draft.insert_rule(&list, n, &fields)),
            Change::Duplicate(list, i) => draft.duplicate_rule(&list, i),
            Change::Delete(list, i) => draft.remove_rule(&list, i),
            Change::Move(list, from, to) => draft.move_rule(&list, from, to),
            Change::Enable(list, i, on) => draft.set_enabled(&list, i, on),
            Change::Default(vm, action) => draft.set_default(&vm, &action),
            Change::Access(vm, kind, lists) => draft.set_access(&vm, kind, &lists),
            Change::AddConsole(fields) => draft.add_remote_console(&fields),
            Change::SetConsole(name, fields) => draft.set_remote_console(&name, &fields),
            Change::RemoveConsole(name) => draft.remove_remote_console(&name),
            Change::Quick(vm, action) => {
                let plan = quick::plan(
                    &action,
                    quick::vm_dns(&draft.text(), &vm),
                    SystemTime::now(),
                );
                quick::apply(draft, &vm, &plan)
            }
        };
        match result {
            Ok(()) => {
                self.changes += 1;
                self.judge();
            }
            Err(e) => sender
                .output_sender()
                .emit(PolicyEditorOutput::Toast(e.to_string())),
        }
    }

    /// Shows the bar and the rule lists as the model is.
    fn render(&self, sender: &ComponentSender<Self>) {
        self.toggle.set_visible(self.can_edit());
        self.toggle.set_active(self.editing);
        let editing = self.editing && self.can_edit();
        let [firewall_bar, access_bar] = &self.bars;
        firewall_bar.bar.set_visible(editing || self.changes > 0);
        access_bar.bar.set_visible(self.can_edit());
        let label = if self.changes == 0 {
            gettext("No unsaved changes")
        } else {
            ni18n_f(
                "{count} unsaved change",
                "{count} unsaved changes",
                u32::try_from(self.changes).unwrap_or(u32::MAX),
                &[("count", &self.changes.to_string())],
            )
        };
        let errors = self.errors();
        let reason = if self.busy {
            gettext("Applying…")
        } else if let Some(first) = errors.first() {
            ni18n_f(
                "Cannot apply: {count} problem, first {path}: {message}",
                "Cannot apply: {count} problems, first {path}: {message}",
                u32::try_from(errors.len()).unwrap_or(u32::MAX),
                &[
                    ("count", &errors.len().to_string()),
                    ("path", &first.path),
                    ("message", &first.message),
                ],
            )
        } else if self.changes == 0 {
            gettext("Nothing to apply yet")
        } else {
            String::new()
        };
        for bar in &self.bars {
            bar.label.set_label(&label);
            bar.reason.set_label(&reason);
            bar.reason.set_visible(!reason.is_empty());
            bar.apply
                .set_sensitive(!self.busy && self.changes > 0 && errors.is_empty());
            bar.preview
                .set_sensitive(self.changes > 0 && errors.is_empty());
        }
        self.render_access(sender);

        self.lists.set_visible(editing);
        self.search_entry.set_visible(editing);
        self.search_note.set_visible(false);
        let Some((draft, _)) = &self.draft else {
            return;
        };
        if !editing {
            return;
        }
        let shown = self.rule_lists.borrow_mut().show(
            &rule_lists::Shown {
                draft,
                findings: &self.findings,
                search: &self.search,
                focus: self.focus.as_ref(),
            },
            sender,
        );
        if !self.search.is_empty() {
            self.search_note.set_visible(true);
            self.search_note.set_label(&if shown == 0 {
                i18n_f("No rule matches “{text}”", &[("text", &self.search)])
            } else {
                gettext("Clear the search to move rules: their order is that of the whole list")
            });
        }
    }

    /// The Access page's widget, for the window's stack.
    pub fn access_page(&self) -> gtk::ScrolledWindow {
        self.access_page.clone()
    }

    /// Shows what a quick action on VM `vm` replaces (asking for the proxy first) and makes it
    /// in the draft when the admin agrees; what replaces nothing is made at once.
    fn quick(
        &self,
        vm: String,
        action: QuickAction,
        root: &gtk::Box,
        sender: &ComponentSender<Self>,
    ) {
        let Some((draft, _)) = &self.draft else {
            return;
        };
        // What replaces nothing is made at once: the rows show it, and Discard takes it back.
        if !quick::plan(&action, false, SystemTime::now()).replaces() {
            sender.input(PolicyEditorInput::Change(Change::Quick(vm, action)));
            return;
        }
        let list = RuleList::Vm(vm.clone());
        let mut present: Vec<String> = draft
            .rules_of(&list)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, f)| format!("{}. {}", i + 1, summary(f)))
            .collect();
        if present.is_empty() {
            present.push(gettext("(no rules)"));
        }
        let proxy = matches!(action, QuickAction::Proxy { .. });
        let heading = if proxy {
            i18n_f("Only through the proxy for {vm}?", &[("vm", &vm)])
        } else {
            i18n_f("HTTPS only for {vm}?", &[("vm", &vm)])
        };
        let body = i18n_f(
            "This replaces these rules of {vm}, and traffic no rule matches is dropped:\n{rules}\n\nOnly the draft changes: nothing is applied until you apply it.",
            &[("vm", &vm), ("rules", &present.join("\n"))],
        );
        let dialog =
            adw::MessageDialog::new(root.toplevel_window().as_ref(), Some(&heading), Some(&body));
        dialog.add_response("cancel", &gettext("_Cancel"));
        dialog.add_response("replace", &gettext("_Replace Rules"));
        dialog.set_response_appearance("replace", adw::ResponseAppearance::Destructive);
        dialog.set_close_response("cancel");
        let read: std::rc::Rc<dyn Fn() -> QuickAction> = if proxy {
            let group = adw::PreferencesGroup::new();
            let host = rule_dialog::entry(&gettext("Proxy address"), "10.0.2.2");
            group.add(&host);
            let host_error = rule_dialog::error_label(&group);
            let port = rule_dialog::entry(&gettext("Proxy port"), "");
            group.add(&port);
            let port_error = rule_dialog::error_label(&group);
            dialog.set_extra_child(Some(&group));
            let read = {
                let (host, port) = (host.clone(), port.clone());
                std::rc::Rc::new(move || QuickAction::Proxy {
                    host: host.text().trim().to_owned(),
                    port: port.text().trim().to_owned(),
                })
            };
            let (draft, drop_ins, vm) = (draft.clone(), self.drop_ins.clone(), vm.clone());
            let judge = {
                let (dialog, read) = (dialog.clone(), std::rc::Rc::clone(&read));
                let (host_row, port_row) = (host.clone(), port.clone());
                std::rc::Rc::new(move || {
                    let action = read();
                    let mut doc = draft.clone();
                    let plan = quick::plan(&action, false, SystemTime::now());
                    let findings = match quick::apply(&mut doc, &vm, &plan) {
                        Ok(()) => about_rule(&validate(&doc, &drop_ins), &list, 0),
                        Err(e) => vec![((String::new(), e.to_string()), true)],
                    };
                    let mut ok = true;
                    for (row, label, key, empty) in [
                        (
                            &host_row,
                            &host_error,
                            "destination",
                            gettext("Enter the proxy's address"),
                        ),
                        (
                            &port_row,
                            &port_error,
                            "ports",
                            gettext("Enter the proxy's port"),
                        ),
                    ] {
                        let message = if row.text().trim().is_empty() {
                            Some(empty)
                        } else {
                            findings
                                .iter()
                                .find(|((f, _), error)| *error && f.starts_with(key))
                                .map(|((_, m), _)| m.clone())
                        };
                        ok &= message.is_none();
                        label.set_label(message.as_deref().unwrap_or_default());
                        label.set_visible(message.is_some());
                        if message.is_some() {
                            row.add_css_class("error");
                        } else {
                            row.remove_css_class("error");
                        }
                    }
                    dialog.set_response_enabled("replace", ok);
                })
            };
            for row in [&host, &port] {
                let judge = std::rc::Rc::clone(&judge);
                row.connect_changed(move |_| judge());
            }
            judge();
            read
        } else {
            std::rc::Rc::new(move || QuickAction::HttpsOnly)
        };
        let input = sender.input_sender().clone();
        dialog.connect_response(None, move |_, response| {
            if response == "replace" {
                input.emit(PolicyEditorInput::Change(Change::Quick(vm.clone(), read())));
            }
        });
        dialog.present();
    }

    /// Opens the rule dialog for rule `index` of `list`.
    fn open(
        &self,
        list: RuleList,
        index: Option<usize>,
        root: &gtk::Box,
        sender: &ComponentSender<Self>,
    ) {
        let Some((draft, _)) = &self.draft else {
            return;
        };
        let fields = match index {
            Some(i) => match draft.rule(&list, i) {
                Ok(fields) => fields,
                Err(_) => return,
            },
            // Most rules let TCP through to an address: the dialog starts there.
            None => RuleFields {
                proto: "tcp".into(),
                target: RuleTarget::Destination(String::new()),
                ..RuleFields::default()
            },
        };
        let name = list_name(&list);
        let heading = match index {
            Some(i) => i18n_f(
                "Rule {number} of {list}",
                &[("number", &(i + 1).to_string()), ("list", &name)],
            ),
            None => i18n_f("New rule for {list}", &[("list", &name)]),
        };
        let draft = draft.clone();
        let drop_ins = self.drop_ins.clone();
        let check_list = list.clone();
        let check = move |fields: &RuleFields| {
            let mut doc = draft.clone();
            let at = match index {
                Some(i) => doc.set_rule(&check_list, i, fields).map(|()| i),
                None => doc
                    .rule_count(&check_list)
                    .and_then(|n| doc.insert_rule(&check_list, n, fields).map(|()| n)),
            };
            match at {
                Ok(at) => about_rule(&validate(&doc, &drop_ins), &check_list, at)
                    .into_iter()
                    .filter(|(_, error)| *error)
                    .map(|(finding, _)| finding)
                    .collect(),
                Err(e) => vec![(String::new(), e.to_string())],
            }
        };
        let input = sender.input_sender().clone();
        let save = move |fields| {
            input.emit(PolicyEditorInput::Change(Change::Save(
                list.clone(),
                index,
                fields,
            )));
        };
        rule_dialog::open(
            root.toplevel_window().as_ref(),
            &heading,
            &fields,
            check,
            save,
        );
    }

    /// Asks whether to keep `applied`, counting down to the helper's deadline.
    fn keep_dialog(&self, applied: &Applied, root: &gtk::Box, sender: &ComponentSender<Self>) {
        let generation = applied.generation;
        let body = |left: u32| {
            i18n_f(
                "Reverting in {seconds} s",
                &[("seconds", &left.to_string())],
            )
        };
        let dialog = adw::MessageDialog::new(
            root.toplevel_window().as_ref(),
            Some(&gettext("Keep these settings?")),
            Some(&body(CONFIRM_SECONDS)),
        );
        dialog.add_response("revert", &gettext("_Revert"));
        dialog.add_response("keep", &gettext("_Keep"));
        dialog.set_response_appearance("keep", adw::ResponseAppearance::Suggested);
        dialog.set_default_response(Some("keep"));
        dialog.set_close_response("revert");
        let left = std::rc::Rc::new(std::cell::Cell::new(CONFIRM_SECONDS));
        let timer = {
            let dialog = dialog.clone();
            let left = std::rc::Rc::clone(&left);
            gtk::glib::timeout_add_seconds_local(1, move || {
                let now = left.get().saturating_sub(1);
                left.set(now);
                if now == 0 {
                    dialog.set_body(&gettext("Reverting…"));
                    dialog.close();
                    return gtk::glib::ControlFlow::Break;
                }
                dialog.set_body(&body(now));
                gtk::glib::ControlFlow::Continue
            })
        };
        let timer = std::cell::RefCell::new(Some(timer));
        let input = sender.input_sender().clone();
        let output = sender.output_sender().clone();
        dialog.connect_response(None, move |_, response| {
            if left.get() > 0 {
                if let Some(timer) = timer.borrow_mut().take() {
                    timer.remove();
                }
                left.set(0);
            }
            if response == "keep" {
                input.emit(PolicyEditorInput::Keep(generation));
            } else {
                output.emit(PolicyEditorOutput::Toast(gettext(
                    "Reverting… the previous settings return when the time is up",
                )));
            }
        });
        dialog.present();
    }

    /// Says that someone else applied since the draft's base, and offers what to do.
    fn conflict_dialog(
        &self,
        newest: Option<(GenerationInfo, String)>,
        sentence: &str,
        root: &gtk::Box,
        sender: &ComponentSender<Self>,
    ) {
        let body = match newest {
            Some((g, user)) => i18n_f(
                "{user} applied generation {generation} {when} while you were editing.",
                &[
                    ("user", &user),
                    ("generation", &g.generation.to_string()),
                    ("when", &crate::format::ago(g.applied_at, unix_now())),
                ],
            ),
            None => sentence.to_owned(),
        };
        let dialog = adw::MessageDialog::new(
            root.toplevel_window().as_ref(),
            Some(&gettext("The policy changed meanwhile")),
            Some(&body),
        );
        dialog.add_response("cancel", &gettext("_Cancel"));
        dialog.add_response("reload", &gettext("_Reload"));
        dialog.add_response("ontop", &gettext("_Apply Mine on Top"));
        dialog.set_response_appearance("reload", adw::ResponseAppearance::Destructive);
        dialog.set_close_response("cancel");
        let input = sender.input_sender().clone();
        dialog.connect_response(None, move |_, response| match response {
            "reload" => input.emit(PolicyEditorInput::Reload),
            "ontop" => input.emit(PolicyEditorInput::OnTop),
            _ => {}
        });
        dialog.present();
    }

    /// Shows the diff applying the draft on top of `generation` would make; Apply applies it.
    fn on_top_dialog(&self, diff: &str, root: &gtk::Box, sender: &ComponentSender<Self>) {
        let dialog = adw::MessageDialog::new(
            root.toplevel_window().as_ref(),
            Some(&gettext("Apply your draft on top?")),
            Some(&gettext("This is what it changes in the live ruleset")),
        );
        dialog.set_extra_child(Some(&diff_view(diff)));
        dialog.add_response("cancel", &gettext("_Cancel"));
        dialog.add_response("apply", &gettext("_Apply"));
        dialog.set_response_appearance("apply", adw::ResponseAppearance::Suggested);
        dialog.set_close_response("cancel");
        let input = sender.input_sender().clone();
        dialog.connect_response(None, move |_, response| {
            if response == "apply" {
                input.emit(PolicyEditorInput::Apply);
            }
        });
        dialog.present();
    }
}

/// A bar with its buttons, sending their messages.
fn new_bar(sender: &ComponentSender<PolicyEditor>) -> Bar {
    let bar = gtk::Box::new(gtk::Orientation::Horizontal, 12);
    bar.add_css_class("card");
    bar.set_visible(false);
    let texts = gtk::Box::new(gtk::Orientation::Vertical, 4);
    texts.set_hexpand(true);
    texts.set_margin_start(12);
    texts.set_margin_top(8);
    texts.set_margin_bottom(8);
    let label = gtk::Label::new(None);
    label.set_xalign(0.0);
    label.add_css_class("heading");
    let reason = gtk::Label::new(None);
    reason.set_xalign(0.0);
    reason.set_wrap(true);
    reason.add_css_class("dim-label");
    texts.append(&label);
    texts.append(&reason);
    bar.append(&texts);
    let discard = a11y::text_button(&gettext("Discard"), &gettext("Discard the changes"));
    discard.set_valign(gtk::Align::Center);
    {
        let input = sender.input_sender().clone();
        discard.connect_clicked(move |_| input.emit(PolicyEditorInput::Discard));
    }
    let apply = a11y::text_button(&gettext("Apply"), &gettext("Apply the changes"));
    apply.add_css_class("suggested-action");
    apply.set_valign(gtk::Align::Center);
    apply.set_margin_end(12);
    {
        let input = sender.input_sender().clone();
        apply.connect_clicked(move |_| input.emit(PolicyEditorInput::Apply));
    }
    let preview = a11y::text_button(&gettext("Preview"), &gettext("Preview the changes"));
    preview.set_valign(gtk::Align::Center);
    {
        let input = sender.input_sender().clone();
        preview.connect_clicked(move |_| input.emit(PolicyEditorInput::Preview));
    }
    bar.append(&discard);
    bar.append(&preview);
    bar.append(&apply);
    Bar {
        bar,
        label,
        reason,
        apply,
        preview,
    }
}

/// Shows what applying the draft would change in the live ruleset, and the whole new ruleset.
fn preview_dialog(preview: &Preview, root: &gtk::Box) {
    let dialog = adw::MessageDialog::new(
        root.toplevel_window().as_ref(),
        Some(&gettext("Preview")),
        Some(&gettext(
            "What applying the draft would change in the live ruleset",
        )),
    );
    let content = gtk::Box::new(gtk::Orientation::Vertical, 6);
    content.append(&diff_view(&preview.diff));
    let whole = gtk::Label::new(Some(&gettext("The whole ruleset")));
    whole.set_xalign(0.0);
    whole.add_css_class("heading");
    whole.set_margin_top(6);
    content.append(&whole);
    content.append(&text_view(&preview.ruleset, &gettext("The whole ruleset")));
    dialog.set_extra_child(Some(&content));
    dialog.add_response("close", &gettext("_Close"));
    dialog.set_close_response("close");
    dialog.present();
}

/// A monospace, selectable, scrollable view of `diff`.
pub fn diff_view(diff: &str) -> gtk::ScrolledWindow {
    if diff.is_empty() {
        text_view(&gettext("(no change)"), &gettext("Ruleset diff"))
    } else {
        text_view(diff, &gettext("Ruleset diff"))
    }
}

/// A monospace, selectable (not editable), scrollable view of `text`, named `name`.
fn text_view(text: &str, name: &str) -> gtk::ScrolledWindow {
    let buffer = gtk::TextBuffer::new(None);
    buffer.set_text(text);
    let view: gtk::TextView = a11y::named(name);
    view.set_buffer(Some(&buffer));
    view.set_editable(false);
    view.set_cursor_visible(false);
    view.set_monospace(true);
    let scroller = gtk::ScrolledWindow::new();
    scroller.set_min_content_height(180);
    scroller.set_min_content_width(560);
    scroller.set_child(Some(&view));
    scroller
}

/// Unix seconds now.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A copy of a button's message.
fn clone_input(input: &PolicyEditorInput) -> PolicyEditorInput {
    match input {
        PolicyEditorInput::Open(list, i) => PolicyEditorInput::Open(list.clone(), *i),
        PolicyEditorInput::Change(c) => PolicyEditorInput::Change(c.clone()),
        PolicyEditorInput::OpenAccess(vm, kind) => PolicyEditorInput::OpenAccess(vm.clone(), *kind),
        PolicyEditorInput::OpenConsole(name) => PolicyEditorInput::OpenConsole(name.clone()),
        _ => PolicyEditorInput::Discard,
    }
}

impl Component for PolicyEditor {
    type Init = ();
    type Input = PolicyEditorInput;
    type Output = PolicyEditorOutput;
    type CommandOutput = PolicyEditorCmd;
    type Root = gtk::Box;
    type Widgets = ();

    fn init_root() -> Self::Root {
        gtk::Box::new(gtk::Orientation::Vertical, 12)
    }

    fn init(
        _init: Self::Init,
        root: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        // Its label is its accessible name too.
        let toggle = gtk::ToggleButton::with_label(&gettext("Edit"));
        toggle.set_halign(gtk::Align::End);
        toggle.set_visible(false);
        {
            let input = sender.input_sender().clone();
            toggle.connect_toggled(move |t| input.emit(PolicyEditorInput::Editing(t.is_active())));
        }
        let bars = [new_bar(&sender), new_bar(&sender)];
        let search_entry = a11y::named::<gtk::SearchEntry>(&gettext("Search the rules"));
        search_entry.set_placeholder_text(Some(&gettext(
            "Search by destination, port, protocol or comment",
        )));
        search_entry.set_visible(false);
        {
            let input = sender.input_sender().clone();
            search_entry.connect_search_changed(move |e| {
                input.emit(PolicyEditorInput::Search(e.text().to_string()))
            });
        }
        let search_note = gtk::Label::new(None);
        search_note.set_xalign(0.0);
        search_note.set_wrap(true);
        search_note.add_css_class("dim-label");
        search_note.set_visible(false);
        let lists = gtk::Box::new(gtk::Orientation::Vertical, 24);
        lists.set_visible(false);
        root.append(&toggle);
        root.append(&bars[0].bar);
        root.append(&search_entry);
        root.append(&search_note);
        root.append(&lists);
        let access_groups = gtk::Box::new(gtk::Orientation::Vertical, 24);
        let access_column = gtk::Box::new(gtk::Orientation::Vertical, 24);
        access_column.append(&bars[1].bar);
        access_column.append(&access_groups);
        let clamp = adw::Clamp::new();
        clamp.set_maximum_size(720);
        clamp.set_margin_all(18);
        clamp.set_child(Some(&access_column));
        let access_page = gtk::ScrolledWindow::new();
        access_page.set_hscrollbar_policy(gtk::PolicyType::Never);
        access_page.set_child(Some(&clamp));
        sender.command(|out, shutdown: relm4::ShutdownReceiver| {
            shutdown
                .register(async move {
                    let mut ticks = tokio::time::interval(TICK);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        ticks.tick().await;
                        out.emit(PolicyEditorCmd::Tick);
                    }
                })
                .drop_on_shutdown()
        });
        let model = PolicyEditor {
            connection: None,
            manage: Permission::Unknown,
            editing: false,
            live: None,
            drop_ins: Vec::new(),
            draft: None,
            changes: 0,
            findings: Vec::new(),
            busy: false,
            focus: None,
            access_focus: RefCell::new(None),
            rule_lists: RefCell::new(rule_lists::RuleLists::new(lists.clone())),
            lists,
            bars,
            toggle,
            search: String::new(),
            search_entry,
            search_note,
            access_page,
            access_groups,
        };
        ComponentParts { model, widgets: () }
    }

    fn update(&mut self, message: Self::Input, sender: ComponentSender<Self>, root: &Self::Root) {
        match message {
            PolicyEditorInput::Load(connection) => {
                self.connection = Some(connection.clone());
                sender.oneshot_command(load(connection));
                return;
            }
            PolicyEditorInput::Clear => {
                self.connection = None;
                self.live = None;
                self.draft = None;
                self.changes = 0;
                self.findings.clear();
            }
            PolicyEditorInput::Editing(on) => {
                if on == self.editing {
                    return;
                }
                self.editing = on;
            }
            PolicyEditorInput::Open(list, index) => {
                self.open(list, index, root, &sender);
                return;
            }
            PolicyEditorInput::OpenAccess(vm, kind) => {
                self.open_access(vm, kind, root, &sender);
                return;
            }
            PolicyEditorInput::OpenConsole(name) => {
                self.open_console(name, root, &sender);
                return;
            }
            PolicyEditorInput::Quick(vm, action) => {
                self.quick(vm, action, root, &sender);
                return;
            }
            PolicyEditorInput::Search(text) => {
                if text == self.search {
                    return;
                }
                self.search = text;
            }
            PolicyEditorInput::Change(change) => {
                self.change(change, &sender);
                self.render(&sender);
                self.focus = None;
                return;
            }
            PolicyEditorInput::Discard => self.reset(),
            PolicyEditorInput::Reload => {
                self.changes = 0;
                if let Some(connection) = &self.connection {
                    sender.input(PolicyEditorInput::Load(connection.clone()));
                }
            }
            PolicyEditorInput::Apply => {
                let (Some(connection), Some((draft, base))) = (&self.connection, &self.draft)
                else {
                    return;
                };
                if self.busy || !self.errors().is_empty() {
                    return;
                }
                self.busy = true;
                sender.oneshot_command(apply(connection.clone(), draft.text(), *base));
            }
            PolicyEditorInput::Keep(generation) => {
                if let Some(connection) = &self.connection {
                    sender.oneshot_command(confirm(connection.clone(), generation));
                }
                return;
            }
            PolicyEditorInput::Preview => {
                if let (Some(connection), Some((draft, _))) = (&self.connection, &self.draft) {
                    sender.oneshot_command(preview_only(connection.clone(), draft.text()));
                }
                return;
            }
            PolicyEditorInput::OnTop => {
                if let (Some(connection), Some((draft, _))) = (&self.connection, &self.draft) {
                    sender.oneshot_command(preview(connection.clone(), draft.text()));
                }
                return;
            }
        }
        self.render(&sender);
    }

    fn update_cmd(
        &mut self,
        message: Self::CommandOutput,
        sender: ComponentSender<Self>,
        root: &Self::Root,
    ) {
        let toast = |s: String| sender.output_sender().emit(PolicyEditorOutput::Toast(s));
        match message {
            PolicyEditorCmd::Loaded { manage, live } => {
                self.manage = manage;
                match live {
                    Ok((generation, document, drop_ins)) => {
                        self.live = Some((generation, document));
                        self.drop_ins = drop_ins;
                        // A draft with changes keeps its base: applying it says whether
                        // someone else applied meanwhile.
                        if self.changes == 0 {
                            self.reset();
                        } else {
                            self.judge();
                        }
                    }
                    Err(e) => {
                        if !matches!(e, Error::NotAuthorized(_)) {
                            eprintln!(
                                "palisade: the editor cannot read the policy: {}",
                                e.sentence()
                            );
                        }
                        self.live = None;
                        if self.changes == 0 {
                            self.draft = None;
                        }
                    }
                }
            }
            PolicyEditorCmd::Applied(result) => {
                self.busy = false;
                match result {
                    Ok(applied) => {
                        // The draft is live now; the window reads the new generation.
                        if let Some((draft, _)) = &self.draft {
                            self.live = Some((applied.generation, draft.text()));
                        }
                        self.reset();
                        if applied.pending_until > 0 {
                            self.keep_dialog(&applied, root, &sender);
                        } else {
                            toast(i18n_f(
                                "Applied as generation {generation}",
                                &[("generation", &applied.generation.to_string())],
                            ));
                        }
                    }
                    Err(e) => toast(e.sentence()),
                }
            }
            PolicyEditorCmd::Confirmed(result) => match result {
                Ok(()) => {
                    toast(gettext("The new settings are kept"));
                    sender.output_sender().emit(PolicyEditorOutput::Changed);
                }
                Err(e) => toast(e.sentence()),
            },
            PolicyEditorCmd::Conflict(newest, sentence) => {
                self.busy = false;
                toast(sentence.clone());
                self.conflict_dialog(newest, &sentence, root, &sender);
            }
            PolicyEditorCmd::Previewed(result) => match result {
                Ok(preview) => preview_dialog(&preview, root),
                Err(e) => toast(e.sentence()),
            },
            PolicyEditorCmd::Tick => {
                self.rule_lists.borrow().tick(SystemTime::now());
                return;
            }
            PolicyEditorCmd::OnTopPreview(result) => match result {
                Ok((generation, diff)) => {
                    if let Some((_, base)) = &mut self.draft {
                        *base = generation;
                    }
                    self.on_top_dialog(&diff, root, &sender);
                }
                Err(e) => toast(e.sentence()),
            },
        }
        self.render(&sender);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_looks_at_destination_ports_protocol_and_comment() {
        let rule = RuleFields {
            target: RuleTarget::Destination("Mail.Example.com".into()),
            proto: "tcp".into(),
            ports: "8443".into(),
            comment: "Office webmail".into(),
            ..RuleFields::default()
        };
        for query in ["mail.example", "844", "TCP", "webMAIL", "", "  "] {
            assert!(matches(&rule, query), "{query}");
        }
        for query in ["udp", "8444", "accept", "bank"] {
            assert!(!matches(&rule, query), "{query}");
        }
    }
}
