//! The main window: connects to the helper over the system bus, shows its status and the live
//! policy, follows `GenerationChanged`, and reports every failure as a toast.
//!
//! Every D-Bus call runs as a relm4 command on the tokio runtime, never on the UI thread:
//! `update` starts commands, `update_cmd` only folds their results into the model.

use crate::a11y;
use crate::config;
use crate::i18n::{gettext, i18n_f};
use crate::policy_view::{PolicyView, PolicyViewInput};
use crate::status_view::{StatusView, StatusViewInput};
use futures_util::StreamExt;
use palisade_dbus::names::BUS_NAME;
use palisade_dbus::policy::{Parsed, Policy};
use palisade_dbus::proxy::{HelperProxy, PolicyProxy};
use palisade_dbus::types::{Finding, Status};
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

/// Which page of the window is showing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    /// Opening the bus and reading for the first time.
    Connecting,
    /// The bus or the helper cannot be reached.
    Unreachable,
    /// The helper refused to tell this user anything.
    Denied,
    /// Status and policy are shown.
    Ready,
}

impl Page {
    /// The name of the page in the stack.
    fn name(self) -> &'static str {
        match self {
            Page::Connecting => "connecting",
            Page::Unreachable => "unreachable",
            Page::Denied => "denied",
            Page::Ready => "ready",
        }
    }
}

/// The root component: the window.
pub struct App {
    /// The page showing.
    page: Page,
    /// The sentence explaining why the helper is unreachable or refused.
    reason: String,
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
    /// The helper's status.
    status_view: Controller<StatusView>,
    /// The live policy.
    policy_view: Controller<PolicyView>,
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
}

/// What one read of the helper returned.
#[derive(Debug)]
pub struct Snapshot {
    /// `Status()`.
    status: Result<Status, Error>,
    /// `Get()`, parsed.
    policy: Result<LivePolicy, Error>,
}

/// The live policy document, parsed with the contract's validation.
#[derive(Debug)]
pub struct LivePolicy {
    /// Its generation.
    generation: u64,
    /// The policy, or why this app could not read it.
    parsed: Result<Parsed, Vec<Finding>>,
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

/// Reads status and policy at once.
async fn load(connection: zbus::Connection) -> AppCmd {
    let (status, policy) = tokio::join!(read_status(&connection), read_policy(&connection));
    AppCmd::Loaded(Box::new(Snapshot { status, policy }))
}

async fn read_status(connection: &zbus::Connection) -> Result<Status, Error> {
    HelperProxy::new(connection).await?.status().await
}

async fn read_policy(connection: &zbus::Connection) -> Result<LivePolicy, Error> {
    let (generation, document) = PolicyProxy::new(connection).await?.get().await?;
    // A policy can hold a million blocklist entries: parse it off the async workers.
    let parsed = tokio::task::spawn_blocking(move || Policy::parse(document.as_bytes()))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(LivePolicy { generation, parsed })
}

/// Forwards `GenerationChanged` and changes of the helper's name owner until the bus closes.
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

/// The sentence with its first letter in upper case (the helper's sentences start in lower case
/// so that command-line tools can prefix them).
fn capitalized(sentence: &str) -> String {
    let mut chars = sentence.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
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
        self.page = if matches!(e, Error::NotAuthorized(_)) {
            Page::Denied
        } else {
            Page::Unreachable
        };
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
            capitalized(&self.reason)
        )
    }

    fn loaded(&mut self, snapshot: Snapshot) {
        match snapshot.status {
            Ok(status) => {
                self.dismiss_stale_toast();
                self.page = Page::Ready;
                self.generation = Some(status.generation);
                self.status_view.emit(StatusViewInput::Show(status));
            }
            Err(e) => {
                // Without a status there is nothing trustworthy to show.
                self.fail(&e);
                self.policy_view.emit(PolicyViewInput::Clear);
                return;
            }
        }
        match snapshot.policy {
            Ok(LivePolicy {
                generation,
                parsed: Ok(parsed),
            }) => self.policy_view.emit(PolicyViewInput::Show {
                generation,
                policy: Box::new(parsed.policy),
                warnings: parsed.warnings,
            }),
            Ok(LivePolicy {
                generation,
                parsed: Err(findings),
            }) => {
                self.toast(&gettext(
                    "The live policy does not validate in this version of the app",
                ));
                self.policy_view.emit(PolicyViewInput::Unreadable {
                    generation,
                    findings,
                });
            }
            Err(e) => {
                self.toast(&e.sentence());
                self.policy_view.emit(PolicyViewInput::Clear);
            }
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
                    set_title_widget = &adw::WindowTitle {
                        set_title: &gettext("Palisade"),
                        set_subtitle: &gettext("Firewall policy"),
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

                        add_named[Some("ready")] = &gtk::ScrolledWindow {
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
            connection: None,
            busy: true,
            reload_queued: false,
            watching: false,
            generation: None,
            stale_toast: None,
            toaster: Toaster::default(),
            status_view: StatusView::builder().launch(()).detach(),
            policy_view: PolicyView::builder().launch(()).detach(),
        };
        let toast_overlay = model.toaster.overlay_widget();
        let widgets = view_output!();

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
                if self.generation != Some(generation) {
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::capitalized;

    #[test]
    fn capitalizes_the_first_letter_only() {
        assert_eq!(capitalized("cannot reach it: X"), "Cannot reach it: X");
        assert_eq!(capitalized("éa"), "Éa");
        assert_eq!(capitalized(""), "");
    }
}
