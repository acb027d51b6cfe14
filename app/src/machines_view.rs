//! "My machines": the window's first page. The VMs and remote consoles this user may use, each
//! with its state and **Open console**, and **Start**/**Stop** for VMs the user operates. It
//! makes no calls itself: the window feeds it what the helper listed and the state changes the
//! helper announces, and carries out what its rows ask for.

use crate::i18n::gettext;
use crate::machine_row::{MachineRow, MachineRowInit, MachineRowInput, MachineRowOutput};
use crate::machines::{self, Kind, Machine};
use palisade_dbus::types::{ConsoleInfo, RunMode, VmInfo, VmState};
use relm4::adw::prelude::*;
use relm4::factory::FactoryVecDeque;
use relm4::{adw, gtk, ComponentParts, ComponentSender, SimpleComponent};
use std::collections::HashSet;

/// The machines page.
pub struct MachinesView {
    /// The machines shown, in the order of their rows.
    machines: Vec<Machine>,
    /// One row per machine.
    rows: FactoryVecDeque<MachineRow>,
    /// Names of the machines with a call under way.
    busy: HashSet<String>,
    /// Whether the helper refused both lists to this user.
    refused: bool,
}

impl std::fmt::Debug for MachinesView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachinesView")
            .field("machines", &self.machines)
            .field("busy", &self.busy)
            .finish_non_exhaustive()
    }
}

/// Messages to the machines page.
#[derive(Debug)]
pub enum MachinesViewInput {
    /// Show what the helper listed; `None` for a list it refused.
    Show {
        /// `Consoles.List()`.
        consoles: Option<Vec<ConsoleInfo>>,
        /// `Vms.List()`.
        vms: Option<Vec<VmInfo>>,
    },
    /// The helper announced a VM's new state.
    StateChanged {
        /// The VM.
        name: String,
        /// Its state.
        state: VmState,
    },
    /// A call for a machine started or ended.
    Busy {
        /// The machine.
        name: String,
        /// Whether a call is under way now.
        busy: bool,
    },
    /// Show nothing: the helper cannot be read.
    Clear,
}

/// What the machines page asks the window to do; see [`MachineRowOutput`].
pub type MachinesViewOutput = MachineRowOutput;

impl MachinesView {
    fn empty_title(&self) -> String {
        if self.refused {
            gettext("No machines for your account")
        } else {
            gettext("No machines yet")
        }
    }

    fn empty_description(&self) -> String {
        if self.refused {
            gettext("Your account may not start virtual machines or open consoles. Ask the administrator of this computer.")
        } else {
            gettext("The administrator has not given your account a virtual machine or a remote console yet.")
        }
    }

    fn show(&mut self, machines: Vec<Machine>) {
        let same_rows = machines.len() == self.machines.len()
            && machines
                .iter()
                .zip(&self.machines)
                .all(|(a, b)| a.name == b.name && a.kind == b.kind);
        if same_rows {
            // Update in place: keyboard focus and AT-SPI references to the rows survive.
            for (i, (new, old)) in machines.iter().zip(&self.machines).enumerate() {
                if new != old {
                    self.rows.send(i, MachineRowInput::Set(new.clone()));
                }
            }
        } else {
            let mut rows = self.rows.guard();
            rows.clear();
            for machine in &machines {
                rows.push_back(MachineRowInit {
                    busy: self.busy.contains(&machine.name),
                    machine: machine.clone(),
                });
            }
        }
        self.machines = machines;
    }

    fn state_changed(&mut self, name: &str, state: VmState) {
        let Some(i) = self
            .machines
            .iter()
            .position(|m| m.kind == Kind::Local && m.name == name)
        else {
            return;
        };
        let machine = &mut self.machines[i];
        if !matches!(state, VmState::Running | VmState::Paused) {
            // The next run starts ephemeral unless someone asks otherwise.
            machine.mode = RunMode::Ephemeral;
        }
        machine.state = state;
        self.rows.send(i, MachineRowInput::Set(machine.clone()));
    }

    fn set_busy(&mut self, name: String, busy: bool) {
        for (i, m) in self.machines.iter().enumerate() {
            if m.name == name {
                self.rows.send(i, MachineRowInput::Busy(busy));
            }
        }
        if busy {
            self.busy.insert(name);
        } else {
            self.busy.remove(&name);
        }
    }
}

#[relm4::component(pub)]
impl SimpleComponent for MachinesView {
    type Init = ();
    type Input = MachinesViewInput;
    type Output = MachinesViewOutput;

    view! {
        gtk::Box {
            set_orientation: gtk::Orientation::Vertical,
            set_spacing: 24,

            #[local_ref]
            machine_group -> adw::PreferencesGroup {
                set_title: &gettext("My machines"),
                set_description: Some(&gettext("Virtual machines on this computer and consoles of other computers that you may use")),
                #[watch]
                set_visible: !model.machines.is_empty(),
            },

            adw::StatusPage {
                set_icon_name: Some("computer-symbolic"),
                #[watch]
                set_title: &model.empty_title(),
                #[watch]
                set_description: Some(&gtk::glib::markup_escape_text(&model.empty_description())),
                #[watch]
                set_visible: model.machines.is_empty(),
            },
        }
    }

    fn init(
        _init: Self::Init,
        root: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let model = MachinesView {
            machines: Vec::new(),
            rows: FactoryVecDeque::builder()
                .launch(adw::PreferencesGroup::default())
                .forward(sender.output_sender(), |out| out),
            busy: HashSet::new(),
            refused: false,
        };
        let machine_group = model.rows.widget();
        let widgets = view_output!();
        ComponentParts { model, widgets }
    }

    fn update(&mut self, message: Self::Input, _sender: ComponentSender<Self>) {
        match message {
            MachinesViewInput::Show { consoles, vms } => {
                self.refused = consoles.is_none() && vms.is_none();
                self.show(machines::merge(consoles.as_deref(), vms.as_deref()));
            }
            MachinesViewInput::StateChanged { name, state } => self.state_changed(&name, state),
            MachinesViewInput::Busy { name, busy } => self.set_busy(name, busy),
            MachinesViewInput::Clear => {
                self.refused = false;
                self.show(Vec::new());
            }
        }
    }
}
