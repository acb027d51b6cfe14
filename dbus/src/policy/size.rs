//! Sizes as people write them — `20G`, `512M`, `1GiB`, `2048` — one grammar for a VM's memory and
//! its disk, so the policy and `vm create` read the same text the same way.
//!
//! Units are binary (K, M, G, T; an `i` or `B` after the letter changes nothing). A bare number
//! means the unit its field documents: MiB for memory, bytes for disks.

/// What a number without a unit letter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareUnit {
    /// Bytes (disk sizes).
    Bytes,
    /// Mebibytes (memory).
    Mebibytes,
}

/// The size in bytes, or `None` for anything that is not a size (negative, fractional, unknown
/// unit, too large for 64 bits).
pub fn parse_size(text: &str, bare: BareUnit) -> Option<u64> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    if digits.is_empty() {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let shift = match unit.trim().trim_end_matches(['i', 'B']) {
        "" => match bare {
            BareUnit::Bytes => 0,
            BareUnit::Mebibytes => 20,
        },
        "K" | "k" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// Largest disk Palisade creates: 16 TiB.
pub const MAX_DISK_BYTES: u64 = 16 << 40;
/// Smallest: 1 MiB.
pub const MIN_DISK_BYTES: u64 = 1 << 20;

/// A new VM's disk size (`20G`, `512M`, `1T`, or bytes), 1 MiB to 16 TiB, or the sentence saying
/// how to write one. The helper judges `Vms.Create`'s argument with it, and the app the field
/// as it is typed.
pub fn parse_disk_size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{} is not a disk size: write it like 20G or 512M (from 1M to 16T)",
            super::names::quote(text)
        )
    };
    let bytes = parse_size(text, BareUnit::Bytes).ok_or_else(bad)?;
    if !(MIN_DISK_BYTES..=MAX_DISK_BYTES).contains(&bytes) {
        return Err(bad());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_grammar_two_bare_units() {
        assert_eq!(parse_size("20G", BareUnit::Bytes), Some(20 << 30));
        assert_eq!(parse_size("1GiB", BareUnit::Mebibytes), Some(1 << 30));
        assert_eq!(parse_size("2048", BareUnit::Mebibytes), Some(2048 << 20));
        assert_eq!(parse_size("2048", BareUnit::Bytes), Some(2048));
        assert_eq!(parse_size(" 512 M ", BareUnit::Bytes), Some(512 << 20));
        for bad in [
            "-1G",
            "1E",
            "G",
            "1.5G",
            "",
            "99999999999999999999",
            "16777216T",
        ] {
            assert_eq!(parse_size(bad, BareUnit::Bytes), None, "{bad}");
        }
    }
}
