//! "My machines": the window's first page. The VMs and remote consoles this user may use, each
//! with its state and **Open console**, **Start**/**Stop** and the **USB** menu for VMs the user
//! operates; for a user polkit lets manage VMs (asked without a password, as the Blocklists page
//! does), **Create a virtual machine…** and each VM's **Manage…** (update mode, versions,
//! delete). The admin's controls live on this page rather than on a page of their own: in a
//! household the admin is also a user of the same few machines, and one list with more buttons
//! reads better than two lists of the same VMs. Others never see them.
//!
//! The page owns its calls: the window hands it the bus connection each time it reads the helper,
//! and the page lists what the helper gives this user (`Consoles.List`, `Vms.List`), follows
//! `Vms.StateChanged` on that connection, and opens consoles, starts and stops VMs as its rows
//! ask, all as relm4 commands, never on the UI thread. Sentences for the user go to the window's
//! toasts through [`MachinesViewOutput`].

use crate::app::CALL_TIMEOUT;
use crate::i18n::{gettext, i18n_f};
use crate::machine_create::{MachineCreate, MachineCreateInit, MachineCreateOutput};
use crate::machine_manage::{
    MachineManage, MachineManageInit, MachineManageInput, MachineManageOutput,
};
use crate::machine_row::{MachineRow, MachineRowInit, MachineRowInput, MachineRowOutput};
use crate::machines::{self, Kind, Machine, UsbEntry};
use crate::viewer::{self, Launched, ViewerError};
use crate::{config, interactive};
use futures_util::StreamExt;
use palisade_dbus::names::Action;
use palisade_dbus::proxy::{ConsolesProxy, VmsProxy};
use palisade_dbus::types::{ConsoleInfo, RunMode, VmInfo, VmState};
use palisade_dbus::Error;
use relm4::adw::prelude::*;
use relm4::factory::FactoryVecDeque;
use relm4::{
    adw, gtk, Component, ComponentController, ComponentParts, ComponentSender, Controller, Sender,
    ShutdownReceiver,
};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long **Stop** gives the guest to power down before the helper pulls the plug.
const STOP_SECONDS: u32 = 60;

/// The machines page.
pub struct MachinesView {
    /// The window's connection to the bus, once it has one.
    connection: Option<zbus::Connection>,
    /// The machines shown, in the order of their rows.
    machines: Vec<Machine>,
    /// One row per machine.
    rows: FactoryVecDeque<MachineRow>,
    /// Names of the machines with a call under way.
    busy: HashSet<String>,
    /// Whether the helper refused both lists to this user.
    refused: bool,
    /// Whether a listing is under way.
    loading: bool,
    /// Whether another listing was asked for while one was under way.
    reload_queued: bool,
    /// Numbers the page's state-following commands, so the results of one it stopped are
    /// ignored.
    run: u64,
    /// Dropping it stops the running state-following command.
    stop: Option<oneshot::Sender<()>>,
    /// Whether polkit lets this user manage VMs: the admin's controls are shown.
    manage: bool,
    /// The create dialog, while it is open.
    create: Option<Controller<MachineCreate>>,
    /// The manage dialog and its VM, while it is open.
    managing: Option<(String, Controller<MachineManage>)>,
}

impl std::fmt::Debug for MachinesView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachinesView")
            .field("machines", &self.machines)
            .field("busy", &self.busy)
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

/// Messages to the machines page.
#[derive(Debug)]
pub enum MachinesViewInput {
    /// List the machines over this connection (the window read the helper again) and follow
    /// their states on it; following goes on unchanged when it is already followed on it.
    Load(zbus::Connection),
    /// The window's connection closed: stop following; a click asks the window for a new one.
    Disconnected,
    /// Show nothing: the helper cannot be read.
    Clear,
    /// A row asked to open its console, start it or stop it.
    Row(MachineRowOutput),
    /// Open the create dialog.
    Create,
    /// The create dialog closed, with a new VM or without.
    Created(MachineCreateOutput),
    /// The manage dialog changed something or closed.
    Managed(MachineManageOutput),
}

/// What the machines page asks the window to do.
#[derive(Debug)]
pub enum MachinesViewOutput {
    /// Show this sentence as a toast.
    Toast(String),
    /// Connect and read the helper again (a row was clicked while there was no connection).
    Reconnect,
}

/// Results of the page's calls and of its state-following command.
#[derive(Debug)]
pub enum MachinesViewCmd {
    /// `Consoles.List()` and `Vms.List()` answered.
    Listed {
        /// `Consoles.List()`.
        consoles: Result<Vec<ConsoleInfo>, Error>,
        /// `Vms.List()`.
        vms: Result<Vec<VmInfo>, Error>,
    },
    /// The helper announced a VM's new state.
    StateChanged {
        /// The following command.
        run: u64,
        /// The VM.
        name: String,
        /// Its state.
        state: VmState,
    },
    /// The following command ended, with the reason when it failed.
    FollowEnded {
        /// The following command.
        run: u64,
        /// Why, when it failed.
        error: Option<Error>,
    },
    /// A console was handed to the viewer, or could not be.
    ConsoleOpened {
        /// The console.
        name: String,
        /// The viewer started, or why not.
        result: Result<Launched, OpenError>,
    },
    /// A VM was started, or could not be.
    VmStarted {
        /// The VM.
        name: String,
        /// Its state after the start, or why it did not start.
        result: Result<VmInfo, Error>,
    },
    /// What polkit says about managing VMs.
    Permission(interactive::Permission),
    /// The USB menu of a VM was read.
    Usb {
        /// The VM.
        name: String,
        /// Its entries, or why they could not be read.
        result: Result<Vec<UsbEntry>, Error>,
    },
    /// A USB device was attached or detached, or could not be.
    UsbChanged {
        /// The VM.
        name: String,
        /// The sentence saying so, or the helper's refusal.
        result: Result<String, Error>,
    },
    /// A VM was stopped, or could not be.
    VmStopped {
        /// The VM.
        name: String,
        /// Whether it stopped.
        result: Result<(), Error>,
    },
}

/// Why **Open console** failed.
#[derive(Debug)]
pub enum OpenError {
    /// The helper gave no ticket (not allowed, rate-limited, not running, unreachable).
    Helper(Error),
    /// The ticket could not be handed to the viewer.
    Viewer(ViewerError),
}

impl OpenError {
    /// The sentence for the user.
    fn sentence(&self) -> String {
        match self {
            OpenError::Helper(e) => e.sentence(),
            OpenError::Viewer(ViewerError::Start { program, source })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                i18n_f(
                    "The console viewer {program} is not installed (Debian package virt-viewer)",
                    &[("program", program)],
                )
            }
            OpenError::Viewer(ViewerError::Start { program, source }) => i18n_f(
                "Cannot start the console viewer {program}: {reason}",
                &[("program", program), ("reason", &source.to_string())],
            ),
            OpenError::Viewer(ViewerError::Write { dir, source }) => i18n_f(
                "Cannot write the console file in {folder}: {reason}",
                &[
                    ("folder", &dir.display().to_string()),
                    ("reason", &source.to_string()),
                ],
            ),
        }
    }
}

/// Reads both lists at once.
async fn list(connection: zbus::Connection) -> MachinesViewCmd {
    let (consoles, vms) = tokio::join!(
        async { ConsolesProxy::new(&connection).await?.list().await },
        async { VmsProxy::new(&connection).await?.list().await },
    );
    MachinesViewCmd::Listed { consoles, vms }
}

/// Passes on `StateChanged` until `stop` fires or the connection closes, then says so. The
/// proxy follows the helper's name, so a restarted helper's signals arrive too.
async fn follow(
    connection: zbus::Connection,
    run: u64,
    out: Sender<MachinesViewCmd>,
    mut stop: oneshot::Receiver<()>,
) {
    let followed = async {
        let vms = VmsProxy::new(&connection).await?;
        let mut states = vms.receive_state_changed().await?;
        loop {
            tokio::select! {
                _ = &mut stop => return Ok(()),
                signal = states.next() => {
                    let Some(signal) = signal else {
                        return Ok(());
                    };
                    if let Ok(args) = signal.args() {
                        out.emit(MachinesViewCmd::StateChanged {
                            run,
                            name: args.name.to_owned(),
                            state: args.state,
                        });
                    }
                }
            }
        }
    };
    let error: Option<Error> = followed.await.err();
    out.emit(MachinesViewCmd::FollowEnded { run, error });
}

/// Asks the helper for a ticket and hands it to the viewer: what `palisadectl console open NAME`
/// does, but allowing polkit to ask for a password.
async fn open_console(connection: zbus::Connection, name: String) -> MachinesViewCmd {
    let result = async {
        let proxy = ConsolesProxy::new(&connection)
            .await
            .map_err(|e| OpenError::Helper(e.into()))?;
        let ticket = interactive::open_console(&proxy, &name, CALL_TIMEOUT)
            .await
            .map_err(OpenError::Helper)?;
        let program = config::viewer();
        // Writing a small file and forking: quick, but blocking calls all the same.
        tokio::task::spawn_blocking(move || viewer::open(&ticket, &program))
            .await
            .map_err(|e| OpenError::Helper(Error::Internal(e.to_string())))?
            .map_err(OpenError::Viewer)
    }
    .await;
    MachinesViewCmd::ConsoleOpened { name, result }
}

async fn start_vm(connection: zbus::Connection, name: String) -> MachinesViewCmd {
    let result = async {
        let proxy = VmsProxy::new(&connection).await?;
        interactive::start_vm(&proxy, &name, RunMode::Ephemeral, CALL_TIMEOUT).await
    }
    .await;
    MachinesViewCmd::VmStarted { name, result }
}

/// Stops a VM. The helper answers once the VM is gone, which can take the whole grace time, so
/// the call may take that long on top of the usual time.
async fn stop_vm(connection: zbus::Connection, name: String) -> MachinesViewCmd {
    let result = async {
        let proxy = VmsProxy::new(&connection).await?;
        let work = Duration::from_secs(u64::from(STOP_SECONDS)) + CALL_TIMEOUT;
        interactive::stop_vm(&proxy, &name, false, STOP_SECONDS, work).await
    }
    .await;
    MachinesViewCmd::VmStopped { name, result }
}

/// Reads the USB menu of `name`: the host's devices and what is attached.
async fn usb_menu(connection: zbus::Connection, name: String) -> MachinesViewCmd {
    let result = async {
        let proxy = VmsProxy::new(&connection).await?;
        let (devices, attached) = tokio::join!(proxy.usb_devices(), proxy.usb_attached(&name));
        Ok(machines::usb_entries(&devices?, &attached?))
    }
    .await;
    MachinesViewCmd::Usb { name, result }
}

/// Attaches `device` to `name` (`Some`) or detaches the device attached as `id`.
async fn usb_change(
    connection: zbus::Connection,
    name: String,
    attach: Option<String>,
    detach: Option<String>,
) -> MachinesViewCmd {
    let result = async {
        let proxy = VmsProxy::new(&connection).await?;
        if let Some(device) = attach {
            let id = interactive::attach_usb(&proxy, &name, &device, CALL_TIMEOUT).await?;
            return Ok(i18n_f(
                "Attached to {name} as {id}",
                &[("name", &name), ("id", &id)],
            ));
        }
        if let Some(id) = detach {
            interactive::detach_usb(&proxy, &name, &id, CALL_TIMEOUT).await?;
            return Ok(i18n_f(
                "{id} detached from {name}",
                &[("name", &name), ("id", &id)],
            ));
        }
        Ok(String::new())
    }
    .await;
    MachinesViewCmd::UsbChanged { name, result }
}

async fn permission(connection: zbus::Connection) -> MachinesViewCmd {
    MachinesViewCmd::Permission(interactive::permission(&connection, Action::VmManage).await)
}

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

    fn toast(&self, sender: &ComponentSender<Self>, sentence: String) {
        sender
            .output_sender()
            .emit(MachinesViewOutput::Toast(sentence));
    }

    /// Lists the machines, unless a listing is under way (then once more after it).
    fn load(&mut self, sender: &ComponentSender<Self>) {
        let Some(connection) = self.connection.clone() else {
            return;
        };
        if self.loading {
            self.reload_queued = true;
            return;
        }
        self.loading = true;
        sender.oneshot_command(list(connection));
    }

    /// Stops the state-following command, if one runs.
    fn stop_following(&mut self) {
        // Dropping the sender wakes the command, which ends.
        self.stop = None;
        self.run += 1;
    }

    /// Follows the VMs' states on `connection`, unless they are followed on it already.
    fn follow(&mut self, connection: &zbus::Connection, sender: &ComponentSender<Self>) {
        let same = self.stop.is_some()
            && self
                .connection
                .as_ref()
                .is_some_and(|c| c.unique_name() == connection.unique_name());
        if same {
            return;
        }
        self.stop_following();
        let (tx, rx) = oneshot::channel();
        self.stop = Some(tx);
        let run = self.run;
        let connection = connection.clone();
        sender.command(move |out, shutdown: ShutdownReceiver| {
            shutdown
                .register(follow(connection, run, out, rx))
                .drop_on_shutdown()
        });
    }

    /// A list the helper gave, or `None` when it refused it to this user (not worth a toast:
    /// the page says so) or failed (worth one).
    fn listed<T>(
        &self,
        sender: &ComponentSender<Self>,
        list: Result<Vec<T>, Error>,
    ) -> Option<Vec<T>> {
        match list {
            Ok(list) => Some(list),
            Err(Error::NotAuthorized(_)) => None,
            Err(e) => {
                self.toast(sender, e.sentence());
                None
            }
        }
    }

    fn show(&mut self, mut machines: Vec<Machine>) {
        for m in &mut machines {
            m.manage = self.manage;
        }
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
        if let Some((managed, dialog)) = &self.managing {
            if managed == name {
                dialog.emit(MachineManageInput::State(state));
            }
        }
    }

    /// The row of local VM `name`.
    fn row_of(&self, name: &str) -> Option<usize> {
        self.machines
            .iter()
            .position(|m| m.kind == Kind::Local && m.name == name)
    }

    fn open_create(&mut self, sender: &ComponentSender<Self>, root: &gtk::Box) {
        if let Some(open) = &self.create {
            open.widget().present();
            return;
        }
        let Some(connection) = self.connection.clone() else {
            return;
        };
        let dialog = MachineCreate::builder()
            .transient_for(root)
            .launch(MachineCreateInit { connection })
            .forward(sender.input_sender(), MachinesViewInput::Created);
        self.create = Some(dialog);
    }

    fn open_manage(&mut self, name: String, sender: &ComponentSender<Self>, root: &gtk::Box) {
        let Some(connection) = self.connection.clone() else {
            return;
        };
        let state = self
            .row_of(&name)
            .map_or(VmState::Unknown, |i| self.machines[i].state);
        let dialog = MachineManage::builder()
            .transient_for(root)
            .launch(MachineManageInit {
                connection,
                name: name.clone(),
                state,
            })
            .forward(sender.input_sender(), MachinesViewInput::Managed);
        self.managing = Some((name, dialog));
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

    /// Starts the call a machine's row asked for.
    fn row(&mut self, action: MachineRowOutput, sender: &ComponentSender<Self>, root: &gtk::Box) {
        let Some(connection) = self.connection.clone() else {
            self.toast(
                sender,
                gettext("Not connected to the helper yet; try again in a moment."),
            );
            sender.output_sender().emit(MachinesViewOutput::Reconnect);
            return;
        };
        match action {
            MachineRowOutput::Open(name) => {
                self.set_busy(name.clone(), true);
                sender.oneshot_command(open_console(connection, name));
            }
            MachineRowOutput::Start(name) => {
                self.set_busy(name.clone(), true);
                sender.oneshot_command(start_vm(connection, name));
            }
            MachineRowOutput::Stop(name) => {
                self.set_busy(name.clone(), true);
                sender.oneshot_command(stop_vm(connection, name));
            }
            MachineRowOutput::Manage(name) => self.open_manage(name, sender, root),
            MachineRowOutput::UsbOpened(name) => {
                sender.oneshot_command(usb_menu(connection, name));
            }
            MachineRowOutput::UsbAttach { vm, device } => {
                sender.oneshot_command(usb_change(connection, vm, Some(device), None));
            }
            MachineRowOutput::UsbDetach { vm, id } => {
                sender.oneshot_command(usb_change(connection, vm, None, Some(id)));
            }
        }
    }
}

#[relm4::component(pub)]
impl Component for MachinesView {
    type Init = ();
    type Input = MachinesViewInput;
    type Output = MachinesViewOutput;
    type CommandOutput = MachinesViewCmd;

    view! {
        gtk::Box {
            set_orientation: gtk::Orientation::Vertical,
            set_spacing: 24,

            gtk::Button {
                set_label: &gettext("Create a virtual machine…"),
                set_halign: gtk::Align::End,
                add_css_class: "suggested-action",
                #[watch]
                set_visible: model.manage,
                connect_clicked => MachinesViewInput::Create,
            },

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
            connection: None,
            machines: Vec::new(),
            rows: FactoryVecDeque::builder()
                .launch(adw::PreferencesGroup::default())
                .forward(sender.input_sender(), MachinesViewInput::Row),
            busy: HashSet::new(),
            refused: false,
            loading: false,
            reload_queued: false,
            run: 0,
            stop: None,
            manage: false,
            create: None,
            managing: None,
        };
        let machine_group = model.rows.widget();
        let widgets = view_output!();
        ComponentParts { model, widgets }
    }

    fn update(&mut self, message: Self::Input, sender: ComponentSender<Self>, root: &Self::Root) {
        match message {
            MachinesViewInput::Load(connection) => {
                self.follow(&connection, &sender);
                sender.oneshot_command(permission(connection.clone()));
                self.connection = Some(connection);
                self.load(&sender);
            }
            MachinesViewInput::Disconnected => {
                self.stop_following();
                self.connection = None;
            }
            MachinesViewInput::Clear => {
                self.stop_following();
                self.connection = None;
                self.refused = false;
                self.show(Vec::new());
            }
            MachinesViewInput::Row(action) => self.row(action, &sender, root),
            MachinesViewInput::Create => self.open_create(&sender, root),
            MachinesViewInput::Created(output) => {
                self.create = None;
                if let MachineCreateOutput::Created {
                    name,
                    installing,
                    install_error,
                } = output
                {
                    let sentence = match (installing, install_error) {
                        (_, Some(why)) => i18n_f(
                            "{name} was created, but its installer did not start: {reason}",
                            &[("name", &name), ("reason", &why)],
                        ),
                        (true, None) => i18n_f(
                            "{name} was created and its installer runs; when it has shut down, promote the installed version under Manage",
                            &[("name", &name)],
                        ),
                        (false, None) => i18n_f("{name} was created", &[("name", &name)]),
                    };
                    self.toast(&sender, sentence);
                    self.load(&sender);
                }
            }
            MachinesViewInput::Managed(output) => match output {
                MachineManageOutput::Changed(sentence) => {
                    if let Some(sentence) = sentence {
                        self.toast(&sender, sentence);
                    }
                    self.load(&sender);
                }
                MachineManageOutput::Deleted(name) => {
                    self.managing = None;
                    self.toast(&sender, i18n_f("{name} was deleted", &[("name", &name)]));
                    self.load(&sender);
                }
                MachineManageOutput::Closed => self.managing = None,
            },
        }
    }

    fn update_cmd(
        &mut self,
        message: Self::CommandOutput,
        sender: ComponentSender<Self>,
        _root: &Self::Root,
    ) {
        match message {
            MachinesViewCmd::Listed { consoles, vms } => {
                self.loading = false;
                let consoles = self.listed(&sender, consoles);
                let vms = self.listed(&sender, vms);
                // Read while the helper could not be: what it said then no longer counts.
                if self.connection.is_some() {
                    self.refused = consoles.is_none() && vms.is_none();
                    self.show(machines::merge(consoles.as_deref(), vms.as_deref()));
                }
                if std::mem::take(&mut self.reload_queued) {
                    self.load(&sender);
                }
            }
            MachinesViewCmd::StateChanged { run, name, state } if run == self.run => {
                self.state_changed(&name, state);
                // An update or install that ended left a version waiting: the list says which.
                if self.manage && matches!(state, VmState::ShutDown | VmState::Crashed) {
                    self.load(&sender);
                }
            }
            MachinesViewCmd::FollowEnded { run, error } if run == self.run => {
                self.stop = None;
                if let Some(e) = error {
                    self.toast(&sender, e.sentence());
                }
            }
            // From a following command the page has stopped since.
            MachinesViewCmd::StateChanged { .. } | MachinesViewCmd::FollowEnded { .. } => {}
            MachinesViewCmd::ConsoleOpened { name, result } => {
                self.set_busy(name.clone(), false);
                match result {
                    Ok(launched) => {
                        eprintln!(
                            "palisade: console viewer for {name} started, pid {}, file {}",
                            launched.pid,
                            launched.file.display()
                        );
                        self.toast(
                            &sender,
                            i18n_f(
                                "The console of {name} opens in its own window",
                                &[("name", &name)],
                            ),
                        );
                    }
                    Err(e) => self.toast(&sender, e.sentence()),
                }
            }
            MachinesViewCmd::VmStarted { name, result } => {
                self.set_busy(name.clone(), false);
                match result {
                    Ok(info) => self.state_changed(&name, info.state),
                    Err(e) => self.toast(&sender, e.sentence()),
                }
            }
            MachinesViewCmd::Permission(permission) => {
                // As on the other pages: hidden only when polkit refuses outright; when it
                // cannot be asked, the helper decides at the click.
                let manage = permission.offered();
                if manage != self.manage {
                    self.manage = manage;
                    let machines = std::mem::take(&mut self.machines);
                    self.show(machines);
                    for (i, m) in self.machines.iter().enumerate() {
                        self.rows.send(i, MachineRowInput::Set(m.clone()));
                    }
                }
            }
            MachinesViewCmd::Usb { name, result } => {
                if let Some(i) = self.row_of(&name) {
                    self.rows
                        .send(i, MachineRowInput::Usb(result.map_err(|e| e.sentence())));
                }
            }
            MachinesViewCmd::UsbChanged { name, result } => {
                match result {
                    Ok(sentence) => self.toast(&sender, sentence),
                    Err(e) => self.toast(&sender, e.sentence()),
                }
                // The menu shows what is attached now.
                if let Some(connection) = self.connection.clone() {
                    sender.oneshot_command(usb_menu(connection, name));
                }
            }
            MachinesViewCmd::VmStopped { name, result } => {
                self.set_busy(name.clone(), false);
                match result {
                    Ok(()) => self.state_changed(&name, VmState::ShutDown),
                    Err(e) => self.toast(&sender, e.sentence()),
                }
            }
        }
    }
}
