//! The helper's status, read-only: version, live generation, a pending confirmation, how many
//! VMs and rules are live, whether our table is in the kernel, and any problem it reports.

use crate::format;
use crate::i18n::{gettext, i18n_f};
use palisade_dbus::types::Status;
use relm4::adw::prelude::*;
use relm4::{adw, gtk, ComponentParts, ComponentSender, SimpleComponent};

/// Shows one [`Status`] as a group of rows.
#[derive(Debug, Default)]
pub struct StatusView {
    /// The last status received, `None` before the first.
    status: Option<Status>,
}

/// Messages to the status view.
#[derive(Debug)]
pub enum StatusViewInput {
    /// Show this status instead of the previous one.
    Show(Status),
}

impl StatusView {
    fn version(&self) -> String {
        self.status
            .as_ref()
            .map_or_else(String::new, |s| s.version.clone())
    }

    fn generation(&self) -> String {
        match &self.status {
            Some(s) if s.generation > 0 => s.generation.to_string(),
            Some(_) => gettext("None applied yet"),
            None => String::new(),
        }
    }

    fn pending(&self) -> Option<String> {
        self.status
            .as_ref()
            .filter(|s| s.pending_until > 0)
            .map(|s| {
                i18n_f(
                    "The previous generation comes back at {time} unless this one is confirmed",
                    &[("time", &format::unix_time(s.pending_until))],
                )
            })
    }

    fn vms(&self) -> String {
        self.status
            .as_ref()
            .map_or_else(String::new, |s| s.vms.to_string())
    }

    fn rules(&self) -> String {
        self.status
            .as_ref()
            .map_or_else(String::new, |s| s.rules.to_string())
    }

    fn table_present(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.table_present)
    }

    fn table(&self) -> String {
        if self.table_present() {
            // Translators: the helper's nftables table is loaded in the kernel.
            gettext("Present")
        } else {
            // Translators: the helper's nftables table is not loaded in the kernel.
            gettext("Missing")
        }
    }

    fn problem(&self) -> String {
        self.status
            .as_ref()
            .map_or_else(String::new, |s| s.problem.clone())
    }
}

#[relm4::component(pub)]
impl SimpleComponent for StatusView {
    type Init = ();
    type Input = StatusViewInput;
    type Output = ();

    view! {
        adw::PreferencesGroup {
            set_title: &gettext("Helper"),
            set_description: Some(&gettext("The system service that enforces the firewall policy")),

            add = &adw::ActionRow {
                set_title: &gettext("Version"),
                add_suffix = &gtk::Label {
                    add_css_class: "dim-label",
                    set_selectable: true,
                    #[watch]
                    set_label: &model.version(),
                },
            },
            add = &adw::ActionRow {
                set_title: &gettext("Live generation"),
                add_suffix = &gtk::Label {
                    add_css_class: "dim-label",
                    set_selectable: true,
                    #[watch]
                    set_label: &model.generation(),
                },
            },
            add = &adw::ActionRow {
                set_title: &gettext("Waiting for confirmation"),
                set_use_markup: false,
                add_css_class: "warning",
                add_prefix = &gtk::Image {
                    set_icon_name: Some("dialog-warning-symbolic"),
                },
                #[watch]
                set_visible: model.pending().is_some(),
                #[watch]
                set_subtitle: &model.pending().unwrap_or_default(),
            },
            add = &adw::ActionRow {
                set_title: &gettext("Virtual machines"),
                add_suffix = &gtk::Label {
                    add_css_class: "dim-label",
                    #[watch]
                    set_label: &model.vms(),
                },
            },
            add = &adw::ActionRow {
                set_title: &gettext("Rules"),
                add_suffix = &gtk::Label {
                    add_css_class: "dim-label",
                    #[watch]
                    set_label: &model.rules(),
                },
            },
            add = &adw::ActionRow {
                set_title: &gettext("Firewall table in the kernel"),
                add_suffix = &gtk::Label {
                    #[watch]
                    set_label: &model.table(),
                    #[watch]
                    set_css_classes: if model.table_present() { &["dim-label"] } else { &["error"] },
                },
            },
            add = &adw::ActionRow {
                set_title: &gettext("Problem"),
                set_use_markup: false,
                add_css_class: "error",
                add_prefix = &gtk::Image {
                    set_icon_name: Some("dialog-error-symbolic"),
                },
                #[watch]
                set_visible: !model.problem().is_empty(),
                #[watch]
                set_subtitle: &model.problem(),
            },
        }
    }

    fn init(
        _init: Self::Init,
        root: Self::Root,
        _sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let model = StatusView::default();
        let widgets = view_output!();
        ComponentParts { model, widgets }
    }

    fn update(&mut self, message: Self::Input, _sender: ComponentSender<Self>) {
        match message {
            StatusViewInput::Show(status) => self.status = Some(status),
        }
    }
}
