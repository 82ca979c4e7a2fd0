"""The request an http function gets, and turning what it returns into a
response."""

import json
from urllib.parse import parse_qsl

from .cloudevent import is_json_type, media_type


class BadRequest(Exception):
    """The request cannot be served: the framework answers 400 with the
    message (one line)."""


class Args(dict):
    """Query or form fields: args["k"] and args.get("k") give the first
    value, args.getlist("k") every value."""

    def __init__(self, pairs=()):
        super().__init__()
        self._lists = {}
        for k, v in pairs:
            self._lists.setdefault(k, []).append(v)
            if k not in self:
                dict.__setitem__(self, k, v)

    def getlist(self, key):
        return list(self._lists.get(key, []))


class Request:
    """An HTTP request: method, path, args, headers (case-insensitive),
    get_data(), get_json(), form."""

    def __init__(self, method, target, headers, body, remote_addr=None):
        path, _, query = target.partition("?")
        self.method = method
        self.path = path
        self.full_path = target
        self.query_string = query
        self.args = Args(parse_qsl(query, keep_blank_values=True))
        self.headers = headers
        self.remote_addr = remote_addr
        self._body = body
        self._json = None
        self._form = None

    @property
    def content_type(self):
        return self.headers.get("Content-Type")

    @property
    def mimetype(self):
        return media_type(self.content_type)

    @property
    def data(self):
        return self._body

    def get_data(self, as_text=False):
        """The body: bytes, or str with as_text=True."""
        return self._body.decode("utf-8", "replace") if as_text else self._body

    def get_json(self, force=False, silent=False):
        """The body parsed as JSON when the content type is JSON (or with
        force=True), else None. Bad JSON raises BadRequest (400), or gives
        None with silent=True."""
        if self._json is not None:
            return self._json
        if not (force or is_json_type(self.content_type)):
            return None
        try:
            self._json = json.loads(self._body)
        except ValueError as e:
            if silent:
                return None
            raise BadRequest(f"invalid JSON body: {e if self._body.strip() else 'empty body'}") from None
        return self._json

    @property
    def json(self):
        return self.get_json()

    @property
    def form(self):
        """Fields of an application/x-www-form-urlencoded body."""
        if self._form is None:
            pairs = []
            if self.mimetype == "application/x-www-form-urlencoded":
                pairs = parse_qsl(self._body.decode("utf-8", "replace"), keep_blank_values=True)
            self._form = Args(pairs)
        return self._form


def make_response(result):
    """(status, headers, body bytes) for what an http function returned:
    str (text/html), bytes (application/octet-stream), dict or list (JSON),
    None (204), or a tuple (body, status), (body, status, headers) or
    (body, headers). Raises TypeError for anything else."""
    status, headers = 200, []
    if isinstance(result, tuple):
        if not 2 <= len(result) <= 3:
            raise TypeError(f"the function returned a tuple of {len(result)} items (want (body, status[, headers]))")
        result, *rest = result
        if isinstance(rest[0], (dict, list)):
            headers = rest[0]
            rest = rest[1:]
        if rest:
            status = rest[0]
            if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
                raise TypeError(f"the function returned the status {status!r} (want an int from 100 to 599)")
            if len(rest) > 1:
                headers = rest[1]
    if isinstance(headers, dict):
        headers = list(headers.items())
    if result is None:
        body, ctype = b"", None
        if status == 200:
            status = 204
    elif isinstance(result, str):
        body, ctype = result.encode("utf-8"), "text/html; charset=utf-8"
    elif isinstance(result, (bytes, bytearray, memoryview)):
        body, ctype = bytes(result), "application/octet-stream"
    elif isinstance(result, (dict, list)):
        body, ctype = json.dumps(result).encode("utf-8"), "application/json"
    else:
        raise TypeError(f"the function returned a {type(result).__name__} (want str, bytes, dict, list or a tuple)")
    names = {str(k).lower() for k, _ in headers}
    out = [(str(k), str(v)) for k, v in headers]
    if ctype and "content-type" not in names:
        out.insert(0, ("Content-Type", ctype))
    return status, out, body
