//! palisadectl: Palisade from the command line, on the same proxies as the app.
//!
//! Human output by default, `--json` for scripts. Exit codes: 0 ok, 64 bad usage or argument,
//! 65 invalid policy, 66 not found, 69 helper unreachable, 70 helper failure, 75 conflict or
//! rate limit (try again), 77 not authorized. Errors print the helper's own sentence.

use clap::{Parser, Subcommand};
use palisade_dbus::policy::Policy;
use palisade_dbus::proxy::{ConsolesProxy, HelperProxy, PolicyProxy, VmsProxy};
use palisade_dbus::types::{Finding, Severity};
use palisade_dbus::Error;
use serde::Serialize;
use std::io::Read;
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
    /// Create a VM: an empty disk and its entry in the policy.
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
    /// Print the exact QEMU command line and firewall chain of a VM.
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
    /// Print the live policy.
    Show,
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
        let findings = match Policy::parse(&read_file(file)?) {
            Ok(p) => p.warnings,
            Err(f) => f,
        };
        return Ok(report_findings(cli.json, &findings));
    }
    let connection = zbus::Connection::system().await?;
    match &cli.command {
        Command::Status => {
            let s = HelperProxy::new(&connection).await?.status().await?;
            print(cli.json, &s, || {
                let mut out = format!(
                    "Palisade helper {}\nGeneration: {}{}\nVMs: {}, rules: {}\nTable inet palisade: {}\n",
                    s.version,
                    s.generation,
                    if s.pending_until > 0 {
                        format!(" (waiting for confirmation until {})", when(s.pending_until))
                    } else {
                        String::new()
                    },
                    s.vms,
                    s.rules,
                    if s.table_present { "present" } else { "MISSING" },
                );
                if !s.problem.is_empty() {
                    out.push_str(&format!("Problem: {}\n", s.problem));
                }
                out
            });
        }
        Command::Policy(cmd) => {
            return policy(cli.json, &PolicyProxy::new(&connection).await?, cmd).await
        }
        Command::Vm(cmd) => return vm(cli.json, &VmsProxy::new(&connection).await?, cmd).await,
        Command::Console(cmd) => {
            return console(cli.json, &ConsolesProxy::new(&connection).await?, cmd).await
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn policy(
    json: bool,
    proxy: &PolicyProxy<'_>,
    cmd: &PolicyCommand,
) -> Result<ExitCode, Error> {
    match cmd {
        PolicyCommand::Show => {
            let (generation, document) = proxy.get().await?;
            #[derive(Serialize)]
            struct Shown {
                generation: u64,
                document: String,
            }
            print(
                json,
                &Shown {
                    generation,
                    document: document.clone(),
                },
                || format!("# generation {generation}\n{document}"),
            );
        }
        PolicyCommand::Validate { file, .. } => {
            let findings = proxy.validate(&read_file(file)?).await?;
            return Ok(report_findings(json, &findings));
        }
        PolicyCommand::Preview { file } => {
            let p = proxy.preview(&read_file(file)?).await?;
            print(json, &p, || {
                let mut out = p.ruleset.clone();
                out.push_str("\n# changes against the live ruleset:\n");
                out.push_str(if p.diff.is_empty() {
                    "(none)\n"
                } else {
                    &p.diff
                });
                out.push_str(&warnings_text(&p.warnings));
                out
            });
        }
        PolicyCommand::Apply {
            file,
            confirm,
            base,
        } => {
            let document = read_file(file)?;
            let base = match base {
                Some(b) => *b,
                None => proxy.get().await?.0,
            };
            let a = proxy.apply(&document, base, *confirm).await?;
            print(json, &a, || {
                let mut out = format!("Generation {} is live.", a.generation);
                if a.pending_until > 0 {
                    out.push_str(&format!(
                        " Run `palisadectl policy confirm {}` before {} or the previous generation comes back.",
                        a.generation,
                        when(a.pending_until)
                    ));
                }
                if a.connections_cut > 0 {
                    out.push_str(&format!(
                        " {} open connections were cut.",
                        a.connections_cut
                    ));
                }
                out.push('\n');
                out.push_str(&warnings_text(&a.warnings));
                out
            });
        }
        PolicyCommand::Confirm { generation } => {
            proxy.confirm(*generation).await?;
            print(
                json,
                &serde_json::json!({ "confirmed": generation }),
                || format!("Generation {generation} is confirmed.\n"),
            );
        }
        PolicyCommand::Rollback { generation } => {
            let a = proxy.rollback(*generation).await?;
            print(json, &a, || {
                format!(
                    "Generation {} is live again, as generation {}.\n",
                    generation, a.generation
                )
            });
        }
        PolicyCommand::History => {
            let h = proxy.history().await?;
            print(json, &h, || {
                let mut out = format!(
                    "{:>6}  {:<20}  {:>6}  {:<10}  {}\n",
                    "GEN", "APPLIED", "UID", "STATE", "ORIGIN"
                );
                for g in &h {
                    out.push_str(&format!(
                        "{:>6}  {:<20}  {:>6}  {:<10}  {}\n",
                        g.generation,
                        when(g.applied_at),
                        g.author_uid,
                        g.state,
                        g.origin
                    ));
                }
                out
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn vm(json: bool, proxy: &VmsProxy<'_>, cmd: &VmCommand) -> Result<ExitCode, Error> {
    let done = |what: String| move || format!("{what}\n");
    match cmd {
        VmCommand::List => {
            let vms = proxy.list().await?;
            print(json, &vms, || {
                let mut out = format!(
                    "{:<20}  {:<13}  {:<9}  {:>5}  {:>7}  {}\n",
                    "NAME", "STATE", "MODE", "SPICE", "BASE", "CONSOLE"
                );
                for v in &vms {
                    out.push_str(&format!(
                        "{:<20}  {:<13}  {:<9}  {:>5}  {:>7}  {}\n",
                        v.name,
                        v.state,
                        v.mode,
                        v.spice_port,
                        if v.pending_version > 0 {
                            format!("v{} (+v{})", v.base_version, v.pending_version)
                        } else {
                            format!("v{}", v.base_version)
                        },
                        if v.console_allowed { "yes" } else { "no" }
                    ));
                }
                out
            });
        }
        VmCommand::Create {
            name,
            disk_size,
            memory,
            cpus,
        } => {
            let generation = proxy.create(name, disk_size, memory, *cpus).await?;
            print(
                json,
                &serde_json::json!({ "generation": generation }),
                done(format!("{name} created (policy generation {generation}).")),
            );
        }
        VmCommand::Start {
            name,
            update,
            install,
        } => {
            let info = match install {
                Some(iso) => {
                    let file = open_iso(iso)?;
                    proxy.install(name, zbus::Fd::from(&file)).await?
                }
                None => {
                    proxy
                        .start(name, if *update { "update" } else { "ephemeral" })
                        .await?
                }
            };
            print(
                json,
                &info,
                done(format!(
                    "{} is {} ({}), Spice on 127.0.0.1:{}.",
                    info.name, info.state, info.mode, info.spice_port
                )),
            );
        }
        VmCommand::Stop {
            name,
            force,
            timeout,
        } => {
            proxy.stop(name, *force, *timeout).await?;
            print(
                json,
                &serde_json::json!({ "stopped": name }),
                done(format!("{name} is shut down.")),
            );
        }
        VmCommand::Reset { name } => {
            proxy.reset(name).await?;
            print(
                json,
                &serde_json::json!({ "reset": name }),
                done(format!("{name} was reset.")),
            );
        }
        VmCommand::Promote { name } => {
            let v = proxy.promote(name).await?;
            print(
                json,
                &serde_json::json!({ "base": v }),
                done(format!("Version {v} is now the base of {name}.")),
            );
        }
        VmCommand::Discard { name } => {
            proxy.discard(name).await?;
            print(
                json,
                &serde_json::json!({ "discarded": name }),
                done(format!("The update of {name} was thrown away.")),
            );
        }
        VmCommand::Versions { name } => {
            let versions = proxy.versions(name).await?;
            print(json, &versions, || {
                let mut out = format!(
                    "{:>7}  {:<20}  {:<7}  {:>12}\n",
                    "VERSION", "CREATED", "ROLE", "BYTES"
                );
                for v in &versions {
                    out.push_str(&format!(
                        "{:>7}  {:<20}  {:<7}  {:>12}\n",
                        v.version,
                        when(v.created_at),
                        v.role,
                        v.bytes
                    ));
                }
                out
            });
        }
        VmCommand::Restore { name, version } => {
            proxy.restore(name, *version).await?;
            print(
                json,
                &serde_json::json!({ "base": version }),
                done(format!("Version {version} is the base of {name} again.")),
            );
        }
        VmCommand::Show { name } => {
            let d = proxy.show(name).await?;
            print(json, &d, || {
                format!(
                    "# QEMU command line\n{}\n\n# Firewall chain\n{}",
                    shell_words(&d.command_line),
                    d.firewall_chain
                )
            });
        }
        VmCommand::GuestFirewall { name } => {
            let ruleset = proxy.guest_firewall(name).await?;
            print(json, &serde_json::json!({ "ruleset": ruleset }), || {
                ruleset.clone()
            });
        }
        VmCommand::Usb(UsbCommand::List) => {
            let devices = proxy.usb_devices().await?;
            print(json, &devices, || {
                let mut out = String::new();
                for d in &devices {
                    out.push_str(&format!(
                        "{}.{}  {:04x}:{:04x}  {} {}\n",
                        d.bus, d.address, d.vendor_id, d.product_id, d.manufacturer, d.product
                    ));
                }
                if devices.is_empty() {
                    out.push_str("No USB devices.\n");
                }
                out
            });
        }
        VmCommand::Usb(UsbCommand::Attach { vm, device }) => {
            let id = proxy.usb_attach(vm, device).await?;
            print(
                json,
                &serde_json::json!({ "id": id }),
                done(format!("Attached as {id}.")),
            );
        }
        VmCommand::Usb(UsbCommand::Detach { vm, id }) => {
            proxy.usb_detach(vm, id).await?;
            print(
                json,
                &serde_json::json!({ "detached": id }),
                done(format!("{id} detached.")),
            );
        }
        VmCommand::Usb(UsbCommand::Attached { vm }) => {
            let devices = proxy.usb_attached(vm).await?;
            print(json, &devices, || {
                devices
                    .iter()
                    .map(|d| format!("{}  {}\n", d.id, d.description))
                    .collect()
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn console(
    json: bool,
    proxy: &ConsolesProxy<'_>,
    cmd: &ConsoleCommand,
) -> Result<ExitCode, Error> {
    match cmd {
        ConsoleCommand::List => {
            let consoles = proxy.list().await?;
            print(json, &consoles, || {
                let mut out = format!(
                    "{:<20}  {:<6}  {:<13}  {}\n",
                    "NAME", "KIND", "STATE", "ADDRESS"
                );
                for c in &consoles {
                    out.push_str(&format!(
                        "{:<20}  {:<6}  {:<13}  {}:{}{}\n",
                        c.name,
                        c.kind,
                        c.state,
                        c.host,
                        c.port,
                        if c.tls { " (TLS)" } else { "" }
                    ));
                }
                out
            });
        }
        ConsoleCommand::Open { name, print_vv } => {
            let ticket = proxy.open(name).await?;
            if *print_vv {
                let vv = palisade_dbus::vv::vv_file(&ticket);
                print(json, &ticket, || vv.clone());
            } else {
                let program = palisade_app::viewer::program(std::env::var_os("PALISADE_VIEWER"));
                palisade_app::viewer::open(&ticket, &program)
                    .map_err(|e| Error::InvalidArgument(e.to_string()))?;
                print(
                    json,
                    &serde_json::json!({ "opened": ticket.name, "port": ticket.port }),
                    || format!("Opening {} in the viewer.\n", ticket.name),
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens an installer ISO as the caller: the helper gets the open file, never a path, so it can
/// read only what the caller can. Symbolic links are refused outright.
fn open_iso(path: &PathBuf) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nofollow())
        .open(path)
        .map_err(|e| {
            let why = if e.raw_os_error() == Some(40) {
                "it is a symbolic link; give the real file".to_owned()
            } else {
                e.to_string()
            };
            Error::InvalidArgument(format!("cannot open the ISO {}: {why}", path.display()))
        })
}

/// O_NOFOLLOW, from nix so this tool needs no libc dependency.
fn libc_o_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}

/// A command line as a shell would need it typed.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prints findings; exit code 65 if any is an error.
fn report_findings(json: bool, findings: &[Finding]) -> ExitCode {
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    print(json, &findings, || {
        let mut out = String::new();
        for f in findings {
            let label = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            out.push_str(&format!("{label}: {f}\n"));
        }
        if findings.is_empty() {
            out.push_str("The policy is valid.\n");
        }
        out
    });
    if errors > 0 {
        ExitCode::from(65)
    } else {
        ExitCode::SUCCESS
    }
}

fn warnings_text(w: &[Finding]) -> String {
    w.iter().map(|f| format!("warning: {f}\n")).collect()
}

fn print<T: Serialize + ?Sized>(json: bool, value: &T, text: impl FnOnce() -> String) {
    if json {
        match serde_json::to_string_pretty(value) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("palisadectl: cannot encode JSON: {e}"),
        }
    } else {
        print!("{}", text());
    }
}

/// Reads a policy file as bytes: the helper, not this tool, decides what is valid text.
fn read_file(path: &PathBuf) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    let result = if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|f| {
            f.take(palisade_dbus::policy::MAX_DOCUMENT_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .map(|_| ())
        })
    };
    result.map_err(|e| Error::InvalidArgument(format!("cannot read {}: {e}", path.display())))?;
    Ok(bytes)
}

/// Unix seconds as UTC date and time.
fn when(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}
