"""kiln's Python functions framework (standard library only).

An http function is def NAME(request) and returns str, bytes, a dict or
list (sent as JSON), None (204) or (body, status[, headers]); a cloudevent
function is def NAME(cloud_event), answered 204 when it returns. See
docs/buildpacks.md.
"""

from .cloudevent import CloudEvent, CloudEventError, parse_cloud_event
from .request import Args, BadRequest, Request, make_response
from .server import Server, load_function, main

__all__ = [
    "Args",
    "BadRequest",
    "CloudEvent",
    "CloudEventError",
    "Request",
    "Server",
    "load_function",
    "main",
    "make_response",
    "parse_cloud_event",
]
