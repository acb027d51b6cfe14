//! The main window: connects to the helper over the system bus and shows four pages, "My
//! machines" (the VMs and consoles this user may use, with **Open console**, **Start** and
//! **Stop**), "Firewall" (the helper's status and the live policy with each rule's hits,
//! read-only), "Blocklists" (the imported lists, which that page imports, updates and removes
//! itself) and "Activity" (the drop log, which that page follows itself). It follows
//! `GenerationChanged`, `StateChanged` and the helper coming and going, and reports every
//! failure as a toast with the helper's own sentence.
//!
//! Every D-Bus call runs as a relm4 command on the tokio runtime, never on the UI thread:
//! `update` starts commands, `update_cmd` only folds their results into the model.

use crate::a11y;
use crate::activity::RemoteConsoleHint;
use crate::activity_view::{ActivityView, ActivityViewInput, ActivityViewOutput};
use crate::blocklists_view::{BlocklistsView, BlocklistsViewInput, BlocklistsViewOutput};
use crate::config;
use crate::format::capitalized;
use crate::i18n::{gettext, i18n_f};
use crate::machine_row::MachineRowOutput;
use crate::machines_view::{MachinesView, MachinesViewInput};
use crate::managed::Managed;
use crate::policy_view::{PolicyView, PolicyViewInput};
use crate::status_view::{StatusView, StatusViewInput};
use crate::viewer::{self, Launched, ViewerError};
use futures_util::StreamExt;
use palisade_dbus::names::BUS_NAME;
use palisade_dbus::policy::merge::merge;
use palisade_dbus::policy::{Parsed, Policy};
use palisade_dbus::proxy::{ConsolesProxy, DnsProxy, HelperProxy, PolicyProxy, VmsProxy};
use palisade_dbus::types::{
    ConsoleInfo, DnsNameState, Finding, PolicySource, PolicySources, RunMode, SourceKind, Status,
    VmInfo, VmState,
};
use palisade_dbus::Error;
use relm4::abstractions::Toaster;
use relm4::adw::prelude::*;
use relm4::gtk::glib;
use relm4::{
    adw, gtk, Component, ComponentController, ComponentParts, ComponentSender, Controller,
    RelmWidgetExt, Sender, ShutdownReceiver,
};
use std::time::Duration;

/// How long one D-Bus call may take before it fails with a timeout.
const CALL_TIMEOUT: Duration = Duration::from_secs(25);
/// How long **Stop** gives the guest to power down before the helper pulls the plug.
const STOP_SECONDS: u32 = 60;

/// Which page of the window is showing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    /// Opening the bus and reading for the first time.
    Connecting,
    /// The bus or the helper cannot be reached.
    Unreachable,
    /// The helper answered: the machines and firewall pages are shown.
    Ready,
}

impl Page {
    /// The name of the page in the stack.
    fn name(self) -> &'static str {
        match self {
            Page::Connecting => "connecting",
            Page::Unreachable => "unreachable",
            Page::Ready => "ready",
        }
    }
}

/// The root component: the window.
pub struct App {
    /// The page showing.
    page: Page,
    /// The sentence explaining why the helper is unreachable.
    reason: String,
    /// Why the helper refused to show this user its status and policy; `None` when it did.
    firewall_refused: Option<String>,
    /// The system bus, once connected.
    connection: Option<zbus::Connection>,
    /// Whether a connect or read is under way.
    busy: bool,
    /// Whether another read was asked for while one was under way.
    reload_queued: bool,
    /// Whether the signal watcher is running.
    watching: bool,
    /// The live generation last read from the helper.
    generation: Option<u64>,
    /// A toast saying the helper stopped, withdrawn when it answers again.
    stale_toast: Option<adw::Toast>,
    /// Shows the toasts.
    toaster: Toaster,
    /// The machines page.
    machines_view: Controller<MachinesView>,
    /// The helper's status.
    status_view: Controller<StatusView>,
    /// The live policy.
    policy_view: Controller<PolicyView>,
    /// The imported blocklists.
    blocklists_view: Controller<BlocklistsView>,
    /// The drop log.
    activity_view: Controller<ActivityView>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("page", &self.page)
            .field("busy", &self.busy)
            .field("watching", &self.watching)
            .finish_non_exhaustive()
    }
}

/// Messages to the window.
#[derive(Debug)]
pub enum AppInput {
    /// Read the status and the policy again (connecting first if needed).
    Refresh,
    /// Start following the helper's signals on the current connection.
    Watch,
    /// Show the About window.
    About,
    /// A machine's row asked to open its console, start it or stop it.
    Machine(MachineRowOutput),
    /// The Blocklists page has something to say.
    Blocklists(BlocklistsViewOutput),
    /// The Activity page has something to say.
    Activity(ActivityViewOutput),
    /// The user opened the page of this name.
    PageShown(String),
}

/// Results of the window's background work.
#[derive(Debug)]
pub enum AppCmd {
    /// The system bus was opened, or could not be.
    Connected(Result<zbus::Connection, Error>),
    /// The status and the live policy were read, or could not be.
    Loaded(Box<Snapshot>),
    /// The helper announced that a new generation is live.
    GenerationChanged(u64),
    /// The helper's bus name got an owner (`true`: started) or lost it (`false`: stopped).
    HelperOwnerChanged(bool),
    /// Following the helper's signals failed or ended; carries the sentence.
    WatchEnded(String),
    /// The helper announced a VM's new state.
    VmStateChanged {
        /// The VM.
        name: String,
        /// Its state.
        state: VmState,
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

/// What one read of the helper returned.
#[derive(Debug)]
pub struct Snapshot {
    /// `Status()`.
    status: Result<Status, Error>,
    /// `Sources()`, merged and parsed.
    policy: Result<LivePolicy, Error>,
    /// `Consoles.List()`.
    consoles: Result<Vec<ConsoleInfo>, Error>,
    /// `Vms.List()`.
    vms: Result<Vec<VmInfo>, Error>,
    /// `Dns.Names()`: the states of the names the rules mention.
    names: Result<Vec<DnsNameState>, Error>,
}

/// The live policy: its files merged as the helper merges them, parsed with the contract's
/// validation.
#[derive(Debug)]
pub struct LivePolicy {
    /// Its generation.
    generation: u64,
    /// The policy, or why this app could not read it.
    parsed: Result<Parsed, Vec<Finding>>,
    /// Which of its parts come from drop-ins rather than the local policy.
    managed: Managed,
}

/// Opens the system bus (`DBUS_SYSTEM_BUS_ADDRESS` when set).
async fn connect() -> AppCmd {
    let connection = zbus::conn::Builder::system()
        .method_timeout(CALL_TIMEOUT)
        .build()
        .await
        .map_err(Error::from);
    AppCmd::Connected(connection)
}

/// Reads status, policy, consoles and VMs at once.
async fn load(connection: zbus::Connection) -> AppCmd {
    let (status, policy, consoles, vms, names) = tokio::join!(
        read_status(&connection),
        read_policy(&connection),
        read_consoles(&connection),
        read_vms(&connection),
        read_names(&connection),
    );
    AppCmd::Loaded(Box::new(Snapshot {
        status,
        policy,
        consoles,
        vms,
        names,
    }))
}

async fn read_names(connection: &zbus::Connection) -> Result<Vec<DnsNameState>, Error> {
    DnsProxy::new(connection).await?.names().await
}

async fn read_consoles(connection: &zbus::Connection) -> Result<Vec<ConsoleInfo>, Error> {
    ConsolesProxy::new(connection).await?.list().await
}

async fn read_vms(connection: &zbus::Connection) -> Result<Vec<VmInfo>, Error> {
    VmsProxy::new(connection).await?.list().await
}

/// Asks the helper for a ticket and hands it to the viewer: exactly what `palisadectl console
/// open NAME` does.
async fn open_console(connection: zbus::Connection, name: String) -> AppCmd {
    let result = async {
        let ticket = ConsolesProxy::new(&connection)
            .await
            .map_err(|e| OpenError::Helper(e.into()))?
            .open(&name)
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
    AppCmd::ConsoleOpened { name, result }
}

async fn start_vm(connection: zbus::Connection, name: String) -> AppCmd {
    let result = async {
        VmsProxy::new(&connection)
            .await?
            .start(&name, RunMode::Ephemeral)
            .await
    }
    .await;
    AppCmd::VmStarted { name, result }
}

/// Stops a VM. The helper answers once the VM is gone, which can take the whole grace time, so
/// this call has a connection of its own whose calls may take that long.
async fn stop_vm(name: String) -> AppCmd {
    let result = async {
        let connection = zbus::conn::Builder::system()
            .method_timeout(Duration::from_secs(u64::from(STOP_SECONDS)) + CALL_TIMEOUT)
            .build()
            .await?;
        VmsProxy::new(&connection)
            .await?
            .stop(&name, false, STOP_SECONDS)
            .await
    }
    .await;
    AppCmd::VmStopped { name, result }
}

async fn read_status(connection: &zbus::Connection) -> Result<Status, Error> {
    HelperProxy::new(connection).await?.status().await
}

/// Reads the files of the live policy (`Sources`: the drop-ins, then the local policy) and
/// merges them as the helper does, remembering which part came from which file. A helper from
/// before drop-ins has no `Sources`; its `Get` is the whole policy.
async fn read_policy(connection: &zbus::Connection) -> Result<LivePolicy, Error> {
    let proxy = PolicyProxy::new(connection).await?;
    let sources = match proxy.sources().await {
        Ok(sources) => sources,
        Err(Error::ZBus(zbus::Error::MethodError(name, _, _)))
            if name.as_str() == "org.freedesktop.DBus.Error.UnknownMethod" =>
        {
            let (generation, document) = proxy.get().await?;
            PolicySources {
                generation,
                sources: vec![PolicySource {
                    name: String::new(),
                    kind: SourceKind::Local,
                    path: String::new(),
                    document,
                }],
                admin_dir: String::new(),
                vendor_dir: String::new(),
                local_file: String::new(),
            }
        }
        Err(e) => return Err(e),
    };
    let generation = sources.generation;
    // A policy can hold a million blocklist entries: merge and parse it off the async workers.
    let (parsed, managed) = tokio::task::spawn_blocking(move || {
        let merged = match merge(&sources.sources) {
            Ok(merged) => merged,
            // The helper merged these files; an app that cannot is older or newer than it.
            Err(findings) => return (Err(findings), Managed::default()),
        };
        match Policy::parse(merged.document.as_bytes()) {
            Ok(mut parsed) => {
                let managed = Managed::new(&merged, &parsed.policy);
                // Warnings about a drop-in name its file: it is not changed here.
                parsed.warnings = merged.attribute(std::mem::take(&mut parsed.warnings));
                (Ok(parsed), managed)
            }
            Err(findings) => (Err(merged.attribute(findings)), Managed::default()),
        }
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(LivePolicy {
        generation,
        parsed,
        managed,
    })
}

/// Forwards `GenerationChanged`, `StateChanged` and changes of the helper's name owner until
/// the bus closes.
async fn watch(connection: zbus::Connection, out: Sender<AppCmd>) -> Result<(), Error> {
    let policy = PolicyProxy::new(&connection).await?;
    let mut generations = policy.receive_generation_changed().await?;
    let vms = VmsProxy::new(&connection).await?;
    let mut states = vms.receive_state_changed().await?;
    let bus = zbus::fdo::DBusProxy::new(&connection).await?;
    let mut owners = bus
        .receive_name_owner_changed_with_args(&[(0, BUS_NAME)])
        .await?;
    loop {
        tokio::select! {
            signal = generations.next() => match signal {
                Some(signal) => {
                    let generation = signal.args().map(|a| a.generation).unwrap_or_default();
                    out.emit(AppCmd::GenerationChanged(generation));
                }
                None => break,
            },
            signal = states.next() => match signal {
                Some(signal) => {
                    if let Ok(args) = signal.args() {
                        out.emit(AppCmd::VmStateChanged {
                            name: args.name.to_owned(),
                            state: args.state,
                        });
                    }
                }
                None => break,
            },
            signal = owners.next() => match signal {
                Some(signal) => {
                    let present = signal.args().is_ok_and(|a| a.new_owner.is_some());
                    out.emit(AppCmd::HelperOwnerChanged(present));
                }
                None => break,
            },
        }
    }
    Ok(())
}

/// The remote consoles of `policy`, for the Activity page's snippets.
fn remote_consoles(policy: &Policy) -> Vec<RemoteConsoleHint> {
    policy
        .remote_consoles
        .iter()
        .map(|c| RemoteConsoleHint {
            name: c.name.to_string(),
            host: c.host.to_string(),
            port: c.port,
            users: c
                .access
                .users
                .iter()
                .map(|u| u.as_str().to_owned())
                .collect(),
        })
        .collect()
}

/// Shows the About window over `parent`.
fn about(parent: &adw::ApplicationWindow) {
    let window = adw::AboutWindow::builder()
        .transient_for(parent)
        .modal(true)
        .application_name(gettext("Palisade"))
        .application_icon(config::APP_ID)
        .version(config::VERSION)
        .comments(gettext(
            "Virtual machines behind a firewall that people can actually manage",
        ))
        .developer_name(gettext("The Palisade developers"))
        .license_type(gtk::License::Gpl30)
        .build();
    // Translators: put your names here, one per line.
    let credits = gettext("translator-credits");
    if credits != "translator-credits" {
        window.set_translator_credits(&credits);
    }
    window.present();
}

impl App {
    /// Shows `sentence` as a toast; it is plain text, never markup.
    fn toast(&self, sentence: &str) -> adw::Toast {
        let toast = adw::Toast::new(&glib::markup_escape_text(&capitalized(sentence)));
        toast.set_timeout(8);
        self.toaster.add_toast(toast.clone());
        toast
    }

    /// Shows the page for an error that left nothing to show.
    fn fail(&mut self, e: &Error) {
        self.reason = e.sentence();
        self.page = Page::Unreachable;
        self.toast(&self.reason);
    }

    /// A list the helper gave, or `None` when it refused it to this user (not worth a toast:
    /// the page says so) or failed (worth one).
    fn listed<T>(&self, list: Result<Vec<T>, Error>) -> Option<Vec<T>> {
        match list {
            Ok(list) => Some(list),
            Err(Error::NotAuthorized(_)) => None,
            Err(e) => {
                self.toast(&e.sentence());
                None
            }
        }
    }

    /// Withdraws the toast that said the helper is gone, once it answers again.
    fn dismiss_stale_toast(&mut self) {
        if let Some(toast) = self.stale_toast.take() {
            toast.dismiss();
        }
    }

    fn unreachable_description(&self) -> String {
        format!(
            "{}\n\n{}",
            gettext("Palisade's helper service is not running, or the system bus cannot be reached. The firewall in the kernel keeps enforcing the last policy."),
            capitalized(&self.reason)
        )
    }

    fn denied_description(&self) -> String {
        format!(
            "{}\n\n{}",
            gettext("Your account may not read the firewall policy. Ask the administrator of this computer."),
            capitalized(self.firewall_refused.as_deref().unwrap_or_default())
        )
    }

    fn loaded(&mut self, snapshot: Snapshot) {
        let Snapshot {
            status,
            policy,
            consoles,
            vms,
            names,
        } = snapshot;
        match status {
            Ok(status) => {
                self.dismiss_stale_toast();
                self.page = Page::Ready;
                self.firewall_refused = None;
                self.generation = Some(status.generation);
                self.status_view.emit(StatusViewInput::Show(status));
            }
            Err(Error::NotAuthorized(reason)) => {
                // The helper answers; it only keeps the firewall to itself. The machines page
                // is this user's business all the same.
                self.dismiss_stale_toast();
                self.page = Page::Ready;
                self.firewall_refused = Some(reason);
                self.policy_view.emit(PolicyViewInput::Clear);
            }
            Err(e) => {
                // Without a status there is nothing trustworthy to show.
                self.fail(&e);
                self.policy_view.emit(PolicyViewInput::Clear);
                self.machines_view.emit(MachinesViewInput::Clear);
                self.blocklists_view.emit(BlocklistsViewInput::Clear);
                self.activity_view.emit(ActivityViewInput::Clear);
                return;
            }
        }
        // The page reads the lists itself; a new generation may have changed which are in use.
        if let Some(connection) = &self.connection {
            self.blocklists_view
                .emit(BlocklistsViewInput::Load(connection.clone()));
            // Followed already on this connection, the page keeps following.
            self.activity_view
                .emit(ActivityViewInput::Load(connection.clone()));
        }
        let consoles = self.listed(consoles);
        let vms = self.listed(vms);
        self.machines_view
            .emit(MachinesViewInput::Show { consoles, vms });
        if self.firewall_refused.is_some() {
            return;
        }
        match policy {
            Ok(LivePolicy {
                generation,
                parsed: Ok(parsed),
                managed,
            }) => {
                self.activity_view
                    .emit(ActivityViewInput::Consoles(remote_consoles(&parsed.policy)));
                self.policy_view.emit(PolicyViewInput::Show {
                    generation,
                    policy: Box::new(parsed.policy),
                    warnings: parsed.warnings,
                    managed: Box::new(managed),
                    // Without them the rows show the rules alone: nothing else depends on them.
                    names: names.unwrap_or_default(),
                });
                if let Some(connection) = &self.connection {
                    self.policy_view
                        .emit(PolicyViewInput::ReadHits(connection.clone()));
                }
            }
            Ok(LivePolicy {
                generation,
                parsed: Err(findings),
                ..
            }) => {
                self.toast(&gettext(
                    "The live policy does not validate in this version of the app",
                ));
                self.policy_view.emit(PolicyViewInput::Unreadable {
                    generation,
                    findings,
                });
            }
            Err(Error::NotAuthorized(reason)) => {
                self.firewall_refused = Some(reason);
                self.policy_view.emit(PolicyViewInput::Clear);
            }
            Err(e) => {
                self.toast(&e.sentence());
                self.policy_view.emit(PolicyViewInput::Clear);
            }
        }
    }

    /// Starts the call a machine's row asked for.
    fn machine(&mut self, action: MachineRowOutput, sender: &ComponentSender<Self>) {
        let Some(connection) = self.connection.clone() else {
            self.toast(&gettext(
                "Not connected to the helper yet; try again in a moment.",
            ));
            sender.input(AppInput::Refresh);
            return;
        };
        let name = match &action {
            MachineRowOutput::Open(name)
            | MachineRowOutput::Start(name)
            | MachineRowOutput::Stop(name) => name.clone(),
        };
        self.machines_view
            .emit(MachinesViewInput::Busy { name, busy: true });
        match action {
            MachineRowOutput::Open(name) => sender.oneshot_command(open_console(connection, name)),
            MachineRowOutput::Start(name) => sender.oneshot_command(start_vm(connection, name)),
            MachineRowOutput::Stop(name) => sender.oneshot_command(stop_vm(name)),
        }
    }

    /// A machine's call ended.
    fn done(&self, name: &str) {
        self.machines_view.emit(MachinesViewInput::Busy {
            name: name.to_owned(),
            busy: false,
        });
    }

    fn firewall_page(&self) -> &'static str {
        if self.firewall_refused.is_some() {
            "denied"
        } else {
            "policy"
        }
    }
}

#[relm4::component(pub)]
impl Component for App {
    type Init = ();
    type Input = AppInput;
    type Output = ();
    type CommandOutput = AppCmd;

    view! {
        adw::ApplicationWindow {
            set_title: Some(&gettext("Palisade")),
            set_default_width: 760,
            set_default_height: 820,

            gtk::Box {
                set_orientation: gtk::Orientation::Vertical,

                adw::HeaderBar {
                    #[wrap(Some)]
                    #[name = "switcher_title"]
                    set_title_widget = &adw::ViewSwitcherTitle {
                        set_title: &gettext("Palisade"),
                        set_stack: Some(&view_stack),
                        #[watch]
                        set_view_switcher_enabled: model.page == Page::Ready,
                    },
                    pack_end = &a11y::icon_button("view-refresh-symbolic", &gettext("Refresh")) -> gtk::Button {
                        #[watch]
                        set_sensitive: !model.busy,
                        connect_clicked => AppInput::Refresh,
                    },
                    pack_start = &a11y::icon_button("help-about-symbolic", &gettext("About Palisade")) -> gtk::Button {
                        connect_clicked => AppInput::About,
                    },
                    pack_end = &gtk::Spinner {
                        #[watch]
                        set_spinning: model.busy,
                        #[watch]
                        set_visible: model.busy,
                    },
                },

                #[local_ref]
                toast_overlay -> adw::ToastOverlay {
                    set_vexpand: true,

                    gtk::Stack {
                        set_transition_type: gtk::StackTransitionType::Crossfade,

                        add_named[Some("connecting")] = &adw::StatusPage {
                            set_icon_name: Some("network-server-symbolic"),
                            set_title: &gettext("Connecting to the helper…"),
                        },

                        add_named[Some("unreachable")] = &adw::StatusPage {
                            set_icon_name: Some("network-offline-symbolic"),
                            set_title: &gettext("The helper is not reachable"),
                            #[watch]
                            set_description: Some(&glib::markup_escape_text(&model.unreachable_description())),

                            #[wrap(Some)]
                            set_child = &gtk::Button {
                                set_label: &gettext("Try Again"),
                                set_halign: gtk::Align::Center,
                                add_css_class: "pill",
                                add_css_class: "suggested-action",
                                #[watch]
                                set_sensitive: !model.busy,
                                connect_clicked => AppInput::Refresh,
                            },
                        },

                        add_named[Some("ready")] = &gtk::Box {
                            set_orientation: gtk::Orientation::Vertical,

                            #[name = "view_stack"]
                            adw::ViewStack {
                                set_vexpand: true,

                                add_titled_with_icon[Some("machines"), &gettext("My machines"), "computer-symbolic"] = &gtk::ScrolledWindow {
                                    set_hscrollbar_policy: gtk::PolicyType::Never,

                                    adw::Clamp {
                                        set_maximum_size: 720,
                                        set_margin_all: 18,
                                        set_child: Some(model.machines_view.widget()),
                                    },
                                },

                                add_titled_with_icon[Some("firewall"), &gettext("Firewall"), "security-high-symbolic"] = &gtk::Stack {
                                    add_named[Some("denied")] = &adw::StatusPage {
                                        set_icon_name: Some("system-lock-screen-symbolic"),
                                        set_title: &gettext("Not allowed"),
                                        #[watch]
                                        set_description: Some(&glib::markup_escape_text(&model.denied_description())),

                                        #[wrap(Some)]
                                        set_child = &gtk::Button {
                                            set_label: &gettext("Try Again"),
                                            set_halign: gtk::Align::Center,
                                            add_css_class: "pill",
                                            #[watch]
                                            set_sensitive: !model.busy,
                                            connect_clicked => AppInput::Refresh,
                                        },
                                    },

                                    add_named[Some("policy")] = &gtk::ScrolledWindow {
                                        set_hscrollbar_policy: gtk::PolicyType::Never,

                                        adw::Clamp {
                                            set_maximum_size: 720,
                                            set_margin_all: 18,

                                            gtk::Box {
                                                set_orientation: gtk::Orientation::Vertical,
                                                set_spacing: 24,
                                                append: model.status_view.widget(),
                                                append: model.policy_view.widget(),
                                            },
                                        },
                                    },

                                    #[watch]
                                    set_visible_child_name: model.firewall_page(),
                                },

                                add_titled_with_icon[Some("blocklists"), &gettext("Blocklists"), "action-unavailable-symbolic"] = model.blocklists_view.widget(),

                                add_titled_with_icon[Some("activity"), &gettext("Activity"), "network-transmit-receive-symbolic"] = model.activity_view.widget(),

                                connect_visible_child_name_notify[sender] => move |stack| {
                                    if let Some(name) = stack.visible_child_name() {
                                        sender.input(AppInput::PageShown(name.to_string()));
                                    }
                                },
                            },

                            #[name = "switcher_bar"]
                            adw::ViewSwitcherBar {
                                set_stack: Some(&view_stack),
                            },
                        },

                        #[watch]
                        set_visible_child_name: model.page.name(),
                    },
                },
            },
        }
    }

    fn init(
        _init: Self::Init,
        root: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let model = App {
            page: Page::Connecting,
            reason: String::new(),
            firewall_refused: None,
            connection: None,
            busy: true,
            reload_queued: false,
            watching: false,
            generation: None,
            stale_toast: None,
            toaster: Toaster::default(),
            machines_view: MachinesView::builder()
                .launch(())
                .forward(sender.input_sender(), AppInput::Machine),
            status_view: StatusView::builder().launch(()).detach(),
            policy_view: PolicyView::builder().launch(()).detach(),
            blocklists_view: BlocklistsView::builder()
                .launch(())
                .forward(sender.input_sender(), AppInput::Blocklists),
            activity_view: ActivityView::builder()
                .launch(())
                .forward(sender.input_sender(), AppInput::Activity),
        };
        let toast_overlay = model.toaster.overlay_widget();
        let widgets = view_output!();
        // The switcher moves from the header bar to the bottom when the window is narrow.
        widgets
            .switcher_title
            .bind_property("title-visible", &widgets.switcher_bar, "reveal")
            .sync_create()
            .build();

        let shortcuts = gtk::ShortcutController::new();
        shortcuts.set_scope(gtk::ShortcutScope::Managed);
        let input = sender.input_sender().clone();
        shortcuts.add_shortcut(gtk::Shortcut::new(
            gtk::ShortcutTrigger::parse_string("<Control>r|F5"),
            Some(gtk::CallbackAction::new(move |_, _| {
                input.emit(AppInput::Refresh);
                glib::Propagation::Stop
            })),
        ));
        root.add_controller(shortcuts);

        sender.oneshot_command(connect());
        ComponentParts { model, widgets }
    }

    fn update(&mut self, message: Self::Input, sender: ComponentSender<Self>, root: &Self::Root) {
        match message {
            AppInput::About => about(root),
            AppInput::Machine(action) => self.machine(action, &sender),
            AppInput::Blocklists(BlocklistsViewOutput::Toast(sentence))
            | AppInput::Activity(ActivityViewOutput::Toast(sentence)) => {
                self.toast(&sentence);
            }
            AppInput::PageShown(name) => {
                // The rules' hits are read when the page is opened, not only every few seconds.
                if let (Some(connection), "firewall") = (&self.connection, name.as_str()) {
                    if self.firewall_refused.is_none() {
                        self.policy_view
                            .emit(PolicyViewInput::ReadHits(connection.clone()));
                    }
                }
            }
            AppInput::Refresh => {
                if self.busy {
                    self.reload_queued = true;
                    return;
                }
                self.busy = true;
                match &self.connection {
                    Some(connection) => sender.oneshot_command(load(connection.clone())),
                    None => sender.oneshot_command(connect()),
                }
            }
            AppInput::Watch => {
                let Some(connection) = self.connection.clone() else {
                    return;
                };
                if self.watching {
                    return;
                }
                self.watching = true;
                sender.command(move |out, shutdown: ShutdownReceiver| {
                    shutdown
                        .register(async move {
                            let ended = match watch(connection, out.clone()).await {
                                Ok(()) => gettext("The connection to the system bus was closed."),
                                Err(e) => e.sentence(),
                            };
                            out.emit(AppCmd::WatchEnded(ended));
                        })
                        .drop_on_shutdown()
                });
            }
        }
    }

    fn update_cmd(
        &mut self,
        message: Self::CommandOutput,
        sender: ComponentSender<Self>,
        _root: &Self::Root,
    ) {
        match message {
            AppCmd::Connected(Ok(connection)) => {
                self.connection = Some(connection);
                self.busy = false;
                sender.input(AppInput::Watch);
                sender.input(AppInput::Refresh);
            }
            AppCmd::Connected(Err(e)) => {
                self.busy = false;
                self.reload_queued = false;
                self.fail(&e);
            }
            AppCmd::Loaded(snapshot) => {
                self.busy = false;
                self.loaded(*snapshot);
                if std::mem::take(&mut self.reload_queued) {
                    sender.input(AppInput::Refresh);
                }
            }
            AppCmd::GenerationChanged(generation) => {
                if self.generation != Some(generation) && self.firewall_refused.is_none() {
                    self.toast(&i18n_f(
                        "Generation {generation} is now live",
                        &[("generation", &generation.to_string())],
                    ));
                }
                sender.input(AppInput::Refresh);
            }
            AppCmd::HelperOwnerChanged(true) => sender.input(AppInput::Refresh),
            AppCmd::HelperOwnerChanged(false) => {
                self.reason = gettext("The Palisade helper stopped.");
                self.page = Page::Unreachable;
                self.stale_toast = Some(self.toast(&self.reason));
            }
            AppCmd::WatchEnded(sentence) => {
                self.watching = false;
                self.toast(&sentence);
                // A closed bus connection is useless: open a new one on the next refresh.
                self.connection = None;
            }
            AppCmd::VmStateChanged { name, state } => {
                self.machines_view
                    .emit(MachinesViewInput::StateChanged { name, state });
            }
            AppCmd::ConsoleOpened { name, result } => {
                self.done(&name);
                match result {
                    Ok(launched) => {
                        eprintln!(
                            "palisade: console viewer for {name} started, pid {}, file {}",
                            launched.pid,
                            launched.file.display()
                        );
                        self.toast(&i18n_f(
                            "The console of {name} opens in its own window",
                            &[("name", &name)],
                        ));
                    }
                    Err(e) => {
                        self.toast(&e.sentence());
                    }
                }
            }
            AppCmd::VmStarted { name, result } => {
                self.done(&name);
                match result {
                    Ok(info) => self.machines_view.emit(MachinesViewInput::StateChanged {
                        name,
                        state: info.state,
                    }),
                    Err(e) => {
                        self.toast(&e.sentence());
                    }
                }
            }
            AppCmd::VmStopped { name, result } => {
                self.done(&name);
                match result {
                    Ok(()) => self.machines_view.emit(MachinesViewInput::StateChanged {
                        name,
                        state: VmState::ShutDown,
                    }),
                    Err(e) => {
                        self.toast(&e.sentence());
                    }
                }
            }
        }
    }
}
