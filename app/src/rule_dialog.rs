//! The dialog that adds or changes one rule of the policy editor's draft: the action, where the
//! traffic goes (anywhere, an address or host name, the DNS resolvers, a blocklist), the
//! protocol, ports, ICMP type, expiry (never, for 15 minutes, for an hour, until tonight, until
//! a date and time typed in local time: [`crate::expiry`]), comment, logging and whether the rule
//! is on. Every change
//! of a field is judged at once with the contract's own validation (the editor's `check`); each
//! finding shows under its field, which turns red, and **Save** stays disabled while the rule
//! has errors. Not a relm4 component: the editor opens it and gets the fields back in `save`.

use crate::expiry::{self, Preset, PRESETS};
use crate::format;
use crate::i18n::gettext;
use palisade_dbus::policy::edit::{RuleFields, RuleTarget};
use palisade_dbus::policy::Verdict;
use relm4::adw::prelude::*;
use relm4::{adw, gtk};
use std::rc::Rc;

/// The actions, as the policy writes them.
const ACTIONS: [&str; 3] = ["accept", "drop", "reject"];
/// The protocols, as the policy writes them; empty: any.
const PROTOCOLS: [&str; 5] = ["", "tcp", "udp", "icmp", "icmpv6"];

/// A finding about the rule: the field it names (`""` for the rule as a whole) and its message.
pub type FieldFinding = (String, String);

/// The dialog's widgets, read back into [`RuleFields`] on every change.
struct Fields {
    action: adw::ComboRow,
    target: adw::ComboRow,
    destination: adw::EntryRow,
    proto: adw::ComboRow,
    ports: adw::EntryRow,
    icmp_type: adw::EntryRow,
    /// One toggle per preset, in [`PRESETS`]' order.
    presets: Vec<gtk::ToggleButton>,
    /// The time typed for "Until…".
    expires: adw::EntryRow,
    /// The expiry the rule was opened with and the text the entry showed for it: saved as it
    /// was while the entry is unchanged (the entry shows minutes, the policy may hold seconds).
    opened_expiry: (String, String),
    comment: adw::EntryRow,
    log: gtk::Switch,
    enabled: gtk::Switch,
    /// Under each entry row: its finding.
    errors: Vec<(&'static [&'static str], adw::EntryRow, gtk::Label)>,
    /// Findings about the rule as a whole or a field without an entry.
    general: gtk::Label,
}

impl Fields {
    /// The preset chosen.
    fn preset(&self) -> Preset {
        self.presets
            .iter()
            .zip(PRESETS)
            .find(|(b, _)| b.is_active())
            .map_or(Preset::Never, |(_, p)| p)
    }

    /// The expiry as the policy writes it, or why the typed time is not one.
    fn expiry(&self) -> Result<String, String> {
        let now = std::time::SystemTime::now();
        let preset = self.preset();
        if let Some(t) = preset.time(now) {
            return Ok(expiry::policy_text(t));
        }
        if preset == Preset::Never {
            return Ok(String::new());
        }
        let typed = self.expires.text().trim().to_owned();
        if typed == self.opened_expiry.1 && !self.opened_expiry.0.is_empty() {
            return Ok(self.opened_expiry.0.clone());
        }
        expiry::parse_until(&typed, now).map(expiry::policy_text)
    }

    /// The fields, and the finding about a typed expiry that is not a time in the future.
    fn read_checked(&self) -> (RuleFields, Option<FieldFinding>) {
        let mut fields = self.read();
        match self.expiry() {
            Ok(text) => {
                fields.expires = text;
                (fields, None)
            }
            Err(message) => {
                fields.expires = String::new();
                (fields, Some(("expires".into(), message)))
            }
        }
    }

    fn read(&self) -> RuleFields {
        let text = |e: &adw::EntryRow| e.text().trim().to_owned();
        let value = text(&self.destination);
        let target = match self.target.selected() {
            // No address is every address.
            1 if value.is_empty() => RuleTarget::Anywhere,
            1 => RuleTarget::Destination(value),
            2 => RuleTarget::Special("dns".into()),
            3 => RuleTarget::Blocklist(value),
            _ => RuleTarget::Anywhere,
        };
        RuleFields {
            action: ACTIONS
                .get(self.action.selected() as usize)
                .copied()
                .unwrap_or("accept")
                .to_owned(),
            target,
            proto: PROTOCOLS
                .get(self.proto.selected() as usize)
                .copied()
                .unwrap_or("")
                .to_owned(),
            ports: text(&self.ports),
            icmp_type: text(&self.icmp_type),
            // Set by `read_checked` from the preset.
            expires: String::new(),
            log: self.log.is_active(),
            comment: self.comment.text().to_string(),
            enabled: self.enabled.is_active(),
        }
    }

    /// Shows `findings` on their fields; true when there are none.
    fn show(&self, findings: &[FieldFinding]) -> bool {
        let mut general = Vec::new();
        let mut shown = vec![false; self.errors.len()];
        for (field, message) in findings {
            match self
                .errors
                .iter()
                .position(|(names, _, _)| names.iter().any(|n| field.starts_with(n)))
            {
                Some(i) => {
                    if let Some((_, row, label)) = self.errors.get(i) {
                        label.set_label(message);
                        label.set_visible(true);
                        row.add_css_class("error");
                        shown[i] = true;
                    }
                }
                None => general.push(message.clone()),
            }
        }
        for ((_, row, label), shown) in self.errors.iter().zip(shown) {
            if !shown {
                label.set_visible(false);
                row.remove_css_class("error");
            }
        }
        self.general.set_label(&general.join("\n"));
        self.general.set_visible(!general.is_empty());
        self.expires.set_visible(self.preset() == Preset::Until);
        self.destination
            .set_visible(matches!(self.target.selected(), 1 | 3));
        self.destination.set_title(&if self.target.selected() == 3 {
            gettext("Blocklist name")
        } else {
            gettext("Address, network or host name")
        });
        findings.is_empty()
    }
}

fn combo(title: &str, items: &[String], selected: usize) -> adw::ComboRow {
    let strings: Vec<&str> = items.iter().map(String::as_str).collect();
    let row = adw::ComboRow::new();
    row.set_title(title);
    row.set_model(Some(&gtk::StringList::new(&strings)));
    row.set_selected(u32::try_from(selected).unwrap_or(0));
    row
}

pub fn entry(title: &str, text: &str) -> adw::EntryRow {
    let row = adw::EntryRow::new();
    row.set_title(title);
    row.set_text(text);
    row
}

pub fn switch(group: &adw::PreferencesGroup, title: &str, active: bool) -> gtk::Switch {
    let switch = gtk::Switch::new();
    switch.set_active(active);
    switch.set_valign(gtk::Align::Center);
    let row = adw::ActionRow::new();
    row.set_title(title);
    row.add_suffix(&switch);
    row.set_activatable_widget(Some(&switch));
    group.add(&row);
    switch
}

/// A label for a field's finding, in a row of its own right under the field's row (a plain
/// widget, even a plain list row, would go below the whole list).
pub fn error_label(group: &adw::PreferencesGroup) -> gtk::Label {
    let label = gtk::Label::new(None);
    label.set_xalign(0.0);
    label.set_wrap(true);
    label.add_css_class("error");
    label.add_css_class("caption");
    label.set_margin_start(12);
    label.set_margin_end(12);
    label.set_margin_top(6);
    label.set_margin_bottom(6);
    let row = adw::PreferencesRow::new();
    row.set_activatable(false);
    row.set_selectable(false);
    row.set_child(Some(&label));
    // The row is shown and hidden with its label.
    label
        .bind_property("visible", &row, "visible")
        .sync_create()
        .build();
    label.set_visible(false);
    group.add(&row);
    label
}

/// Opens the dialog over `parent` with `fields`; `check` judges the fields as they are typed,
/// `save` gets them when the user saves.
pub fn open(
    parent: Option<&gtk::Window>,
    heading: &str,
    fields: &RuleFields,
    check: impl Fn(&RuleFields) -> Vec<FieldFinding> + 'static,
    save: impl Fn(RuleFields) + 'static,
) {
    let group = adw::PreferencesGroup::new();
    let action = combo(
        &gettext("Action"),
        &[
            format::verdict(Verdict::Accept),
            format::verdict(Verdict::Drop),
            format::verdict(Verdict::Reject),
        ],
        ACTIONS
            .iter()
            .position(|a| *a == fields.action)
            .unwrap_or(0),
    );
    group.add(&action);
    let (kind, value) = match &fields.target {
        RuleTarget::Anywhere => (0, String::new()),
        RuleTarget::Destination(d) => (1, d.clone()),
        RuleTarget::Special(_) => (2, String::new()),
        RuleTarget::Blocklist(b) => (3, b.clone()),
    };
    let target = combo(
        &gettext("Destination"),
        &[
            gettext("Anywhere"),
            gettext("An address, network or host name"),
            gettext("The DNS resolvers"),
            gettext("A blocklist"),
        ],
        kind,
    );
    group.add(&target);
    let destination = entry(&gettext("Address, network or host name"), &value);
    group.add(&destination);
    let destination_error = error_label(&group);
    let proto = combo(
        &gettext("Protocol"),
        &[
            gettext("Any protocol"),
            "TCP".into(),
            "UDP".into(),
            "ICMP".into(),
            "ICMPv6".into(),
        ],
        PROTOCOLS
            .iter()
            .position(|p| *p == fields.proto)
            .unwrap_or(0),
    );
    group.add(&proto);
    let ports = entry(&gettext("Ports"), &fields.ports);
    group.add(&ports);
    let ports_error = error_label(&group);
    let icmp_type = entry(&gettext("ICMP type"), &fields.icmp_type);
    group.add(&icmp_type);
    let icmp_error = error_label(&group);
    let (preset, typed) = expiry::opened(&fields.expires);
    // The five choices take a row of their own under their title: beside it they would not fit
    // the dialog.
    let presets_row = adw::PreferencesRow::new();
    presets_row.set_activatable(false);
    let presets_column = gtk::Box::new(gtk::Orientation::Vertical, 6);
    presets_column.set_margin_start(12);
    presets_column.set_margin_end(12);
    presets_column.set_margin_top(8);
    presets_column.set_margin_bottom(8);
    let presets_title = gtk::Label::new(Some(&gettext("Expires")));
    presets_title.set_xalign(0.0);
    presets_column.append(&presets_title);
    let presets_box = gtk::Box::new(gtk::Orientation::Horizontal, 0);
    presets_box.add_css_class("linked");
    presets_box.set_halign(gtk::Align::Start);
    let mut presets: Vec<gtk::ToggleButton> = Vec::new();
    for p in PRESETS {
        // Its label is its accessible name.
        let b = gtk::ToggleButton::with_label(&p.label());
        if let Some(first) = presets.first() {
            b.set_group(Some(first));
        }
        b.set_active(p == preset);
        presets_box.append(&b);
        presets.push(b);
    }
    presets_column.append(&presets_box);
    presets_row.set_child(Some(&presets_column));
    group.add(&presets_row);
    let expires = entry(
        &gettext("Expires at (local time, like 2026-12-31 18:00)"),
        &typed,
    );
    group.add(&expires);
    let expires_error = error_label(&group);
    let comment = entry(&gettext("Comment"), &fields.comment);
    group.add(&comment);
    let comment_error = error_label(&group);
    let log = switch(&group, &gettext("Log matching packets"), fields.log);
    let enabled = switch(&group, &gettext("Turned on"), fields.enabled);
    let general = error_label(&group);

    let widgets = Rc::new(Fields {
        errors: vec![
            (
                &["destination", "blocklist", "special_target"],
                destination.clone(),
                destination_error,
            ),
            (&["ports"], ports.clone(), ports_error),
            (&["icmp_type"], icmp_type.clone(), icmp_error),
            (&["expires"], expires.clone(), expires_error),
            (&["comment"], comment.clone(), comment_error),
        ],
        action,
        target,
        destination,
        proto,
        ports,
        icmp_type,
        presets,
        expires,
        opened_expiry: (fields.expires.trim().to_owned(), typed),
        comment,
        log,
        enabled,
        general,
    });

    let scroller = gtk::ScrolledWindow::new();
    scroller.set_hscrollbar_policy(gtk::PolicyType::Never);
    scroller.set_propagate_natural_height(true);
    scroller.set_max_content_height(520);
    scroller.set_child(Some(&group));

    let dialog = adw::MessageDialog::new(parent, Some(heading), None);
    dialog.set_extra_child(Some(&scroller));
    dialog.add_response("cancel", &gettext("_Cancel"));
    dialog.add_response("save", &gettext("_Save"));
    dialog.set_response_appearance("save", adw::ResponseAppearance::Suggested);
    dialog.set_default_response(Some("save"));
    dialog.set_close_response("cancel");

    let check = Rc::new(check);
    let judge = {
        let widgets = Rc::clone(&widgets);
        let dialog = dialog.clone();
        let check = Rc::clone(&check);
        Rc::new(move || {
            let (fields, expiry) = widgets.read_checked();
            let mut findings = check(&fields);
            findings.extend(expiry);
            let ok = widgets.show(&findings);
            dialog.set_response_enabled("save", ok);
        })
    };
    for row in [&widgets.action, &widgets.target, &widgets.proto] {
        let judge = Rc::clone(&judge);
        row.connect_selected_notify(move |_| judge());
    }
    for row in [
        &widgets.destination,
        &widgets.ports,
        &widgets.icmp_type,
        &widgets.expires,
        &widgets.comment,
    ] {
        let judge = Rc::clone(&judge);
        row.connect_changed(move |_| judge());
    }
    for b in &widgets.presets {
        let judge = Rc::clone(&judge);
        b.connect_toggled(move |_| judge());
    }
    for switch in [&widgets.log, &widgets.enabled] {
        let judge = Rc::clone(&judge);
        switch.connect_active_notify(move |_| judge());
    }
    judge();

    dialog.connect_response(None, move |_, response| {
        if response == "save" {
            // A preset's time counts from the moment of saving.
            let (fields, expiry) = widgets.read_checked();
            if expiry.is_none() && check(&fields).is_empty() {
                save(fields);
            }
        }
    });
    dialog.present();
}
