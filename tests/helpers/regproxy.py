#!/usr/bin/env python3
"""regproxy: a loopback reverse proxy in front of a real registry, for tests.

It forwards every request to --upstream, counts what passes, can play a
token-auth (Bearer) or Basic-auth registry front, and injects faults.
Python standard library only.  Binds 127.0.0.1 only.

Usage
  regproxy.py --upstream http://127.0.0.1:5000 [--port 0] [--port-file F]
              [--stats FILE] [--auth none|basic|bearer] [--users FILE]
              [--anonymous-pull REGEX] [--token-ttl SECONDS] [--service NAME]
              [--no-oauth] [--faults SPEC] [--seed N]
              [--tls-cert PEM --tls-key PEM] [--upstream-ca PEM] [--quiet]

  Prints "listening on 127.0.0.1:PORT" on stdout once it accepts
  connections; --port 0 picks a free port, --port-file writes it.  Exits 0
  on SIGTERM or SIGINT.  One log line per request on stderr (method, path
  without query, status, fault); never passwords or tokens.

Forwarding
  Requests go upstream with Host set to the upstream's host:port, without
  hop-by-hop headers, bodies streamed in 64 KiB pieces (Content-Length or
  chunked; "Expect: 100-continue" is answered only once the body is really
  wanted).  Location headers: relative ones are kept as they are; absolute
  ones pointing at the upstream are rewritten to the proxy (scheme of the
  proxy, host:port from the client's Host header).  With --auth basic or
  bearer, the client's Authorization header is not forwarded.

Statistics (JSON, GET /_proxy/stats; also written atomically to --stats
after every request; POST /_proxy/reset zeroes them).  Control requests
(/_proxy/...) are not counted.  Keys:
  total                 requests counted
  by_method             {"GET": n, ...}
  by_status             {"200": n, ...}   (status 0 = connection reset)
  requests              [{"method", "path" (no query), "query", "status",
                          "body_bytes", "fault" (action string or null),
                          "auth" (the scheme of the client's Authorization
                          header, lowercased: "basic", "bearer"...; null
                          without one; never the credentials)}]
  request_body_bytes    request body bytes received, all requests
  upload_body_bytes     the same for POST/PUT/PATCH to .../blobs/uploads/...
  faults_fired          injected faults
  connections           client connections that carried a counted request
  challenges            401 answers given by the proxy's own auth
  token_requests        requests to /token
  tokens_issued         access tokens issued
  tokens                [{"user" ("" = anonymous), "grant" (get, password,
                          refresh_token), "scope" (granted, space-separated)}]
A record is added as soon as the status is known, before the response
body is sent, so a client that has finished sees its requests counted.

Auth
  --users FILE: lines "user:password" or "user:password:ACTIONS" where
  ACTIONS is a comma list of pull, push, delete (default "pull,push").
  Blank lines and lines starting with # are ignored.

  --auth basic: a request without matching Basic credentials gets
  401 WWW-Authenticate: Basic realm="kiln-test".

  --auth bearer: the proxy is also the token server, at /token.
  * A request without a valid token gets 401 with
      WWW-Authenticate: Bearer realm="http://127.0.0.1:PORT/token",
        service="kiln-test",scope="repository:NAME:pull"        (GET, HEAD)
        ...scope="repository:NAME:pull,push"         (POST, PUT, PATCH, DELETE)
    A cross-repository mount (POST ?mount=&from=OTHER) also needs
    repository:OTHER:pull, listed space-separated in the same scope.
    /v2/_catalog needs registry:catalog:*.  /v2/ and any other path need a
    valid token of any scope; their challenge carries no scope.
  * A known token that lacks a needed action: the same challenge plus
    error="insufficient_scope".  An expired or unknown token:
    error="invalid_token".
  * GET /token?service=kiln-test&scope=S[&scope=S2...] with optional Basic
    credentials (wrong ones get 401) and optional offline_token=true
    (adds a refresh_token for a named user).  A scope parameter may hold
    several space-separated scopes.  service, if given, must match.
  * POST /token (form): grant_type=password with username, password; or
    grant_type=refresh_token with refresh_token; plus service, scope
    (space-separated), client_id.  The answer has a refresh_token for the
    password grant.  --no-oauth makes POST /token answer 404.
  * Answer: {"token", "access_token", "expires_in", "issued_at"[, "scope",
    "refresh_token"]}.  Granted = requested intersected with allowed:
    users get their ACTIONS, anonymous gets pull on repositories whose name
    fully matches --anonymous-pull (default ".*"; "" allows none).
    registry:catalog:* is granted to named users.
  * Tokens are random and opaque, valid --token-ttl seconds (default 300;
    small values are fine for tests); POST /_proxy/expire-tokens expires
    every token issued so far at once.  Refresh tokens do not expire.

Faults
  Rules are tried in order for each request (before authentication, so a
  rule can also hit /token); the first rule that matches and is armed
  fires.  A rule:
    method   regex matched against the whole method, case-insensitive;
             "*" or "" = any
    path     regex searched in the request target (path and query)
    action   see below
    count    fire at most this many times (default: no limit)
    prob     fire with this probability (0..1), drawn from a generator
             seeded with --seed (default 1) or the spec's "seed"
    skip     let this many matching requests pass before the rule is armed
  Actions:
    status:CODE[:retry-after=N][:code=ERRCODE]
             answer CODE with {"errors":[{"code":ERRCODE,...}]} and no
             forwarding (the request body is read and dropped).  Default
             ERRCODE: TOOMANYREQUESTS for 429, UNAVAILABLE for 503,
             UNKNOWN otherwise.
    reset    = reset:before
    reset:before    close the connection abruptly (TCP RST) right after the
                    request head, without reading the body
    reset:after     read the whole request body, then RST (not forwarded)
    reset:upstream  forward it, let the upstream answer, then RST instead
                    of sending the answer (the registry did the work; the
                    client never hears)
    truncate[:N]    forward; send the upstream's headers with the full
                    Content-Length but only N body bytes (default half),
                    then close the connection
    slow:SECONDS    wait, then go on as normal
    corrupt         forward; flip one byte (in the middle) of the response
                    body, headers unchanged
    wrong-blob      forward; replace the response body by other
                    (pseudo-random) bytes of the same length
    redirect:URLBASE
                    answer 307 with Location URLBASE + the request target
                    (path and query), as registries send blob GETs to
                    storage; not forwarded.  It acts once the request has
                    passed the proxy's own authentication (a request
                    refused with 401 still counts as fired).  URLBASE is
                    e.g. http://127.0.0.1:PORT (another regproxy in front
                    of the same registry serves the blob there)
  Spec (--faults SPEC, or the body of POST /_proxy/faults, which replaces
  the rules and their counters; GET /_proxy/faults shows them with "seen"
  and "fired"):
    JSON:    {"seed": 7, "rules": [{"method": "PATCH",
               "path": "/blobs/uploads/", "action": "status:503",
               "count": 2}, ...]}      or just the list of rules
    compact: rules separated by ";" or newlines, each
               METHOD PATH_REGEX ACTION [count=N] [prob=P] [skip=N]
             e.g. "PATCH /blobs/uploads/ status:503 count=2;
                   GET /blobs/sha256: corrupt count=1"
             (whitespace separates fields, so use JSON for a regex with
             spaces)
    @FILE:   read the spec (either form) from FILE
"""

import argparse
import base64
import datetime
import http.client
import http.server
import json
import os
import random
import re
import secrets
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse

PIECE = 64 * 1024
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
    "proxy-authorization", "te", "trailer", "trailers", "transfer-encoding",
    "upgrade", "expect",
}
ACTIONS = {"pull", "push", "delete"}
REPO_PATH = re.compile(
    r"^/v2/(?P<name>.+)/(?:blobs/uploads(?:/.*)?|blobs/[^/]+|manifests/[^/]+"
    r"|tags/list|referrers/[^/]+)$")


class ClientGone(Exception):
    """The client went away while we read its request or wrote the answer."""


class SpecError(ValueError):
    pass


# ---------------------------------------------------------------- faults

def parse_action(text):
    parts = text.split(":")
    kind = parts[0]
    args = {}
    try:
        if kind == "redirect":
            base = text.partition(":")[2].rstrip("/")
            if not re.match(r"^https?://[^/]+$", base):
                raise SpecError("redirect wants http(s)://HOST:PORT")
            args["base"] = base
        elif kind == "status":
            args["code"] = int(parts[1])
            for p in parts[2:]:
                k, _, v = p.partition("=")
                if k == "retry-after":
                    args["retry_after"] = v
                elif k == "code":
                    args["errcode"] = v
                else:
                    raise SpecError("unknown status parameter %r" % p)
        elif kind == "reset":
            args["when"] = parts[1] if len(parts) > 1 else "before"
            if args["when"] not in ("before", "after", "upstream"):
                raise SpecError("reset takes before, after or upstream")
        elif kind == "truncate":
            args["keep"] = int(parts[1]) if len(parts) > 1 else None
        elif kind == "slow":
            args["seconds"] = float(parts[1])
        elif kind in ("corrupt", "wrong-blob"):
            if len(parts) > 1:
                raise SpecError("%s takes no parameter" % kind)
        else:
            raise SpecError("unknown action %r" % text)
    except (IndexError, ValueError) as e:
        raise SpecError("bad action %r: %s" % (text, e))
    return kind, args


class Rule:
    def __init__(self, d):
        if not isinstance(d, dict) or "action" not in d:
            raise SpecError("a rule needs an action: %r" % (d,))
        unknown = set(d) - {"method", "path", "action", "count", "prob",
                            "probability", "skip"}
        if unknown:
            raise SpecError("unknown rule keys %s" % sorted(unknown))
        self.method = d.get("method") or "*"
        self.path = d.get("path") or ""
        self.action = d["action"]
        self.count = None if d.get("count") is None else int(d["count"])
        p = d.get("prob", d.get("probability"))
        self.prob = None if p is None else float(p)
        self.skip = int(d.get("skip") or 0)
        self.seen = 0
        self.fired = 0
        try:
            self.method_re = None if self.method == "*" else re.compile(
                self.method, re.I)
            self.path_re = re.compile(self.path)
        except re.error as e:
            raise SpecError("bad regex in %r: %s" % (d, e))
        self.kind, self.args = parse_action(self.action)

    def matches(self, method, target):
        if self.method_re and not self.method_re.fullmatch(method):
            return False
        return bool(self.path_re.search(target))

    def describe(self):
        return {"method": self.method, "path": self.path,
                "action": self.action, "count": self.count,
                "prob": self.prob, "skip": self.skip, "seen": self.seen,
                "fired": self.fired}


def parse_faults(text):
    """Returns (rules, seed or None) from a JSON, compact or @FILE spec."""
    text = (text or "").strip()
    if text.startswith("@"):
        with open(text[1:]) as f:
            text = f.read().strip()
    if not text:
        return [], None
    if text[0] in "[{":
        try:
            obj = json.loads(text)
        except ValueError as e:
            raise SpecError("bad JSON fault spec: %s" % e)
        if isinstance(obj, list):
            obj = {"rules": obj}
        return [Rule(r) for r in obj.get("rules") or []], obj.get("seed")
    rules = []
    for line in re.split(r"[;\n]", text):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 3:
            raise SpecError("want METHOD PATH ACTION [k=v...]: %r" % line)
        d = {"method": fields[0], "path": fields[1], "action": fields[2]}
        for kv in fields[3:]:
            k, sep, v = kv.partition("=")
            if not sep or k not in ("count", "prob", "skip"):
                raise SpecError("bad rule option %r" % kv)
            d[k] = v
        rules.append(Rule(d))
    return rules, None


class Faults:
    def __init__(self, seed):
        self.lock = threading.Lock()
        self.rules = []
        self.seed = seed
        self.rng = random.Random(seed)

    def set(self, rules, seed=None):
        with self.lock:
            self.rules = rules
            if seed is not None:
                self.seed = int(seed)
            self.rng = random.Random(self.seed)

    def pick(self, method, target):
        with self.lock:
            for r in self.rules:
                if not r.matches(method, target):
                    continue
                r.seen += 1
                if r.seen <= r.skip:
                    continue
                if r.count is not None and r.fired >= r.count:
                    continue
                if r.prob is not None and self.rng.random() >= r.prob:
                    continue
                r.fired += 1
                return r
        return None

    def describe(self):
        with self.lock:
            return {"seed": self.seed,
                    "rules": [r.describe() for r in self.rules]}


# ------------------------------------------------------------ statistics

class Stats:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.d = {
                "total": 0, "by_method": {}, "by_status": {}, "requests": [],
                "request_body_bytes": 0, "upload_body_bytes": 0,
                "faults_fired": 0, "connections": 0, "challenges": 0,
                "token_requests": 0, "tokens_issued": 0, "tokens": [],
            }
            self._write()

    def bump(self, key, n=1):
        with self.lock:
            self.d[key] += n

    def token(self, user, grant, scope):
        with self.lock:
            self.d["tokens_issued"] += 1
            self.d["tokens"].append(
                {"user": user or "", "grant": grant, "scope": scope})

    def add(self, method, path, query, status, body_bytes, fault, auth):
        with self.lock:
            d = self.d
            d["total"] += 1
            d["by_method"][method] = d["by_method"].get(method, 0) + 1
            s = str(status)
            d["by_status"][s] = d["by_status"].get(s, 0) + 1
            d["requests"].append({
                "method": method, "path": path, "query": query,
                "status": status, "body_bytes": body_bytes, "fault": fault,
                "auth": auth})
            d["request_body_bytes"] += body_bytes
            if method in ("POST", "PUT", "PATCH") and "/blobs/uploads" in path:
                d["upload_body_bytes"] += body_bytes
            if fault:
                d["faults_fired"] += 1
            self._write()

    def json(self):
        with self.lock:
            return json.dumps(self.d)

    def _write(self):
        if not self.path:
            return
        tmp = "%s.tmp.%d" % (self.path, os.getpid())
        with open(tmp, "w") as f:
            json.dump(self.d, f)
        os.replace(tmp, self.path)


# ------------------------------------------------------------------ auth

class Token:
    def __init__(self, user, grants, ttl):
        self.user = user
        self.grants = grants          # {(type, name): set(actions)}
        self.expires = time.monotonic() + ttl

    def allows(self, need):
        typ, name, actions = need
        return actions <= self.grants.get((typ, name), set())


class Auth:
    def __init__(self, cfg):
        self.mode = cfg.auth
        self.service = cfg.service
        self.ttl = cfg.token_ttl
        self.anon = re.compile(cfg.anonymous_pull)
        self.users = load_users(cfg.users) if cfg.users else {}
        self.lock = threading.Lock()
        self.tokens = {}
        self.refresh = {}
        self.realm = None             # set once the port is known

    def basic(self, header):
        """Returns (present, user): user is None unless the header matches."""
        if not header or not header.lower().startswith("basic "):
            return False, None
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True)
            user, _, pw = raw.decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return True, None
        entry = self.users.get(user)
        if entry and secrets.compare_digest(entry[0], pw):
            return True, user
        return True, None

    def allowed(self, user, typ, name):
        if typ == "registry":
            return {"*"} if user and name == "catalog" else set()
        if user:
            return self.users[user][1]
        return {"pull"} if self.anon.fullmatch(name) else set()

    def issue(self, user, scopes):
        grants = {}
        for s in scopes:
            typ, name, actions = parse_scope(s)
            if typ is None:
                continue
            got = actions & self.allowed(user, typ, name)
            if got:
                grants.setdefault((typ, name), set()).update(got)
        tok = Token(user, grants, self.ttl)
        value = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[value] = tok
        granted = " ".join("%s:%s:%s" % (t, n, ",".join(sorted(a)))
                           for (t, n), a in sorted(grants.items()))
        return value, granted

    def new_refresh(self, user):
        value = secrets.token_urlsafe(32)
        with self.lock:
            self.refresh[value] = user
        return value

    def lookup(self, value):
        with self.lock:
            tok = self.tokens.get(value)
        if tok is None or time.monotonic() >= tok.expires:
            return None
        return tok

    def expire_all(self):
        with self.lock:
            for t in self.tokens.values():
                t.expires = 0
            return len(self.tokens)


def load_users(path):
    users = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            user, _, rest = line.partition(":")
            actions = {"pull", "push"}
            head, sep, tail = rest.rpartition(":")
            if sep and tail and set(tail.split(",")) <= ACTIONS:
                rest, actions = head, set(tail.split(","))
            users[user] = (rest, actions)
    return users


def parse_scope(s):
    """'repository:name:pull,push' -> (type, name, set(actions))."""
    typ, sep, rest = s.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not name:
        return None, None, None
    typ = typ.split("(")[0]           # "repository(plugin)" -> "repository"
    return typ, name, {a for a in actions.split(",") if a}


def needed_scopes(method, path, query):
    """Scopes a request needs, as (type, name, actions); [] = any token."""
    if path == "/v2/_catalog":
        return [("registry", "catalog", {"*"})]
    m = REPO_PATH.match(path)
    if not m:
        return []
    name = m.group("name")
    if method in ("GET", "HEAD"):
        return [("repository", name, {"pull"})]
    need = [("repository", name, {"push"})]
    q = urllib.parse.parse_qs(query)
    if "mount" in q and q.get("from"):
        need.append(("repository", q["from"][0], {"pull"}))
    return need


def challenge_scope(method, needs):
    out = []
    for typ, name, actions in needs:
        if typ == "repository" and "push" in actions:
            actions = {"pull", "push"}
        out.append("%s:%s:%s" % (typ, name, ",".join(sorted(actions))))
    return " ".join(out)


def errors_body(code, message, detail=None):
    e = {"code": code, "message": message}
    if detail is not None:
        e["detail"] = detail
    return json.dumps({"errors": [e]}).encode()


# ------------------------------------------------------------ the server

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "regproxy"
    timeout = 300

    # -- plumbing

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(30)
            self.request.do_handshake()
        super().setup()
        self.upconn = None
        self.expect_pending = False
        self.counted = False

    def finish(self):
        if self.upconn is not None:
            self.upconn.close()
            self.upconn = None
        try:
            super().finish()
        except OSError:
            pass

    def handle_expect_100(self):
        # Answer "100 Continue" only when the body is wanted, as a registry
        # that rejects a request (401, injected status) never asks for it.
        self.expect_pending = True
        return True

    def log_message(self, fmt, *args):
        pass

    def log(self, status, fault):
        if not CFG.quiet:
            path = self.path.partition("?")[0]
            sys.stderr.write("regproxy: %s %s %s%s\n" % (
                self.command, path, status,
                " fault=" + fault if fault else ""))

    def do_any(self):
        self.body_bytes = 0
        self.body_done = False
        try:
            self.dispatch()
        except ClientGone:
            self.close_connection = True
        finally:
            self.expect_pending = False

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_any
    do_OPTIONS = do_any

    def record(self, status, fault):
        path, _, query = self.path.partition("?")
        scheme = self.headers.get("Authorization", "").split(" ", 1)[0]
        STATS.add(self.command, path, query, status, self.body_bytes, fault,
                  scheme.lower() or None)
        self.log(status, fault)

    # -- request bodies

    def has_body(self):
        if self.body_done:
            return False
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return True
        return int(self.headers.get("Content-Length") or 0) > 0

    def read_client(self, fn, arg):
        try:
            data = fn(arg)
        except OSError as e:
            raise ClientGone(str(e))
        if not data:
            raise ClientGone("end of request body")
        return data

    def body_pieces(self):
        """Yields the request body in pieces, counting them."""
        if self.expect_pending:
            self.expect_pending = False
            self.send_raw(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.read_client(self.rfile.readline, 65537)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise ClientGone("bad chunk size line")
                if size == 0:
                    while self.read_client(self.rfile.readline, 65537) \
                            not in (b"\r\n", b"\n"):
                        pass
                    self.body_done = True
                    return
                yield from self.read_exact(size)
                self.read_client(self.rfile.readline, 3)
        else:
            yield from self.read_exact(
                int(self.headers.get("Content-Length") or 0))
            self.body_done = True

    def read_exact(self, n):
        while n > 0:
            data = self.read_client(self.rfile.read, min(PIECE, n))
            n -= len(data)
            self.body_bytes += len(data)
            yield data

    def drop_body(self):
        """Reads and drops the body, or, if the client still waits for
        "100 Continue", leaves it unsent and closes after the answer."""
        if not self.has_body():
            return
        if self.expect_pending:
            self.close_connection = True
            return
        for _ in self.body_pieces():
            pass

    def read_small_body(self, limit=1 << 20):
        data = b""
        for piece in self.body_pieces():
            data += piece
            if len(data) > limit:
                raise ClientGone("control body too large")
        return data

    # -- answers

    def send_raw(self, data):
        try:
            self.wfile.write(data)
        except OSError as e:
            raise ClientGone(str(e))

    def reply(self, status, body=b"", ctype="application/json",
              headers=()):
        self.send_response_only(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Date", self.date_time_string())
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        try:
            self.end_headers()
        except OSError as e:
            raise ClientGone(str(e))
        if self.command != "HEAD":
            self.send_raw(body)

    def reset_connection(self):
        """Closes the client connection with a TCP RST."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    # -- the request

    def dispatch(self):
        path, _, query = self.path.partition("?")
        if path.startswith("/_proxy/"):
            return self.control(path)
        if not self.counted:
            # Counted at its first request, so control requests (curl from
            # a test script) do not disturb connection-reuse checks.
            self.counted = True
            STATS.bump("connections")
        rule = FAULTS.pick(self.command, self.path)
        kind = rule.kind if rule else None
        args = rule.args if rule else {}
        fault = rule.action if rule else None
        if kind == "reset" and args["when"] == "before":
            self.record(0, fault)
            return self.reset_connection()
        if kind == "slow":
            time.sleep(args["seconds"])
        if kind == "status":
            return self.inject_status(args, fault)
        if AUTH.mode == "bearer" and path == "/token":
            return self.token_endpoint(query, fault)
        if not self.authorized(path, query, fault):
            return
        if kind == "reset" and args["when"] == "after":
            self.drop_body()
            self.record(0, fault)
            return self.reset_connection()
        if kind == "redirect":
            self.drop_body()
            self.record(307, fault)
            return self.reply(307, headers=[("Location",
                                             args["base"] + self.path)])
        self.forward(rule, fault)

    def inject_status(self, args, fault):
        code = args["code"]
        errcode = args.get("errcode") or {
            429: "TOOMANYREQUESTS", 503: "UNAVAILABLE"}.get(code, "UNKNOWN")
        headers = []
        if "retry_after" in args:
            headers.append(("Retry-After", args["retry_after"]))
        self.drop_body()
        self.record(code, fault)
        self.reply(code, errors_body(errcode, "injected fault"),
                   headers=headers)

    # -- auth

    def deny(self, challenge, code, message, fault, detail=None):
        STATS.bump("challenges")
        self.drop_body()
        self.record(401, fault)
        self.reply(401, errors_body(code, message, detail),
                   headers=[("WWW-Authenticate", challenge)])

    def authorized(self, path, query, fault):
        if AUTH.mode == "none":
            return True
        header = self.headers.get("Authorization", "")
        if AUTH.mode == "basic":
            if AUTH.basic(header)[1] is not None:
                return True
            self.deny('Basic realm="kiln-test"', "UNAUTHORIZED",
                      "authentication required", fault)
            return False
        needs = needed_scopes(self.command, path, query)
        error = None
        if header.lower().startswith("bearer "):
            tok = AUTH.lookup(header[7:].strip())
            if tok is None:
                error = "invalid_token"
            elif all(tok.allows(n) for n in needs):
                return True
            else:
                error = "insufficient_scope"
        challenge = 'Bearer realm="%s",service="%s"' % (AUTH.realm,
                                                        AUTH.service)
        if needs:
            challenge += ',scope="%s"' % challenge_scope(self.command, needs)
        if error:
            challenge += ',error="%s"' % error
        detail = [{"Type": t, "Name": n, "Action": ",".join(sorted(a))}
                  for t, n, a in needs] or None
        code = "DENIED" if error == "insufficient_scope" else "UNAUTHORIZED"
        self.deny(challenge, code, error or "authentication required",
                  fault, detail)
        return False

    def token_endpoint(self, query, fault):
        STATS.bump("token_requests")
        if self.command == "GET":
            params = urllib.parse.parse_qs(query, keep_blank_values=True)
            present, user = AUTH.basic(self.headers.get("Authorization"))
            if present and user is None:
                return self.token_error(401, "invalid_client",
                                        "bad credentials", fault)
            grant = "get"
        elif self.command == "POST":
            if CFG.no_oauth:
                self.drop_body()
                self.record(404, fault)
                return self.reply(404, b'{"error":"not_found"}')
            params = urllib.parse.parse_qs(
                self.read_small_body().decode("utf-8", "replace"),
                keep_blank_values=True)
            grant = params.get("grant_type", [""])[0]
            if grant == "password":
                user = params.get("username", [""])[0]
                pw = params.get("password", [""])[0]
                entry = AUTH.users.get(user)
                if not entry or not secrets.compare_digest(entry[0], pw):
                    return self.token_error(401, "invalid_grant",
                                            "bad credentials", fault)
            elif grant == "refresh_token":
                with AUTH.lock:
                    user = AUTH.refresh.get(
                        params.get("refresh_token", [""])[0])
                if user is None:
                    return self.token_error(401, "invalid_grant",
                                            "unknown refresh token", fault)
            else:
                return self.token_error(400, "unsupported_grant_type",
                                        "grant_type %r" % grant, fault)
        else:
            self.drop_body()
            self.record(405, fault)
            return self.reply(405, b'{"error":"method not allowed"}')
        service = params.get("service", [None])[0]
        if service is not None and service != AUTH.service:
            return self.token_error(400, "invalid_request",
                                    "unknown service", fault)
        scopes = [s for p in params.get("scope", []) for s in p.split()]
        value, granted = AUTH.issue(user, scopes)
        STATS.token(user, grant, granted)
        out = {"token": value, "access_token": value,
               "expires_in": CFG.token_ttl,
               "issued_at": datetime.datetime.now(datetime.timezone.utc)
               .strftime("%Y-%m-%dT%H:%M:%SZ")}
        if grant != "get":
            out["scope"] = granted
        if user and (grant == "password" or
                     params.get("offline_token", [""])[0] == "true"):
            out["refresh_token"] = AUTH.new_refresh(user)
        self.drop_body()
        self.record(200, fault)
        self.reply(200, json.dumps(out).encode())

    def token_error(self, status, error, message, fault):
        self.drop_body()
        self.record(status, fault)
        headers = []
        if status == 401:
            headers.append(("WWW-Authenticate", 'Basic realm="kiln-test"'))
        self.reply(status, json.dumps({"error": error,
                                       "error_description": message}).encode(),
                   headers=headers)

    # -- forwarding

    def upstream(self):
        if self.upconn is None:
            host, port = UPSTREAM.hostname, UPSTREAM.port
            if UPSTREAM.scheme == "https":
                self.upconn = http.client.HTTPSConnection(
                    host, port or 443, context=UPSTREAM_TLS, timeout=300)
            else:
                self.upconn = http.client.HTTPConnection(host, port or 80,
                                                         timeout=300)
        return self.upconn

    def close_upstream(self):
        if self.upconn is not None:
            self.upconn.close()
            self.upconn = None

    def send_request_upstream(self):
        chunked = "chunked" in self.headers.get("Transfer-Encoding",
                                                "").lower()
        length = self.headers.get("Content-Length")
        drop = set(HOP_BY_HOP) | {"host", "content-length"}
        if AUTH.mode != "none":
            drop.add("authorization")
        for attempt in (0, 1):
            conn = self.upstream()
            try:
                conn.putrequest(self.command, self.path, skip_host=True,
                                skip_accept_encoding=True)
                conn.putheader("Host", UPSTREAM.netloc)
                for k, v in self.headers.items():
                    if k.lower() not in drop:
                        conn.putheader(k, v)
                if chunked:
                    conn.putheader("Transfer-Encoding", "chunked")
                elif length is not None:
                    conn.putheader("Content-Length", length)
                conn.endheaders()
                if self.has_body():
                    try:
                        self.send_body_upstream(conn, chunked)
                    except OSError:
                        # The upstream may have answered early and closed
                        # (as Go's server does with a large unread body);
                        # pass that answer on if it can still be read.
                        self.close_connection = True
                        return conn.getresponse()
                return conn.getresponse()
            except ClientGone:
                self.close_upstream()
                raise
            except (http.client.HTTPException, OSError) as e:
                self.close_upstream()
                # A kept-alive upstream connection may have gone stale; a
                # request none of whose body was consumed can be retried.
                if attempt == 0 and self.body_bytes == 0:
                    continue
                raise UpstreamError(str(e))

    def send_body_upstream(self, conn, chunked):
        for piece in self.body_pieces():
            if chunked:
                conn.send(b"%x\r\n" % len(piece))
            conn.send(piece)
            if chunked:
                conn.send(b"\r\n")
        if chunked:
            conn.send(b"0\r\n\r\n")

    def rewrite_location(self, value):
        u = urllib.parse.urlsplit(value)
        if not u.scheme or u.netloc.lower() not in UPSTREAM_NAMES:
            return value
        host = self.headers.get("Host") or "127.0.0.1:%d" % PORT
        return urllib.parse.urlunsplit((SCHEME, host, u.path, u.query,
                                        u.fragment))

    def forward(self, rule, fault):
        kind = rule.kind if rule else None
        try:
            resp = self.send_request_upstream()
        except UpstreamError as e:
            if self.body_bytes == 0:
                self.drop_body()
            else:
                self.close_connection = True
            self.record(502, fault)
            sys.stderr.write("regproxy: upstream: %s\n" % e)
            return self.reply(502, errors_body("UNKNOWN", "upstream: %s" % e))
        length = resp.getheader("Content-Length")
        no_body = (self.command == "HEAD" or resp.status in (204, 304)
                   or resp.status < 200)
        self.record(resp.status, fault)
        if kind == "reset" and rule.args["when"] == "upstream":
            resp.read()
            return self.reset_connection()
        chunked_out = length is None and not no_body
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            lk = k.lower()
            if lk in HOP_BY_HOP or lk == "content-length":
                continue
            if lk == "location":
                v = self.rewrite_location(v)
            self.send_header(k, v)
        if length is not None:
            self.send_header("Content-Length", length)
        elif chunked_out:
            self.send_header("Transfer-Encoding", "chunked")
        if self.close_connection:
            self.send_header("Connection", "close")
        try:
            self.end_headers()
            if no_body:
                resp.read()
                return
            self.relay_body(resp, kind, rule, length, chunked_out)
        except ClientGone:
            self.close_upstream()
            raise
        except OSError as e:
            self.close_upstream()
            raise ClientGone(str(e))
        finally:
            if resp.will_close:
                self.close_upstream()

    def relay_body(self, resp, kind, rule, length, chunked_out):
        total = int(length) if length is not None else None
        keep = None
        if kind == "truncate":
            keep = rule.args["keep"]
            if keep is None:
                keep = (total or 0) // 2
        flip_at = (total or 0) // 2
        rng = random.Random("%s/%d" % (FAULTS.seed, rule.fired)) \
            if kind == "wrong-blob" else None
        sent = 0
        while True:
            try:
                data = resp.read(PIECE)
            except (http.client.HTTPException, OSError) as e:
                self.close_upstream()
                self.close_connection = True
                sys.stderr.write("regproxy: upstream body: %s\n" % e)
                return
            if not data:
                break
            if kind == "corrupt" and sent <= flip_at < sent + len(data):
                b = bytearray(data)
                b[flip_at - sent] ^= 0xFF
                data = bytes(b)
            elif rng is not None:
                data = rng.randbytes(len(data))
            if keep is not None and sent + len(data) >= keep:
                self.send_piece(data[:keep - sent], chunked_out)
                self.close_upstream()
                self.close_connection = True
                return
            self.send_piece(data, chunked_out)
            sent += len(data)
        if keep is not None:
            self.close_connection = True
            return
        if chunked_out:
            self.send_raw(b"0\r\n\r\n")

    def send_piece(self, data, chunked):
        if not data:
            return
        if chunked:
            self.send_raw(b"%x\r\n" % len(data))
        self.send_raw(data)
        if chunked:
            self.send_raw(b"\r\n")

    # -- control

    def control(self, path):
        try:
            if path == "/_proxy/stats" and self.command == "GET":
                return self.reply(200, STATS.json().encode())
            if path == "/_proxy/reset" and self.command == "POST":
                self.drop_body()
                STATS.reset()
                return self.reply(200, STATS.json().encode())
            if path == "/_proxy/faults" and self.command == "GET":
                return self.reply(200, json.dumps(FAULTS.describe()).encode())
            if path == "/_proxy/faults" and self.command == "POST":
                text = self.read_small_body().decode("utf-8")
                rules, seed = parse_faults(text)
                FAULTS.set(rules, seed)
                return self.reply(200, json.dumps(FAULTS.describe()).encode())
            if path == "/_proxy/expire-tokens" and self.command == "POST":
                self.drop_body()
                n = AUTH.expire_all()
                return self.reply(200, json.dumps({"expired": n}).encode())
        except (SpecError, OSError, UnicodeDecodeError) as e:
            return self.reply(400, json.dumps({"error": str(e)}).encode())
        self.drop_body()
        self.reply(404, b'{"error":"unknown control endpoint"}')


class UpstreamError(Exception):
    pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    tls = None

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ClientGone)):
            return
        super().handle_error(request, client_address)


# ------------------------------------------------------------------ main

def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Test reverse proxy for an OCI registry "
                    "(see the module docstring for details).")
    p.add_argument("--upstream", required=True,
                   help="http://127.0.0.1:PORT or https://...")
    p.add_argument("--upstream-ca", help="CA file to verify an https "
                   "upstream (default: no verification)")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--stats", help="JSON file rewritten after each request")
    p.add_argument("--auth", choices=("none", "basic", "bearer"),
                   default="none")
    p.add_argument("--users", help="file of user:password[:actions] lines")
    p.add_argument("--anonymous-pull", default=".*", metavar="REGEX")
    p.add_argument("--token-ttl", type=int, default=300, metavar="SECONDS")
    p.add_argument("--service", default="kiln-test")
    p.add_argument("--no-oauth", action="store_true",
                   help="POST /token answers 404")
    p.add_argument("--faults", default="", metavar="SPEC")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--quiet", action="store_true")
    cfg = p.parse_args(argv)
    if cfg.auth == "basic" and not cfg.users:
        p.error("--auth basic needs --users")
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        p.error("--tls-cert and --tls-key go together")
    return cfg


def upstream_names(u):
    port = u.port or (443 if u.scheme == "https" else 80)
    names = {u.netloc.lower()}
    for h in ("127.0.0.1", "localhost", u.hostname):
        names.add("%s:%d" % (h, port))
    return names


def main(argv):
    global CFG, STATS, FAULTS, AUTH, UPSTREAM, UPSTREAM_TLS, UPSTREAM_NAMES
    global PORT, SCHEME
    CFG = parse_args(argv)
    UPSTREAM = urllib.parse.urlsplit(CFG.upstream)
    if UPSTREAM.scheme not in ("http", "https") or not UPSTREAM.hostname:
        sys.exit("regproxy: --upstream must be http(s)://HOST:PORT")
    UPSTREAM_NAMES = upstream_names(UPSTREAM)
    UPSTREAM_TLS = None
    if UPSTREAM.scheme == "https":
        if CFG.upstream_ca:
            UPSTREAM_TLS = ssl.create_default_context(cafile=CFG.upstream_ca)
        else:
            UPSTREAM_TLS = ssl._create_unverified_context()
    STATS = Stats(CFG.stats)
    FAULTS = Faults(CFG.seed)
    try:
        rules, seed = parse_faults(CFG.faults)
    except (SpecError, OSError) as e:
        sys.exit("regproxy: --faults: %s" % e)
    FAULTS.set(rules, seed)
    AUTH = Auth(CFG)

    server = Server(("127.0.0.1", CFG.port), Handler)
    SCHEME = "http"
    if CFG.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(CFG.tls_cert, CFG.tls_key)
        server.tls = ctx
        SCHEME = "https"
    PORT = server.server_address[1]
    AUTH.realm = "%s://127.0.0.1:%d/token" % (SCHEME, PORT)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    if CFG.port_file:
        tmp = CFG.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % PORT)
        os.replace(tmp, CFG.port_file)
    print("listening on 127.0.0.1:%d" % PORT, flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
