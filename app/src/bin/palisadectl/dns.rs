//! `palisadectl dns`: what the DNS forwarder answered guests, and which rule admitted which
//! address.

use crate::output::when;
use clap::Subcommand;
use palisade_dbus::proxy::DnsProxy;
use palisade_dbus::types::{DnsEvent, DnsOutcome};
use palisade_dbus::Error;
use std::process::ExitCode;
use std::time::Duration;

/// How often `--follow` asks for new questions.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// Recent questions guests asked: the answer, the addresses admitted and by which rule.
    Log {
        /// Only this VM's questions.
        #[arg(long)]
        vm: Option<String>,
        /// Keep printing new questions as they come (one JSON object per line with --json).
        #[arg(long)]
        follow: bool,
    },
}

pub async fn run(json: bool, proxy: &DnsProxy<'_>, cmd: &DnsCommand) -> Result<ExitCode, Error> {
    let DnsCommand::Log { vm, follow } = cmd;
    let vm = vm.as_deref().unwrap_or("");
    let events = proxy.log(vm, false, 0).await?;
    if !follow {
        crate::output::print(json, &events, || events.iter().map(line).collect());
        return Ok(ExitCode::SUCCESS);
    }
    let mut last = events.last().map(|e| e.seq);
    for e in &events {
        print_one(json, e);
    }
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let new = match last {
            Some(seq) => proxy.log(vm, true, seq).await?,
            None => proxy.log(vm, false, 0).await?,
        };
        for e in &new {
            print_one(json, e);
        }
        if let Some(e) = new.last() {
            last = Some(e.seq);
        }
    }
}

fn print_one(json: bool, e: &DnsEvent) {
    if json {
        match serde_json::to_string(e) {
            Ok(s) => println!("{s}"),
            Err(err) => eprintln!("palisadectl: cannot encode JSON: {err}"),
        }
    } else {
        print!("{}", line(e));
    }
}

/// One question on one line.
fn line(e: &DnsEvent) -> String {
    let rules = |word: &str| match e.rules.as_slice() {
        [] => String::new(),
        [one] => format!(" ({word} {one})"),
        many => format!(
            " ({word}s {})",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let what = match e.outcome {
        DnsOutcome::Admitted => format!("admitted {}{}", e.admitted.join(", "), rules("rule")),
        DnsOutcome::Answered => format!("answered {}", e.detail),
        DnsOutcome::Blocked => format!("blocked: {}", e.detail),
        DnsOutcome::Refused => format!("refused: {}", e.detail),
        DnsOutcome::Failed => format!("failed: {}{}", e.detail, rules("rule")),
    };
    format!("{} {} {} {} {}\n", when(e.at), e.vm, e.name, e.kind, what)
}
