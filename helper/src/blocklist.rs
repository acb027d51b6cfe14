//! Imported blocklists: big lists of networks and domains that live outside the policy document,
//! which only names them (`[[blocklist]] imported = true`).
//!
//! Three parts, each pure or file-only (no D-Bus, no kernel): [`parse`] reads a list in one of
//! the usual formats from any `Read` (a descriptor the caller handed over, or a download);
//! [`ranges`] holds its networks as merged ranges and computes the difference between two
//! versions, so a refresh sends the kernel only what changed; [`store`] keeps each list on disk.
//!
//! Invariants. Memory stays bounded whatever the input: lines are read with a bounded length and
//! at most [`parse::MAX_ENTRIES`] entries are kept, so a 2 GB file of junk or a file without a
//! newline costs time, never gigabytes. An import is never half-applied: [`parse::parse`]
//! returns a whole list or an error, and the store replaces a list's files atomically. Networks
//! are kept merged (sorted, disjoint, non-adjacent ranges), the form the kernel's interval sets
//! take. A list that covers a whole address family is refused unless forced.

#![allow(dead_code)] // reason: wired to the Blocklists interface next

pub mod fetch;
pub mod parse;
pub mod ranges;
pub mod store;

use palisade_dbus::policy::Family;
use parse::Problem;

/// Why an import was refused. Nothing of a refused import is kept or applied.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The format word is not one of ours.
    #[error("{0} is not a blocklist format: use auto, plain, netset, spamhaus, hosts or domains")]
    UnknownFormat(String),
    /// Reading the source failed.
    #[error("cannot read the list: {0}")]
    Read(#[from] std::io::Error),
    /// Strict mode stops at the first problem.
    #[error(
        "line {line}: {reason}; nothing was imported (strict mode refuses a list with any problem)"
    )]
    Strict {
        /// Its line number, from 1.
        line: u64,
        /// What is wrong with it, as a sentence.
        reason: String,
    },
    /// Most of the first lines are not entries: an HTML error page, a binary file, the wrong
    /// file.
    #[error(
        "this does not look like a blocklist: {malformed} of the first {examined} lines that are \
         not comments or blank are not addresses, networks or domain names (line {}: {})",
        first.line,
        first.reason
    )]
    NotABlocklist {
        /// Malformed lines among those examined.
        malformed: u64,
        /// Non-comment, non-blank lines examined.
        examined: u64,
        /// The first malformed line.
        first: Problem,
    },
    /// More entries than the helper keeps for one list.
    #[error(
        "the list has more than {limit} entries, more than one list may hold; split it into \
         several lists"
    )]
    TooManyEntries {
        /// [`parse::MAX_ENTRIES`].
        limit: u64,
    },
    /// The domain names alone are more text than the helper keeps for one list.
    #[error(
        "the list's domain names add up to more than {limit_mib} MiB, more than one list may \
         hold; split it into several lists"
    )]
    DomainsTooLarge {
        /// [`parse::MAX_DOMAIN_BYTES`] in MiB.
        limit_mib: u64,
    },
    /// After merging, the list blocks a whole family: almost surely a mistake.
    #[error(
        "the list covers every {} address ({}), which would block all {} traffic; import it with \
         force (palisadectl blocklist import --force) if that is really meant",
        family_word(*family),
        family_everything(*family),
        family_word(*family)
    )]
    CoversEverything {
        /// The family covered.
        family: Family,
    },
}

fn family_word(family: Family) -> &'static str {
    match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

fn family_everything(family: Family) -> &'static str {
    match family {
        Family::V4 => "0.0.0.0/0",
        Family::V6 => "::/0",
    }
}

impl From<ImportError> for palisade_dbus::Error {
    fn from(e: ImportError) -> Self {
        // Every refusal is about what the caller sent (the list, its format, its options), and
        // each sentence says what to change.
        palisade_dbus::Error::InvalidArgument(e.to_string())
    }
}

#[cfg(test)]
mod tests;
