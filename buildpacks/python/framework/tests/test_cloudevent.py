"""python3 -m unittest discover -s buildpacks/python/framework/tests"""

import os
import sys
import unittest
from email.message import Message

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from kiln_functions.cloudevent import CloudEvent, CloudEventError, parse_cloud_event  # noqa: E402


def headers(**kv):
    """A case-insensitive header mapping like http.server's; ce_id= gives ce-id."""
    m = Message()
    for k, v in kv.items():
        m[k.replace("_", "-")] = v
    return m


BINARY = {"ce_id": "42", "ce_source": "/test", "ce_specversion": "1.0", "ce_type": "dev.kiln.test"}
STRUCTURED = headers(Content_Type="application/cloudevents+json; charset=utf-8")


class CloudEventTest(unittest.TestCase):
    def refused(self, h, body, pattern):
        with self.assertRaises(CloudEventError) as cm:
            parse_cloud_event(h, body)
        self.assertEqual(cm.exception.status, 400)
        self.assertRegex(str(cm.exception), pattern)
        self.assertNotIn("\n", str(cm.exception))

    def test_binary(self):
        e = parse_cloud_event(
            headers(**BINARY, ce_subject="a%20b", ce_color="blue", Content_Type="application/json"),
            b'{"msg": "hi"}',
        )
        self.assertIsInstance(e, CloudEvent)
        self.assertEqual(e["id"], "42")
        self.assertEqual(e.id, "42")
        self.assertEqual(e["source"], "/test")
        self.assertEqual(e["type"], "dev.kiln.test")
        self.assertEqual(e["specversion"], "1.0")
        self.assertEqual(e["subject"], "a b")
        self.assertEqual(e["datacontenttype"], "application/json")
        self.assertEqual(e.data, {"msg": "hi"})
        self.assertEqual(e.extensions, {"color": "blue"})
        self.assertEqual(e["color"], "blue")
        self.assertIsNone(e.time)
        self.assertEqual(e.get("time", "none"), "none")

    def test_binary_data_types(self):
        self.assertEqual(parse_cloud_event(headers(**BINARY, Content_Type="text/plain"), b"hi").data, "hi")
        self.assertEqual(
            parse_cloud_event(headers(**BINARY, Content_Type="application/octet-stream"), b"\x01").data, b"\x01"
        )
        self.assertIsNone(parse_cloud_event(headers(**BINARY), b"").data)

    def test_structured(self):
        e = parse_cloud_event(
            STRUCTURED,
            b'{"specversion":"1.0","id":"s-1","source":"/s","type":"t","time":"2024-05-06T07:08:09Z",'
            b'"count":3,"data":{"a":[1,2]}}',
        )
        self.assertEqual(e["id"], "s-1")
        self.assertEqual(e["time"], "2024-05-06T07:08:09Z")
        self.assertEqual(e.data, {"a": [1, 2]})
        self.assertEqual(e["count"], 3)
        self.assertEqual(str(e), "id=s-1 source=/s type=t specversion=1.0 time=2024-05-06T07:08:09Z count=3")
        b = parse_cloud_event(
            STRUCTURED, b'{"specversion":"1.0","id":"b","source":"/s","type":"t","data_base64":"aGVsbG8="}'
        )
        self.assertEqual(b.data, b"hello")

    def test_malformed(self):
        no_id = {k: v for k, v in BINARY.items() if k != "ce_id"}
        self.refused(headers(**no_id), b"", r'^malformed CloudEvent: missing required attribute "id"$')
        self.refused(headers(**{**BINARY, "ce_specversion": "0.3"}), b"", r'unsupported specversion "0\.3" \(want "1\.0"\)')
        self.refused(headers(**BINARY, Content_Type="application/json"), b"{x", r"^malformed CloudEvent: data is not valid JSON: ")
        self.refused(headers(**BINARY, ce_time="yesterday"), b"", r'attribute "time" is not an RFC 3339 timestamp')
        self.refused(STRUCTURED, b'{"id":', r"^malformed CloudEvent: invalid JSON: ")
        self.refused(STRUCTURED, b"", r"^malformed CloudEvent: invalid JSON: empty body$")
        self.refused(STRUCTURED, b"[1]", r"the event must be a JSON object")
        self.refused(STRUCTURED, b'{"specversion":"1.0","id":"x","source":"/s"}', r'missing required attribute "type"')
        self.refused(STRUCTURED, b'{"specversion":"1.0","id":7,"source":"/s","type":"t"}', r'"id" must be a JSON string')
        self.refused(
            STRUCTURED, b'{"specversion":"1.0","id":"x","source":"/s","type":"t","ext":{}}', r'"ext" must be a string'
        )
        self.refused(
            STRUCTURED,
            b'{"specversion":"1.0","id":"x","source":"/s","type":"t","data":1,"data_base64":"AA=="}',
            r"both data and data_base64",
        )
        self.refused(
            STRUCTURED,
            b'{"specversion":"1.0","id":"x","source":"/s","type":"t","data_base64":"!!"}',
            r"data_base64 is not valid base64",
        )
        self.refused(headers(Content_Type="application/cloudevents-batch+json"), b"[]", r"^not a CloudEvent: batched")
        self.refused(headers(Content_Type="application/json"), b"{}", r"^not a CloudEvent: no ce-specversion header")


if __name__ == "__main__":
    unittest.main()
