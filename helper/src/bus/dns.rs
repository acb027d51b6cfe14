//! `io.palisade.Helper1.Dns`: the D-Bus face of the DNS forwarder. The state of the names is
//! policy (`policy.read`); the questions guests asked are activity (`log.read`, admin-only by
//! default).

use crate::authz::Authority;
use crate::dns::Forwarder;
use palisade_dbus::policy::{names::quote, VmName};
use palisade_dbus::types::{DnsEvent, DnsNameState};
use palisade_dbus::{Action, Error};
use std::sync::Arc;
use zbus::message::Header;

/// `io.palisade.Helper1.Dns`.
pub struct DnsIface {
    /// The forwarder.
    pub forwarder: Arc<Forwarder>,
    /// polkit.
    pub authority: Authority,
}

#[zbus::interface(name = "io.palisade.Helper1.Dns")]
impl DnsIface {
    /// The state of every name the live policy's VM rules mention.
    async fn names(&self, #[zbus(header)] header: Header<'_>) -> Result<Vec<DnsNameState>, Error> {
        self.authority.check(&header, Action::PolicyRead).await?;
        Ok(self.forwarder.names())
    }

    /// The latest questions, of one VM or all, after a sequence number when following.
    async fn log(
        &self,
        #[zbus(header)] header: Header<'_>,
        vm: &str,
        follow: bool,
        after_seq: u64,
    ) -> Result<Vec<DnsEvent>, Error> {
        self.authority
            .authorize_with(&header, Action::LogRead, &[("vm", vm)])
            .await?;
        let vm = match vm {
            "" => None,
            name => Some(VmName::parse(name).map_err(|_| {
                Error::InvalidArgument(format!("{} is not a VM name", quote(name)))
            })?),
        };
        Ok(self
            .forwarder
            .events(vm.as_ref().map(VmName::as_str), follow.then_some(after_seq)))
    }
}
