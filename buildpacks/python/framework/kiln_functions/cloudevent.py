"""CloudEvents 1.0 over HTTP: binary mode (attributes in ce-* headers, the
body is the data) and structured mode (Content-Type
application/cloudevents+json, the body is the whole event)."""

import base64
import binascii
import json
import re
from urllib.parse import unquote

REQUIRED = ("specversion", "id", "source", "type")
# Attributes the spec defines; every other one is an extension.
CORE = frozenset(REQUIRED + ("datacontenttype", "dataschema", "subject", "time"))
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


class CloudEventError(Exception):
    """A request that is not a valid CloudEvent; the message is one line."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


class CloudEvent:
    """A CloudEvents 1.0 event: event["id"] (or event.id) for attributes,
    extensions included, and event.data for the data."""

    def __init__(self, attributes, data=None):
        self._attributes = dict(attributes)
        self.data = data

    def __getitem__(self, name):
        return self._attributes[name]

    def __contains__(self, name):
        return name in self._attributes

    def __getattr__(self, name):
        # Only called when normal lookup fails: attributes by name.
        attributes = self.__dict__.get("_attributes", {})
        if name in attributes:
            return attributes[name]
        if name in CORE:
            return None
        raise AttributeError(name)

    def get(self, name, default=None):
        return self._attributes.get(name, default)

    def get_attributes(self):
        """Every context attribute (extensions included), as a new dict."""
        return dict(self._attributes)

    @property
    def extensions(self):
        return {k: v for k, v in self._attributes.items() if k not in CORE}

    def __repr__(self):
        return f"CloudEvent({self._attributes!r}, data={self.data!r})"

    def __str__(self):
        a = self._attributes
        s = f"id={a['id']} source={a['source']} type={a['type']} specversion={a['specversion']}"
        for k in ("subject", "time", "datacontenttype"):
            if k in a:
                s += f" {k}={a[k]}"
        for k in sorted(self.extensions):
            s += f" {k}={a[k]}"
        return s


def media_type(content_type):
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json_type(content_type):
    t = media_type(content_type)
    return t in ("application/json", "text/json") or t.endswith("+json")


def _check(attributes):
    for k in REQUIRED:
        if attributes.get(k) in (None, ""):
            raise CloudEventError(f'malformed CloudEvent: missing required attribute "{k}"')
    if attributes["specversion"] != "1.0":
        raise CloudEventError(
            f'malformed CloudEvent: unsupported specversion "{attributes["specversion"]}" (want "1.0")'
        )
    t = attributes.get("time")
    if t is not None and not RFC3339.match(t):
        raise CloudEventError(f'malformed CloudEvent: attribute "time" is not an RFC 3339 timestamp: "{t}"')


def _decode_body(body, content_type):
    """Binary-mode data: JSON parsed, text as str, anything else bytes."""
    if not body:
        return None
    if is_json_type(content_type):
        try:
            return json.loads(body)
        except ValueError as e:
            raise CloudEventError(f"malformed CloudEvent: data is not valid JSON: {e}") from None
    if media_type(content_type).startswith("text/"):
        return body.decode("utf-8", "replace")
    return bytes(body)


def _parse_binary(headers, body):
    attributes = {}
    for name, value in headers.items():
        k = name.lower()
        if not k.startswith("ce-") or k in ("ce-", "ce-datacontenttype") or k[3:] in attributes:
            continue
        # The HTTP binding percent-encodes header values.
        attributes[k[3:]] = unquote(value.strip())
    _check(attributes)
    content_type = headers.get("Content-Type")
    if content_type:
        attributes["datacontenttype"] = content_type
    return CloudEvent(attributes, _decode_body(body, content_type))


def _parse_structured(body):
    try:
        obj = json.loads(body)
    except ValueError as e:
        raise CloudEventError(f"malformed CloudEvent: invalid JSON: {e if body.strip() else 'empty body'}") from None
    if not isinstance(obj, dict):
        raise CloudEventError("malformed CloudEvent: invalid JSON: the event must be a JSON object")
    attributes = {}
    for k, v in obj.items():
        if k in ("data", "data_base64") or v is None:
            continue
        if k in CORE and not isinstance(v, str):
            raise CloudEventError(f'malformed CloudEvent: attribute "{k}" must be a JSON string')
        if isinstance(v, (dict, list)):
            raise CloudEventError(f'malformed CloudEvent: attribute "{k}" must be a string, number or boolean')
        attributes[k] = v
    _check(attributes)
    data, data64 = obj.get("data"), obj.get("data_base64")
    if data is not None and data64 is not None:
        raise CloudEventError("malformed CloudEvent: both data and data_base64 are present")
    if data64 is not None:
        if not isinstance(data64, str):
            raise CloudEventError("malformed CloudEvent: data_base64 must be a JSON string")
        try:
            data = base64.b64decode(data64.strip(), validate=True)
        except (binascii.Error, ValueError) as e:
            raise CloudEventError(f"malformed CloudEvent: data_base64 is not valid base64: {e}") from None
    return CloudEvent(attributes, data)


def parse_cloud_event(headers, body):
    """Reads a CloudEvent from an HTTP request's headers (a case-insensitive
    mapping with .get and .items) and body (bytes). Raises CloudEventError
    with a one-line message starting "malformed CloudEvent: " or
    "not a CloudEvent: "."""
    mt = media_type(headers.get("Content-Type"))
    if mt == "application/cloudevents+json":
        return _parse_structured(body)
    if mt == "application/cloudevents-batch+json":
        raise CloudEventError(
            "not a CloudEvent: batched events (application/cloudevents-batch+json) are not supported"
        )
    if mt.startswith("application/cloudevents"):
        raise CloudEventError(
            f'not a CloudEvent: unsupported structured format "{mt}" (want application/cloudevents+json)'
        )
    if headers.get("ce-specversion") is None and headers.get("ce-id") is None:
        raise CloudEventError(
            "not a CloudEvent: no ce-specversion header and Content-Type is not application/cloudevents+json"
        )
    return _parse_binary(headers, body)
