#!/usr/bin/env python3
"""Real connections for the end-to-end tests, run as whichever user the test chooses.

  netcheck.py listen PORT [PORT...]      echo server on 127.0.0.1 (and ::1), prints "ready"
  netcheck.py listen-on ADDR PORT        echo server on one address, prints "ready"
  netcheck.py connect HOST PORT          prints "connected" (exit 0) or "failed: <why>" (exit 1)
  netcheck.py udp HOST PORT COUNT        sends COUNT one-byte UDP datagrams, prints "sent COUNT"
  netcheck.py session HOST PORT GOFILE   connects, echoes "one", waits for GOFILE to exist,
                                         then tries "two": prints "two: echoed" or "two: cut (<why>)"
  netcheck.py whoami ADDR PORT           tells each client the address it came from ("peer IP"),
                                         prints "ready", then the same "peer IP" line per client
  netcheck.py ask HOST PORT              connects and prints the server's first line (whoami's
                                         "peer IP"), or "failed: <why>" (exit 1)
Every wait is bounded so a test can never hang on this tool.
"""
import os
import socket
import sys
import threading
import time

TIMEOUT = 3.0


def serve(sock):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def echo(conn):
    with conn:
        while True:
            data = conn.recv(4096)
            if not data:
                return
            conn.sendall(data)


def listen(ports):
    for port in ports:
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            try:
                s = socket.socket(family, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((host, int(port)))
                s.listen(64)
            except OSError:
                continue
            threading.Thread(target=serve, args=(s,), daemon=True).start()
    print("ready", flush=True)
    time.sleep(3600)


def listen_on(addr, port):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(64)
    threading.Thread(target=serve, args=(s,), daemon=True).start()
    print("ready", flush=True)
    time.sleep(3600)


def whoami(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(64)
    print("ready", flush=True)
    deadline = time.time() + 3600
    while time.time() < deadline:
        conn, peer = s.accept()
        print(f"peer {peer[0]}", flush=True)
        with conn:
            try:
                conn.sendall(f"peer {peer[0]}\n".encode())
            except OSError:
                pass


def ask(host, port):
    try:
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as s:
            s.settimeout(TIMEOUT)
            line = s.makefile().readline().strip()
            print(line or "failed: no answer", flush=True)
            return 0 if line else 1
    except OSError as e:
        print(f"failed: {e}", flush=True)
        return 1


def connect(host, port):
    try:
        with socket.create_connection((host, int(port)), timeout=TIMEOUT):
            print("connected", flush=True)
            return 0
    except OSError as e:
        print(f"failed: {e}", flush=True)
        return 1


def udp(host, port, count):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        for _ in range(int(count)):
            try:
                s.sendto(b"x", (host, int(port)))
            except OSError:
                # A dropping firewall refuses the send itself (EPERM); it still counts it.
                pass
    print(f"sent {count}", flush=True)
    return 0


def session(host, port, gofile):
    s = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    s.sendall(b"one")
    print("one: " + ("echoed" if s.recv(16) == b"one" else "lost"), flush=True)
    deadline = time.time() + 30
    while not os.path.exists(gofile) and time.time() < deadline:
        time.sleep(0.05)
    try:
        s.sendall(b"two")
        reply = s.recv(16)
        print("two: " + ("echoed" if reply == b"two" else f"cut (closed: {reply!r})"), flush=True)
    except OSError as e:
        print(f"two: cut ({e})", flush=True)
    return 0


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "listen":
        listen(args)
    elif cmd == "listen-on":
        listen_on(*args)
    elif cmd == "connect":
        sys.exit(connect(*args))
    elif cmd == "udp":
        sys.exit(udp(*args))
    elif cmd == "whoami":
        whoami(*args)
    elif cmd == "ask":
        sys.exit(ask(*args))
    elif cmd == "session":
        sys.exit(session(*args))
    else:
        sys.exit(f"unknown command {cmd}")
