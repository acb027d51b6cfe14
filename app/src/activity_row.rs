//! One entry of the Activity page's list: the verdict as a coloured badge, who sent the packet
//! and where to, and underneath when, the protocol and which rule decided; for a refused packet
//! an **Allow this** button, named for screen readers after what it would allow ("Allow work to
//! reach 127.0.0.1:8444"). The list is a `gtk::ListView`, which makes widgets only for the rows
//! on screen and hands them from entry to entry as it scrolls: `bind` fills a row's widgets for
//! one entry, `unbind` lets go of its button. GTK 4.8 cannot rename a widget for screen readers
//! once made, so `bind` gives each entry a button of its own.

use crate::activity_view::ActivityViewInput;
use crate::format;
use crate::i18n::{gettext, i18n_f};
use crate::{a11y, activity};
use palisade_dbus::types::LoggedPacket;
use relm4::gtk::glib::SignalHandlerId;
use relm4::gtk::prelude::*;
use relm4::typed_view::list::RelmListItem;
use relm4::{gtk, Sender};

/// One logged packet, with its words worked out once.
pub struct ActivityRow {
    /// The packet.
    pub packet: LoggedPacket,
    /// What the search looks through.
    pub search: String,
    /// When, in local time.
    time: String,
    /// Where **Allow this** goes.
    page: Sender<ActivityViewInput>,
}

impl std::fmt::Debug for ActivityRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivityRow")
            .field("seq", &self.packet.seq)
            .finish_non_exhaustive()
    }
}

impl ActivityRow {
    /// The row of `packet`, shown at Unix milliseconds `now_ms`; its button speaks to `page`.
    pub fn new(packet: LoggedPacket, now_ms: u64, page: Sender<ActivityViewInput>) -> Self {
        Self {
            search: activity::search_text(&packet),
            time: activity::clock_time(packet.at_ms, now_ms),
            packet,
            page,
        }
    }

    /// The line under who and where: when, the protocol and the rule.
    fn details(&self) -> String {
        let p = &self.packet;
        [
            self.time.clone(),
            activity::protocol(p),
            activity::rule(&p.rule),
        ]
        .join(" · ")
    }
}

/// The widgets of one row of the list, refilled for each entry it shows.
#[derive(Debug)]
pub struct ActivityRowWidgets {
    verdict: gtk::Label,
    who: gtk::Label,
    destination: gtk::Label,
    details: gtk::Label,
    /// **Allow this** of the entry shown now, with its handler.
    allow: Option<(gtk::Button, SignalHandlerId)>,
}

fn label(xalign: f32) -> gtk::Label {
    let label = gtk::Label::new(None);
    label.set_xalign(xalign);
    label.set_use_markup(false);
    label
}

impl RelmListItem for ActivityRow {
    type Root = gtk::Box;
    type Widgets = ActivityRowWidgets;

    fn setup(_item: &gtk::ListItem) -> (gtk::Box, ActivityRowWidgets) {
        let root = gtk::Box::new(gtk::Orientation::Horizontal, 12);
        root.set_margin_top(6);
        root.set_margin_bottom(6);
        root.set_margin_start(12);
        root.set_margin_end(12);

        let verdict = label(0.0);
        verdict.set_width_chars(7);
        verdict.set_valign(gtk::Align::Center);
        root.append(&verdict);

        let text = gtk::Box::new(gtk::Orientation::Vertical, 2);
        text.set_hexpand(true);
        let top = gtk::Box::new(gtk::Orientation::Horizontal, 12);
        let who = label(0.0);
        who.add_css_class("heading");
        who.set_ellipsize(gtk::pango::EllipsizeMode::End);
        let destination = label(0.0);
        destination.set_selectable(false);
        destination.set_ellipsize(gtk::pango::EllipsizeMode::Middle);
        top.append(&who);
        top.append(&destination);
        let details = label(0.0);
        details.add_css_class("dim-label");
        details.add_css_class("caption");
        details.set_ellipsize(gtk::pango::EllipsizeMode::End);
        text.append(&top);
        text.append(&details);
        root.append(&text);

        let widgets = ActivityRowWidgets {
            verdict,
            who,
            destination,
            details,
            allow: None,
        };
        (root, widgets)
    }

    fn bind(&mut self, widgets: &mut ActivityRowWidgets, root: &mut gtk::Box) {
        let p = &self.packet;
        let verdict = activity::verdict(p.rule.verdict);
        widgets.verdict.set_label(&format::verdict(verdict));
        widgets
            .verdict
            .set_css_classes(&["heading", format::verdict_css(verdict)]);
        widgets.who.set_label(&activity::who(p));
        widgets.destination.set_label(&activity::destination(p));
        widgets.details.set_label(&self.details());

        if !activity::is_refused(p) {
            return;
        }
        let name = i18n_f(
            "Allow {who} to reach {destination}",
            &[
                ("who", &activity::who(p)),
                ("destination", &activity::destination(p)),
            ],
        );
        // Translators: a button on a refused packet of the Activity page, which shows the rule
        // that would let it through.
        let button = a11y::text_button(&gettext("Allow this…"), &name);
        button.set_valign(gtk::Align::Center);
        button.add_css_class("flat");
        let page = self.page.clone();
        let packet = p.clone();
        let handler = button.connect_clicked(move |_| {
            page.emit(ActivityViewInput::Allow(Box::new(packet.clone())));
        });
        root.append(&button);
        widgets.allow = Some((button, handler));
    }

    fn unbind(&mut self, widgets: &mut ActivityRowWidgets, root: &mut gtk::Box) {
        if let Some((button, handler)) = widgets.allow.take() {
            button.disconnect(handler);
            root.remove(&button);
        }
    }
}
