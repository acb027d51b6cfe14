#!/usr/bin/env python3
"""A guest's DNS, for the DNS-rule tests: run as a VM's user, its questions go to the resolver of
/etc/resolv.conf (or --server) on port 53, which the firewall redirects to the VM's forwarder.
Prints one JSON object.

  dns_probe.py resolve NAME [--type A] [--server ADDR] [--port 53] [--connect PORT]
        {"rcode": "NOERROR", "addresses": [...], "tcp": bool, "unreachable": [...]}
        (tcp: a truncated answer was asked again; with --connect, every answered address is
        connected to straight after the answer, and those that refuse are listed)
  dns_probe.py rotate COUNT PORT
        asks allowed.test COUNT times; straight after each answer connects to every answered address
        on PORT. {"answers": n, "addresses": [...], "misses": [...], "failed_lookups": n}
  dns_probe.py connect ADDR PORT
        {"connected": bool, "why": "..."}
  dns_probe.py raw HEX [--tcp]
        sends the bytes as they are; {"answer": "hex" or null}
  dns_probe.py qps SECONDS NAME [--server ADDR]
        keeps 32 questions for NAME outstanding for SECONDS; {"answers": n, "per_second": x}
  dns_probe.py flood COUNT
        sends COUNT questions for distinct names as fast as it can, without waiting for answers
"""
import json
import socket
import sys
import time

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

TIMEOUT = 3.0
# Longer than the forwarder's wait for its upstream, so its SERVFAIL arrives.
LOOKUP_TIMEOUT = 12.0


def resolver():
    for line in open("/etc/resolv.conf"):
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            return parts[1]
    return "127.0.0.1"


def option(name, default):
    if name in sys.argv:
        return sys.argv[sys.argv.index(name) + 1]
    return default


def ask(name, kind="A", server=None, port=53):
    query = dns.message.make_query(name, kind)
    answer, tcp = dns.query.udp_with_fallback(query, server or resolver(), timeout=LOOKUP_TIMEOUT, port=port)
    addresses = [r.address for rrset in answer.answer for r in rrset
                 if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)]
    return dns.rcode.to_text(answer.rcode()), addresses, tcp


def connect(addr, port, timeout=1.0):
    try:
        with socket.create_connection((addr, port), timeout=timeout):
            return True, ""
    except OSError as e:
        return False, str(e)


def main():
    cmd = sys.argv[1]
    if cmd == "resolve":
        try:
            rcode, addresses, tcp = ask(sys.argv[2], option("--type", "A"), option("--server", None),
                                        int(option("--port", "53")))
            out = {"rcode": rcode, "addresses": addresses, "tcp": tcp, "unreachable": []}
            if "--connect" in sys.argv:
                port = int(option("--connect", "80"))
                out["unreachable"] = [a for a in addresses if not connect(a, port)[0]]
            print(json.dumps(out))
        except Exception as e:
            print(json.dumps({"rcode": "no answer", "addresses": [], "error": repr(e)}))
    elif cmd == "rotate":
        count, port = int(sys.argv[2]), int(sys.argv[3])
        out = {"answers": 0, "addresses": [], "misses": [], "failed_lookups": 0, "failures": []}
        for _ in range(count):
            try:
                rcode, addresses, _ = ask("allowed.test")
            except Exception as e:
                out["failed_lookups"] += 1
                out["failures"] = (out["failures"] + [repr(e)])[:5]
                continue
            if rcode != "NOERROR" or not addresses:
                out["failed_lookups"] += 1
                out["failures"] = (out["failures"] + [rcode])[:5]
                continue
            out["answers"] += 1
            for a in addresses:
                out["addresses"].append(a)
                ok, why = connect(a, port)
                if not ok:
                    out["misses"].append("%s: %s" % (a, why))
        print(json.dumps(out))
    elif cmd == "connect":
        ok, why = connect(sys.argv[2], int(sys.argv[3]), TIMEOUT)
        print(json.dumps({"connected": ok, "why": why}))
    elif cmd == "raw":
        data = bytes.fromhex(sys.argv[2])
        server = resolver()
        try:
            if "--tcp" in sys.argv:
                with socket.create_connection((server, 53), timeout=TIMEOUT) as s:
                    s.sendall(len(data).to_bytes(2, "big") + data)
                    head = s.recv(2)
                    answer = s.recv(65535) if len(head) == 2 else b""
            else:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.settimeout(TIMEOUT)
                s.sendto(data, (server, 53))
                answer, _ = s.recvfrom(65535)
            print(json.dumps({"answer": answer.hex() if answer else None}))
        except OSError:
            print(json.dumps({"answer": None}))
    elif cmd == "qps":
        import select
        seconds, name = float(sys.argv[2]), sys.argv[3]
        server = option("--server", None) or resolver()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        wire = bytearray(dns.message.make_query(name, "A").to_wire())
        outstanding, answers, next_id = {}, 0, 0
        started = time.monotonic()
        deadline = started + seconds
        while time.monotonic() < deadline:
            now = time.monotonic()
            for qid in [q for q, t in outstanding.items() if now - t > 1.0]:
                del outstanding[qid]
            while len(outstanding) < 32:
                next_id = (next_id + 1) % 65536
                wire[0:2] = next_id.to_bytes(2, "big")
                s.sendto(bytes(wire), (server, 53))
                outstanding[next_id] = now
            ready, _, _ = select.select([s], [], [], 0.05)
            while ready:
                try:
                    data = s.recv(65535)
                except BlockingIOError:
                    break
                qid = int.from_bytes(data[0:2], "big")
                if outstanding.pop(qid, None) is not None:
                    answers += 1
        elapsed = time.monotonic() - started
        print(json.dumps({"answers": answers, "per_second": round(answers / elapsed, 1)}))
    elif cmd == "flood":
        count = int(sys.argv[2])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server = resolver()
        started = time.monotonic()
        for i in range(count):
            q = dns.message.make_query("n%d.corp.test" % i, "A")
            try:
                s.sendto(q.to_wire(), (server, 53))
            except OSError:
                pass
        print(json.dumps({"sent": count, "seconds": round(time.monotonic() - started, 3)}))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
