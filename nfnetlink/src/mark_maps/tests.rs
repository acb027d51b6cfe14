use super::*;
use crate::tests::{in_netns, nft, run};
use crate::TableFamily;
use std::net::{Ipv4Addr, Ipv6Addr};

fn endpoint(addr: &str, proto: u8, port: u16) -> Endpoint {
    Endpoint {
        addr: addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}")),
        proto,
        port,
    }
}

#[test]
fn keys_are_laid_out_as_the_kernel_compares_them() {
    let (key, len) = endpoint("10.0.0.1", 6, 80).bytes();
    // nft --debug=netlink shows this element as `0100000a 00000006 00005000`.
    assert_eq!(&key[..len], &[10, 0, 0, 1, 6, 0, 0, 0, 0, 80, 0, 0]);
    let (key, len) = endpoint("2001:db8::1", 17, 53).bytes();
    assert_eq!(len, 24);
    assert_eq!(&key[16..24], &[17, 0, 0, 0, 0, 53, 0, 0]);
    for e in [
        endpoint("10.0.0.1", 6, 443),
        endpoint("2001:db8::7", 17, 65535),
    ] {
        let (key, len) = e.bytes();
        assert_eq!(Endpoint::from_bytes(&key[..len]), Some(e));
    }
    assert_eq!(Endpoint::from_bytes(&[0; 8]), None);
}

#[test]
fn comments_are_read_from_nfts_user_data() {
    assert_eq!(comment_of(b"\x00\x04abc\x00"), Some("abc".to_owned()));
    // Another user data item first, then the comment.
    assert_eq!(
        comment_of(b"\x01\x01x\x00\x03ok\x00"),
        Some("ok".to_owned())
    );
    assert_eq!(comment_of(b"\x01\x01x"), None);
    // A length past the end is no comment, not a panic.
    assert_eq!(comment_of(b"\x00\x09ab"), None);
}

#[test]
fn a_long_comment_is_refused_before_anything_is_written() {
    let mut batch = Batch::new();
    let map = SetRef::new(TableFamily::Inet, "t", "m").unwrap_or_else(|e| panic!("{e}"));
    let entry = MarkEntry {
        key: endpoint("10.0.0.1", 6, 80),
        mark: 1,
        comment: "x".repeat(255),
    };
    assert!(batch.add_mark_entries(&map, [&entry]).is_err());
    assert!(batch.is_empty());
}

const MAP_TABLE: &str = "
table inet palisade_mmtest {
    map m4 { type ipv4_addr . inet_proto . inet_service : mark; counter; }
    map m6 { type ipv6_addr . inet_proto . inet_service : mark; counter; }
    chain output {
        type filter hook output priority filter; policy accept;
        ct mark set ip daddr . meta l4proto . th dport map @m4 drop
        ct mark set ip6 daddr . meta l4proto . th dport map @m6 drop
    }
}
";

#[test]
#[ignore = "needs root and a network namespace"]
fn root_entries_are_added_counted_listed_and_replaced() {
    in_netns(|| {
        run("ip", &["link", "set", "lo", "up"], None);
        run("nft", &["-f", "-"], Some(MAP_TABLE));
        let m4 = SetRef::new(TableFamily::Inet, "palisade_mmtest", "m4")
            .unwrap_or_else(|e| panic!("{e}"));
        let m6 = SetRef::new(TableFamily::Inet, "palisade_mmtest", "m6")
            .unwrap_or_else(|e| panic!("{e}"));
        // Enough entries to need several messages.
        let many: Vec<MarkEntry> = (0..5000u32)
            .map(|i| MarkEntry {
                key: Endpoint {
                    addr: Ipv4Addr::from(0x0a00_0000 + i).into(),
                    proto: 6,
                    port: 1000,
                },
                mark: i + 1,
                comment: format!("c_rule_{i}"),
            })
            .collect();
        let udp = MarkEntry {
            key: endpoint("127.0.0.9", 17, 9),
            mark: 0xfeed,
            comment: "hit".into(),
        };
        let udp6 = MarkEntry {
            key: Endpoint {
                addr: Ipv6Addr::LOCALHOST.into(),
                proto: 17,
                port: 9,
            },
            mark: 0xbeef,
            comment: String::new(),
        };
        let mut batch = Batch::new();
        batch
            .add_mark_entries(&m4, many.iter().chain([&udp]))
            .unwrap_or_else(|e| panic!("{e}"));
        batch
            .add_mark_entries(&m6, [&udp6])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            batch.message_count() > 2,
            "5,000 entries need several messages"
        );
        let mut socket = NftSocket::open().expect("the netlink socket opens");
        socket.send(&mut batch).unwrap_or_else(|e| panic!("{e}"));
        let listed = nft(&["list", "map", "inet", "palisade_mmtest", "m6"]);
        assert!(
            listed.contains("::1 . udp . 9 counter packets 0 bytes 0 : 0x0000beef"),
            "{listed}"
        );
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
        for _ in 0..3 {
            // The map's rule drops it in the output hook: the send fails, the element counts.
            let _ = sender.send_to(b"12345678", "127.0.0.9:9");
        }
        let entries = socket
            .list_mark_entries(&m4)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(entries.len(), 5001);
        let hit = entries
            .iter()
            .find(|e| e.key == udp.key)
            .expect("the UDP entry is listed");
        assert_eq!(hit.mark, Some(0xfeed));
        assert_eq!(hit.comment.as_deref(), Some("hit"));
        assert_eq!(
            hit.counted,
            Some(Counted {
                packets: 3,
                bytes: 3 * 36
            })
        );
        let first = entries
            .iter()
            .find(|e| e.key == many[0].key)
            .expect("the first entry is listed");
        assert_eq!(first.comment.as_deref(), Some("c_rule_0"));
        assert_eq!(first.counted, Some(Counted::default()));
        // A key deleted and added again with another mark in one transaction.
        let mut batch = Batch::new();
        batch.delete_mark_entries(&m4, [udp.key, many[1].key]);
        let again = MarkEntry {
            mark: 0xcafe,
            comment: "changed".into(),
            ..udp.clone()
        };
        batch
            .add_mark_entries(&m4, [&again])
            .unwrap_or_else(|e| panic!("{e}"));
        socket.send(&mut batch).unwrap_or_else(|e| panic!("{e}"));
        let entries = socket
            .list_mark_entries(&m4)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(entries.len(), 5000);
        let hit = entries
            .iter()
            .find(|e| e.key == udp.key)
            .expect("the entry is back");
        assert_eq!(hit.mark, Some(0xcafe));
        assert_eq!(
            hit.counted,
            Some(Counted::default()),
            "a new element counts anew"
        );
        assert!(!entries.iter().any(|e| e.key == many[1].key));
        // Deleting what is not there fails the whole transaction.
        let mut batch = Batch::new();
        batch.delete_mark_entries(&m4, [many[1].key, many[2].key]);
        assert!(socket.send(&mut batch).is_err());
        assert_eq!(
            socket.list_mark_entries(&m4).map(|e| e.len()).ok(),
            Some(5000)
        );
        let missing = SetRef::new(TableFamily::Inet, "palisade_mmtest", "nothing")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(socket.list_mark_entries(&missing).ok(), Some(Vec::new()));
    });
}

#[test]
#[ignore = "needs root and a network namespace"]
fn root_an_interval_maps_entries_are_listed_with_their_last_keys_and_counts() {
    in_netns(|| {
        run("ip", &["link", "set", "lo", "up"], None);
        run(
            "nft",
            &["-f", "-"],
            Some(
                "table inet palisade_rmtest {
                    map r4 { type ipv4_addr . inet_proto . inet_service : mark; flags interval; counter;
                        elements = { 127.0.0.0/24 . udp . 9-19 counter packets 7 bytes 70 comment \"range\" : 0x5,
                                     10.0.0.1 . tcp . 443 comment \"single\" : 0x6 } }
                    chain output { type filter hook output priority filter; policy accept;
                        ct mark set ip daddr . meta l4proto . th dport map @r4 drop
                    }
                }",
            ),
        );
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
        // Inside the network and the port range: dropped and counted; the port past it is not.
        let _ = sender.send_to(b"12345678", "127.0.0.200:15");
        let _ = sender.send_to(b"12345678", "127.0.0.200:20");
        let map = SetRef::new(TableFamily::Inet, "palisade_rmtest", "r4")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut socket = NftSocket::open().expect("the netlink socket opens");
        let mut entries = socket
            .list_mark_entries(&map)
            .unwrap_or_else(|e| panic!("{e}"));
        entries.sort_by_key(|e| e.mark);
        assert_eq!(entries.len(), 2, "{entries:?}");
        assert_eq!(entries[0].key, endpoint("127.0.0.0", 17, 9));
        assert_eq!(entries[0].key_end, Some(endpoint("127.0.0.255", 17, 19)));
        assert_eq!(entries[0].comment.as_deref(), Some("range"));
        assert_eq!(
            entries[0].counted,
            Some(Counted {
                packets: 8,
                bytes: 70 + 36
            }),
            "the count it was given and the packet it dropped"
        );
        assert_eq!(entries[1].key, endpoint("10.0.0.1", 6, 443));
        assert_eq!(entries[1].key_end, Some(entries[1].key));
    });
}

/// Interval sets and maps of endpoints made and filled over netlink are what nft makes of their
/// text: `nft list` shows them so, counts carried in start from there, and packets are looked
/// up and counted per element.
#[test]
#[ignore = "needs root and a network namespace"]
fn root_interval_endpoint_sets_made_over_netlink_are_what_nft_makes() {
    in_netns(|| {
        run("ip", &["link", "set", "lo", "up"], None);
        run(
            "nft",
            &["-f", "-"],
            Some(
                "table inet palisade_nltest {
                    chain output { type filter hook output priority filter; policy accept; }
                }",
            ),
        );
        let map = SetRef::new(TableFamily::Inet, "palisade_nltest", "r4")
            .unwrap_or_else(|e| panic!("{e}"));
        let set = SetRef::new(TableFamily::Inet, "palisade_nltest", "s6")
            .unwrap_or_else(|e| panic!("{e}"));
        let ranged = RangeEntry {
            first: endpoint("127.0.0.0", 17, 9),
            last: endpoint("127.0.0.255", 17, 19),
            mark: Some(0x5),
            comment: "range".into(),
            counted: Some(Counted {
                packets: 7,
                bytes: 70,
            }),
        };
        let single = RangeEntry {
            first: endpoint("10.0.0.1", 6, 443),
            last: endpoint("10.0.0.1", 6, 443),
            mark: Some(0x6),
            comment: "single".into(),
            counted: None,
        };
        let v6 = RangeEntry {
            first: endpoint("2001:db8::", 6, 1000),
            last: endpoint("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 6, 1099),
            mark: None,
            comment: "net6".into(),
            counted: None,
        };
        // Many elements, over several messages.
        let many: Vec<RangeEntry> = (0..3000u32)
            .map(|i| RangeEntry {
                first: Endpoint {
                    addr: Ipv4Addr::from(0x0b00_0000 + (i << 8)).into(),
                    proto: 6,
                    port: 1000,
                },
                last: Endpoint {
                    addr: Ipv4Addr::from(0x0b00_0000 + (i << 8) + 255).into(),
                    proto: 6,
                    port: 1099,
                },
                mark: Some(i + 100),
                comment: format!("c_rule_{i}"),
                counted: None,
            })
            .collect();
        let mut batch = Batch::new();
        batch.new_endpoint_set(&map, false, true);
        batch.new_endpoint_set(&set, true, false);
        batch
            .add_range_entries(&map, many.iter().chain([&ranged, &single]))
            .unwrap_or_else(|e| panic!("{e}"));
        batch
            .add_range_entries(&set, [&v6])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            batch.message_count() > 4,
            "3,000 elements need several messages"
        );
        let mut socket = NftSocket::open().expect("the netlink socket opens");
        socket.send(&mut batch).unwrap_or_else(|e| panic!("{e}"));
        run(
            "nft",
            &[
                "add rule inet palisade_nltest output ct mark set ip daddr . meta l4proto . th dport map @r4 drop",
            ],
            None,
        );
        let listed = nft(&["list", "map", "inet", "palisade_nltest", "r4"]);
        for want in [
            "type ipv4_addr . inet_proto . inet_service : mark",
            "flags interval",
            "counter",
            "127.0.0.0/24 . udp . 9-19 counter packets 7 bytes 70 comment \"range\" : 0x00000005",
            "10.0.0.1 . tcp . 443 counter packets 0 bytes 0 comment \"single\" : 0x00000006",
            "11.0.5.0/24 . tcp . 1000-1099 counter packets 0 bytes 0 comment \"c_rule_5\" : 0x00000069",
        ] {
            assert!(listed.contains(want), "{want} missing in {listed}");
        }
        let listed = nft(&["list", "set", "inet", "palisade_nltest", "s6"]);
        assert!(
            listed.contains("type ipv6_addr . inet_proto . inet_service")
                && listed.contains(
                    "2001:db8::/32 . tcp . 1000-1099 counter packets 0 bytes 0 comment \"net6\""
                ),
            "{listed}"
        );
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
        let _ = sender.send_to(b"12345678", "127.0.0.200:15");
        let _ = sender.send_to(b"12345678", "127.0.0.200:20");
        let entries = socket
            .list_mark_entries(&map)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(entries.len(), 3002);
        let hit = entries
            .iter()
            .find(|e| e.comment.as_deref() == Some("range"))
            .expect("the range is listed");
        assert_eq!((hit.key, hit.key_end), (ranged.first, Some(ranged.last)));
        assert_eq!(
            hit.counted,
            Some(Counted {
                packets: 8,
                bytes: 70 + 36
            })
        );
        // Refused before anything is written.
        let mixed = RangeEntry {
            last: endpoint("::1", 6, 443),
            ..single.clone()
        };
        let mut batch = Batch::new();
        assert!(batch.add_range_entries(&map, [&mixed]).is_err());
        assert!(batch.is_empty());
    });
}
