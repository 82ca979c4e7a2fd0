"""python3 -m unittest discover -s buildpacks/python/framework/tests"""

import http.client
import json
import os
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from kiln_functions.request import make_response  # noqa: E402
from kiln_functions.server import FunctionNotFound, Server, format_duration, load_function  # noqa: E402


class Served:
    """Serves fn on a free loopback port; request() returns (status, headers, body)."""

    def __init__(self, fn, signature="http"):
        self.logs, self.errors = [], []
        self.server = Server(("127.0.0.1", 0), fn, signature, log=self.logs.append, error_log=self.errors.append)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def log(self, i):
        """The request line i, waiting for it: it is written after the answer."""
        for _ in range(100):
            if len(self.logs) > i:
                return self.logs[i]
            time.sleep(0.02)
        raise AssertionError(f"no request line {i}: {self.logs}")

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.server.server_address[1], timeout=5)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()


class ServerTest(unittest.TestCase):
    def test_http_request(self):
        def fn(request):
            return {
                "method": request.method,
                "path": request.path,
                "args": request.args.getlist("x"),
                "y": request.args.get("y"),
                "header": request.headers.get("x-test"),
                "json": request.get_json(),
            }, 201, {"X-Fn": "hello"}

        with Served(fn) as s:
            status, headers, body = s.request(
                "POST", "/a/b?x=1&x=2&y=3", b'{"k": [1]}', {"Content-Type": "application/json", "X-Test": "yes"}
            )
        self.assertEqual(status, 201)
        self.assertEqual(headers["X-Fn"], "hello")
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertEqual(
            json.loads(body),
            {"method": "POST", "path": "/a/b", "args": ["1", "2"], "y": "3", "header": "yes", "json": {"k": [1]}},
        )
        self.assertRegex(s.log(0), r"^POST /a/b\?x=1&x=2&y=3 201 [0-9.]+(µs|ms|s)$")

    def test_return_values(self):
        def fn(request):
            return {
                "/str": lambda: "hi",
                "/bytes": lambda: b"\x00\x01",
                "/list": lambda: [1, 2],
                "/none": lambda: None,
                "/tuple": lambda: ("made", 202),
                "/headers": lambda: ("x", {"Content-Type": "text/plain"}),
                "/data": lambda: request.get_data(as_text=True) + "|" + request.form.get("a", "-"),
                "/bad": lambda: 42,
            }[request.path]()

        with Served(fn) as s:
            self.assertEqual(s.request("GET", "/str")[2], b"hi")
            self.assertEqual(s.request("GET", "/str")[1]["Content-Type"], "text/html; charset=utf-8")
            self.assertEqual(s.request("GET", "/bytes")[1]["Content-Type"], "application/octet-stream")
            self.assertEqual(s.request("GET", "/list")[2], b"[1, 2]")
            self.assertEqual(s.request("GET", "/none")[0], 204)
            self.assertEqual(s.request("GET", "/tuple")[:3:2], (202, b"made"))
            self.assertEqual(s.request("GET", "/headers")[1]["Content-Type"], "text/plain")
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            self.assertEqual(s.request("POST", "/data", b"a=1&b=2", form)[2], b"a=1&b=2|1")
            status, _, body = s.request("GET", "/bad")
            self.assertEqual(status, 500)
            self.assertIn("the function returned a int", s.errors[0])

    def test_errors(self):
        def fn(request):
            if request.path == "/boom":
                raise ValueError("boom from the function")
            return request.get_json()

        with Served(fn) as s:
            status, _, body = s.request("GET", "/boom")
            self.assertEqual((status, body), (500, b"internal error: the function failed\n"))
            self.assertRegex(s.errors[0], r"^function failed on GET /boom:\nTraceback")
            self.assertIn("ValueError: boom from the function", s.errors[0])
            self.assertRegex(s.log(0), r"^GET /boom 500 .* function error: ValueError: boom from the function$")
            status, _, body = s.request("POST", "/", b"{x", {"Content-Type": "application/json"})
            self.assertEqual(status, 400)
            self.assertTrue(body.startswith(b"invalid JSON body: "))

    def test_async_function(self):
        async def fn(request):
            return "async", 202

        with Served(fn) as s:
            self.assertEqual(s.request("GET", "/")[:3:2], (202, b"async"))

    def test_cloudevent(self):
        seen = []

        def fn(event):
            if event["type"] == "fail":
                raise RuntimeError(f"refusing {event['id']}")
            seen.append((event["id"], event.data))

        ce = {"ce-id": "1", "ce-source": "/s", "ce-specversion": "1.0", "ce-type": "t"}
        with Served(fn, "cloudevent") as s:
            self.assertEqual(s.request("POST", "/", b'{"n": 1}', {**ce, "Content-Type": "application/json"})[0], 204)
            structured = b'{"specversion":"1.0","id":"2","source":"/s","type":"t","data":"x"}'
            self.assertEqual(s.request("POST", "/", structured, {"Content-Type": "application/cloudevents+json"})[0], 204)
            self.assertEqual(seen, [("1", {"n": 1}), ("2", "x")])
            status, _, body = s.request("POST", "/", b"", {k: v for k, v in ce.items() if k != "ce-id"})
            self.assertEqual((status, body), (400, b'malformed CloudEvent: missing required attribute "id"\n'))
            status, _, body = s.request("POST", "/", b"", {**ce, "ce-id": "3", "ce-type": "fail"})
            self.assertEqual((status, body), (500, b"function failed on event 3\n"))
            self.assertIn("RuntimeError: refusing 3", s.errors[0])
            self.assertRegex(s.log(3), r"^POST / 500 .* function error: RuntimeError: refusing 3$")

    def test_chunked_body(self):
        with Served(lambda r: r.get_data()) as s:
            c = http.client.HTTPConnection("127.0.0.1", s.server.server_address[1], timeout=5)
            c.request("POST", "/", body=iter([b"ab", b"cd"]), encode_chunked=True)
            self.assertEqual(c.getresponse().read(), b"abcd")
            c.close()

    def test_load_function(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "helper_kiln_test.py"), "w") as f:
                f.write("def word():\n    return 'neighbour'\n")
            with open(os.path.join(d, "fn_kiln_test.py"), "w") as f:
                f.write("import helper_kiln_test\nvalue = 1\ndef hello(r):\n    return helper_kiln_test.word()\n")
            self.assertEqual(load_function(os.path.join(d, "fn_kiln_test.py"), "hello")(None), "neighbour")
            with self.assertRaisesRegex(FunctionNotFound, r"function nope is not defined in .*fn_kiln_test\.py \(it defines: hello\)"):
                load_function(os.path.join(d, "fn_kiln_test.py"), "nope")
            with self.assertRaisesRegex(FunctionNotFound, r"value in .* is a int, not a function"):
                load_function(os.path.join(d, "fn_kiln_test.py"), "value")

    def test_make_response(self):
        self.assertEqual(make_response(("x", 201, [("A", "b")])), (201, [("Content-Type", "text/html; charset=utf-8"), ("A", "b")], b"x"))
        with self.assertRaisesRegex(TypeError, "status 'ok'"):
            make_response(("x", "ok"))

    def test_format_duration(self):
        self.assertEqual(format_duration(41000), "41µs")
        self.assertEqual(format_duration(1250000), "1.25ms")
        self.assertEqual(format_duration(2500000000), "2.5s")


if __name__ == "__main__":
    unittest.main()
