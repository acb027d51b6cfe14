//! `io.palisade.Helper1.Blocklists`: the D-Bus face of the blocklist service (`crate::lists`).
//! polkit `policy.read` to look, `policy.manage` to change; names and formats are parsed after
//! authorization.

use crate::authz::Authority;
use crate::blocklist::parse::ParseOptions;
use crate::lists::{self, ImportRequest, Lists};
use palisade_dbus::policy::{names::quote, ShortName};
use palisade_dbus::types::BlocklistInfo;
use palisade_dbus::{Action, Error};
use zbus::message::Header;

/// `io.palisade.Helper1.Blocklists`.
pub struct BlocklistsIface {
    /// The blocklist service.
    pub lists: Lists,
    /// polkit.
    pub authority: Authority,
}

fn list_name(name: &str) -> Result<ShortName, Error> {
    ShortName::parse(name).map_err(|_| {
        Error::InvalidArgument(format!(
            "{} is not a list name: use letters, digits, - and _",
            quote(name)
        ))
    })
}

#[zbus::interface(name = "io.palisade.Helper1.Blocklists")]
impl BlocklistsIface {
    /// Imports (or replaces) a list from the caller's open file.
    async fn import(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
        file: zbus::OwnedFd,
        format: &str,
        strict: bool,
        force: bool,
    ) -> Result<BlocklistInfo, Error> {
        self.authority.check(&header, Action::PolicyManage).await?;
        let request = ImportRequest {
            name: list_name(name)?,
            file: file.into(),
            options: ParseOptions {
                format: lists::format(format)?,
                strict,
                force,
            },
        };
        self.lists.import(request).await
    }

    /// Every imported list.
    async fn list(&self, #[zbus(header)] header: Header<'_>) -> Result<Vec<BlocklistInfo>, Error> {
        self.authority.check(&header, Action::PolicyRead).await?;
        self.lists.list()
    }

    /// One imported list.
    async fn show(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
    ) -> Result<BlocklistInfo, Error> {
        self.authority.check(&header, Action::PolicyRead).await?;
        self.lists.show(&list_name(name)?)
    }

    /// Removes a list the live policy does not name.
    async fn remove(&self, #[zbus(header)] header: Header<'_>, name: &str) -> Result<(), Error> {
        self.authority.check(&header, Action::PolicyManage).await?;
        self.lists.remove(&list_name(name)?)
    }
}
