//! The main window: connects to the helper over the system bus and shows its pages, "My
//! machines" (the VMs and consoles this user may use, with **Open console**, **Start** and
//! **Stop**), "Firewall" (the helper's status and the live policy with each rule's hits,
//! read-only), "Blocklists" (the imported lists, with import, update and removal), "Activity"
//! (the drop log), "History" and, for admins, "Access" (filled by the Firewall page's editor).
//! It follows `GenerationChanged` and the helper coming and going, and reports every failure as
//! a toast with the helper's own sentence.
//!
//! The window owns the connection, the navigation and the toasts, and one call of its own:
//! `Status()`, which tells whether the helper answers, which generation is live and whether this
//! user may see the firewall. Each page makes its own calls on the connection the window hands
//! it every time it reads the helper (on start, on Refresh, on a new generation, when the helper
//! comes back), and tells the window only what is for the whole window: a toast, a refusal, a
//! reconnect. Every D-Bus call runs as a relm4 command on the tokio runtime, never on the UI
//! thread: `update` starts commands, `update_cmd` only folds their results into the model.

use crate::a11y;
use crate::activity_view::{ActivityView, ActivityViewInput, ActivityViewOutput};
use crate::blocklists_view::{BlocklistsView, BlocklistsViewInput, BlocklistsViewOutput};
use crate::config;
use crate::format::capitalized;
use crate::history_view::{HistoryView, HistoryViewInput, HistoryViewOutput};
use crate::i18n::{gettext, i18n_f};
use crate::machines_view::{MachinesView, MachinesViewInput, MachinesViewOutput};
use crate::policy_view::{PolicyView, PolicyViewInput, PolicyViewOutput};
use crate::status_view::{StatusView, StatusViewInput};
use futures_util::StreamExt;
use palisade_dbus::names::BUS_NAME;
use palisade_dbus::proxy::{HelperProxy, PolicyProxy};
use palisade_dbus::types::Status;
use palisade_dbus::Error;
use relm4::abstractions::Toaster;
use relm4::adw::prelude::*;
use relm4::gtk::glib;
use relm4::{
    adw, gtk, Component, ComponentController, ComponentParts, ComponentSender, Controller,
    RelmWidgetExt, Sender, ShutdownReceiver,
};
use std::time::Duration;

/// How long one D-Bus call on the window's connection may take before it fails with a timeout.
/// Calls that may ask for a password wait [`crate::interactive::PROMPT_TIMEOUT`] longer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(25);

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
    /// The History page.
    history_view: Controller<HistoryView>,
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
    /// Read the helper again (connecting first if needed): the status here, the rest in the
    /// pages.
    Refresh,
    /// Start following the helper's signals on the current connection.
    Watch,
    /// Show the About window.
    About,
    /// The machines page has something to say.
    Machines(MachinesViewOutput),
    /// The policy view has something to say.
    Policy(PolicyViewOutput),
    /// What the History page asks for.
    History(HistoryViewOutput),
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
    /// `Status()` answered, or the helper could not be reached.
    Loaded(Box<Result<Status, Error>>),
    /// The helper announced that a new generation is live.
    GenerationChanged(u64),
    /// The helper's bus name got an owner (`true`: started) or lost it (`false`: stopped).
    HelperOwnerChanged(bool),
    /// Following the helper's signals failed or ended; carries the sentence.
    WatchEnded(String),
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

/// Reads the helper's status: whether it answers, and what the window shows around the pages.
async fn load(connection: zbus::Connection) -> AppCmd {
    let status = async { HelperProxy::new(&connection).await?.status().await }.await;
    AppCmd::Loaded(Box::new(status))
}

/// Forwards `GenerationChanged` and changes of the helper's name owner until the bus closes.
/// (A VM's `StateChanged` is the machines page's own business.)
async fn watch(connection: zbus::Connection, out: Sender<AppCmd>) -> Result<(), Error> {
    let policy = PolicyProxy::new(&connection).await?;
    let mut generations = policy.receive_generation_changed().await?;
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

/// With `PALISADE_REPORT_FIRST_FRAME` set (not empty), prints "palisade: first frame drawn" on
/// stderr once the window's first frame has been painted (the frame clock's `after-paint` of the
/// first frame after the window is mapped): what `make bench` times the app's start-up to. The
/// first frame shows whatever the window has then, usually "Connecting to the helper…".
fn report_first_frame(window: &adw::ApplicationWindow) {
    if std::env::var_os("PALISADE_REPORT_FIRST_FRAME").is_none_or(|v| v.is_empty()) {
        return;
    }
    let reported = std::rc::Rc::new(std::cell::Cell::new(false));
    window.connect_map(move |window| {
        let Some(clock) = window.frame_clock() else {
            return;
        };
        if reported.replace(true) {
            return;
        }
        let handler = std::rc::Rc::new(std::cell::Cell::new(None));
        let slot = std::rc::Rc::clone(&handler);
        let id = clock.connect_after_paint(move |clock| {
            eprintln!("palisade: first frame drawn");
            if let Some(id) = slot.take() {
                clock.disconnect(id);
            }
        });
        handler.set(Some(id));
    });
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

    /// Shows what `Status()` said and hands the connection to the pages, which read the
    /// rest themselves.
    fn loaded(&mut self, status: Result<Status, Error>) {
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
                self.history_view.emit(HistoryViewInput::Clear);
            }
            Err(e) => {
                // Without a status there is nothing trustworthy to show.
                self.fail(&e);
                self.policy_view.emit(PolicyViewInput::Clear);
                self.machines_view.emit(MachinesViewInput::Clear);
                self.blocklists_view.emit(BlocklistsViewInput::Clear);
                self.activity_view.emit(ActivityViewInput::Clear);
                self.history_view.emit(HistoryViewInput::Clear);
                return;
            }
        }
        let Some(connection) = &self.connection else {
            return;
        };
        // Each page reads for itself; a new generation may have changed what each shows.
        self.machines_view
            .emit(MachinesViewInput::Load(connection.clone()));
        self.blocklists_view
            .emit(BlocklistsViewInput::Load(connection.clone()));
        // Followed already on this connection, the page keeps following.
        self.activity_view
            .emit(ActivityViewInput::Load(connection.clone()));
        if self.firewall_refused.is_none() {
            self.policy_view
                .emit(PolicyViewInput::Load(connection.clone()));
            self.history_view
                .emit(HistoryViewInput::Load(connection.clone()));
        }
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

                                add_titled_with_icon[Some("history"), &gettext("History"), "document-open-recent-symbolic"] = model.history_view.widget(),

                                add_titled_with_icon[Some("access"), &gettext("Access"), "system-users-symbolic"] = &access_page.clone(),

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
                .forward(sender.input_sender(), AppInput::Machines),
            status_view: StatusView::builder().launch(()).detach(),
            policy_view: PolicyView::builder()
                .launch(())
                .forward(sender.input_sender(), AppInput::Policy),
            history_view: HistoryView::builder()
                .launch(())
                .forward(sender.input_sender(), AppInput::History),
            blocklists_view: BlocklistsView::builder()
                .launch(())
                .forward(sender.input_sender(), AppInput::Blocklists),
            activity_view: ActivityView::builder()
                .launch(())
                .forward(sender.input_sender(), AppInput::Activity),
        };
        let toast_overlay = model.toaster.overlay_widget();
        // The policy editor fills it and shows it only to those who may manage the policy.
        let access_page = model.policy_view.model().access_page();
        let widgets = view_output!();
        widgets.view_stack.page(&access_page).set_visible(false);
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
        report_first_frame(&root);

        sender.oneshot_command(connect());
        ComponentParts { model, widgets }
    }

    fn update(&mut self, message: Self::Input, sender: ComponentSender<Self>, root: &Self::Root) {
        match message {
            AppInput::About => about(root),
            AppInput::Machines(MachinesViewOutput::Toast(sentence))
            | AppInput::Policy(PolicyViewOutput::Toast(sentence))
            | AppInput::History(HistoryViewOutput::Toast(sentence))
            | AppInput::Blocklists(BlocklistsViewOutput::Toast(sentence))
            | AppInput::Activity(ActivityViewOutput::Toast(sentence)) => {
                self.toast(&sentence);
            }
            AppInput::Machines(MachinesViewOutput::Reconnect)
            | AppInput::Policy(PolicyViewOutput::Changed) => sender.input(AppInput::Refresh),
            AppInput::Policy(PolicyViewOutput::Refused(reason)) => {
                self.firewall_refused = Some(reason);
            }
            AppInput::Policy(PolicyViewOutput::Consoles(consoles)) => {
                self.activity_view
                    .emit(ActivityViewInput::Consoles(consoles));
            }
            AppInput::PageShown(name) => {
                // The rules' hits are read when the page is opened, not only every few seconds.
                if name == "firewall"
                    && self.connection.is_some()
                    && self.firewall_refused.is_none()
                {
                    self.policy_view.emit(PolicyViewInput::ReadHits);
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
            AppCmd::Loaded(status) => {
                self.busy = false;
                self.loaded(*status);
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
                self.machines_view.emit(MachinesViewInput::Disconnected);
            }
        }
    }
}
