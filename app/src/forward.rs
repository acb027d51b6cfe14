//! Port forwards of a bridged VM's NAT as people write them: `tcp:2222:22` (port 2222 of the
//! NAT address to port 22 of the VM) or `udp:53` (the same port), for `palisadectl vm create
//! --forward` and the app's create dialog alike. Only the shape is read here; the protocol word
//! and the ports are the helper's to judge, with the policy's sentences (`Vms.CreateBridged`).

/// A forward: the protocol word, the port on the NAT address and the port on the VM.
pub type Forward = (String, u16, u16);

/// One forward, `PROTO:PORT` or `PROTO:PORT:TO_PORT`.
pub fn parse_forward(text: &str) -> Result<Forward, String> {
    let bad = || {
        format!(
            "{text:?} is not a forward: write PROTO:PORT or PROTO:PORT:TO_PORT, like tcp:2222:22"
        )
    };
    let port = |p: &str| p.parse::<u16>().map_err(|_| bad());
    match text.split(':').collect::<Vec<_>>()[..] {
        [proto, p] if !proto.is_empty() => Ok((proto.to_owned(), port(p)?, port(p)?)),
        [proto, p, to] if !proto.is_empty() => Ok((proto.to_owned(), port(p)?, port(to)?)),
        _ => Err(bad()),
    }
}

/// Forwards separated by commas or spaces (`tcp:2222:22, udp:53`); empty text is none.
pub fn parse_forwards(text: &str) -> Result<Vec<Forward>, String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|part| !part.is_empty())
        .map(parse_forward)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_parse_with_and_without_a_second_port() {
        assert_eq!(parse_forward("tcp:2222:22"), Ok(("tcp".into(), 2222, 22)));
        assert_eq!(parse_forward("udp:53"), Ok(("udp".into(), 53, 53)));
        // The protocol word is the helper's to judge, with the policy's sentence.
        assert_eq!(parse_forward("icmp:1:1"), Ok(("icmp".into(), 1, 1)));
        for bad in [
            "",
            "tcp",
            ":22",
            "tcp:x",
            "tcp:70000",
            "tcp:1:2:3",
            "tcp:-1",
        ] {
            assert!(parse_forward(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_list_of_forwards() {
        assert_eq!(parse_forwards("  "), Ok(Vec::new()));
        assert_eq!(
            parse_forwards("tcp:2222:22, udp:53 tcp:80"),
            Ok(vec![
                ("tcp".into(), 2222, 22),
                ("udp".into(), 53, 53),
                ("tcp".into(), 80, 80)
            ])
        );
        assert!(parse_forwards("tcp:2222:22, nonsense").is_err());
    }
}
