//! `io.palisade.Helper1.Consoles`: the D-Bus face of the console service. polkit
//! `console.open` first; the service then checks the policy's console assignment. A ticket
//! request passes the caller's rate limit before polkit is asked, so a flood of requests is
//! refused here and never becomes a flood of polkit checks.

use crate::authz::Authority;
use crate::console::Consoles;
use palisade_dbus::policy::{names::quote, ShortName};
use palisade_dbus::types::{ConsoleInfo, ConsoleTicket};
use palisade_dbus::{Action, Error};
use zbus::message::Header;

/// `io.palisade.Helper1.Consoles`.
pub struct ConsolesIface {
    /// The console service.
    pub consoles: Consoles,
    /// polkit.
    pub authority: Authority,
}

#[zbus::interface(name = "io.palisade.Helper1.Consoles")]
impl ConsolesIface {
    /// The consoles the caller may open.
    async fn list(&self, #[zbus(header)] header: Header<'_>) -> Result<Vec<ConsoleInfo>, Error> {
        let caller = self.authority.check(&header, Action::ConsoleOpen).await?;
        self.consoles.list(caller.uid).await
    }

    /// A one-time ticket for a console.
    async fn open(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
    ) -> Result<ConsoleTicket, Error> {
        let caller = self.authority.caller(&header).await?;
        self.consoles.admit(caller.uid)?;
        self.authority
            .authorize(&header, Action::ConsoleOpen)
            .await?;
        let name = ShortName::parse(name).map_err(|_| {
            Error::InvalidArgument(format!("{} is not a console name", quote(name)))
        })?;
        self.consoles.open(caller.uid, &name).await
    }
}
