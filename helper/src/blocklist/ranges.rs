//! A list's networks in merged form, and the difference between two versions of a list.
//!
//! Invariant of [`NetworkList`]: per family, inclusive ranges sorted by start, each with
//! `start <= end`, pairwise disjoint and non-adjacent (between two ranges lies at least one
//! address that neither holds). So every set of addresses has exactly one representation, two
//! lists are equal exactly when they hold the same addresses, and the ranges are maximal. They
//! are ranges, not CIDR prefixes: the kernel's interval sets take `[start, end)` intervals, so
//! a range is one element where its prefixes could be dozens.
//!
//! [`diff`] walks two lists once (O(n)) and names the ranges to delete and to add so that a
//! kernel set holding exactly the old ranges ends up holding exactly the new ones, touching
//! nothing that stayed the same. [`compose`] chains two differences (base → current, current
//! → next) into base → next without the versions themselves: the data path's overlay sets
//! hold a difference from an older version, and a refresh only has the newest step.

use palisade_dbus::policy::Family;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address width the merge works over: `u32` for IPv4, `u128` for IPv6.
trait Address: Copy + Ord {
    const ZERO: Self;
    const MAX: Self;
    /// The next address, `None` past the top of the space.
    fn next(self) -> Option<Self>;
}

impl Address for u32 {
    const ZERO: Self = 0;
    const MAX: Self = u32::MAX;
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Address for u128 {
    const ZERO: Self = 0;
    const MAX: Self = u128::MAX;
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

/// Sorts and merges overlapping and adjacent ranges in place, without a second buffer: a
/// million ranges are 8 or 32 MB, and a copy would double that.
fn merge_in_place<A: Address>(ranges: &mut Vec<(A, A)>) {
    for r in ranges.iter_mut() {
        if r.0 > r.1 {
            *r = (r.1, r.0);
        }
    }
    ranges.sort_unstable();
    let mut kept = 0usize;
    for i in 0..ranges.len() {
        let (start, end) = ranges[i];
        if kept > 0 {
            let last = &mut ranges[kept - 1];
            // Overlapping or adjacent: `start` is at most one past the last end. A last end at
            // the top of the space holds everything after it.
            let joins = match last.1.next() {
                None => true,
                Some(after) => start <= after,
            };
            if joins {
                if end > last.1 {
                    last.1 = end;
                }
                continue;
            }
        }
        ranges[kept] = (start, end);
        kept += 1;
    }
    ranges.truncate(kept);
    ranges.shrink_to_fit();
}

/// Whether ranges already satisfy the invariant (for data read back from disk).
fn is_merged<A: Address>(ranges: &[(A, A)]) -> bool {
    ranges.iter().all(|r| r.0 <= r.1)
        && ranges.windows(2).all(|w| match w[0].1.next() {
            // Non-adjacent: at least one address between the two.
            Some(after) => after < w[1].0,
            None => false,
        })
}

/// Addresses in ranges, saturating at the type's maximum (the whole IPv6 space, 2^128
/// addresses, does not fit a `u128` and reports `u128::MAX`).
fn count<A: Address>(ranges: &[(A, A)], width: impl Fn(A, A) -> u128) -> u128 {
    ranges
        .iter()
        .fold(0u128, |sum, &(s, e)| sum.saturating_add(width(s, e)))
}

fn covers_all<A: Address>(ranges: &[(A, A)]) -> bool {
    ranges.first().is_some_and(|&r| r == (A::ZERO, A::MAX))
}

fn contains_in<A: Address>(ranges: &[(A, A)], a: A) -> bool {
    // The last range starting at or before `a` is the only one that can hold it.
    let i = ranges.partition_point(|r| r.0 <= a);
    i > 0 && ranges[i - 1].1 >= a
}

/// The IPv4 address an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) stands for.
pub(crate) fn mapped_v4(a: u128) -> Option<u32> {
    if a >> 32 == 0xffff {
        // The low 32 bits are the IPv4 address; the shift test above proved the rest.
        u32::try_from(a & u128::from(u32::MAX)).ok()
    } else {
        None
    }
}

/// A list's networks: merged inclusive ranges per family (see the module's invariant).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkList {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl NetworkList {
    /// Merges any ranges (unsorted, overlapping, adjacent, duplicated) into a list. A pair whose
    /// start lies after its end is taken as the range between the two.
    pub fn from_ranges(mut v4: Vec<(u32, u32)>, mut v6: Vec<(u128, u128)>) -> Self {
        merge_in_place(&mut v4);
        merge_in_place(&mut v6);
        Self { v4, v6 }
    }

    /// Takes ranges that must already be merged (read back from disk), or says which family
    /// breaks the invariant.
    pub fn from_merged(v4: Vec<(u32, u32)>, v6: Vec<(u128, u128)>) -> Result<Self, Family> {
        if !is_merged(&v4) {
            return Err(Family::V4);
        }
        if !is_merged(&v6) {
            return Err(Family::V6);
        }
        Ok(Self { v4, v6 })
    }

    /// The IPv4 ranges, inclusive, sorted.
    pub fn v4(&self) -> &[(u32, u32)] {
        &self.v4
    }

    /// The IPv6 ranges, inclusive, sorted.
    pub fn v6(&self) -> &[(u128, u128)] {
        &self.v6
    }

    /// Number of ranges, both families.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether the list holds no address.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether the list holds every address of `family`.
    pub fn covers_everything(&self, family: Family) -> bool {
        match family {
            Family::V4 => covers_all(&self.v4),
            Family::V6 => covers_all(&self.v6),
        }
    }

    /// IPv4 addresses held (at most 2^32).
    pub fn addresses_v4(&self) -> u64 {
        let n = count(&self.v4, |s, e| u128::from(e - s) + 1);
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// IPv6 addresses held, saturating at `u128::MAX` (the whole space is one more).
    pub fn addresses_v6(&self) -> u128 {
        count(&self.v6, |s, e| (e - s).saturating_add(1))
    }

    /// Whether `addr` lies in the list. An IPv4-mapped IPv6 address is looked up as the IPv4
    /// address it stands for, as the parser stored it.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => contains_in(&self.v4, u32::from(a)),
            IpAddr::V6(a) => {
                let a = u128::from(a);
                match mapped_v4(a) {
                    Some(v4) => contains_in(&self.v4, v4),
                    None => contains_in(&self.v6, a),
                }
            }
        }
    }

    /// Every range as inclusive `(first, last)` addresses: IPv4 first, then IPv6.
    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, IpAddr)> + '_ {
        let v4 = self
            .v4
            .iter()
            .map(|&(s, e)| (Ipv4Addr::from(s).into(), Ipv4Addr::from(e).into()));
        let v6 = self
            .v6
            .iter()
            .map(|&(s, e)| (Ipv6Addr::from(s).into(), Ipv6Addr::from(e).into()));
        v4.chain(v6)
    }
}

/// Ranges per kernel set a list is enforced through. The kernel rebuilds a set's lookup
/// structure on every transaction that touches it, so a transaction's cost grows with the set
/// it touches (measured here: one 20,000-range chunk into a 1M-range set 0.3–0.7 s, into a
/// 50,000-range set under 0.1 s; the whole million loads in 5 s in such sets instead of 14 s).
/// At 25,000 ranges the longest transaction of a load stays under 40 ms, so an answer's
/// addresses waiting behind it are admitted within the DNS target (50 ms), for about 0.5 s
/// more in all.
pub const SHARD_RANGES: usize = 25_000;

/// Where a family's ranges are cut into pieces of `every` ranges: the first address of every
/// `every`-th range after the first. Empty for a list of at most `every` ranges.
fn split_points<A: Copy>(ranges: &[(A, A)], every: usize) -> Vec<A> {
    ranges
        .iter()
        .step_by(every.max(1))
        .skip(1)
        .map(|r| r.0)
        .collect()
}

/// The part of `ranges` (sorted, disjoint) inside `first..=last`: ranges crossing either end
/// are cut there.
fn clipped<A: Address>(ranges: &[(A, A)], first: A, last: A) -> impl Iterator<Item = (A, A)> + '_ {
    let start = ranges.partition_point(|r| r.1 < first);
    ranges[start..]
        .iter()
        .take_while(move |r| r.0 <= last)
        .map(move |&(s, e)| (s.max(first), e.min(last)))
}

impl NetworkList {
    /// Where the IPv4 ranges are cut into kernel sets of `every` ranges (see [`SHARD_RANGES`]).
    pub fn split_points_v4(&self, every: usize) -> Vec<Ipv4Addr> {
        split_points(&self.v4, every)
            .into_iter()
            .map(Ipv4Addr::from)
            .collect()
    }

    /// Where the IPv6 ranges are cut into kernel sets of `every` ranges.
    pub fn split_points_v6(&self, every: usize) -> Vec<Ipv6Addr> {
        split_points(&self.v6, every)
            .into_iter()
            .map(Ipv6Addr::from)
            .collect()
    }

    /// The IPv4 ranges inside `first..=last`, cut at both ends.
    pub fn v4_within(&self, first: u32, last: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        clipped(&self.v4, first, last)
    }

    /// The IPv6 ranges inside `first..=last`, cut at both ends.
    pub fn v6_within(&self, first: u128, last: u128) -> impl Iterator<Item = (u128, u128)> + '_ {
        clipped(&self.v6, first, last)
    }
}

/// What turns one version of a list into another: delete `removed`, then add `added`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeDiff {
    /// Ranges of the old list that are not, exactly, ranges of the new one.
    pub removed: NetworkList,
    /// Ranges of the new list that are not, exactly, ranges of the old one.
    pub added: NetworkList,
}

impl RangeDiff {
    /// Whether the two lists were equal.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }
}

/// Inclusive ranges of one family.
type Ranges<A> = Vec<(A, A)>;

/// Sorted-set difference both ways in one walk. Ranges are compared whole: a range that grew
/// by one address is removed and its replacement added, because a kernel interval set deletes
/// only elements it holds exactly.
fn diff_family<A: Address>(old: &[(A, A)], new: &[(A, A)]) -> (Ranges<A>, Ranges<A>) {
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() && j < new.len() {
        match old[i].cmp(&new[j]) {
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                removed.push(old[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                added.push(new[j]);
                j += 1;
            }
        }
    }
    removed.extend_from_slice(&old[i..]);
    added.extend_from_slice(&new[j..]);
    (removed, added)
}

/// The ranges to delete from and then add to a kernel set holding exactly `old` so that it holds
/// exactly `new`. Ranges present in both are left alone. Both halves keep the invariant: a
/// subset of a merged list is merged.
pub fn diff(old: &NetworkList, new: &NetworkList) -> RangeDiff {
    RangeDiff::of_families(diff_family(&old.v4, &new.v4), diff_family(&old.v6, &new.v6))
}

/// Ranges of `x` that are not, exactly, ranges of `y` (both sorted).
fn minus<A: Address>(x: &[(A, A)], y: &[(A, A)]) -> Ranges<A> {
    diff_family(y, x).1
}

/// Two sorted lists as one sorted list (equal items both kept, `x`'s first). When all of `y`
/// comes after `x` (the two halves of a sorted list file), `y` is only appended.
pub(super) fn union<T: Ord>(mut x: Vec<T>, y: Vec<T>) -> Vec<T> {
    if x.last().zip(y.first()).is_none_or(|(a, b)| a <= b) {
        x.extend(y);
        return x;
    }
    let mut out = Vec::with_capacity(x.len() + y.len());
    let (mut x, mut y) = (x.into_iter().peekable(), y.into_iter().peekable());
    loop {
        let next = match (x.peek(), y.peek()) {
            (Some(a), Some(b)) if a <= b => x.next(),
            (Some(_), Some(_)) => y.next(),
            (Some(_), None) => x.next(),
            (None, _) => y.next(),
        };
        match next {
            Some(r) => out.push(r),
            None => return out,
        }
    }
}

/// The removed and the added ranges of one family of a difference.
type Halves<'a, A> = (&'a [(A, A)], &'a [(A, A)]);

/// [`compose`] for one family: `(removed, added)` of base → current, then of current → next.
fn compose_family<A: Address>(
    (base_removed, base_added): Halves<'_, A>,
    (removed, added): Halves<'_, A>,
) -> (Ranges<A>, Ranges<A>) {
    // With E(v) a version's ranges: what the base lost is what it lost before and did not get
    // back, plus what the next version drops of the ranges the base had; what was added is
    // what was added before and stays, plus what comes new that the base did not have.
    (
        union(minus(base_removed, added), minus(removed, base_added)),
        union(minus(base_added, removed), minus(added, base_removed)),
    )
}

/// The difference from a base version to the next one, made of the difference from the base to
/// the current version (`so_far`) and from the current version to the next (`next`), without
/// the versions themselves: `diff(base, next)`. The halves stay merged (subsets of the base's
/// and the next version's ranges).
pub fn compose(so_far: &RangeDiff, next: &RangeDiff) -> RangeDiff {
    RangeDiff::of_families(
        compose_family(
            (&so_far.removed.v4, &so_far.added.v4),
            (&next.removed.v4, &next.added.v4),
        ),
        compose_family(
            (&so_far.removed.v6, &so_far.added.v6),
            (&next.removed.v6, &next.added.v6),
        ),
    )
}

impl RangeDiff {
    /// The difference made of each family's `(removed, added)` ranges.
    fn of_families(
        (removed_v4, added_v4): (Ranges<u32>, Ranges<u32>),
        (removed_v6, added_v6): (Ranges<u128>, Ranges<u128>),
    ) -> Self {
        RangeDiff {
            removed: NetworkList {
                v4: removed_v4,
                v6: removed_v6,
            },
            added: NetworkList {
                v4: added_v4,
                v6: added_v6,
            },
        }
    }

    /// The part of the difference in one family.
    pub fn family(&self, family: Family) -> RangeDiff {
        let part = |list: &NetworkList| match family {
            Family::V4 => NetworkList {
                v4: list.v4.clone(),
                v6: Vec::new(),
            },
            Family::V6 => NetworkList {
                v4: Vec::new(),
                v6: list.v6.clone(),
            },
        };
        RangeDiff {
            removed: part(&self.removed),
            added: part(&self.added),
        }
    }

    /// Ranges it names, both halves.
    pub fn len(&self) -> usize {
        self.removed.len() + self.added.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn sorted_lists_unite_in_order() {
        assert_eq!(
            union(vec![1, 4, 9], vec![2, 3, 10]),
            vec![1, 2, 3, 4, 9, 10]
        );
        assert_eq!(union(vec![1, 2], vec![2, 5]), vec![1, 2, 2, 5]);
        assert_eq!(union(vec![5, 6], vec![1, 2]), vec![1, 2, 5, 6]);
        assert_eq!(union(Vec::new(), vec![7]), vec![7]);
        assert_eq!(union(vec![7], Vec::new()), vec![7]);
    }

    #[test]
    fn merges_overlap_adjacency_and_containment() {
        let list = NetworkList::from_ranges(
            vec![
                (10, 20),
                (15, 30), // overlaps
                (31, 40), // adjacent
                (50, 60),
                (52, 55), // contained
                (50, 60), // duplicate
                (70, 70),
                (72, 72), // one address apart: stays separate
                (90, 80), // reversed
            ],
            vec![],
        );
        assert_eq!(
            list.v4(),
            &[(10, 40), (50, 60), (70, 70), (72, 72), (80, 90)]
        );
        assert_eq!(list.len(), 5);
        assert_eq!(list.addresses_v4(), 31 + 11 + 1 + 1 + 11);
    }

    #[test]
    fn families_stay_apart() {
        let list = NetworkList::from_ranges(vec![(0, 5)], vec![(0, 5), (6, 9)]);
        assert_eq!(list.v4(), &[(0, 5)]);
        assert_eq!(list.v6(), &[(0, 9)]);
        assert!(list.contains(ip("0.0.0.5")));
        assert!(list.contains(ip("::9")));
        assert!(!list.contains(ip("0.0.0.6")));
    }

    #[test]
    fn top_of_the_space_does_not_overflow() {
        let list = NetworkList::from_ranges(
            vec![(u32::MAX, u32::MAX), (u32::MAX - 5, u32::MAX - 1), (0, 1)],
            vec![(u128::MAX - 1, u128::MAX), (5, u128::MAX - 2)],
        );
        assert_eq!(list.v4(), &[(0, 1), (u32::MAX - 5, u32::MAX)]);
        assert_eq!(list.v6(), &[(5, u128::MAX)]);
        assert!(list.contains(ip("255.255.255.255")));
        assert!(!list.contains(ip("255.255.255.249")));
        // After a range ending at the top, anything sorts inside it.
        let list = NetworkList::from_ranges(vec![(3, u32::MAX), (3, 7)], vec![]);
        assert_eq!(list.v4(), &[(3, u32::MAX)]);
        assert!(NetworkList::from_merged(vec![(3, u32::MAX)], vec![]).is_ok());
    }

    #[test]
    fn whole_families() {
        let list = NetworkList::from_ranges(vec![(0, 9), (10, u32::MAX)], vec![]);
        assert!(list.covers_everything(Family::V4));
        assert!(!list.covers_everything(Family::V6));
        assert_eq!(list.addresses_v4(), 1 << 32);
        let list = NetworkList::from_ranges(vec![], vec![(0, u128::MAX)]);
        assert!(list.covers_everything(Family::V6));
        assert_eq!(list.addresses_v6(), u128::MAX);
        assert!(list.contains(ip("2001:db8::1")));
    }

    #[test]
    fn mapped_addresses_are_looked_up_as_ipv4() {
        let list = NetworkList::from_ranges(vec![(0x0102_0304, 0x0102_0304)], vec![]);
        assert!(list.contains(ip("::ffff:1.2.3.4")));
        assert!(list.contains(ip("1.2.3.4")));
    }

    #[test]
    fn from_merged_checks_the_invariant() {
        assert_eq!(
            NetworkList::from_merged(vec![(1, 2), (3, 4)], vec![]),
            Err(Family::V4)
        );
        assert_eq!(
            NetworkList::from_merged(vec![(5, 6), (1, 2)], vec![]),
            Err(Family::V4)
        );
        assert_eq!(
            NetworkList::from_merged(vec![], vec![(2, 1)]),
            Err(Family::V6)
        );
        assert_eq!(
            NetworkList::from_merged(vec![(u32::MAX, u32::MAX), (u32::MAX, u32::MAX)], vec![]),
            Err(Family::V4)
        );
        assert!(NetworkList::from_merged(vec![(1, 2), (4, 4)], vec![(0, u128::MAX)]).is_ok());
    }

    #[test]
    fn iterates_as_address_pairs() {
        let list = NetworkList::from_ranges(vec![(0x0a00_0000, 0x0aff_ffff)], vec![(1, 1)]);
        let pairs: Vec<_> = list.iter().collect();
        assert_eq!(
            pairs,
            vec![
                (ip("10.0.0.0"), ip("10.255.255.255")),
                (ip("::1"), ip("::1"))
            ]
        );
    }

    /// A tiny deterministic generator (xorshift64*), so failures reproduce without a crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Random small lists over a small space (so ranges often touch, overlap and coincide),
    /// with the top of the space in play.
    fn random_list(rng: &mut Rng) -> NetworkList {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for _ in 0..rng.below(12) {
            let s = rng.below(64) as u32;
            let e = s + rng.below(6) as u32;
            v4.push((s, e));
        }
        if rng.below(5) == 0 {
            v4.push((u32::MAX - rng.below(3) as u32, u32::MAX));
        }
        for _ in 0..rng.below(6) {
            let s = u128::from(rng.below(40));
            v6.push((s, s + u128::from(rng.below(4))));
        }
        NetworkList::from_ranges(v4, v6)
    }

    fn apply<A: Address>(old: &[(A, A)], removed: &[(A, A)], added: &[(A, A)]) -> Vec<(A, A)> {
        let mut set: BTreeSet<(A, A)> = old.iter().copied().collect();
        for r in removed {
            assert!(set.remove(r), "deleted a range the set does not hold");
        }
        for r in added {
            // The kernel refuses an interval overlapping one it holds.
            assert!(
                set.iter().all(|k| k.1 < r.0 || r.1 < k.0),
                "added a range overlapping one still held"
            );
            set.insert(*r);
        }
        set.into_iter().collect()
    }

    #[test]
    fn diff_turns_old_into_new() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let old = random_list(&mut rng);
            let new = if round % 7 == 0 {
                old.clone()
            } else {
                random_list(&mut rng)
            };
            let d = diff(&old, &new);
            assert_eq!(
                apply(old.v4(), d.removed.v4(), d.added.v4()),
                new.v4(),
                "round {round}: {old:?} -> {new:?} via {d:?}"
            );
            assert_eq!(
                apply(old.v6(), d.removed.v6(), d.added.v6()),
                new.v6(),
                "round {round}"
            );
            // Minimal: nothing present in both lists is touched.
            for r in d.removed.v4() {
                assert!(!new.v4().contains(r), "round {round}: removed a kept range");
            }
            for r in d.added.v4() {
                assert!(
                    !old.v4().contains(r),
                    "round {round}: re-added a kept range"
                );
            }
            assert!(NetworkList::from_merged(d.added.v4().to_vec(), d.added.v6().to_vec()).is_ok());
            assert_eq!(d.is_empty(), old == new);
        }
    }

    #[test]
    fn diff_of_a_small_change_is_small() {
        let old =
            NetworkList::from_ranges((0..1000u32).map(|i| (i * 4, i * 4 + 1)).collect(), vec![]);
        let mut changed: Vec<_> = old.v4().to_vec();
        changed[500].1 += 1; // one range grows by one address
        changed.push((10_000, 10_000));
        let new = NetworkList::from_ranges(changed, vec![]);
        let d = diff(&old, &new);
        assert_eq!(d.removed.v4(), &[(2000, 2001)]);
        assert_eq!(d.added.v4(), &[(2000, 2002), (10_000, 10_000)]);
    }

    #[test]
    fn split_points_cut_every_nth_range_and_clipping_cuts_ranges_across_the_ends() {
        let list =
            NetworkList::from_ranges((0..10u32).map(|i| (i * 10, i * 10 + 5)).collect(), vec![]);
        assert_eq!(
            list.split_points_v4(4),
            vec![Ipv4Addr::from(40), Ipv4Addr::from(80)]
        );
        assert!(list.split_points_v4(10).is_empty());
        assert!(list.split_points_v6(1).is_empty());
        // The pieces between consecutive points hold every range exactly once.
        let pieces = [(0, 39), (40, 79), (80, u32::MAX)];
        let total: usize = pieces
            .iter()
            .map(|&(a, b)| list.v4_within(a, b).count())
            .sum();
        assert_eq!(total, 10);
        // A range crossing a cut is cut there, on both sides, and nothing else moves.
        assert_eq!(
            list.v4_within(3, 22).collect::<Vec<_>>(),
            vec![(3, 5), (10, 15), (20, 22)]
        );
        assert_eq!(list.v4_within(6, 9).count(), 0);
        assert_eq!(
            list.v4_within(95, u32::MAX).collect::<Vec<_>>(),
            vec![(95, 95)]
        );
    }

    /// Versions made at random from a small space (so ranges recur, vanish and come back):
    /// composing the differences between neighbours gives the difference between the ends.
    #[test]
    fn composed_differences_are_the_difference_from_the_base() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let mut version = || {
                let v4 = (0..next() % 12)
                    .map(|_| {
                        let a = (next() % 40) as u32 * 3;
                        (a, a + (next() % 4) as u32)
                    })
                    .collect();
                let v6 = (0..next() % 4)
                    .map(|_| {
                        let a = u128::from(next() % 20) << 64;
                        (a, a + u128::from(next() % 2))
                    })
                    .collect();
                NetworkList::from_ranges(v4, v6)
            };
            let versions: Vec<NetworkList> = (0..5).map(|_| version()).collect();
            let mut so_far = diff(&versions[0], &versions[0]);
            for pair in versions.windows(2) {
                so_far = compose(&so_far, &diff(&pair[0], &pair[1]));
            }
            let direct = diff(&versions[0], &versions[4]);
            assert_eq!(so_far, direct, "{versions:?}");
            assert!(is_merged(&so_far.added.v4) && is_merged(&so_far.removed.v4));
            assert_eq!(so_far.family(Family::V6).added.v6(), direct.added.v6());
            assert!(so_far.family(Family::V6).added.v4().is_empty());
        }
    }
}
