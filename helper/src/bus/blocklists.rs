//! `io.palisade.Helper1.Blocklists`: the D-Bus face of the blocklist service (`crate::lists`).
//! polkit `policy.read` to look, `policy.manage` to change; names, formats, addresses and
//! intervals are parsed after authorization.

use crate::authz::Authority;
use crate::blocklist::parse::ParseOptions;
use crate::lists::{self, ImportRequest, Lists, UrlImportRequest};
use palisade_dbus::policy::{names::quote, ShortName};
use palisade_dbus::types::BlocklistInfo;
use palisade_dbus::{Action, Error};
use std::sync::Arc;
use zbus::message::Header;

/// `io.palisade.Helper1.Blocklists`.
pub struct BlocklistsIface {
    /// The blocklist service (shared with its refresh scheduler).
    pub lists: Arc<Lists>,
    /// polkit.
    pub authority: Authority,
}

pub(crate) fn list_name(name: &str) -> Result<ShortName, Error> {
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

    /// Imports (or replaces) a list downloaded from `url` (http or https), read again every
    /// `refresh_seconds` (0: never).
    #[allow(clippy::too_many_arguments)] // reason: the D-Bus method's arguments, plus the header
    async fn import_url(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
        url: &str,
        refresh_seconds: u32,
        format: &str,
        strict: bool,
        force: bool,
    ) -> Result<BlocklistInfo, Error> {
        self.authority.check(&header, Action::PolicyManage).await?;
        let request = UrlImportRequest {
            name: list_name(name)?,
            options: ParseOptions {
                format: lists::format(format)?,
                strict,
                force,
            },
            url: lists::url(url)?,
            refresh_seconds: lists::refresh_interval(refresh_seconds)?,
        };
        self.lists.import_url(request).await
    }

    /// Reads a downloaded list's address again now.
    async fn refresh(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
    ) -> Result<BlocklistInfo, Error> {
        self.authority.check(&header, Action::PolicyManage).await?;
        self.lists.refresh(&list_name(name)?).await
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
