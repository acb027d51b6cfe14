//! Port sets: a single port, a list, ranges, or a mix (`"80,443,8000-8100"`).
//!
//! A `PortSet` is never empty, holds only ports 1–65535, and keeps its ranges sorted and merged,
//! so equal sets compare equal and containment is a simple walk.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An inclusive range of ports, `first <= last`, both in 1–65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// A range of one or more ports; `None` if empty, reversed, or containing port 0.
    pub fn new(first: u16, last: u16) -> Option<Self> {
        (first >= 1 && first <= last).then_some(Self { first, last })
    }

    /// The first port.
    pub fn first(self) -> u16 {
        self.first
    }

    /// The last port.
    pub fn last(self) -> u16 {
        self.last
    }

    /// Whether `other` lies entirely inside this range.
    pub fn contains(self, other: PortRange) -> bool {
        self.first <= other.first && other.last <= self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Most ranges one rule may list; longer lists belong in a blocklist or several rules.
pub const MAX_RANGES: usize = 256;

/// A non-empty, sorted, merged set of port ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortSet(Vec<PortRange>);

impl PortSet {
    /// Builds a set from ranges, sorting and merging them.
    pub fn from_ranges(mut ranges: Vec<PortRange>) -> Option<Self> {
        if ranges.is_empty() {
            return None;
        }
        ranges.sort();
        let mut merged: Vec<PortRange> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(prev) if u32::from(r.first) <= u32::from(prev.last) + 1 => {
                    prev.last = prev.last.max(r.last);
                }
                _ => merged.push(r),
            }
        }
        Some(Self(merged))
    }

    /// The merged ranges, ascending.
    pub fn ranges(&self) -> &[PortRange] {
        &self.0
    }

    /// Whether every port of `other` is in this set.
    pub fn contains(&self, other: &PortSet) -> bool {
        other
            .0
            .iter()
            .all(|o| self.0.iter().any(|r| r.contains(*o)))
    }

    /// Whether this set is every port, 1–65535.
    pub fn is_all(&self) -> bool {
        self.0
            == [PortRange {
                first: 1,
                last: 65535,
            }]
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Parses one port number given as an integer, with the sentence for a bad one.
pub fn port_from_int(n: i64) -> Result<u16, String> {
    match u16::try_from(n) {
        Ok(p) if p >= 1 => Ok(p),
        _ => Err(format!("port {n} is out of range: ports are 1 to 65535")),
    }
}

/// Parses `"443"`, `"8000-8100"` or a comma-separated mix into ranges.
pub fn ranges_from_str(s: &str) -> Result<Vec<PortRange>, String> {
    let mut out = Vec::new();
    for item in s.split(',') {
        let item = item.trim();
        let (a, b) = item.split_once('-').unwrap_or((item, item));
        let parse = |t: &str| -> Result<u16, String> {
            let t = t.trim();
            if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit()) || t.len() > 6 {
                return Err(format!(
                    "{} is not a port: write a number, a range like 8000-8100, or a comma-separated list",
                    super::names::quote(item)
                ));
            }
            t.parse::<i64>()
                .map_err(|e| e.to_string())
                .and_then(port_from_int)
        };
        let (first, last) = (parse(a)?, parse(b)?);
        out.push(PortRange::new(first, last).ok_or_else(|| {
            format!("port range {first}-{last} is reversed: write the smaller port first")
        })?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> PortSet {
        ranges_from_str(s)
            .ok()
            .and_then(PortSet::from_ranges)
            .unwrap_or_else(|| panic!("{s}"))
    }

    #[test]
    fn parses_and_merges() {
        assert_eq!(set("443, 80,81-90,85").to_string(), "80-90,443");
        assert!(set("1-65535").is_all());
    }

    #[test]
    fn rejects_bad_ports() {
        for bad in [
            "70000",
            "0",
            "-1",
            "a",
            "90-80",
            "",
            "1-2-3",
            "99999999999999",
        ] {
            assert!(ranges_from_str(bad).is_err(), "{bad}");
        }
        assert!(port_from_int(70000).is_err_and(|e| e.contains("70000")));
    }

    #[test]
    fn containment() {
        assert!(set("1-1000").contains(&set("22,80,443")));
        assert!(!set("1-1000").contains(&set("22,8080")));
    }
}
