//! palisadectl: Palisade from the command line, on the same proxies as the app.
//!
//! Human output by default, `--json` for scripts. Exit codes: 0 ok, 64 bad usage or argument,
//! 65 invalid policy, 66 not found, 69 helper unreachable, 70 helper failure, 75 conflict or
//! rate limit (try again), 77 not authorized. Errors print the helper's own sentence.

#[path = "palisadectl/blocklist.rs"]
mod blocklist;
#[path = "palisadectl/console.rs"]
mod console;
#[path = "palisadectl/dns.rs"]
mod dns;
#[path = "palisadectl/log.rs"]
mod log;
#[path = "palisadectl/output.rs"]
mod output;
#[path = "palisadectl/policy.rs"]
mod policy;
#[path = "palisadectl/vm.rs"]
mod vm;

use clap::{Parser, Subcommand};
use output::{print, when};
use palisade_dbus::proxy::{
    BlocklistsProxy, ConsolesProxy, DnsProxy, HelperProxy, LogProxy, PolicyProxy, VmsProxy,
};
use palisade_dbus::types::{DnsNameState, Status};
use palisade_dbus::Error;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "palisadectl",
    version,
    about = "Manage Palisade's firewall policy and virtual machines"
)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Is the helper running, and which policy generation is live?
    Status,
    /// Read, check and change the firewall policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Create, run, update and inspect virtual machines.
    #[command(subcommand)]
    Vm(VmCommand),
    /// Open the consoles you are allowed to.
    #[command(subcommand)]
    Console(ConsoleCommand),
    /// Import and manage big lists of networks and domains the policy names.
    #[command(subcommand)]
    Blocklist(BlocklistCommand),
    /// What the DNS forwarder answered the VMs.
    #[command(subcommand)]
    Dns(dns::DnsCommand),
    /// What the firewall's logged rules decided, and every rule's counters.
    #[command(subcommand)]
    Log(log::LogCommand),
}

#[derive(Debug, Subcommand)]
enum BlocklistCommand {
    /// Import (or replace) a list from a file or an http(s) address: addresses and networks one
    /// per line (plain, FireHOL .netset, Spamhaus DROP), or domains (hosts file, plain list).
    Import {
        /// The list's name, as the policy's [[blocklist]] names it.
        name: String,
        /// The file.
        #[arg(required_unless_present = "url", conflicts_with = "url")]
        file: Option<PathBuf>,
        /// Download the list from this http or https address instead of a file.
        #[arg(long)]
        url: Option<String>,
        /// With --url: how often the helper downloads it again (conditionally: an unchanged list
        /// is not reloaded), e.g. 6h, 1d (the default), 3600; "never" or 0 for never. At least
        /// 5m, at most 30d.
        #[arg(long, requires = "url")]
        refresh: Option<String>,
        /// auto, plain, netset, spamhaus, hosts or domains.
        #[arg(long, default_value = "auto")]
        format: String,
        /// Refuse the whole list at its first bad line instead of skipping it.
        #[arg(long)]
        strict: bool,
        /// Accept a list that covers a whole address family (0.0.0.0/0, ::/0).
        #[arg(long)]
        force: bool,
    },
    /// Download a list imported with --url again now (only what changed is reloaded).
    Refresh {
        /// The list's name.
        name: String,
    },
    /// The imported lists: size, source, last refresh, skipped lines.
    List,
    /// One imported list in detail.
    Show {
        /// The list's name.
        name: String,
    },
    /// Remove a list no rule of the live policy names.
    Remove {
        /// The list's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConsoleCommand {
    /// The consoles you may open.
    List,
    /// Open a console in remote-viewer, with a one-time ticket (no password typing).
    Open {
        /// The VM or remote console.
        name: String,
        /// Print the viewer's .vv file instead of starting the viewer.
        #[arg(long)]
        print_vv: bool,
    },
}

#[derive(Debug, Subcommand)]
enum VmCommand {
    /// The VMs you may operate or open, with their state.
    List,
    /// Create a VM: an empty disk and its entry in the policy. User-mode networking, or a port
    /// on a lab network with --bridge.
    Create {
        /// The VM's name.
        name: String,
        /// Disk size, like 20G.
        #[arg(long, default_value = "20G", allow_hyphen_values = true)]
        disk_size: String,
        /// Memory, like 2G or 2048 (MiB).
        #[arg(long, default_value = "2G", allow_hyphen_values = true)]
        memory: String,
        /// Virtual CPUs.
        #[arg(long, default_value_t = 2)]
        cpus: u32,
        /// Bridge it to this lab network (a [[network]] of the policy).
        #[arg(long, value_name = "NETWORK", requires = "address")]
        bridge: Option<String>,
        /// Its IPv4 address on the lab network.
        #[arg(long, value_name = "A", requires = "bridge")]
        address: Option<String>,
        /// Its MAC address (default: a stable one from QEMU's 52:54:00 range).
        #[arg(long, value_name = "M", requires = "bridge")]
        mac: Option<String>,
        /// A host address it is reachable at and leaves from (its NAT).
        #[arg(long, value_name = "ADDR", requires = "bridge")]
        nat: Option<String>,
        /// Forward a port of the NAT address to the VM, like tcp:2222:22 (repeatable; none:
        /// every port).
        #[arg(
            long = "forward",
            value_name = "PROTO:PORT[:TO_PORT]",
            requires = "nat",
            value_parser = palisade_app::forward::parse_forward
        )]
        forwards: Vec<palisade_app::forward::Forward>,
    },
    /// Delete a stopped VM: its entry in the local policy (a new generation), then its disk
    /// images and every version of them. Asks first unless --yes is given.
    Delete {
        /// The VM.
        name: String,
        /// Do not ask: delete at once (needed when not run from a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Start a VM: ephemeral by default (nothing it does survives a restart).
    Start {
        /// The VM.
        name: String,
        /// Write a new image version instead (promote or discard it after shutdown).
        #[arg(long, conflicts_with = "install")]
        update: bool,
        /// Boot this installer ISO with a new writable image version.
        #[arg(long, value_name = "ISO")]
        install: Option<PathBuf>,
    },
    /// Power a VM down (ACPI), forcing it off after the timeout.
    Stop {
        /// The VM.
        name: String,
        /// Pull the plug at once.
        #[arg(long)]
        force: bool,
        /// Seconds the guest gets to shut down.
        #[arg(long, default_value_t = 60)]
        timeout: u32,
    },
    /// Reset a VM.
    Reset {
        /// The VM.
        name: String,
    },
    /// Make the finished update the new base image.
    Promote {
        /// The VM.
        name: String,
    },
    /// Throw the finished update away.
    Discard {
        /// The VM.
        name: String,
    },
    /// List a VM's image versions.
    Versions {
        /// The VM.
        name: String,
    },
    /// Make an earlier image version the base again.
    Restore {
        /// The VM.
        name: String,
        /// The version.
        version: u32,
    },
    /// Print a VM's network, its exact QEMU command line and its firewall chain.
    Show {
        /// The VM.
        name: String,
    },
    /// Print an nftables ruleset for inside the guest mirroring its policy.
    GuestFirewall {
        /// The VM.
        name: String,
    },
    /// USB devices.
    #[command(subcommand)]
    Usb(UsbCommand),
}

#[derive(Debug, Subcommand)]
enum UsbCommand {
    /// The host's USB devices.
    List,
    /// Attach a device (vendor:product, bus.address, or emulated:usb-tablet) to a running VM.
    Attach {
        /// The VM.
        vm: String,
        /// The device.
        device: String,
    },
    /// Detach a device by its id.
    Detach {
        /// The VM.
        vm: String,
        /// The id `attach` printed.
        id: String,
    },
    /// Devices attached to a running VM.
    Attached {
        /// The VM.
        vm: String,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Print the live local policy (the one `apply` replaces).
    Show {
        /// Print the whole live policy instead: the drop-ins and the local policy merged.
        #[arg(long)]
        merged: bool,
    },
    /// List the files the live policy was merged from, and where drop-ins go.
    Sources,
    /// Check the policy as it would be with FILE in place as an admin drop-in (for
    /// configuration management's validate step); changes nothing.
    Check {
        /// The candidate drop-in (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        candidate: PathBuf,
        /// The drop-in's name in the drop-in folder (default: FILE's own name).
        #[arg(long = "as", value_name = "NAME")]
        name: Option<String>,
    },
    /// Apply the drop-ins as they are on disk now, if they change the live policy.
    Reload {
        /// Bring the previous generation back unless `confirm` follows within SECS seconds.
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        confirm: u32,
    },
    /// Check a policy file and list every problem.
    Validate {
        /// The policy file (`-` for standard input).
        file: PathBuf,
        /// Check here only, without asking the helper.
        #[arg(long)]
        offline: bool,
    },
    /// Show the ruleset a policy file would install and its diff against the live one.
    Preview {
        /// The policy file (`-` for standard input).
        file: PathBuf,
    },
    /// Apply a policy file as a new generation.
    Apply {
        /// The policy file (`-` for standard input).
        file: PathBuf,
        /// Bring the previous generation back unless `confirm` follows within SECS seconds.
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        confirm: u32,
        /// Fail if another generation than BASE is live (default: whatever is live now).
        #[arg(long, value_name = "GEN")]
        base: Option<u64>,
    },
    /// Keep a generation applied with --confirm.
    Confirm {
        /// The pending generation.
        generation: u64,
    },
    /// Apply an earlier generation again, as a new generation.
    Rollback {
        /// The generation to go back to.
        generation: u64,
    },
    /// List every generation.
    History,
    /// Show what changed in the policy from one generation to another.
    Diff {
        /// The earlier generation.
        from: u64,
        /// The later one (the live generation when left out).
        to: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("palisadectl: cannot start: {e}");
            return ExitCode::from(70);
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(code) => code,
        Err(e) => {
            if cli.json {
                let body = serde_json::json!({ "error": error_name(&e), "message": e.sentence() });
                println!("{body}");
            } else {
                eprintln!("palisadectl: {}", e.sentence());
            }
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

fn error_name(e: &Error) -> String {
    use zbus::DBusError;
    match e {
        Error::ZBus(_) => "io.palisade.Error.Unreachable".into(),
        other => other.name().to_string(),
    }
}

async fn run(cli: &Cli) -> Result<ExitCode, Error> {
    if let Command::Policy(PolicyCommand::Validate {
        file,
        offline: true,
    }) = &cli.command
    {
        return policy::validate_offline(cli.json, file);
    }
    let connection = zbus::Connection::system().await?;
    match &cli.command {
        Command::Status => {
            status(
                cli.json,
                &HelperProxy::new(&connection).await?,
                &DnsProxy::new(&connection).await?,
            )
            .await
        }
        Command::Dns(cmd) => dns::run(cli.json, &DnsProxy::new(&connection).await?, cmd).await,
        Command::Log(cmd) => log::run(cli.json, &LogProxy::new(&connection).await?, cmd).await,
        Command::Policy(cmd) => {
            policy::run(cli.json, &PolicyProxy::new(&connection).await?, cmd).await
        }
        Command::Vm(cmd) => vm::run(cli.json, &VmsProxy::new(&connection).await?, cmd).await,
        Command::Console(cmd) => {
            console::run(cli.json, &ConsolesProxy::new(&connection).await?, cmd).await
        }
        Command::Blocklist(cmd) => {
            blocklist::run(cli.json, &BlocklistsProxy::new(&connection).await?, cmd).await
        }
    }
}

/// What `palisadectl status` reports: the helper's status and the state of the VMs' names.
#[derive(serde::Serialize)]
struct StatusReport {
    #[serde(flatten)]
    status: Status,
    dns_names: Vec<DnsNameState>,
}

/// `palisadectl status`: the helper's version, the live generation, the state of its table, and
/// every name a rule follows that fails to resolve (only that rule is affected).
async fn status(
    json: bool,
    proxy: &HelperProxy<'_>,
    dns: &DnsProxy<'_>,
) -> Result<ExitCode, Error> {
    let report = StatusReport {
        status: proxy.status().await?,
        dns_names: dns.names().await?,
    };
    let s = &report.status;
    print(json, &report, || {
        let mut out = format!(
            "Palisade helper {}\nGeneration: {}{}\nVMs: {}, rules: {}\nTable inet palisade: {}\n",
            s.version,
            s.generation,
            if s.pending_until > 0 {
                format!(
                    " (waiting for confirmation until {})",
                    when(s.pending_until)
                )
            } else {
                String::new()
            },
            s.vms,
            s.rules,
            if s.table_present {
                "present"
            } else {
                "MISSING"
            },
        );
        out.push_str(&format!(
            "Made by: {}{}, policy {}\nDrop-ins: {}\n",
            s.source,
            if s.applied_at > 0 {
                format!(" at {}", when(s.applied_at))
            } else {
                String::new()
            },
            s.policy_hash.get(..12).unwrap_or("-"),
            s.drift
        ));
        if !s.problem.is_empty() {
            out.push_str(&format!("Problem: {}\n", s.problem));
        }
        for n in report.dns_names.iter().filter(|n| !n.problem.is_empty()) {
            let rules: Vec<String> = n.rules.iter().map(ToString::to_string).collect();
            out.push_str(&format!(
                "Name {} (VM {}, rule {}) does not resolve: {}\n",
                n.pattern,
                n.vm,
                rules.join(", "),
                n.problem
            ));
        }
        out
    });
    Ok(ExitCode::SUCCESS)
}
