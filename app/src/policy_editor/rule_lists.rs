//! The editor's rule lists, updated in place. Each list (a local VM's, the host's) is a group
//! whose rows are positional: row `k` always shows rule `k` of the draft, so its buttons' names
//! ("Turn off rule 3 of work") and what they do stay true whatever the draft becomes, and a
//! change to the draft only rewrites the text of the rows whose rule changed. Rows are made when
//! a list grows and dropped when it shrinks; the search hides rows rather than removing them.
//!
//! Why: the editor used to build every row (an action row and six buttons) again after every
//! change, and three times on the way from Apply to the keep dialog. With a thousand rules that
//! took seconds, with GTK announcing each new widget on the accessibility bus. GTK 4.8 cannot
//! rename a widget for assistive technologies once it is made (gtk4-rs's
//! `Accessible::update_property` needs GTK 4.10), which is why a row keeps its position rather
//! than following its rule: only the on/off button, whose name says which it does, is made
//! again when its rule is turned on or off.

use super::{
    about_rule, list_name, matches, subtitle, summary, Change, Focus, PolicyEditor,
    PolicyEditorInput, ACTIONS,
};
use crate::a11y;
use crate::expiry;
use crate::i18n::{gettext, i18n_f};
use crate::quick::QuickAction;
use palisade_dbus::policy::edit::{PolicyDocument, RuleFields, RuleList};
use palisade_dbus::policy::Verdict;
use palisade_dbus::types::Finding;
use relm4::adw::prelude::*;
use relm4::{adw, gtk, ComponentSender, Sender};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::SystemTime;

/// What the lists show: the draft, its findings and the search.
pub(super) struct Shown<'a> {
    /// The draft.
    pub draft: &'a PolicyDocument,
    /// Its findings.
    pub findings: &'a [Finding],
    /// The search (empty: every rule shows).
    pub search: &'a str,
    /// The control to give the keyboard focus to, when a change asked for one.
    pub focus: Option<&'a (RuleList, usize, Focus)>,
}

/// The rule lists.
pub(super) struct RuleLists {
    /// The box the groups are in.
    root: gtk::Box,
    /// One group per list, in the draft's order, the host's last.
    groups: Vec<ListGroup>,
}

/// One list's group.
struct ListGroup {
    list: RuleList,
    group: adw::PreferencesGroup,
    add: gtk::Button,
    /// "No rules yet", shown while the list is empty.
    empty: adw::ActionRow,
    rows: Vec<RuleRow>,
    /// A VM's default action.
    default: Option<DefaultAction>,
}

/// A VM's default action and what the draft says it is (the combo's handler compares with it,
/// so that showing the draft's value is not taken for a change).
struct DefaultAction {
    combo: adw::ComboRow,
    current: Rc<RefCell<String>>,
}

/// Row `index` of a list.
struct RuleRow {
    row: adw::ActionRow,
    /// The row's buttons, in [`CONTROLS`] order.
    buttons: gtk::Box,
    edit: gtk::Button,
    duplicate: gtk::Button,
    toggle: gtk::Button,
    up: gtk::Button,
    down: gtk::Button,
    delete: gtk::Button,
    /// What it shows now.
    shown: RowView,
}

/// Everything a row shows of its rule, to tell whether it must change.
#[derive(Debug, Clone, PartialEq)]
struct RowView {
    title: String,
    enabled: bool,
    /// The subtitle's lines before the expiry's words, the expiry, the lines after.
    before: Vec<String>,
    expires: Option<SystemTime>,
    after: Vec<String>,
    error: bool,
    visible: bool,
    can_move_up: bool,
    can_move_down: bool,
}

impl RowView {
    /// Rule `index` of `count` in a list, with `findings` about it.
    fn of(
        fields: &RuleFields,
        index: usize,
        count: usize,
        list: &RuleList,
        shown: &Shown<'_>,
    ) -> RowView {
        let findings = about_rule(shown.findings, list, index);
        let mut before = Vec::new();
        if !fields.enabled {
            before.push(gettext("turned off"));
        }
        let mut after = Vec::new();
        if !fields.comment.is_empty() {
            after.push(fields.comment.clone());
        }
        for ((field, message), _) in &findings {
            after.push(if field.is_empty() {
                message.clone()
            } else {
                format!("{field}: {message}")
            });
        }
        let filtering = !shown.search.is_empty();
        RowView {
            title: format!("{}. {}", index + 1, summary(fields)),
            enabled: fields.enabled,
            before,
            expires: expiry::from_policy_text(&fields.expires),
            after,
            error: findings.iter().any(|(_, error)| *error),
            visible: !filtering || matches(fields, shown.search),
            can_move_up: index > 0 && !filtering,
            can_move_down: index + 1 < count && !filtering,
        }
    }

    fn subtitle(&self, now: SystemTime) -> String {
        subtitle(&self.before, self.expires, &self.after, now)
    }
}

impl RuleLists {
    pub(super) fn new(root: gtk::Box) -> RuleLists {
        RuleLists {
            root,
            groups: Vec::new(),
        }
    }

    /// Shows `shown`; how many rules the search lets through.
    pub(super) fn show(
        &mut self,
        shown: &Shown<'_>,
        sender: &ComponentSender<PolicyEditor>,
    ) -> usize {
        let vms = super::local_vms(&shown.draft.text());
        let lists: Vec<RuleList> = vms
            .iter()
            .map(|(vm, _)| RuleList::Vm(vm.clone()))
            .chain([RuleList::Host])
            .collect();
        if self.groups.iter().map(|g| &g.list).ne(lists.iter()) {
            while let Some(child) = self.root.first_child() {
                self.root.remove(&child);
            }
            self.groups = lists
                .into_iter()
                .map(|list| ListGroup::new(list, sender))
                .collect();
            for group in &self.groups {
                self.root.append(&group.group);
            }
        }
        let input = sender.input_sender();
        let mut through = 0;
        let mut target: Option<gtk::Widget> = None;
        for group in &mut self.groups {
            let default = match &group.list {
                RuleList::Vm(vm) => vms.iter().find(|(name, _)| name == vm).map(|(_, d)| d),
                RuleList::Host => None,
            };
            through += group.show(shown, default, input);
            if let Some((list, index, kind)) = shown.focus {
                if *list == group.list {
                    target = group.control(*index, *kind);
                }
            }
        }
        if let Some(widget) = target {
            widget.grab_focus();
        }
        through
    }

    /// Says again how long expiring rules have left.
    pub(super) fn tick(&self, now: SystemTime) {
        for row in self.groups.iter().flat_map(|g| &g.rows) {
            if row.shown.expires.is_some() {
                row.row.set_subtitle(&row.shown.subtitle(now));
            }
        }
    }
}

impl ListGroup {
    fn new(list: RuleList, sender: &ComponentSender<PolicyEditor>) -> ListGroup {
        let group = adw::PreferencesGroup::new();
        group.set_title(&match &list {
            RuleList::Vm(vm) => i18n_f("Rules of {vm} (being edited)", &[("vm", vm)]),
            RuleList::Host => gettext("Rules for every local process (being edited)"),
        });
        let add = a11y::text_button(
            &gettext("Add rule"),
            &i18n_f("Add a rule to {list}", &[("list", &list_name(&list))]),
        );
        add.add_css_class("flat");
        {
            let input = sender.input_sender().clone();
            let list = list.clone();
            add.connect_clicked(move |_| input.emit(PolicyEditorInput::Open(list.clone(), None)));
        }
        let header = gtk::Box::new(gtk::Orientation::Horizontal, 6);
        header.append(&add);
        let mut default = None;
        if let RuleList::Vm(vm) = &list {
            header.append(&quick_button(vm, sender));
            default = Some(DefaultAction::new(vm, sender));
        }
        group.set_header_suffix(Some(&header));
        let empty = adw::ActionRow::new();
        empty.set_title(&gettext("No rules yet"));
        group.add(&empty);
        if let Some(default) = &default {
            group.add(&default.combo);
        }
        ListGroup {
            list,
            group,
            add,
            empty,
            rows: Vec::new(),
            default,
        }
    }

    /// Shows the list's rules and a VM's `default` action; how many rules the search lets
    /// through.
    fn show(
        &mut self,
        shown: &Shown<'_>,
        default: Option<&String>,
        input: &Sender<PolicyEditorInput>,
    ) -> usize {
        let rules = shown.draft.rules_of(&self.list).unwrap_or_default();
        let count = rules.len();
        while self.rows.len() > count {
            if let Some(row) = self.rows.pop() {
                self.group.remove(&row.row);
            }
        }
        let now = SystemTime::now();
        let name = list_name(&self.list);
        let mut through = 0;
        let made = self.rows.len();
        for (index, fields) in rules.iter().enumerate() {
            let view = RowView::of(fields, index, count, &self.list, shown);
            through += usize::from(view.visible);
            match self.rows.get_mut(index) {
                Some(row) => row.show(view, &self.list, index, &name, input, now),
                None => {
                    let row = RuleRow::new(view, &self.list, index, &name, input, now);
                    self.group.add(&row.row);
                    self.rows.push(row);
                }
            }
        }
        // New rows go after the last rule: the default action moves back to the end.
        if let (Some(default), true) = (&self.default, self.rows.len() > made) {
            self.group.remove(&default.combo);
            self.group.add(&default.combo);
        }
        self.empty.set_visible(count == 0);
        if let (Some(combo), Some(action)) = (&self.default, default) {
            combo.show(action);
        }
        through
    }

    /// The control `kind` of row `index` (or of the list, for Add and the default action).
    fn control(&self, index: usize, kind: Focus) -> Option<gtk::Widget> {
        let row = self.rows.get(index);
        let button = match kind {
            Focus::Add => Some(&self.add),
            Focus::Default => return self.default.as_ref().map(|d| d.combo.clone().upcast()),
            Focus::Edit => row.map(|r| &r.edit),
            Focus::Duplicate => row.map(|r| &r.duplicate),
            Focus::Toggle => row.map(|r| &r.toggle),
            Focus::Up => row.map(|r| &r.up),
            Focus::Down => row.map(|r| &r.down),
            Focus::Delete => row.map(|r| &r.delete),
        };
        button.map(|b| b.clone().upcast())
    }
}

impl DefaultAction {
    fn new(vm: &str, sender: &ComponentSender<PolicyEditor>) -> DefaultAction {
        let combo = adw::ComboRow::new();
        combo.set_title(&i18n_f("Default action of {vm}", &[("vm", vm)]));
        combo.set_subtitle(&gettext("For traffic no rule matched"));
        combo.set_model(Some(&gtk::StringList::new(&[
            &crate::format::verdict(Verdict::Accept),
            &crate::format::verdict(Verdict::Drop),
            &crate::format::verdict(Verdict::Reject),
        ])));
        let current = Rc::new(RefCell::new(String::new()));
        let input = sender.input_sender().clone();
        let vm = vm.to_owned();
        let now = current.clone();
        combo.connect_selected_notify(move |c| {
            if let Some(action) = ACTIONS.get(c.selected() as usize) {
                if **action != *now.borrow() {
                    input.emit(PolicyEditorInput::Change(Change::Default(
                        vm.clone(),
                        (*action).to_owned(),
                    )));
                }
            }
        });
        DefaultAction { combo, current }
    }

    fn show(&self, action: &str) {
        self.current.replace(action.to_owned());
        let index = ACTIONS
            .iter()
            .position(|a| *a == action)
            .and_then(|i| u32::try_from(i).ok())
            .unwrap_or(1);
        if self.combo.selected() != index {
            self.combo.set_selected(index);
        }
    }
}

impl RuleRow {
    /// Row `index` of `list` (called `name` in the buttons' names), showing `view`.
    fn new(
        view: RowView,
        list: &RuleList,
        index: usize,
        name: &str,
        input: &Sender<PolicyEditorInput>,
        now: SystemTime,
    ) -> RuleRow {
        let number = (index + 1).to_string();
        let args = [("number", number.as_str()), ("list", name)];
        let labels = [
            i18n_f("Edit rule {number} of {list}", &args),
            i18n_f("Duplicate rule {number} of {list}", &args),
            i18n_f("Move rule {number} of {list} up", &args),
            i18n_f("Move rule {number} of {list} down", &args),
            i18n_f("Delete rule {number} of {list}", &args),
        ];
        let [edit, duplicate, up, down, delete] = a11y::icon_buttons([
            ("document-edit-symbolic", &labels[0]),
            ("edit-copy-symbolic", &labels[1]),
            ("go-up-symbolic", &labels[2]),
            ("go-down-symbolic", &labels[3]),
            ("user-trash-symbolic", &labels[4]),
        ]);
        connect(
            &edit,
            PolicyEditorInput::Open(list.clone(), Some(index)),
            input,
        );
        connect(
            &duplicate,
            PolicyEditorInput::Change(Change::Duplicate(list.clone(), index)),
            input,
        );
        connect(
            &up,
            PolicyEditorInput::Change(Change::Move(list.clone(), index, index.saturating_sub(1))),
            input,
        );
        connect(
            &down,
            PolicyEditorInput::Change(Change::Move(list.clone(), index, index + 1)),
            input,
        );
        connect(
            &delete,
            PolicyEditorInput::Change(Change::Delete(list.clone(), index)),
            input,
        );
        let toggle = toggle_button(list, index, name, view.enabled, input);
        let row = adw::ActionRow::new();
        row.set_use_markup(false);
        let box_ = gtk::Box::new(gtk::Orientation::Horizontal, 0);
        box_.set_valign(gtk::Align::Center);
        for button in [&edit, &duplicate, &toggle, &up, &down, &delete] {
            button.add_css_class("flat");
            box_.append(button);
        }
        row.add_suffix(&box_);
        row.set_title(&view.title);
        row.set_subtitle(&view.subtitle(now));
        if view.error {
            row.add_css_class("error");
        }
        row.set_visible(view.visible);
        up.set_sensitive(view.can_move_up);
        down.set_sensitive(view.can_move_down);
        RuleRow {
            row,
            buttons: box_,
            edit,
            duplicate,
            toggle,
            up,
            down,
            delete,
            shown: view,
        }
    }

    /// Shows `view`, changing only what differs from what the row shows.
    fn show(
        &mut self,
        view: RowView,
        list: &RuleList,
        index: usize,
        name: &str,
        input: &Sender<PolicyEditorInput>,
        now: SystemTime,
    ) {
        if view == self.shown {
            return;
        }
        let old = &self.shown;
        if view.title != old.title {
            self.row.set_title(&view.title);
        }
        if (&view.before, view.expires, &view.after) != (&old.before, old.expires, &old.after) {
            self.row.set_subtitle(&view.subtitle(now));
        }
        if view.error != old.error {
            if view.error {
                self.row.add_css_class("error");
            } else {
                self.row.remove_css_class("error");
            }
        }
        if view.visible != old.visible {
            self.row.set_visible(view.visible);
        }
        if view.can_move_up != old.can_move_up {
            self.up.set_sensitive(view.can_move_up);
        }
        if view.can_move_down != old.can_move_down {
            self.down.set_sensitive(view.can_move_down);
        }
        if view.enabled != old.enabled {
            // Its name says what it does: a new button (see the module's comment).
            let toggle = toggle_button(list, index, name, view.enabled, input);
            toggle.add_css_class("flat");
            self.buttons
                .insert_child_after(&toggle, Some(&self.duplicate));
            self.buttons.remove(&self.toggle);
            self.toggle = toggle;
        }
        self.shown = view;
    }
}

/// The on/off button of rule `index` while it is `enabled` (or not).
fn toggle_button(
    list: &RuleList,
    index: usize,
    name: &str,
    enabled: bool,
    input: &Sender<PolicyEditorInput>,
) -> gtk::Button {
    let number = (index + 1).to_string();
    let args = [("number", number.as_str()), ("list", name)];
    let button = if enabled {
        a11y::icon_button(
            "media-playback-pause-symbolic",
            &i18n_f("Turn off rule {number} of {list}", &args),
        )
    } else {
        a11y::icon_button(
            "media-playback-start-symbolic",
            &i18n_f("Turn on rule {number} of {list}", &args),
        )
    };
    connect(
        &button,
        PolicyEditorInput::Change(Change::Enable(list.clone(), index, !enabled)),
        input,
    );
    button
}

/// Sends `message` when `button` is clicked.
fn connect(button: &gtk::Button, message: PolicyEditorInput, input: &Sender<PolicyEditorInput>) {
    let input = input.clone();
    button.connect_clicked(move |_| input.emit(super::clone_input(&message)));
}

/// The Quick actions button of VM `vm`'s list. Its choices come in a dialog rather than a
/// popover menu: a popover is a surface of its own, which assistive technologies (and the
/// end-to-end tests, through them) cannot find at its place on screen in GTK 4.8.
fn quick_button(vm: &str, sender: &ComponentSender<PolicyEditor>) -> gtk::Button {
    let button = a11y::text_button(
        &gettext("Quick actions…"),
        &i18n_f("Quick actions for {vm}", &[("vm", vm)]),
    );
    button.add_css_class("flat");
    let input = sender.input_sender().clone();
    let vm = vm.to_owned();
    button.connect_clicked(move |b| {
        let dialog = adw::MessageDialog::new(
            b.root().and_downcast::<gtk::Window>().as_ref(),
            Some(&i18n_f("Quick actions for {vm}", &[("vm", &vm)])),
            Some(&gettext(
                "Each changes only the draft: you see it, preview it and apply it as any other edit.",
            )),
        );
        dialog.add_response("cancel", &gettext("_Cancel"));
        dialog.add_response("all", &gettext("_Allow Everything for 15 Minutes"));
        dialog.add_response("https", &gettext("_HTTPS Only"));
        dialog.add_response("proxy", &gettext("Only Through the _Proxy"));
        dialog.set_close_response("cancel");
        let (input, vm) = (input.clone(), vm.clone());
        dialog.connect_response(None, move |_, response| {
            let action = match response {
                "all" => QuickAction::AllowAll,
                "https" => QuickAction::HttpsOnly,
                "proxy" => QuickAction::Proxy {
                    host: String::new(),
                    port: String::new(),
                },
                _ => return,
            };
            input.emit(PolicyEditorInput::Quick(vm.clone(), action));
        });
        dialog.present();
    });
    button
}
