"""A loopback file server that misbehaves on cue, and counts every body byte it sends.

For the fault tests (docs/faults.md). ``FileServer(data)`` serves ``data`` at ``/file`` with
``Range`` (206/416) unless ``ranges=False``, in 64 KiB writes. Cues apply to the next request(s),
in order:

- ``stall_at(offset)``: stop sending once the body reaches absolute byte ``offset`` and wait until
  ``release()`` (then go on; a client killed meanwhile just sees its socket closed);
- ``drop_at(offset)``: close the connection once the body reaches ``offset``;
- ``status(code, headers)``: answer ``code`` with no body (429 with ``Retry-After``, 503...);
- ``corrupt()``: flip one byte in the middle of the body.

Observations: ``bytes_sent`` (body bytes written to sockets), ``requests`` (the ``Range`` header
of each request, None without), ``request_times`` (monotonic clock), ``stalled`` (an Event set
while a response waits in a stall).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHUNK = 64 * 1024


@dataclass
class _Cue:
    kind: str
    offset: int = 0
    status: int = 200
    headers: dict[str, str] | None = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self.server.owner._answer(self)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: FileServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # clients killed or cut off mid-body are the point of these tests


class FileServer:
    """Serve one file at ``/file``, with faults on cue (see the module docstring)."""

    def __init__(self, data: bytes, *, ranges: bool = True) -> None:
        self.data = data
        self.ranges = ranges
        self._lock = threading.Lock()
        self._cues: list[_Cue] = []
        self._release = threading.Event()
        self.stalled = threading.Event()
        self.bytes_sent = 0
        self.requests: list[str | None] = []
        self.request_times: list[float] = []
        self._server = _Server(self)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}/file"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    # -- cues ---------------------------------------------------------------------------------

    def _cue(self, cue: _Cue) -> None:
        with self._lock:
            self._cues.append(cue)

    def stall_at(self, offset: int) -> None:
        """Pause the next response when its body reaches ``offset`` until ``release()``."""
        self._release.clear()
        self._cue(_Cue("stall", offset))

    def release(self) -> None:
        """Let a stalled response go on."""
        self._release.set()

    def drop_at(self, offset: int) -> None:
        """Close the next response's connection when its body reaches ``offset``."""
        self._cue(_Cue("drop", offset))

    def status(self, code: int, headers: dict[str, str] | None = None) -> None:
        """Answer the next request with ``code`` and no body."""
        self._cue(_Cue("status", status=code, headers=headers))

    def corrupt(self) -> None:
        """Flip one byte in the middle of the next response's body."""
        self._cue(_Cue("corrupt"))

    # -- serving ------------------------------------------------------------------------------

    def _next_cue(self) -> _Cue | None:
        with self._lock:
            return self._cues.pop(0) if self._cues else None

    def _answer(self, handler: _Handler) -> None:
        header = handler.headers.get("Range")
        with self._lock:
            self.requests.append(header)
            self.request_times.append(time.monotonic())
        cue = self._next_cue()
        if cue is not None and cue.kind == "status":
            handler.send_response(cue.status)
            for name, value in (cue.headers or {}).items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        data = self.data
        if cue is not None and cue.kind == "corrupt":
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        start = 0
        if self.ranges and header and header.startswith("bytes="):
            start = int(header[len("bytes=") :].split("-")[0])
            if start >= len(data):
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(data)}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            handler.send_response(200)
            handler.send_header("Accept-Ranges", "bytes" if self.ranges else "none")
        handler.send_header("Content-Type", "application/zip")
        handler.send_header("Content-Length", str(len(data) - start))
        handler.end_headers()
        self._send_body(handler, data, start, cue)

    def _send_body(self, handler: _Handler, data: bytes, start: int, cue: _Cue | None) -> None:
        position = start
        while position < len(data):
            end = min(len(data), position + CHUNK)
            if cue is not None and cue.kind in ("stall", "drop") and position < cue.offset <= end:
                end = cue.offset
            try:
                handler.wfile.write(data[position:end])
                handler.wfile.flush()
            except OSError:
                return
            with self._lock:
                self.bytes_sent += end - position
            position = end
            if cue is not None and position == cue.offset:
                if cue.kind == "drop":
                    self._cut(handler)
                    return
                if cue.kind == "stall":
                    self.stalled.set()
                    self._release.wait(timeout=60)
                    self.stalled.clear()
                    cue = None

    @staticmethod
    def _cut(handler: _Handler) -> None:
        handler.close_connection = True
        try:
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        """Stop serving (releases any stalled response first)."""
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


__all__ = ["FileServer"]
