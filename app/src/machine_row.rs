//! One machine of "My machines": its name and state, **Start** and **Stop** for a VM the user
//! operates, and **Open console**. Every button is named after the machine for screen readers
//! ("Open console of work"); clicks go to the window as [`MachineRowOutput`], which makes the
//! calls.

use crate::a11y;
use crate::i18n::{gettext, i18n_f};
use crate::machines::{Kind, Machine};
use relm4::adw::prelude::*;
use relm4::factory::{DynamicIndex, FactoryComponent, FactorySender};
use relm4::{adw, gtk};

/// A machine row.
#[derive(Debug)]
pub struct MachineRow {
    /// What is shown.
    machine: Machine,
    /// Whether a call for this machine is under way (its buttons wait meanwhile).
    busy: bool,
}

/// What a machine row starts with.
#[derive(Debug)]
pub struct MachineRowInit {
    /// The machine.
    pub machine: Machine,
    /// Whether a call for it is under way.
    pub busy: bool,
}

/// Messages to a machine row.
#[derive(Debug)]
pub enum MachineRowInput {
    /// Show this (newer) state of the same machine.
    Set(Machine),
    /// A call for this machine started (`true`) or ended (`false`).
    Busy(bool),
}

/// What a machine row asks the window to do.
#[derive(Debug)]
pub enum MachineRowOutput {
    /// Open the console of the named machine.
    Open(String),
    /// Start the named VM.
    Start(String),
    /// Stop the named VM.
    Stop(String),
}

impl MachineRow {
    fn icon(&self) -> &'static str {
        match self.machine.kind {
            Kind::Local => "computer-symbolic",
            Kind::Remote => "network-server-symbolic",
        }
    }

    /// The tooltip of **Open console**, saying why it cannot be clicked when it cannot.
    fn open_tooltip(&self) -> String {
        if self.machine.can_open() {
            i18n_f("Open console of {name}", &[("name", &self.machine.name)])
        } else {
            i18n_f(
                "{name} is not running; start it first",
                &[("name", &self.machine.name)],
            )
        }
    }
}

#[relm4::factory(pub)]
impl FactoryComponent for MachineRow {
    type Init = MachineRowInit;
    type Input = MachineRowInput;
    type Output = MachineRowOutput;
    type CommandOutput = ();
    type ParentWidget = adw::PreferencesGroup;

    view! {
        adw::ActionRow {
            set_use_markup: false,
            set_title: &self.machine.name,
            #[watch]
            set_subtitle: &self.machine.subtitle(),
            add_prefix = &gtk::Image {
                set_icon_name: Some(self.icon()),
            },

            add_suffix = &gtk::Spinner {
                #[watch]
                set_spinning: self.busy,
                #[watch]
                set_visible: self.busy,
            },
            add_suffix = &a11y::text_button(
                &gettext("Start"),
                &i18n_f("Start {name}", &[("name", &self.machine.name)]),
            ) -> gtk::Button {
                set_valign: gtk::Align::Center,
                #[watch]
                set_visible: self.machine.can_start(),
                #[watch]
                set_sensitive: !self.busy,
                connect_clicked[sender, name = self.machine.name.clone()] => move |_| {
                    sender.output_sender().emit(MachineRowOutput::Start(name.clone()));
                },
            },
            add_suffix = &a11y::text_button(
                &gettext("Stop"),
                &i18n_f("Stop {name}", &[("name", &self.machine.name)]),
            ) -> gtk::Button {
                set_valign: gtk::Align::Center,
                #[watch]
                set_visible: self.machine.can_stop(),
                #[watch]
                set_sensitive: !self.busy,
                connect_clicked[sender, name = self.machine.name.clone()] => move |_| {
                    sender.output_sender().emit(MachineRowOutput::Stop(name.clone()));
                },
            },
            add_suffix = &a11y::text_button(
                &gettext("Open console"),
                &i18n_f("Open console of {name}", &[("name", &self.machine.name)]),
            ) -> gtk::Button {
                set_valign: gtk::Align::Center,
                add_css_class: "suggested-action",
                #[watch]
                set_visible: self.machine.console,
                #[watch]
                set_sensitive: self.machine.can_open() && !self.busy,
                #[watch]
                set_tooltip_text: Some(&self.open_tooltip()),
                connect_clicked[sender, name = self.machine.name.clone()] => move |_| {
                    sender.output_sender().emit(MachineRowOutput::Open(name.clone()));
                },
            },
        }
    }

    fn init_model(init: Self::Init, _index: &DynamicIndex, _sender: FactorySender<Self>) -> Self {
        MachineRow {
            machine: init.machine,
            busy: init.busy,
        }
    }

    fn update(&mut self, message: Self::Input, _sender: FactorySender<Self>) {
        match message {
            MachineRowInput::Set(machine) => self.machine = machine,
            MachineRowInput::Busy(busy) => self.busy = busy,
        }
    }
}
