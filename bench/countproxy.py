#!/usr/bin/env python3
"""A counting HTTP proxy in front of a registry, for the benchmarks.

    countproxy.py LISTEN_PORT UPSTREAM_HOST:PORT STATS_FILE

Forwards every request unchanged (Host header included, so the registry's
Location headers point back at the proxy) and, after each one, rewrites
STATS_FILE as JSON: {"requests": N, "upload_bytes": B, "by_method": {...},
"log": ["METHOD PATH STATUS BODY_BYTES", ...]}.  Send SIGHUP, or delete
STATS_FILE, to reset the counters.  Bodies are streamed, not buffered.
"""
import http.client
import http.server
import json
import os
import signal
import socketserver
import sys
import threading

LOCK = threading.Lock()
STATS = {"requests": 0, "upload_bytes": 0, "by_method": {}, "log": []}
HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
       "upgrade", "content-length"}


def reset(*_):
    with LOCK:
        STATS.update(requests=0, upload_bytes=0, by_method={}, log=[])


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = None
    stats_file = None

    def log_message(self, *a):
        pass

    def body_chunks(self, counter):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                data = self.rfile.read(size)
                self.rfile.readline()
                counter[0] += len(data)
                yield data
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                data = self.rfile.read(min(left, 1 << 20))
                if not data:
                    return
                left -= len(data)
                counter[0] += len(data)
                yield data

    def forward(self):
        if not os.path.exists(self.stats_file):
            reset()
        counter = [0]
        conn = http.client.HTTPConnection(self.upstream, timeout=600)
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP]
        chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
        length = self.headers.get("Content-Length")
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        elif length is not None:
            conn.putheader("Content-Length", length)
        conn.endheaders()
        for data in self.body_chunks(counter):
            if chunked:
                conn.send(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                conn.send(data)
        if chunked:
            conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        self.send_response_only(resp.status, resp.reason)
        rlen = resp.getheader("Content-Length")
        for k, v in resp.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        body_allowed = self.command != "HEAD" and resp.status not in (204, 304)
        if rlen is not None:
            self.send_header("Content-Length", rlen)
        elif body_allowed:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if body_allowed:
            while True:
                data = resp.read(1 << 20)
                if not data:
                    break
                if rlen is not None:
                    self.wfile.write(data)
                else:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            if rlen is None:
                self.wfile.write(b"0\r\n\r\n")
        else:
            resp.read()
        conn.close()
        with LOCK:
            STATS["requests"] += 1
            STATS["upload_bytes"] += counter[0]
            STATS["by_method"][self.command] = STATS["by_method"].get(self.command, 0) + 1
            STATS["log"].append("%s %s %d %d" % (self.command, self.path, resp.status, counter[0]))
            tmp = self.stats_file + ".tmp"
            with open(tmp, "w") as f:
                json.dump(STATS, f)
            os.replace(tmp, self.stats_file)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = forward


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    port, upstream, stats = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    Handler.upstream = upstream
    Handler.stats_file = stats
    reset()
    with open(stats, "w") as f:
        json.dump(STATS, f)
    signal.signal(signal.SIGHUP, reset)
    Server(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
