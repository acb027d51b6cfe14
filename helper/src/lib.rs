//! palisade-helper: the root side of Palisade.
//!
//! Owns table `inet palisade` and the QEMU processes; serves `io.palisade.Helper1` on the
//! system bus with a polkit check before every method. With `--apply-only` it loads the last
//! confirmed policy into the kernel and exits, which is what the boot unit runs before the
//! network comes up.
//!
//! The program is this library's [`main`]; the library exists so that the fuzz targets
//! (`fuzz/`) reach the parsers through [`fuzzing`]. Everything else stays private to it.

mod accounts;
mod authz;
mod blocklist;
mod bus;
mod clock;
mod console;
mod dns;
mod dropins;
mod firewall;
pub mod fuzzing;
mod lab;
mod lists;
mod log;
mod machines;
mod memory;
mod metrics;
mod preflight;
mod store;
#[cfg(test)]
mod test_support;
mod vm;

use anyhow::Context;
use clap::Parser;
use palisade_dbus::names::{BUS_NAME, OBJECT_PATH};
use std::path::PathBuf;
use tokio::signal::unix::{signal, SignalKind};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "palisade-helper",
    version,
    about = "Palisade's privileged helper"
)]
struct Args {
    /// Connect to this bus address instead of the system bus (tests).
    #[arg(long, value_name = "ADDRESS")]
    bus_address: Option<String>,
    /// Where generations and state are kept.
    #[arg(long, default_value = "/var/lib/palisade")]
    state_dir: PathBuf,
    /// Where the local policy file and the admin's drop-ins (`policy.d/`) live.
    #[arg(long, default_value = "/etc/palisade")]
    config_dir: PathBuf,
    /// Where packages put their drop-ins (`policy.d/`).
    #[arg(long, default_value = "/usr/lib/palisade")]
    vendor_dir: PathBuf,
    /// Load the last confirmed policy into the kernel and exit (boot).
    #[arg(long)]
    apply_only: bool,
}

/// The helper program: parses the command line, then serves until SIGTERM.
pub fn main() -> anyhow::Result<()> {
    memory::use_one_arena();
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PALISADE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Two worker threads: the helper waits on the bus, polkit and nft; it never computes much.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    preflight::check()?;
    let store = store::Store::open(&args.state_dir, &args.config_dir)
        .with_context(|| format!("cannot open {}", args.state_dir.display()))?;
    // The supervisor exists before the firewall: the ruleset guards the console ports it
    // allocated, at boot too.
    let supervisor = vm::supervisor::Supervisor::new(vm::supervisor::Paths {
        images: args.state_dir.join("images"),
        run: args.state_dir.join("run"),
        state: args.state_dir.clone(),
    });
    let list_store = std::sync::Arc::new(
        blocklist::store::ListStore::open(&args.state_dir.join("lists"))
            .with_context(|| format!("cannot open {}", args.state_dir.join("lists").display()))?,
    );
    let forwarder = dns::Forwarder::new(list_store.clone())
        .context("cannot start the DNS forwarder's admission thread")?;
    let files = dropins::PolicyFiles::new(&args.config_dir, &args.vendor_dir);
    if let Err(e) = files.create_admin_dir() {
        tracing::warn!("cannot create {}: {e}", files.admin_dir.display());
    }
    let firewall = firewall::Firewall::start(
        store,
        files.clone(),
        supervisor.clone(),
        forwarder.clone(),
        list_store.clone(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.apply_only {
        return Ok(());
    }
    supervisor.adopt(&firewall.live_policy().1).await;

    let builder = match &args.bus_address {
        Some(address) => zbus::connection::Builder::address(address.as_str()),
        None => zbus::connection::Builder::system(),
    };
    let connection = builder.build().await.context("cannot connect to the bus")?;
    let authority = authz::Authority::new(connection.clone());
    // Serve the object first, then take the name, so a client activated by the name never
    // finds an empty object.
    let server = connection.object_server();
    server
        .at(
            OBJECT_PATH,
            bus::HelperIface {
                firewall: firewall.clone(),
                authority: authority.clone(),
            },
        )
        .await?;
    server
        .at(
            OBJECT_PATH,
            bus::PolicyIface {
                firewall: firewall.clone(),
                authority: authority.clone(),
            },
        )
        .await?;
    server
        .at(
            OBJECT_PATH,
            bus::vms::VmsIface {
                machines: machines::Machines::new(firewall.clone(), supervisor.clone()),
                authority: authority.clone(),
            },
        )
        .await?;
    server
        .at(
            OBJECT_PATH,
            bus::consoles::ConsolesIface {
                consoles: console::Consoles::new(firewall.clone(), supervisor.clone()),
                authority: authority.clone(),
            },
        )
        .await?;
    server
        .at(
            OBJECT_PATH,
            bus::dns::DnsIface {
                forwarder: forwarder.clone(),
                authority: authority.clone(),
            },
        )
        .await?;
    let drop_log = log::DropLog::start(firewall.clone(), &args.state_dir);
    server
        .at(
            OBJECT_PATH,
            bus::log::LogIface {
                log: drop_log.clone(),
                authority: authority.clone(),
            },
        )
        .await?;
    let lists = std::sync::Arc::new(lists::Lists::new(list_store, firewall.clone()));
    server
        .at(
            OBJECT_PATH,
            bus::blocklists::BlocklistsIface {
                lists: lists.clone(),
                authority,
            },
        )
        .await?;
    connection
        .request_name(BUS_NAME)
        .await
        .context("cannot own the bus name")?;
    tracing::info!("serving {BUS_NAME}");

    tokio::spawn(firewall.clone().run_expiry());
    tokio::spawn(dropins::watch(firewall.clone(), files));
    // A remote console's host answered a new address: its console sets are structure.
    let mut moved = forwarder.reinstall_requests();
    let fw = firewall.clone();
    tokio::spawn(async move {
        while moved.changed().await.is_ok() {
            if let Err(e) = fw.reinstall().await {
                tracing::warn!("cannot install the policy again for a moved console: {e}");
            }
        }
    });
    tokio::spawn(lists.run_refresh());
    tokio::spawn(revoke_lost_console_access(
        firewall.clone(),
        supervisor.clone(),
    ));
    let mut changes = firewall.subscribe();
    let emitter = zbus::object_server::SignalEmitter::new(&connection, OBJECT_PATH)?.into_owned();
    tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            let generation = *changes.borrow_and_update();
            if let Err(e) = bus::PolicyIface::generation_changed(&emitter, generation).await {
                tracing::warn!("cannot announce generation {generation}: {e}");
            }
        }
    });

    tokio::spawn(metrics::run(firewall.clone(), drop_log.clone()));
    tokio::spawn(deliver_drop_log(drop_log, connection.clone()));

    let bus = connection.clone();
    let mut states = supervisor.subscribe();
    let emitter = zbus::object_server::SignalEmitter::new(&connection, OBJECT_PATH)?.into_owned();
    tokio::spawn(async move {
        loop {
            match states.recv().await {
                Ok((name, state)) => {
                    if let Ok(iface) = connection
                        .object_server()
                        .interface::<_, bus::vms::VmsIface>(OBJECT_PATH)
                        .await
                    {
                        let _ = iface.get().await.states_invalidate(&emitter).await;
                    }
                    if let Err(e) =
                        bus::vms::VmsIface::state_changed(&emitter, name.as_str(), state).await
                    {
                        tracing::warn!("cannot announce {name} {state}: {e}");
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
    });

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        // Without the bus nobody can reach the helper: exit with an error, so that systemd
        // (Restart=on-failure) starts it again once the bus is back. The ruleset stays.
        () = bus.closed() => {
            anyhow::bail!(
                "lost the connection to the D-Bus system bus; exiting so that systemd starts \
                 the helper again (the live ruleset stays in the kernel)"
            );
        }
    }
    // The kernel keeps enforcing the live ruleset after we are gone.
    tracing::info!("stopping; the live ruleset stays in the kernel");
    Ok(())
}

/// Sends each burst of the drop log to its followers, each its own share in a signal addressed
/// to it alone; a follower that left the bus is forgotten.
async fn deliver_drop_log(drop_log: std::sync::Arc<log::DropLog>, connection: zbus::Connection) {
    use futures_util::StreamExt;
    let mut deliveries = drop_log.deliveries();
    let left = async {
        let Ok(bus) = zbus::fdo::DBusProxy::new(&connection).await else {
            return;
        };
        let Ok(mut changes) = bus.receive_name_owner_changed().await else {
            return;
        };
        while let Some(change) = changes.next().await {
            if let Ok(args) = change.args() {
                if args.new_owner().is_none() {
                    drop_log.unfollow(args.name().as_str());
                }
            }
        }
    };
    let deliver = async {
        loop {
            let delivery = match deliveries.recv().await {
                Ok(d) => d,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            };
            for follower in drop_log.followers() {
                let packets: Vec<_> = delivery
                    .packets
                    .iter()
                    .filter(|p| follower.wants(p))
                    .cloned()
                    .collect();
                if packets.is_empty() && delivery.missed == 0 {
                    continue;
                }
                let emitter = zbus::object_server::SignalEmitter::new(&connection, OBJECT_PATH)
                    .and_then(|e| Ok(e.set_destination(follower.name.as_str().try_into()?)));
                let sent = match emitter {
                    Ok(emitter) => {
                        bus::log::LogIface::logged(&emitter, packets, delivery.missed).await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = sent {
                    tracing::debug!("cannot send the drop log to {}: {e}", follower.name);
                    drop_log.unfollow(&follower.name);
                }
            }
        }
    };
    tokio::join!(left, deliver);
}

/// When a new generation changes who may open a VM's console, everyone watching it is
/// disconnected and its tickets die: the kernel only judges new connections, so without this
/// a user who lost access would keep the session they had.
async fn revoke_lost_console_access(
    firewall: std::sync::Arc<firewall::Firewall>,
    supervisor: std::sync::Arc<vm::supervisor::Supervisor>,
) {
    let mut changes = firewall.subscribe();
    let mut before = firewall.live_policy().1;
    while changes.changed().await.is_ok() {
        let after = firewall.live_policy().1;
        for vm in &before.vms {
            let now = after.vm(vm.name.as_str()).map(|v| &v.console);
            if now != Some(&vm.console) {
                supervisor.revoke_console(&vm.name).await;
            }
        }
        before = after;
    }
}
