//! `palisadectl log`: what the firewall's logged rules decided (following it live, or the
//! latest entries), and every rule's counter.

use crate::output::when;
use clap::Subcommand;
use futures_util::StreamExt;
use palisade_dbus::proxy::LogProxy;
use palisade_dbus::types::{LoggedPacket, RuleCounter};
use palisade_dbus::Error;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Print logged packets as they come (one JSON object per line with --json), until stopped.
    Follow {
        /// Only what concerns this VM (what it sent, or what its rules decided).
        #[arg(long)]
        vm: Option<String>,
    },
    /// The latest logged packets the helper keeps.
    Show {
        /// Only those logged in this last while: 10m, 2h, 1d.
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<Duration>,
        /// Only what concerns this VM.
        #[arg(long)]
        vm: Option<String>,
        /// At most this many (the latest).
        #[arg(long, default_value_t = 1000)]
        max: u32,
    },
    /// Every rule's packet and byte counters, and when it last decided a packet.
    Counters {
        /// Only this VM's rules.
        #[arg(long)]
        vm: Option<String>,
    },
}

pub async fn run(json: bool, proxy: &LogProxy<'_>, cmd: &LogCommand) -> Result<ExitCode, Error> {
    match cmd {
        LogCommand::Follow { vm } => follow(json, proxy, vm.as_deref().unwrap_or("")).await,
        LogCommand::Show { since, vm, max } => {
            let since_ms = since.map_or(0, |d| {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                u64::try_from(now.saturating_sub(d).as_millis()).unwrap_or(0)
            });
            let packets = proxy
                .show(vm.as_deref().unwrap_or(""), since_ms, *max)
                .await?;
            crate::output::print(json, &packets, || packets.iter().map(line).collect());
            Ok(ExitCode::SUCCESS)
        }
        LogCommand::Counters { vm } => {
            let counters = proxy.counters(vm.as_deref().unwrap_or("")).await?;
            crate::output::print(json, &counters, || {
                counters.iter().map(counter_line).collect()
            });
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Subscribes first, then asks to be sent entries, so none logged in between is lost.
async fn follow(json: bool, proxy: &LogProxy<'_>, vm: &str) -> Result<ExitCode, Error> {
    let mut stream = proxy.receive_logged().await?;
    proxy.follow(vm).await?;
    // On stderr, so that JSON output stays one object per line.
    eprintln!("Following the drop log; stop with Ctrl+C.");
    while let Some(signal) = stream.next().await {
        let Ok(args) = signal.args() else {
            continue;
        };
        for packet in args.packets() {
            if json {
                match serde_json::to_string(packet) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("palisadectl: cannot encode JSON: {e}"),
                }
            } else {
                print!("{}", line(packet));
            }
        }
        if *args.missed() > 0 {
            eprintln!(
                "palisadectl: {} entries were not logged (a flood; the counters still count them)",
                args.missed()
            );
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    Ok(ExitCode::SUCCESS)
}

/// One logged packet on one line.
fn line(p: &LoggedPacket) -> String {
    let who = match (p.vm.as_str(), p.user.as_str(), p.source_mac.as_str()) {
        ("", "", _) => String::new(),
        ("", user, _) => format!(" from {user}"),
        (vm, _, "") => format!(" from vm {vm}"),
        (vm, _, mac) => format!(" from vm {vm} ({mac})"),
    };
    let at = |addr: &str, port: u16| {
        if port == 0 {
            addr.to_owned()
        } else if addr.contains(':') {
            format!("[{addr}]:{port}")
        } else {
            format!("{addr}:{port}")
        }
    };
    format!(
        "{}.{:03}{who} {} {} -> {} by {}\n",
        when(p.at_ms / 1_000),
        p.at_ms % 1_000,
        p.protocol,
        at(&p.source, p.source_port),
        at(&p.destination, p.destination_port),
        p.rule
    )
}

/// One counter on one line.
fn counter_line(c: &RuleCounter) -> String {
    let last = if c.last_hit == 0 {
        "not since the helper started".to_owned()
    } else {
        format!("last {}", when(c.last_hit))
    };
    format!(
        "{}: {} packets, {} bytes, {last}\n",
        c.rule, c.packets, c.bytes
    )
}
