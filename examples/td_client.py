#!/usr/bin/env python3
"""The TD's client (Travaux dirigés Système n°3, "1.6. code Client"), with the host and port
taken from the command line so that it can talk to `sockcat listen --echo` over IPv4 or IPv6:

    sockcat listen --echo 65432                        # the TD's server, built in
    python3 examples/td_client.py 127.0.0.1 65432      # Received b'Hello, world'
    sockcat listen --echo [::1]:65432
    python3 examples/td_client.py ::1 65432            # the same over IPv6
"""
import socket
import sys

HOST = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"  # The server's hostname or IP address
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 65432  # The port used by the server
# AF_INET is IPv4, as in the TD; an IPv6 address such as ::1 needs AF_INET6.
FAMILY = socket.AF_INET6 if ":" in HOST else socket.AF_INET

with socket.socket(FAMILY, socket.SOCK_STREAM) as s:
    s.connect((HOST, PORT))
    s.sendall(b"Hello, world")
    data = s.recv(1024)

print(f"Received {data!r}")
