//! "Activity": what the firewall's logged rules decided (every rule with `log = true`, every
//! VM's default action, console refusals), newest first, as it happens. A search and a VM
//! filter narrow the list; a chart shows the drops of each minute of the last hour; **Allow
//! this** on a refused packet opens a dialog with the policy snippet that would let it through,
//! to copy (it applies nothing). A user the helper does not let read the log is told so, with
//! its sentence.
//!
//! The page owns its calls: the window hands it the bus connection each time it reads the
//! helper, and the page, on a relm4 command of its own, subscribes to `Logged`, asks to be
//! followed, reads the last hour (`Log.Show`) and then passes on what is logged, until the
//! window gives it another connection or none. When the helper restarts, the command follows
//! the new one and reads the last hour again.

use crate::activity::{self, DropChart, Filter, RemoteConsoleHint, MINUTES};
use crate::activity_row::ActivityRow;
use crate::i18n::gettext;
use crate::{a11y, format};
use futures_util::StreamExt;
use palisade_dbus::names::BUS_NAME;
use palisade_dbus::proxy::LogProxy;
use palisade_dbus::types::LoggedPacket;
use palisade_dbus::Error;
use relm4::adw::prelude::*;
use relm4::gtk::glib;
use relm4::typed_view::list::TypedListView;
use relm4::{
    adw, gtk, Component, ComponentParts, ComponentSender, RelmWidgetExt, Sender, ShutdownReceiver,
};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// Rows the list keeps; older ones are dropped as new ones come.
const MAX_ROWS: u32 = 1_000;
/// What the page reads when it opens: the last hour, as much as the helper gives at once.
const SHOW_MS: u64 = 3_600_000;
const SHOW_MAX: u32 = 10_000;
/// How often the chart moves on when nothing is logged.
const CHART_EVERY: Duration = Duration::from_secs(15);

/// Unix milliseconds now.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What the page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shown {
    /// Nothing read yet.
    Loading,
    /// The entries (perhaps none).
    Entries,
    /// The helper does not let this user read the log; its sentence.
    Refused(String),
}

/// The Activity page.
pub struct ActivityView {
    /// What the page shows.
    shown: Shown,
    /// The connection the log is followed on.
    connection: Option<zbus::Connection>,
    /// Numbers the page's follow commands, so the results of one it stopped are ignored.
    run: u64,
    /// Dropping it stops the running follow command.
    stop: Option<oneshot::Sender<()>>,
    /// The rows, newest first.
    list: TypedListView<ActivityRow, gtk::NoSelection>,
    /// What the search and the VM filter let through; the list's filter reads it.
    filter: Rc<RefCell<Filter>>,
    /// The VMs the filter offers after "All virtual machines", sorted.
    vms: Vec<String>,
    /// The filter's choices, as the drop-down shows them.
    vm_choices: gtk::StringList,
    /// Drops per minute.
    chart: DropChart,
    /// The bars the chart draws.
    bars: Rc<Cell<[u32; MINUTES]>>,
    /// The chart.
    chart_area: gtk::DrawingArea,
    /// The chart's numbers in words, shown above it.
    chart_words: String,
    /// Entries the helper could not log since the page was filled.
    missed: u64,
    /// Rows the filter lets through.
    visible: u32,
    /// The live policy's remote consoles, for the snippet of a console refusal.
    consoles: Vec<RemoteConsoleHint>,
}

impl std::fmt::Debug for ActivityView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivityView")
            .field("shown", &self.shown)
            .field("rows", &self.list.len())
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

/// Messages to the Activity page.
#[derive(Debug)]
pub enum ActivityViewInput {
    /// Follow the log over this connection (the window read the helper again); nothing
    /// changes when it is already followed on it.
    Load(zbus::Connection),
    /// Stop following and show nothing: the helper cannot be reached.
    Clear,
    /// The live policy's remote consoles.
    Consoles(Vec<RemoteConsoleHint>),
    /// The search changed.
    Search(String),
    /// The VM filter changed to its choice at this position (0: all).
    Vm(u32),
    /// **Allow this** was clicked on this packet's row.
    Allow(Box<LoggedPacket>),
}

/// What the page asks the window to do.
#[derive(Debug)]
pub enum ActivityViewOutput {
    /// Show this sentence as a toast.
    Toast(String),
}

/// Results of the page's follow command and timer.
#[derive(Debug)]
pub enum ActivityViewCmd {
    /// The last hour, read after following started (again, after the helper restarted).
    Filled {
        /// The follow command.
        run: u64,
        /// Oldest first.
        packets: Vec<LoggedPacket>,
    },
    /// New entries.
    Logged {
        /// The follow command.
        run: u64,
        /// Oldest first.
        packets: Vec<LoggedPacket>,
        /// Entries the helper could not log since the last ones.
        missed: u64,
    },
    /// The follow command ended, with the reason when it failed.
    Ended {
        /// The follow command.
        run: u64,
        /// Why, when it failed.
        error: Option<Error>,
    },
    /// Time to move the chart on.
    Tick,
}

/// Follows the log until `stop` fires or the connection closes, then says so.
async fn follow(
    connection: zbus::Connection,
    run: u64,
    out: Sender<ActivityViewCmd>,
    stop: oneshot::Receiver<()>,
) {
    let error = follow_until(&connection, run, &out, stop).await.err();
    out.emit(ActivityViewCmd::Ended { run, error });
}

async fn follow_until(
    connection: &zbus::Connection,
    run: u64,
    out: &Sender<ActivityViewCmd>,
    mut stop: oneshot::Receiver<()>,
) -> Result<(), Error> {
    let proxy = LogProxy::new(connection).await?;
    // Subscribed before asking to be followed, so nothing logged in between is lost.
    let mut logged = proxy.receive_logged().await?;
    let bus = zbus::fdo::DBusProxy::new(connection).await?;
    let mut owners = bus
        .receive_name_owner_changed_with_args(&[(0, BUS_NAME)])
        .await?;
    loop {
        proxy.follow("").await?;
        // Read after following started: an entry logged meanwhile comes both ways, and its
        // sequence number tells the second one.
        let packets = proxy
            .show("", now_ms().saturating_sub(SHOW_MS), SHOW_MAX)
            .await?;
        let mut last = packets.last().map(|p| p.seq);
        out.emit(ActivityViewCmd::Filled { run, packets });
        loop {
            tokio::select! {
                _ = &mut stop => {
                    // The page lets go; the helper would also forget us when we leave the bus.
                    let _ = proxy.unfollow("").await;
                    return Ok(());
                }
                signal = logged.next() => {
                    let Some(signal) = signal else {
                        return Ok(());
                    };
                    let Ok(args) = signal.args() else {
                        continue;
                    };
                    let packets: Vec<LoggedPacket> = args
                        .packets()
                        .iter()
                        .filter(|p| last.is_none_or(|seen| p.seq > seen))
                        .cloned()
                        .collect();
                    if let Some(p) = packets.last() {
                        last = Some(p.seq);
                    }
                    out.emit(ActivityViewCmd::Logged {
                        run,
                        packets,
                        missed: *args.missed(),
                    });
                }
                change = owners.next() => {
                    let Some(change) = change else {
                        return Ok(());
                    };
                    // A new helper knows no followers: follow it and read again. While there is
                    // none, wait for it.
                    if change.args().is_ok_and(|a| a.new_owner.is_some()) {
                        break;
                    }
                }
            }
        }
    }
}

impl ActivityView {
    fn page(&self) -> &'static str {
        match &self.shown {
            Shown::Refused(_) => "denied",
            Shown::Loading | Shown::Entries => "log",
        }
    }

    fn list_page(&self) -> &'static str {
        match &self.shown {
            Shown::Loading => "loading",
            _ if self.list.is_empty() => "empty",
            _ if self.visible == 0 => "none-match",
            _ => "rows",
        }
    }

    fn denied_description(&self) -> String {
        let reason = match &self.shown {
            Shown::Refused(reason) => format::capitalized(reason),
            Shown::Loading | Shown::Entries => String::new(),
        };
        format!(
            "{}\n\n{}",
            gettext("Your account may not read the firewall's activity log. Ask the administrator of this computer."),
            reason
        )
    }

    fn missed_note(&self) -> String {
        activity::missed_note(self.missed)
    }

    fn toast(&self, sender: &ComponentSender<Self>, sentence: String) {
        sender
            .output_sender()
            .emit(ActivityViewOutput::Toast(sentence));
    }

    /// Stops the follow command, if one runs.
    fn stop(&mut self) {
        // Dropping the sender wakes the command, which unfollows and ends.
        self.stop = None;
        self.run += 1;
    }

    fn start(&mut self, connection: zbus::Connection, sender: &ComponentSender<Self>) {
        self.stop();
        let (tx, rx) = oneshot::channel();
        self.stop = Some(tx);
        self.connection = Some(connection.clone());
        let run = self.run;
        sender.command(move |out, shutdown: ShutdownReceiver| {
            shutdown
                .register(follow(connection, run, out, rx))
                .drop_on_shutdown()
        });
    }

    fn clear_rows(&mut self) {
        self.list.clear();
        self.chart.clear();
        self.missed = 0;
        self.redraw_chart();
        self.count_visible();
    }

    /// Adds entries (oldest first) at the top, keeping [`MAX_ROWS`].
    fn add(&mut self, packets: Vec<LoggedPacket>, sender: &ComponentSender<Self>) {
        let now = now_ms();
        for p in &packets {
            self.chart.add(p);
            for vm in activity::vms_of(p) {
                self.offer_vm(vm);
            }
        }
        let skip = packets.len().saturating_sub(MAX_ROWS as usize);
        for p in packets.into_iter().skip(skip) {
            self.list
                .insert(0, ActivityRow::new(p, now, sender.input_sender().clone()));
        }
        while self.list.len() > MAX_ROWS {
            self.list.remove(self.list.len() - 1);
        }
        self.redraw_chart();
        self.count_visible();
    }

    /// Adds `vm` to the filter's choices, in order, unless it is there.
    fn offer_vm(&mut self, vm: &str) {
        if let Err(i) = self.vms.binary_search_by(|v| v.as_str().cmp(vm)) {
            self.vms.insert(i, vm.to_owned());
            // After "All virtual machines"; the drop-down keeps its choice where it moves.
            self.vm_choices
                .splice(u32::try_from(i + 1).unwrap_or(u32::MAX), 0, &[vm]);
        }
    }

    fn count_visible(&mut self) {
        self.visible = self.list.selection_model.n_items();
    }

    fn refilter(&mut self) {
        self.list.notify_filter_changed(0);
        self.count_visible();
    }

    fn redraw_chart(&mut self) {
        let now = now_ms();
        self.chart.prune(now);
        let bars = self.chart.bars(now);
        self.bars.set(bars);
        self.chart_words = activity::chart_description(&bars);
        // GTK gives screen readers the tooltip as the chart's description.
        self.chart_area.set_tooltip_text(Some(&self.chart_words));
        self.chart_area.queue_draw();
    }

    /// Opens the dialog of **Allow this** for `packet`.
    fn allow(&self, packet: &LoggedPacket, root: &gtk::Stack) {
        let Some(snippet) = activity::allow_snippet(packet, &self.consoles) else {
            return;
        };
        let dialog = adw::MessageDialog::new(
            root.toplevel_window().as_ref(),
            Some(&gettext("Allow This Traffic")),
            Some(&activity::allow_body(packet)),
        );
        let text = gtk::Label::new(Some(&snippet));
        text.set_use_markup(false);
        text.set_selectable(true);
        text.set_xalign(0.0);
        text.set_wrap(true);
        text.set_wrap_mode(gtk::pango::WrapMode::WordChar);
        text.add_css_class("monospace");
        text.set_margin_all(12);
        let frame = gtk::Frame::new(None);
        frame.set_child(Some(&text));
        let copy = a11y::text_button(&gettext("Copy"), &gettext("Copy the policy snippet"));
        copy.set_halign(gtk::Align::End);
        copy.connect_clicked(move |button| {
            button.clipboard().set_text(&snippet);
            // Translators: the Copy button after it copied the snippet.
            button.set_label(&gettext("Copied"));
            // Read to screen readers as the button's description.
            button.set_tooltip_text(Some(&gettext("The snippet is on the clipboard")));
        });
        let content = gtk::Box::new(gtk::Orientation::Vertical, 12);
        content.append(&frame);
        content.append(&copy);
        dialog.set_extra_child(Some(&content));
        dialog.add_response("close", &gettext("_Close"));
        dialog.set_default_response(Some("close"));
        dialog.set_close_response("close");
        dialog.present();
    }
}

#[relm4::component(pub)]
impl Component for ActivityView {
    type Init = ();
    type Input = ActivityViewInput;
    type Output = ActivityViewOutput;
    type CommandOutput = ActivityViewCmd;

    view! {
        gtk::Stack {
            set_transition_type: gtk::StackTransitionType::Crossfade,

            add_named[Some("denied")] = &adw::StatusPage {
                set_icon_name: Some("system-lock-screen-symbolic"),
                set_title: &gettext("Not allowed"),
                #[watch]
                set_description: Some(&glib::markup_escape_text(&model.denied_description())),
            },

            add_named[Some("log")] = &gtk::Box {
                set_orientation: gtk::Orientation::Vertical,

                adw::Clamp {
                    set_maximum_size: 720,

                    gtk::Box {
                        set_orientation: gtk::Orientation::Vertical,
                        set_spacing: 12,
                        set_margin_all: 18,

                        gtk::Label {
                            set_xalign: 0.0,
                            set_wrap: true,
                            add_css_class: "warning",
                            #[watch]
                            set_label: &model.missed_note(),
                            #[watch]
                            set_visible: model.missed > 0,
                        },

                        gtk::Box {
                            set_spacing: 12,

                            #[local_ref]
                            search -> gtk::SearchEntry {
                                set_hexpand: true,
                                set_placeholder_text: Some(&gettext("Search by VM, user, address, port, protocol or rule")),
                                connect_search_changed[sender] => move |entry| {
                                    sender.input(ActivityViewInput::Search(entry.text().to_string()));
                                },
                            },

                            #[local_ref]
                            vm_filter -> gtk::DropDown {
                                set_model: Some(&model.vm_choices),
                                connect_selected_notify[sender] => move |dropdown| {
                                    sender.input(ActivityViewInput::Vm(dropdown.selected()));
                                },
                            },
                        },

                        gtk::Label {
                            set_xalign: 0.0,
                            set_wrap: true,
                            add_css_class: "heading",
                            #[watch]
                            set_label: &model.chart_words,
                        },

                        #[local_ref]
                        chart_area -> gtk::DrawingArea {
                            set_content_height: 64,
                            set_hexpand: true,
                        },
                    },
                },

                gtk::Separator {},

                gtk::Stack {
                    set_vexpand: true,

                    add_named[Some("loading")] = &adw::StatusPage {
                        set_icon_name: Some("network-transmit-receive-symbolic"),
                        set_title: &gettext("Reading the activity log…"),
                    },

                    add_named[Some("empty")] = &adw::StatusPage {
                        set_icon_name: Some("network-transmit-receive-symbolic"),
                        set_title: &gettext("Nothing logged in the last hour"),
                        set_description: Some(&glib::markup_escape_text(&gettext("Packets a VM's default action, a rule with log = true or the console guard decides appear here as they happen."))),
                    },

                    add_named[Some("none-match")] = &adw::StatusPage {
                        set_icon_name: Some("edit-find-symbolic"),
                        set_title: &gettext("No entries match"),
                        set_description: Some(&gettext("Try other words or all virtual machines")),
                    },

                    add_named[Some("rows")] = &gtk::ScrolledWindow {
                        set_hscrollbar_policy: gtk::PolicyType::Never,

                        adw::ClampScrollable {
                            set_maximum_size: 720,

                            #[local_ref]
                            list_view -> gtk::ListView {
                                add_css_class: "rich-list",
                            },
                        },
                    },

                    #[watch]
                    set_visible_child_name: model.list_page(),
                },
            },

            #[watch]
            set_visible_child_name: model.page(),
        }
    }

    fn init(
        _init: Self::Init,
        root: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let filter = Rc::new(RefCell::new(Filter::default()));
        let mut list = TypedListView::<ActivityRow, gtk::NoSelection>::new();
        let shared = Rc::clone(&filter);
        list.add_filter(move |row: &ActivityRow| shared.borrow().accepts(&row.packet, &row.search));

        let bars = Rc::new(Cell::new([0; MINUTES]));
        // An image to assistive technologies; its tooltip, and the label above it, say its numbers.
        let chart_area = a11y::image::<gtk::DrawingArea>(&gettext("Chart of drops per minute"));
        let drawn = Rc::clone(&bars);
        chart_area.set_draw_func(move |area, cr, width, height| {
            draw_bars(area, cr, width, height, &drawn.get());
        });

        let mut model = ActivityView {
            shown: Shown::Loading,
            connection: None,
            run: 0,
            stop: None,
            list,
            filter,
            vms: Vec::new(),
            vm_choices: gtk::StringList::new(&[&gettext("All virtual machines")]),
            chart: DropChart::default(),
            bars,
            chart_area: chart_area.clone(),
            chart_words: String::new(),
            missed: 0,
            visible: 0,
            consoles: Vec::new(),
        };
        let list_view = &model.list.view;
        let chart_area = &model.chart_area;
        let search = &a11y::named::<gtk::SearchEntry>(&gettext("Search the activity"));
        let vm_filter = &a11y::named::<gtk::DropDown>(&gettext("Show the activity of"));
        let widgets = view_output!();

        sender.command(|out, shutdown: ShutdownReceiver| {
            shutdown
                .register(async move {
                    let mut ticks = tokio::time::interval(CHART_EVERY);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        ticks.tick().await;
                        out.emit(ActivityViewCmd::Tick);
                    }
                })
                .drop_on_shutdown()
        });
        model.redraw_chart();
        ComponentParts { model, widgets }
    }

    fn update(&mut self, message: Self::Input, sender: ComponentSender<Self>, root: &Self::Root) {
        match message {
            ActivityViewInput::Load(connection) => {
                let same = self.stop.is_some()
                    && self
                        .connection
                        .as_ref()
                        .is_some_and(|c| c.unique_name() == connection.unique_name());
                if !same {
                    self.start(connection, &sender);
                }
            }
            ActivityViewInput::Clear => {
                self.stop();
                self.connection = None;
                self.shown = Shown::Loading;
                self.clear_rows();
            }
            ActivityViewInput::Consoles(consoles) => self.consoles = consoles,
            ActivityViewInput::Search(query) => {
                self.filter.borrow_mut().query = query;
                self.refilter();
            }
            ActivityViewInput::Vm(position) => {
                let vm = position
                    .checked_sub(1)
                    .and_then(|i| self.vms.get(i as usize))
                    .cloned();
                self.filter.borrow_mut().vm = vm;
                self.refilter();
            }
            ActivityViewInput::Allow(packet) => self.allow(&packet, root),
        }
    }

    fn update_cmd(
        &mut self,
        message: Self::CommandOutput,
        sender: ComponentSender<Self>,
        _root: &Self::Root,
    ) {
        match message {
            ActivityViewCmd::Tick => self.redraw_chart(),
            ActivityViewCmd::Filled { run, packets } if run == self.run => {
                self.shown = Shown::Entries;
                self.clear_rows();
                self.add(packets, &sender);
            }
            ActivityViewCmd::Logged {
                run,
                packets,
                missed,
            } if run == self.run => {
                self.missed = self.missed.saturating_add(missed);
                self.add(packets, &sender);
            }
            ActivityViewCmd::Ended { run, error } if run == self.run => {
                self.stop = None;
                match error {
                    None => {}
                    Some(Error::NotAuthorized(reason)) => {
                        self.shown = Shown::Refused(reason);
                        self.clear_rows();
                    }
                    Some(e) => self.toast(&sender, e.sentence()),
                }
            }
            // From a follow command the page has stopped since.
            ActivityViewCmd::Filled { .. }
            | ActivityViewCmd::Logged { .. }
            | ActivityViewCmd::Ended { .. } => {}
        }
    }
}

/// Draws `bars` in the theme's colours: the error colour for drops, the text colour faintly for
/// the baseline; the tallest bar fills the height.
fn draw_bars(
    area: &gtk::DrawingArea,
    cr: &gtk::cairo::Context,
    width: i32,
    height: i32,
    bars: &[u32; MINUTES],
) {
    let style = area.style_context();
    let text = style.color();
    let bar = style.lookup_color("error_color").unwrap_or(text);
    let (w, h) = (f64::from(width), f64::from(height));
    let most = f64::from(bars.iter().copied().max().unwrap_or(0).max(1));
    let slot = w / MINUTES as f64;
    let gap = if slot > 4.0 { 1.0 } else { 0.0 };

    cr.set_source_rgba(
        f64::from(text.red()),
        f64::from(text.green()),
        f64::from(text.blue()),
        0.25,
    );
    cr.rectangle(0.0, h - 1.0, w, 1.0);
    let _ = cr.fill();

    cr.set_source_rgba(
        f64::from(bar.red()),
        f64::from(bar.green()),
        f64::from(bar.blue()),
        f64::from(bar.alpha()),
    );
    for (i, &n) in bars.iter().enumerate() {
        if n == 0 {
            continue;
        }
        // At least two pixels, so a single drop is seen beside a flood.
        let bar_h = (h - 1.0) * f64::from(n) / most;
        let bar_h = bar_h.max(2.0);
        cr.rectangle(
            i as f64 * slot + gap,
            h - 1.0 - bar_h,
            slot - 2.0 * gap,
            bar_h,
        );
    }
    let _ = cr.fill();
}
