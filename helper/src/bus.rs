//! The D-Bus face of the helper: one struct per interface, each method a polkit check followed by
//! a call into the service that owns the behaviour. Nothing here decides policy.
//!
//! Every method authorizes first, with the subject from the message header, before reading or
//! changing anything; the end-to-end tests introspect these interfaces and call every method as
//! a refused user, so a method added without a check fails them.

pub mod blocklists;
pub mod consoles;
pub mod dns;
pub mod log;
pub mod vms;

use crate::authz::Authority;
use crate::firewall::{Firewall, Origin};
use palisade_dbus::types::{
    Applied, CandidateReport, Client, Finding, GenerationInfo, PolicySources, Preview, Reloaded,
    Status,
};
use palisade_dbus::{Action, Error};
use std::sync::Arc;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

/// `io.palisade.Helper1`.
pub struct HelperIface {
    /// The firewall service.
    pub firewall: Arc<Firewall>,
    /// polkit.
    pub authority: Authority,
}

#[zbus::interface(name = "io.palisade.Helper1")]
impl HelperIface {
    /// Health, version and live generation.
    async fn status(&self, #[zbus(header)] header: Header<'_>) -> Result<Status, Error> {
        self.authority.check(&header, Action::PolicyRead).await?;
        Ok(self.firewall.status().await)
    }
}

/// `io.palisade.Helper1.Policy`.
pub struct PolicyIface {
    /// The firewall service.
    pub firewall: Arc<Firewall>,
    /// polkit.
    pub authority: Authority,
}

#[zbus::interface(name = "io.palisade.Helper1.Policy")]
impl PolicyIface {
    /// The live generation and its local policy.
    async fn get(&self, #[zbus(header)] header: Header<'_>) -> Result<(u64, String), Error> {
        self.authority.check(&header, Action::PolicyRead).await?;
        Ok(self.firewall.get())
    }

    /// The files the live policy was merged from.
    async fn sources(&self, #[zbus(header)] header: Header<'_>) -> Result<PolicySources, Error> {
        self.authority.check(&header, Action::PolicyRead).await?;
        Ok(self.firewall.sources())
    }

    /// The policy with a candidate drop-in in place: valid or not, and what would change.
    async fn check(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: String,
        document: &[u8],
    ) -> Result<CandidateReport, Error> {
        self.authority.check(&header, Action::PolicyRead).await?;
        self.firewall.check(&name, document.to_vec()).await
    }

    /// Applies the drop-ins on disk, if they changed what is live.
    async fn reload(
        &self,
        #[zbus(header)] header: Header<'_>,
        confirm_seconds: u32,
    ) -> Result<Reloaded, Error> {
        let caller = self.authority.check(&header, Action::PolicyManage).await?;
        self.firewall.reload(confirm_seconds, caller.uid).await
    }

    /// Every problem of a document.
    async fn validate(
        &self,
        #[zbus(header)] header: Header<'_>,
        document: &[u8],
    ) -> Result<Vec<Finding>, Error> {
        self.authority.check(&header, Action::PolicyRead).await?;
        self.firewall.validate(document.to_vec()).await
    }

    /// The ruleset a document compiles to and its diff against the live one.
    async fn preview(
        &self,
        #[zbus(header)] header: Header<'_>,
        document: &[u8],
    ) -> Result<Preview, Error> {
        self.authority.check(&header, Action::PolicyRead).await?;
        self.firewall.preview(document.to_vec()).await
    }

    /// Applies a document atomically if `base_generation` is still live.
    async fn apply(
        &self,
        #[zbus(header)] header: Header<'_>,
        document: &[u8],
        base_generation: u64,
        confirm_seconds: u32,
        client: &str,
    ) -> Result<Applied, Error> {
        let caller = self.authority.check(&header, Action::PolicyManage).await?;
        let origin = Origin {
            author_uid: caller.uid,
            reason: "apply".into(),
            source: parse_client(client)?.source(),
        };
        self.firewall
            .apply(document.to_vec(), base_generation, confirm_seconds, origin)
            .await
    }

    /// Keeps a pending generation.
    async fn confirm(
        &self,
        #[zbus(header)] header: Header<'_>,
        generation: u64,
    ) -> Result<(), Error> {
        self.authority.check(&header, Action::PolicyManage).await?;
        self.firewall.confirm(generation).await
    }

    /// Applies an earlier generation's document again, as a new generation.
    async fn rollback(
        &self,
        #[zbus(header)] header: Header<'_>,
        generation: u64,
        client: &str,
    ) -> Result<Applied, Error> {
        let caller = self.authority.check(&header, Action::PolicyManage).await?;
        let source = parse_client(client)?.source();
        self.firewall.rollback(generation, caller.uid, source).await
    }

    /// Every generation, newest first.
    async fn history(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<GenerationInfo>, Error> {
        self.authority.check(&header, Action::PolicyRead).await?;
        self.firewall.history().await
    }

    /// The diff between two generations' policies.
    async fn diff(
        &self,
        #[zbus(header)] header: Header<'_>,
        from: u64,
        to: u64,
    ) -> Result<String, Error> {
        self.authority.check(&header, Action::PolicyRead).await?;
        self.firewall.diff(from, to).await
    }

    /// A new generation became live.
    #[zbus(signal)]
    pub async fn generation_changed(
        emitter: &SignalEmitter<'_>,
        generation: u64,
    ) -> zbus::Result<()>;
}

/// The client's word, read after authorization (a typed argument would be refused by the bus
/// layer before the polkit check).
pub(crate) fn parse_client(word: &str) -> Result<Client, Error> {
    Client::parse(word).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{word:?} is not a client: use \"app\", \"palisadectl\" or \"other\""
        ))
    })
}
