#!/usr/bin/env python3
"""A small authoritative DNS server for the DNS-rule tests (dnspython for the wire format), UDP and
TCP on every address given, port 53. Prints "ready" once it listens.

  dns_server.py ADDR [ADDR...]

The zone, all answers with a TTL of 1 second:
  allowed.test          A: a new address on every answer (10.77.0.0/16, counting up), the
                        rotation of a load balancer
  x.corp.test (any depth below corp.test), corp.test, anything under evil.test:
                        A: a fixed address derived from the name (10.78/16, 10.83/16)
  alias.test            CNAME edge.cdn.test, which has A 10.79.0.1
  big.test              40 A records (10.80.0.1-40): over UDP without EDNS it does not fit in 512
                        bytes, so the answer is truncated (TC) and the client asks over TCP
  other.test            A 10.81.0.1 (no rule names it)
  ads.blocked.test      A 10.82.0.1 (a domain list blocks it)
  broken.test           never answered: the upstream fails for this name only
  count.test            TXT: how many questions this server has answered over UDP and TCP
  anything else         NXDOMAIN
"""
import hashlib
import ipaddress
import socket
import socketserver
import sys
import threading

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

TTL = 1
lock = threading.Lock()
state = {"next": 0, "udp": 0, "tcp": 0}


def hashed(base, name):
    digest = hashlib.sha256(name.encode()).digest()
    return str(ipaddress.ip_address(base) + 1 + int.from_bytes(digest[:2], "big") % 65000)


def records(name):
    """(rrsets, rcode) for a lower-case name without the final dot; None to stay silent."""
    if name == "allowed.test":
        with lock:
            state["next"] += 1
            n = state["next"]
        addr = str(ipaddress.ip_address("10.77.0.0") + n)
        return [("allowed.test", "A", [addr])], dns.rcode.NOERROR
    if name == "corp.test" or name.endswith(".corp.test"):
        return [(name, "A", [hashed("10.78.0.0", name)])], dns.rcode.NOERROR
    if name.endswith(".evil.test"):
        return [(name, "A", [hashed("10.83.0.0", name)])], dns.rcode.NOERROR
    if name == "alias.test":
        return [("alias.test", "CNAME", ["edge.cdn.test."]), ("edge.cdn.test", "A", ["10.79.0.1"])], dns.rcode.NOERROR
    if name == "big.test":
        return [("big.test", "A", ["10.80.0.%d" % i for i in range(1, 41)])], dns.rcode.NOERROR
    if name == "other.test":
        return [("other.test", "A", ["10.81.0.1"])], dns.rcode.NOERROR
    if name == "ads.blocked.test":
        return [("ads.blocked.test", "A", ["10.82.0.1"])], dns.rcode.NOERROR
    if name == "broken.test":
        return None
    if name == "count.test":
        with lock:
            text = '"udp=%d tcp=%d"' % (state["udp"], state["tcp"])
        return [("count.test", "TXT", [text])], dns.rcode.NOERROR
    return [], dns.rcode.NXDOMAIN


def respond(wire, tcp):
    try:
        query = dns.message.from_wire(wire)
    except Exception:
        return None
    with lock:
        state["tcp" if tcp else "udp"] += 1
    q = query.question[0]
    name = q.name.to_text(omit_final_dot=True).lower()
    found = records(name)
    if found is None:
        return None
    rrsets, rcode = found
    answer = dns.message.make_response(query)
    answer.flags |= dns.flags.AA
    answer.set_rcode(rcode)
    for owner, kind, values in rrsets:
        rdtype = dns.rdatatype.from_text(kind)
        if kind in ("A", "TXT") and rdtype != q.rdtype:
            continue
        answer.answer.append(dns.rrset.from_text_list(owner + ".", TTL, "IN", kind, values))
    size = 65535 if tcp else (query.payload if query.edns >= 0 else 512)
    try:
        return answer.to_wire(max_size=size)
    except dns.exception.TooBig:
        answer.answer = []
        answer.flags |= dns.flags.TC
        return answer.to_wire()


class Udp(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        reply = respond(data, False)
        if reply is not None:
            sock.sendto(reply, self.client_address)


class Tcp(socketserver.BaseRequestHandler):
    def handle(self):
        conn = self.request
        conn.settimeout(10)
        try:
            while True:
                head = conn.recv(2, socket.MSG_WAITALL)
                if len(head) < 2:
                    return
                wire = conn.recv(int.from_bytes(head, "big"), socket.MSG_WAITALL)
                reply = respond(wire, True)
                if reply is None:
                    return
                conn.sendall(len(reply).to_bytes(2, "big") + reply)
        except OSError:
            return


class ThreadedUdp(socketserver.ThreadingMixIn, socketserver.UDPServer):
    daemon_threads = True
    allow_reuse_address = True


class ThreadedTcp(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    servers = []
    for addr in sys.argv[1:]:
        servers.append(ThreadedUdp((addr, 53), Udp))
        servers.append(ThreadedTcp((addr, 53), Tcp))
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
