#!/usr/bin/env python3
"""tlsterm: terminates TLS on loopback and pipes the bytes to a plain port.

kubectl sends a kubeconfig's bearer token only over TLS; this lets a test
put kiln serve's plain HTTP behind https:// without touching the requests
(a byte pipe: no parsing, so watch streams pass as they are sent).

Usage
  tlsterm.py --upstream 127.0.0.1:PORT --cert PEM --key PEM --port-file F

Binds 127.0.0.1 on a free port and writes it to --port-file once it
accepts connections.  Exits on SIGTERM.  Python standard library only.
"""
import argparse
import os
import signal
import socket
import ssl
import sys
import threading


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve(conn, ctx, upstream):
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (OSError, ssl.SSLError):
        conn.close()
        return
    try:
        up = socket.create_connection(upstream)
    except OSError:
        tls.close()
        return
    t = threading.Thread(target=pipe, args=(up, tls), daemon=True)
    t.start()
    pipe(tls, up)
    t.join()
    tls.close()
    up.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--port-file", required=True)
    a = ap.parse_args()
    host, port = a.upstream.rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(tmp, a.port_file)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve, args=(conn, ctx, (host, int(port))), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
