#!/usr/bin/python3
"""A real Spice link handshake on the main channel, with a ticket (password), for the console tests.

  spice_link.py HOST PORT PASSWORD [--timeout S]

Prints exactly one line and exits:
  ok                       exit 0  the server accepted the ticket (SPICE_LINK_ERR_OK)
  auth-failed <code>       exit 1  the server refused the ticket; 7 = SPICE_LINK_ERR_PERMISSION_DENIED
                                   (wrong password, expired password, or no password set)
  refused <errno text>     exit 2  TCP connection refused or reset (what `reject with tcp reset` does)
  timeout                  exit 3  nothing within S seconds (default 5) for the whole exchange
  protocol-error <what>    exit 4  the peer does not speak the Spice link protocol as expected
  unreachable <errno text> exit 5  any other connect failure (no route, EPERM from a firewall drop, ...)
  tls-failed <reason>      exit 6  with --tls CAFILE: the TLS session failed (untrusted certificate, ...)
Usage errors exit 64. The timeout is one deadline for the whole run: connect and every read get only
what is left of it, so the tool can never hang a test.

Wire format (spice-protocol, spice/protocol.h; every integer little-endian, structs packed):

  SpiceLinkHeader   (16 bytes)  u32 magic "REDQ" | u32 major_version = 2 | u32 minor_version = 2
                                | u32 size (bytes of the message that follows)
  SpiceLinkMess     (18 bytes)  u32 connection_id (0 = new session) | u8 channel_type (1 = main)
                                | u8 channel_id | u32 num_common_caps | u32 num_channel_caps
                                | u32 caps_offset (from the start of SpiceLinkMess)
                    then num_common_caps + num_channel_caps u32 capability bit-words
  SpiceLinkReply    (178 bytes) u32 error (SPICE_LINK_ERR_*) | u8 pub_key[162] (DER SubjectPublicKeyInfo,
                                RSA 1024) | u32 num_common_caps | u32 num_channel_caps | u32 caps_offset
                    then the server's capability words (the reply is preceded by its own SpiceLinkHeader)
  SpiceLinkAuthMechanism (4)    u32 auth_mechanism = SPICE_COMMON_CAP_AUTH_SPICE (1); sent only when both
                                sides advertise SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION (bit 0)
  SpiceLinkEncryptedTicket (128) RSA-OAEP (MGF1 and hash SHA-1) of the password plus its NUL terminator,
                                under pub_key
  link result       (4 bytes)   u32 SPICE_LINK_ERR_*, 0 = OK

The client advertises common caps AUTH_SELECTION (bit 0) and AUTH_SPICE (bit 1), as spice-gtk does, and no
channel caps (so no mini-header; nothing after the link result is read).
"""
import errno
import socket
import ssl
import struct
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

MAGIC = b"REDQ"
VERSION_MAJOR, VERSION_MINOR = 2, 2
CHANNEL_MAIN = 1
CAP_AUTH_SELECTION = 0  # SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION (a bit number)
CAP_AUTH_SPICE = 1  # SPICE_COMMON_CAP_AUTH_SPICE (bit number, and the auth_mechanism value)
PUBKEY_BYTES = 162  # SPICE_TICKET_PUBKEY_BYTES
MAX_REPLY = 4096  # a real reply is 178 bytes plus a few capability words
LINK_ERRORS = ("OK", "ERROR", "INVALID_MAGIC", "INVALID_DATA", "VERSION_MISMATCH", "NEED_SECURED",
               "NEED_UNSECURED", "PERMISSION_DENIED", "BAD_CONNECTION_ID", "CHANNEL_NOT_AVAILABLE")
HEADER = struct.Struct("<4sIII")
LINK_MESS = struct.Struct("<IBBIII")
REPLY = struct.Struct("<I%dsIII" % PUBKEY_BYTES)


class Outcome(Exception):
    """Ends the run with one line and an exit code."""

    def __init__(self, line, code):
        super().__init__(line)
        self.line, self.code = line, code


def protocol_error(what):
    return Outcome("protocol-error " + what, 4)


def error_name(code):
    return LINK_ERRORS[code] if code < len(LINK_ERRORS) else "unknown"


class Link:
    """A socket whose every operation is bounded by one overall deadline."""

    def __init__(self, host, port, deadline, cafile=None):
        self.deadline = deadline
        self.sock = socket.create_connection((host, port), timeout=self.remaining())
        if cafile:
            # Spice over TLS: the same link messages inside a TLS session whose certificate must
            # chain to the given CA and name the address we connected to.
            context = ssl.create_default_context(cafile=cafile)
            self.sock = context.wrap_socket(self.sock, server_hostname=host)

    def remaining(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        return left

    def send(self, data):
        self.sock.settimeout(self.remaining())
        self.sock.sendall(data)

    def recv_exact(self, n, what):
        buf = b""
        while len(buf) < n:
            self.sock.settimeout(self.remaining())
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise protocol_error("connection closed while reading %s (%d of %d bytes)" % (what, len(buf), n))
            buf += chunk
        return buf


def caps_bits(words):
    bits = set()
    for index, word in enumerate(words):
        bits.update(index * 32 + bit for bit in range(32) if word >> bit & 1)
    return bits


def handshake(link, password):
    common_caps = [1 << CAP_AUTH_SELECTION | 1 << CAP_AUTH_SPICE]
    mess = LINK_MESS.pack(0, CHANNEL_MAIN, 0, len(common_caps), 0, LINK_MESS.size)
    mess += struct.pack("<%dI" % len(common_caps), *common_caps)
    link.send(HEADER.pack(MAGIC, VERSION_MAJOR, VERSION_MINOR, len(mess)) + mess)

    magic, major, _minor, size = HEADER.unpack(link.recv_exact(HEADER.size, "SpiceLinkHeader"))
    if magic != MAGIC:
        raise protocol_error("bad magic %r" % magic)
    if major != VERSION_MAJOR:
        raise protocol_error("server major version %d" % major)
    if size < 4 or size > MAX_REPLY:
        raise protocol_error("reply size %d" % size)
    reply = link.recv_exact(size, "SpiceLinkReply")
    error = struct.unpack_from("<I", reply)[0]
    if error != 0:
        raise protocol_error("link reply error %d (%s)" % (error, error_name(error)))
    if size < REPLY.size:
        raise protocol_error("reply size %d, want at least %d" % (size, REPLY.size))
    _, pub_key, n_common, n_channel, caps_offset = REPLY.unpack_from(reply)
    if caps_offset < REPLY.size or caps_offset + 4 * (n_common + n_channel) > size:
        raise protocol_error("reply capabilities out of bounds")
    server_caps = caps_bits(struct.unpack_from("<%dI" % n_common, reply, caps_offset))

    try:
        key = serialization.load_der_public_key(pub_key)
    except ValueError as e:
        raise protocol_error("server public key: %s" % e) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise protocol_error("server public key is not RSA")
    if CAP_AUTH_SELECTION in server_caps:
        if CAP_AUTH_SPICE not in server_caps:
            raise protocol_error("server does not offer Spice ticket authentication")
        link.send(struct.pack("<I", CAP_AUTH_SPICE))
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    try:
        ticket = key.encrypt(password.encode() + b"\0", oaep)
    except ValueError as e:
        raise protocol_error("cannot encrypt the password: %s" % e) from None
    link.send(ticket)

    result = struct.unpack("<I", link.recv_exact(4, "link result"))[0]
    if result != 0:
        raise Outcome("auth-failed %d" % result, 1)


def run(argv):
    args, timeout, cafile = [], 5.0, None
    it = iter(argv)
    for arg in it:
        if arg == "--tls":
            cafile = next(it, None)
            if cafile is None:
                raise Outcome("usage: --tls needs the CA certificate file", 64)
        elif arg == "--timeout":
            try:
                timeout = float(next(it))
            except (StopIteration, ValueError):
                raise Outcome("usage: --timeout needs a number of seconds", 64) from None
        else:
            args.append(arg)
    if len(args) != 3 or not args[1].isdigit():
        raise Outcome("usage: spice_link.py HOST PORT PASSWORD [--timeout S] [--tls CAFILE]", 64)
    host, port, password = args[0], int(args[1]), args[2]
    deadline = time.monotonic() + timeout
    link = None
    try:
        link = Link(host, port, deadline, cafile)
        handshake(link, password)
    except socket.timeout:
        raise Outcome("timeout", 3) from None
    except ssl.SSLError as e:
        raise Outcome("tls-failed " + (e.reason or str(e)), 6) from None
    except OSError as e:
        text = e.strerror or str(e)  # for a host name that does not resolve, too (socket.gaierror)
        if e.errno in (errno.ECONNREFUSED, errno.ECONNRESET):
            raise Outcome("refused " + text, 2) from None
        if e.errno == errno.EPIPE:
            raise protocol_error("server closed the connection while we were sending") from None
        raise Outcome("unreachable " + text, 5) from None
    finally:
        if link is not None:
            link.sock.close()
    return Outcome("ok", 0)


def main():
    try:
        outcome = run(sys.argv[1:])
    except Outcome as o:
        outcome = o
    print(outcome.line, flush=True)
    return outcome.code


if __name__ == "__main__":
    sys.exit(main())
