//! `io.palisade.Helper1.Log`: the D-Bus face of the drop log. Every method is `log.read`, with
//! the VM asked about as polkit's detail `vm` (empty for all), so a polkit rule may give a VM's
//! operator that VM's entries and no others. `Logged` signals go to each follower alone (a
//! unicast signal), never to the whole bus: what the log shows is as private as `show`.

use crate::authz::Authority;
use crate::log::{DropLog, Follower};
use palisade_dbus::policy::{names::quote, VmName};
use palisade_dbus::types::{LoggedPacket, RuleCounter};
use palisade_dbus::{Action, Error};
use std::sync::Arc;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

/// `io.palisade.Helper1.Log`.
pub struct LogIface {
    /// The drop log.
    pub log: Arc<DropLog>,
    /// polkit.
    pub authority: Authority,
}

impl LogIface {
    /// Authorizes reading the log of `vm` (all when empty) and parses it.
    async fn authorize(&self, header: &Header<'_>, vm: &str) -> Result<Option<VmName>, Error> {
        self.authority
            .authorize_with(header, Action::LogRead, &[("vm", vm)])
            .await?;
        match vm {
            "" => Ok(None),
            name => VmName::parse(name)
                .map(Some)
                .map_err(|_| Error::InvalidArgument(format!("{} is not a VM name", quote(name)))),
        }
    }
}

#[zbus::interface(name = "io.palisade.Helper1.Log")]
impl LogIface {
    /// The latest logged packets.
    async fn show(
        &self,
        #[zbus(header)] header: Header<'_>,
        vm: &str,
        since_ms: u64,
        max: u32,
    ) -> Result<Vec<LoggedPacket>, Error> {
        let vm = self.authorize(&header, vm).await?;
        self.log.show(vm.as_ref(), since_ms, max)
    }

    /// Every rule's counter.
    async fn counters(
        &self,
        #[zbus(header)] header: Header<'_>,
        vm: &str,
    ) -> Result<Vec<RuleCounter>, Error> {
        let vm = self.authorize(&header, vm).await?;
        self.log.counters(vm.as_ref()).await
    }

    /// Sends the caller `Logged` signals.
    async fn follow(&self, #[zbus(header)] header: Header<'_>, vm: &str) -> Result<(), Error> {
        let vm = self.authorize(&header, vm).await?;
        let name = sender(&header)?;
        self.log.follow(Follower { name, vm })
    }

    /// Stops the caller's `Logged` signals (`vm` as it followed, for polkit).
    async fn unfollow(&self, #[zbus(header)] header: Header<'_>, vm: &str) -> Result<(), Error> {
        self.authorize(&header, vm).await?;
        self.log.unfollow(&sender(&header)?);
        Ok(())
    }

    /// New entries for one follower.
    #[zbus(signal)]
    pub async fn logged(
        emitter: &SignalEmitter<'_>,
        packets: Vec<LoggedPacket>,
        missed: u64,
    ) -> zbus::Result<()>;
}

/// The caller's unique bus name.
fn sender(header: &Header<'_>) -> Result<String, Error> {
    header
        .sender()
        .map(|s| s.to_string())
        .ok_or_else(|| Error::NotAuthorized("the call carries no sender; refused".into()))
}
