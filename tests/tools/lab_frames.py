#!/usr/bin/env python3
"""Hand-made Ethernet frames for the lab tests, sent from a raw AF_PACKET socket (root, inside a
guest's namespace), the way a hostile guest would send them:

  lab_frames.py arp IFACE SENDER_MAC SENDER_IP TARGET_MAC TARGET_IP
      an ARP reply "SENDER_IP is at SENDER_MAC", to TARGET_MAC (ff:ff:ff:ff:ff:ff: gratuitous)
  lab_frames.py udp IFACE SRC_MAC SRC_IP DST_MAC DST_IP PORT
      a UDP datagram with whatever source MAC and address it is given
Each frame is sent COUNT times (env LAB_FRAMES_COUNT, default 3), 50 ms apart; prints "sent N".
"""
import os
import socket
import struct
import sys
import time


def mac(text):
    return bytes(int(part, 16) for part in text.split(":"))


def ip(text):
    return socket.inet_aton(text)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def arp_frame(sender_mac, sender_ip, target_mac, target_ip):
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2)
    body += mac(sender_mac) + ip(sender_ip) + mac(target_mac) + ip(target_ip)
    return mac(target_mac) + mac(sender_mac) + struct.pack("!H", 0x0806) + body


def udp_frame(src_mac, src_ip, dst_mac, dst_ip, port):
    payload = b"palisade lab test"
    udp = struct.pack("!HHHH", 40000, int(port), 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, ip(src_ip), ip(dst_ip))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return mac(dst_mac) + mac(src_mac) + struct.pack("!H", 0x0800) + header + udp


def main():
    cmd, iface, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if cmd == "arp":
        frame = arp_frame(*args)
    elif cmd == "udp":
        frame = udp_frame(*args)
    else:
        sys.exit(f"unknown command {cmd}")
    count = int(os.environ.get("LAB_FRAMES_COUNT", "3"))
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((iface, 0))
        for _ in range(count):
            s.send(frame)
            time.sleep(0.05)
    print(f"sent {count}", flush=True)


if __name__ == "__main__":
    main()
