//! `palisadectl console`: list the consoles the caller may open and open one in the viewer with
//! a one-time ticket.

use crate::output::print;
use crate::ConsoleCommand;
use palisade_dbus::proxy::ConsolesProxy;
use palisade_dbus::Error;
use std::process::ExitCode;

/// Runs a `console` subcommand against the helper.
pub async fn run(
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
