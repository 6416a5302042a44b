"""A small threaded HTTP server on 127.0.0.1 for tests: per-path handlers, recorded requests.

Usage (through the ``http_server`` fixture of ``tests/unit/collectors/conftest.py``)::

    http_server.route("/file.bin", serve_bytes(data))                 # Range support
    http_server.route("/flaky", sequence(fail(500), serve_bytes(data)))  # 500, then the file
    http_server.route("/drop", serve_bytes(data, drop_after=1000))    # connection cut at 1000 B
    client.get(http_server.url + "/file.bin"); http_server.count("/file.bin")

``Cassette`` reads VCR cassettes (pystac-client's recorded STAC API answers) and ``replay``
serves them, with the recorded origin rewritten to this server so next links come back here.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml


@dataclass(frozen=True)
class Request:
    """One request as the server saw it (header names lowercase)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    """What to answer: status, headers, body; ``drop_after`` cuts the connection mid-body."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None
    """Send only this many body bytes (headers still announce the full length), then close."""


Handler = Callable[[Request], Reply]


def serve_bytes(
    data: bytes,
    *,
    ranges: bool = True,
    drop_after: int | None = None,
    content_type: str = "application/octet-stream",
    etag: str | None = None,
    if_range: bool = True,
) -> Handler:
    """Serve ``data``; honour ``Range: bytes=N-[M]`` with 206/416 when ``ranges``.

    With ``etag`` (e.g. ``'"v1"'``) every answer carries it, and a Range request whose
    ``If-Range`` names another version gets the whole file (200), as RFC 9110 says; ``if_range``
    false makes a server that ignores ``If-Range``.
    """
    tag = {"ETag": etag} if etag else {}

    def handle(request: Request) -> Reply:
        header = request.headers.get("range", "")
        stale = if_range and "if-range" in request.headers and request.headers["if-range"] != etag
        if ranges and header.startswith("bytes=") and not stale:
            first, _, last = header[len("bytes=") :].partition("-")
            start = int(first)
            end = int(last) if last else len(data) - 1
            if start >= len(data):
                return Reply(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            end = min(end, len(data) - 1)
            return Reply(
                206,
                data[start : end + 1],
                {
                    "Content-Type": content_type,
                    "Content-Range": f"bytes {start}-{end}/{len(data)}",
                    "Accept-Ranges": "bytes",
                    **tag,
                },
                drop_after=drop_after,
            )
        headers = {"Content-Type": content_type, **tag}
        if ranges:
            headers["Accept-Ranges"] = "bytes"
        return Reply(200, data, headers, drop_after=drop_after)

    return handle


def fail(status: int, body: bytes | str = b"", headers: Mapping[str, str] | None = None) -> Handler:
    """Always answer ``status`` with ``body``."""
    raw = body.encode() if isinstance(body, str) else body

    def handle(request: Request) -> Reply:
        return Reply(status, raw, dict(headers or {}))

    return handle


def json_reply(document: Any, status: int = 200) -> Handler:
    """Always answer ``document`` as JSON."""
    raw = json.dumps(document).encode()

    def handle(request: Request) -> Reply:
        return Reply(status, raw, {"Content-Type": "application/json"})

    return handle


def sequence(*handlers: Handler) -> Handler:
    """Use the n-th handler for the n-th request (the last one repeats)."""
    lock = threading.Lock()
    calls = [0]

    def handle(request: Request) -> Reply:
        with lock:
            index = min(calls[0], len(handlers) - 1)
            calls[0] += 1
        return handlers[index](request)

    return handle


# --------------------------------------------------------------------------------------------
# Cassettes (VCR format) and replay


@dataclass(frozen=True)
class Interaction:
    """One recorded request/answer pair."""

    method: str
    uri: str
    request_body: str | None
    status: int
    headers: dict[str, str]
    body: str

    @property
    def path(self) -> str:
        return urlsplit(self.uri).path

    @property
    def query(self) -> str:
        return urlsplit(self.uri).query

    def request_json(self) -> Any:
        return json.loads(self.request_body) if self.request_body else None

    def response_json(self) -> Any:
        return json.loads(self.body)


_HOP_HEADERS = {"content-encoding", "content-length", "transfer-encoding", "connection"}


class Cassette:
    """The interactions of one VCR cassette file."""

    def __init__(self, path: Path) -> None:
        with path.open(encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
        self.path = path
        self.interactions: list[Interaction] = []
        for entry in raw["interactions"]:
            request, response = entry["request"], entry["response"]
            body = response["body"]["string"]
            if isinstance(body, bytes):
                body = body.decode("utf-8")
            headers = {
                name: values[0] if isinstance(values, list) else str(values)
                for name, values in (response.get("headers") or {}).items()
                if name.lower() not in _HOP_HEADERS
            }
            request_body = request.get("body")
            if isinstance(request_body, bytes):
                request_body = request_body.decode("utf-8")
            self.interactions.append(
                Interaction(
                    method=request["method"].upper(),
                    uri=request["uri"],
                    request_body=request_body,
                    status=int(response["status"]["code"]),
                    headers=headers,
                    body=body,
                )
            )

    def find(self, method: str, path_suffix: str) -> list[Interaction]:
        return [i for i in self.interactions if i.method == method and i.path.endswith(path_suffix)]


def _paging_token(document: Any) -> Any:
    """The paging key of a search body (Earth Search ``next``, Planetary Computer ``token``)."""
    if isinstance(document, dict):
        return document.get("next") or document.get("token")
    return None


def replay(
    interactions: Iterable[Interaction],
    *,
    origin: str,
    server_url: str,
    fallback: Handler | None = None,
) -> Handler:
    """Answer with the recorded interaction matching method, query and paging token.

    ``origin`` (``https://earth-search.aws.element84.com``) is replaced by ``server_url`` in the
    answers, so links (next pages) lead back to the test server. Unmatched requests go to
    ``fallback`` or get a 404 with a STAC-style error body.
    """
    recorded = list(interactions)

    def handle(request: Request) -> Reply:
        token = _paging_token(request.json()) if request.body else None
        for interaction in recorded:
            if interaction.method != request.method:
                continue
            if request.method == "GET" and interaction.query != request.query:
                continue
            if request.method == "POST" and _paging_token(interaction.request_json()) != token:
                continue
            body = interaction.body.replace(origin, server_url)
            return Reply(interaction.status, body.encode("utf-8"), dict(interaction.headers))
        if fallback is not None:
            return fallback(request)
        error = {"code": "NotFound", "description": f"no recorded answer for {request.path}"}
        return Reply(404, json.dumps(error).encode(), {"Content-Type": "application/json"})

    return handle


# --------------------------------------------------------------------------------------------
# The server


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms ACK wait
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=parts.path,
            query=parts.query,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        handler = self.server.owner.record(request)
        if handler is None:
            reply = Reply(404, b'{"code":"NotFound","description":"no route"}')
        else:
            reply = handler(request)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        if reply.drop_after is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if reply.drop_after is None:
            self.wfile.write(reply.body)
            return
        self.wfile.write(reply.body[: reply.drop_after])
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    do_GET = _handle
    do_POST = _handle
    do_HEAD = _handle
    do_PUT = _handle
    do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: LocalHttpServer, ssl_context: ssl.SSLContext | None) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _RequestHandler)
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Keep client disconnects (expected in fault tests) out of the test output."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | ssl.SSLError | TimeoutError):
            self.owner.disconnects += 1
            return
        super().handle_error(request, client_address)


class LocalHttpServer:
    """A threaded HTTP/1.1 server on an ephemeral loopback port with per-path handlers.

    With ``ssl_context`` it speaks HTTPS (for TLS verification tests).
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._routes: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self.disconnects = 0
        """Connections the client dropped before the answer was sent."""
        self._server = _Server(self, ssl_context)
        host, port = self._server.server_address[:2]
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def route(self, path: str, handler: Handler) -> str:
        """Serve ``path`` (exact, query ignored) with ``handler``; return its full URL."""
        with self._lock:
            self._routes[path] = handler
        return self.url + path

    def record(self, request: Request) -> Handler | None:
        with self._lock:
            self.requests.append(request)
            return self._routes.get(request.path)

    def requests_to(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def count(self, path: str | None = None) -> int:
        with self._lock:
            return len([r for r in self.requests if path is None or r.path == path])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
