#!/usr/bin/env python3
"""Fills a running `kiln serve` for the serve benchmark (bench/run).

    serve_load.py --url URL --token T --namespace NS create-runs --count N
        [--slow K --git URL --base REF]
    serve_load.py --url URL --token T --namespace NS count-running

create-runs stores N BuildRuns run-0..run-N-1 that name a Build that does
not exist (they end at once, BuildNotFound: stored, finished records), over
one keep-alive connection.  With --slow K it first creates a Build on the
kiln-append strategy whose base is REF (a "registry" that never answers)
and K BuildRuns of it, and waits until K are Running.
"""
import argparse
import http.client
import json
import sys
import time
import urllib.parse

SHP = "/apis/shipwright.io/v1beta1/namespaces/%s/%s"


class Api:
    def __init__(self, url, token):
        u = urllib.parse.urlparse(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        self.headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}

    def call(self, method, path, body=None):
        data = json.dumps(body) if body is not None else None
        self.conn.request(method, path, body=data, headers=self.headers)
        r = self.conn.getresponse()
        text = r.read()
        if r.status >= 300:
            sys.exit("serve_load: %s %s: %d %s" % (method, path, r.status, text[:200]))
        return json.loads(text)


def reasons(api, ns):
    items = api.call("GET", SHP % (ns, "buildruns"))["items"]
    out = []
    for it in items:
        conds = (it.get("status") or {}).get("conditions") or []
        out.append(conds[0].get("reason") if conds else None)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--namespace", default="bench")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create-runs")
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--slow", type=int, default=0)
    c.add_argument("--git")
    c.add_argument("--base")
    sub.add_parser("count-running")
    a = ap.parse_args()
    api = Api(a.url, a.token)
    ns = a.namespace

    if a.cmd == "count-running":
        print(sum(1 for r in reasons(api, ns) if r == "Running"))
        return 0

    if a.slow:
        api.call("POST", SHP % (ns, "builds"), {
            "metadata": {"name": "slow"},
            "spec": {"source": {"type": "Git", "git": {"url": a.git}, "contextDir": "app"},
                     "strategy": {"kind": "ClusterBuildStrategy", "name": "kiln-append"},
                     "paramValues": [{"name": "base", "value": a.base}],
                     "output": {"image": "127.0.0.1:1/bench/slow:1"}}})
        for i in range(a.slow):
            api.call("POST", SHP % (ns, "buildruns"),
                     {"metadata": {"name": "slow-%d" % i}, "spec": {"build": {"name": "slow"}}})
    for i in range(a.count):
        api.call("POST", SHP % (ns, "buildruns"),
                 {"metadata": {"name": "run-%d" % i, "labels": {"bench": "serve"}},
                  "spec": {"build": {"name": "missing"}}})
    if a.slow:
        deadline = time.time() + 30
        while sum(1 for r in reasons(api, ns) if r == "Running") < a.slow:
            if time.time() > deadline:
                sys.exit("serve_load: the slow BuildRuns did not start")
            time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
