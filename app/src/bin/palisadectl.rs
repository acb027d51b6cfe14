//! palisadectl: Palisade from the command line, on the same proxies as the app.
//!
//! Human output by default, `--json` for scripts. Exit codes: 0 ok, 64 bad usage or argument,
//! 65 invalid policy, 66 not found, 69 helper unreachable, 70 helper failure, 75 conflict or
//! rate limit (try again), 77 not authorized. Errors print the helper's own sentence.

use clap::{Parser, Subcommand};
use palisade_dbus::policy::Policy;
use palisade_dbus::proxy::{HelperProxy, PolicyProxy};
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
