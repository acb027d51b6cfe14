//! One imported blocklist as an expander row: its name and a summary line (entries, when it was
//! last read, whether the live policy uses it) with **Update now** (lists downloaded from an
//! address) and **Remove**; opened, its addresses, source and schedule, format, and the lines
//! the helper skipped with their numbers. Both buttons are named after the list for screen
//! readers ("Remove spamhaus"), and shown only to a user polkit could let change the lists;
//! clicks go to the page as [`BlocklistRowOutput`], which asks and makes the calls.

use crate::a11y;
use crate::blocklists::{self, PROBLEMS_SHOWN};
use crate::i18n::{gettext, i18n_f};
use palisade_dbus::types::{BlocklistInfo, ListSourceKind};
use relm4::adw::prelude::*;
use relm4::factory::{DynamicIndex, FactoryComponent, FactorySender};
use relm4::{adw, gtk};

/// What a blocklist row starts with.
#[derive(Debug)]
pub struct BlocklistRowInit {
    /// The list.
    pub info: BlocklistInfo,
    /// Unix seconds now, for "refreshed 3 hours ago".
    pub now: u64,
    /// Whether **Update now** and **Remove** belong on the row (polkit could allow them).
    pub manage: bool,
    /// Whether a call for this list is under way.
    pub busy: bool,
    /// Whether the row starts open (it was open before a refresh).
    pub expanded: bool,
}

/// A blocklist row.
#[derive(Debug)]
pub struct BlocklistRow {
    /// What is shown.
    init: BlocklistRowInit,
}

/// Messages to a blocklist row.
#[derive(Debug)]
pub enum BlocklistRowInput {
    /// A call for this list started (`true`) or ended (`false`).
    Busy(bool),
}

/// What a blocklist row asks the page to do.
#[derive(Debug)]
pub enum BlocklistRowOutput {
    /// Download the named list again now.
    Update(String),
    /// Remove the named list (after asking).
    Remove(String),
    /// The user opened or closed the row; remembered across refreshes.
    Expanded {
        /// The list's name.
        name: String,
        /// Whether it is open now.
        expanded: bool,
    },
}

impl BlocklistRow {
    fn is_url(&self) -> bool {
        self.init.info.source_kind == ListSourceKind::Url
    }

    fn format(&self) -> String {
        let info = &self.init.info;
        let format = blocklists::format_label(&info.format);
        if info.strict {
            i18n_f(
                "{format}, refused at the first bad line",
                &[("format", &format)],
            )
        } else {
            format
        }
    }

    fn problems_subtitle(&self) -> String {
        if blocklists::problem_count(&self.init.info) == 0 {
            gettext("Every line was read")
        } else {
            gettext("Lines that are not an address, network or domain are skipped")
        }
    }

    fn icon(&self) -> &'static str {
        if self.init.info.in_use {
            "security-high-symbolic"
        } else {
            "security-low-symbolic"
        }
    }
}

/// A read-only row of the opened part: `title` over `subtitle`.
fn detail(title: &str, subtitle: &str) -> adw::ActionRow {
    let row = adw::ActionRow::new();
    row.set_use_markup(false);
    row.set_title(title);
    row.set_subtitle(subtitle);
    row
}

#[relm4::factory(pub)]
impl FactoryComponent for BlocklistRow {
    type Init = BlocklistRowInit;
    type Input = BlocklistRowInput;
    type Output = BlocklistRowOutput;
    type CommandOutput = ();
    type ParentWidget = adw::PreferencesGroup;

    view! {
        #[root]
        adw::ExpanderRow {
            set_use_markup: false,
            set_title: &self.init.info.name,
            set_subtitle: &blocklists::summary(&self.init.info, self.init.now),
            set_expanded: self.init.expanded,
            add_prefix = &gtk::Image {
                set_icon_name: Some(self.icon()),
            },
            connect_expanded_notify[sender, name = self.init.info.name.clone()] => move |row| {
                sender.output_sender().emit(BlocklistRowOutput::Expanded {
                    name: name.clone(),
                    expanded: row.is_expanded(),
                });
            },

            add_action = &gtk::Spinner {
                #[watch]
                set_spinning: self.init.busy,
                #[watch]
                set_visible: self.init.busy,
            },
            add_action = &a11y::icon_button(
                "view-refresh-symbolic",
                &i18n_f("Update {name} now", &[("name", &self.init.info.name)]),
            ) -> gtk::Button {
                set_valign: gtk::Align::Center,
                add_css_class: "flat",
                set_visible: self.is_url() && self.init.manage,
                #[watch]
                set_sensitive: !self.init.busy,
                connect_clicked[sender, name = self.init.info.name.clone()] => move |_| {
                    sender.output_sender().emit(BlocklistRowOutput::Update(name.clone()));
                },
            },
            add_action = &a11y::icon_button(
                "user-trash-symbolic",
                &i18n_f("Remove {name}", &[("name", &self.init.info.name)]),
            ) -> gtk::Button {
                set_valign: gtk::Align::Center,
                add_css_class: "flat",
                set_visible: self.init.manage,
                #[watch]
                set_sensitive: !self.init.busy,
                connect_clicked[sender, name = self.init.info.name.clone()] => move |_| {
                    sender.output_sender().emit(BlocklistRowOutput::Remove(name.clone()));
                },
            },

            add_row = &detail(&gettext("Addresses"), &blocklists::addresses(&self.init.info)),
            add_row = &detail(&blocklists::source(&self.init.info), &blocklists::schedule(&self.init.info)),
            add_row = &detail(&gettext("Format"), &self.format()),
            add_row = &detail(&gettext("Firewall"), &blocklists::usage(&self.init.info)),
            add_row = &detail(&blocklists::problems_title(&self.init.info), &self.problems_subtitle()),
        }
    }

    fn init_model(init: Self::Init, _index: &DynamicIndex, _sender: FactorySender<Self>) -> Self {
        BlocklistRow { init }
    }

    fn init_widgets(
        &mut self,
        _index: &DynamicIndex,
        root: Self::Root,
        _returned_widget: &gtk::Widget,
        sender: FactorySender<Self>,
    ) -> Self::Widgets {
        let widgets = view_output!();
        let info = &self.init.info;
        // The skipped lines follow in the same expander row, by line number, then how many more.
        for p in info.problems.iter().take(PROBLEMS_SHOWN) {
            let (title, text) = blocklists::problem(p);
            let row = detail(&title, &text);
            row.add_prefix(&gtk::Image::from_icon_name("dialog-warning-symbolic"));
            root.add_row(&row);
        }
        if let Some(more) = blocklists::more_problems(info, info.problems.len().min(PROBLEMS_SHOWN))
        {
            root.add_row(&detail(&more, ""));
        }
        widgets
    }

    fn update(&mut self, message: Self::Input, _sender: FactorySender<Self>) {
        match message {
            BlocklistRowInput::Busy(busy) => self.init.busy = busy,
        }
    }
}
