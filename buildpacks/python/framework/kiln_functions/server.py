"""kiln's Python functions framework: serves one http or cloudevent function
with http.server's threaded server. Standard library only."""

import asyncio
import importlib.util
import inspect
import os
import signal
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .cloudevent import CloudEventError, parse_cloud_event
from .request import BadRequest, Request, make_response

MAX_BODY = 32 << 20  # largest request body read (bytes); beyond it: 413
SHUTDOWN_GRACE = 10.0  # seconds SIGTERM waits for requests in flight
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class FunctionNotFound(Exception):
    """FUNC_NAME does not name a function of the source file."""


def load_function(source, name):
    """Imports the file source as a module (its directory first on
    sys.path, so it can import its neighbours) and returns its attribute
    name, which must be callable."""
    path = os.path.abspath(source)
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    module_name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None:
        raise FunctionNotFound(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    fn = getattr(module, name, None)
    if fn is None:
        defined = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise FunctionNotFound(
            f"function {name} is not defined in {path} (it defines: {', '.join(defined) or 'nothing callable'})"
        )
    if not callable(fn):
        raise FunctionNotFound(f"{name} in {path} is a {type(fn).__name__}, not a function")
    return fn


def call(fn, *args):
    """Calls fn; a coroutine it returns runs to completion."""
    result = fn(*args)
    if inspect.isawaitable(result):
        result = asyncio.run(_wait(result))
    return result


async def _wait(awaitable):
    return await awaitable


def format_duration(ns):
    """41µs, 1.25ms, 2.5s: as Go prints durations."""
    us = ns // 1000
    if us < 1000:
        return f"{us}µs"
    if us < 1000000:
        return f"{us / 1000:.3f}".rstrip("0").rstrip(".") + "ms"
    return f"{us / 1000000:.6f}".rstrip("0").rstrip(".") + "s"


def one_line(s):
    return " ".join(str(s).split())


class Handler(BaseHTTPRequestHandler):
    """Reads each request, calls the server's function, logs one line."""

    protocol_version = "HTTP/1.1"
    server_version = "kiln-functions-framework"

    def version_string(self):
        return self.server_version

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        # http.server's own messages (malformed requests): to stderr.
        self.server.error_log(f"{self.address_string()}: {format % args}")

    def log_request(self, code="-", size="-"):
        pass  # one line per request is written by handle_request instead

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, size = [], 0
            while True:
                line = self.rfile.readline(65537)
                n = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(65537).strip():
                        pass  # trailers
                    return b"".join(chunks)
                size += n
                if size > MAX_BODY:
                    raise OverflowError
                chunks.append(self.rfile.read(n))
                self.rfile.readline(3)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise OverflowError
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if status not in (204, 304) and not any(k.lower() == "content-length" for k, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304) and body:
            self.wfile.write(body)
        self._status = status

    def _fail(self, status, message):
        self._note = message
        if status in (400, 413) and not self._body_read:
            self.close_connection = True  # the rest of the body is still unread
        self._send(
            status,
            [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")],
            (message + "\n").encode("utf-8"),
        )

    def handle_request(self):
        start = time.monotonic_ns()
        self._status, self._note, self._body_read = 500, "", False
        server = self.server
        server.begin_request()
        try:
            try:
                body = self._read_body()
            except OverflowError:
                self._fail(413, f"request body larger than {MAX_BODY} bytes")
                return
            except ValueError:
                self._fail(400, "bad request body framing")
                return
            self._body_read = True
            if server.signature == "cloudevent":
                self._serve_event(body)
            else:
                self._serve_http(body)
        finally:
            line = f"{self.command} {self.path} {self._status} {format_duration(time.monotonic_ns() - start)}"
            if self._note:
                line += " " + one_line(self._note)
            server.log(line)
            server.end_request()

    def _serve_http(self, body):
        request = Request(self.command, self.path, self.headers, body, self.client_address[0])
        try:
            result = call(self.server.function, request)
        except BadRequest as e:
            self._fail(400, str(e))
            return
        except Exception as e:
            self.server.error_log(f"function failed on {self.command} {request.path}:\n{traceback.format_exc()}")
            self._fail(500, "internal error: the function failed")
            self._note = f"function error: {type(e).__name__}: {e}"
            return
        try:
            status, headers, out = make_response(result)
        except TypeError as e:
            self.server.error_log(f"function answered {self.command} {request.path} wrongly: {e}")
            self._fail(500, "internal error: the function's return value is not a response")
            self._note = str(e)
            return
        self._send(status, headers, out)

    def _serve_event(self, body):
        try:
            event = parse_cloud_event(self.headers, body)
        except CloudEventError as e:
            self._fail(e.status, str(e))
            return
        try:
            call(self.server.function, event)
        except Exception as e:
            self.server.error_log(f"function failed on event {event['id']}:\n{traceback.format_exc()}")
            self._fail(500, f"function failed on event {event['id']}")
            self._note = f"function error: {type(e).__name__}: {e}"
            return
        self._send(204, [], b"")


for _m in METHODS:
    setattr(Handler, f"do_{_m}", Handler.handle_request)


class Server(ThreadingHTTPServer):
    """A threaded HTTP server for one function that counts requests in
    flight, so a shutdown can wait for them."""

    daemon_threads = True

    def __init__(self, address, function, signature, log=None, error_log=None):
        self.function = function
        self.signature = signature
        self.log = log or (lambda line: print(line, flush=True))
        self.error_log = error_log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._in_flight = 0
        self._idle = threading.Condition()
        super().__init__(address, Handler)

    def begin_request(self):
        with self._idle:
            self._in_flight += 1

    def end_request(self):
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout):
        """Waits up to timeout seconds for no request in flight."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)


def setting(*names, default=""):
    for n in names:
        if os.environ.get(n):
            return os.environ[n]
    return default


def main():
    """The web process: serves FUNC_NAME from FUNC_SOURCE on $PORT until
    SIGTERM or SIGINT. Returns the exit status."""
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True, errors="backslashreplace")
    source = setting("FUNC_SOURCE", "FUNCTION_SOURCE", default="main.py")
    name = setting("FUNC_NAME", "FUNCTION_TARGET")
    signature = setting("FUNC_SIGNATURE_TYPE", "FUNCTION_SIGNATURE_TYPE", default="http")
    port = setting("PORT", default="8080")

    def die(message):
        print(f"kiln functions framework: {message}", file=sys.stderr, flush=True)
        return 1

    if not name:
        return die("FUNC_NAME is not set: name the function to serve")
    if signature not in ("http", "cloudevent"):
        return die(f'FUNC_SIGNATURE_TYPE must be http or cloudevent, not "{signature}"')
    if not port.isdigit() or int(port) > 65535:
        return die(f'PORT must be a port number, not "{port}"')
    try:
        function = load_function(source, name)
    except FunctionNotFound as e:
        return die(f"cannot load function {name} from {source}: {e}")
    except BaseException as e:  # the module failed: its traceback says where
        traceback.print_exc()
        return die(f"cannot load function {name} from {source}: {type(e).__name__}: {e}")
    try:
        server = Server(("", int(port)), function, signature)
    except OSError as e:
        return die(f"cannot listen on :{port}: {e}")

    stop = threading.Event()
    stopped_by = []

    def on_signal(signum, frame):
        stopped_by.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    print(f"serving {signature} function {name} on :{server.server_address[1]}", flush=True)
    stop.wait()
    print(f"shutting down on {stopped_by[0]} (grace period {SHUTDOWN_GRACE:g}s)", flush=True)
    server.shutdown()
    finished = server.wait_idle(SHUTDOWN_GRACE)
    server.server_close()
    print("stopped" if finished else "stopped: grace period over", flush=True)
    return 0
