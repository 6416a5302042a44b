"""An in-memory STAC API with N tiny Sentinel-2-like scenes, for orchestration benchmarks.

Each item has valid ESA naming, a footprint over the demo area and one 64-byte asset (with its
``file:checksum``), so a radcor run does the real search, download and bookkeeping while the
payload costs nothing. Binds 127.0.0.1; ``python bench/tiny_catalog.py --scenes 1000 --port 0``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PAYLOAD = b"collection-builder-bench-payload-0123456789abcdef0123456789abcd"
FOOTPRINT = {
    "type": "Polygon",
    "coordinates": [
        [[-46.0, -12.8], [-45.6, -12.8], [-45.6, -12.5], [-46.0, -12.5], [-46.0, -12.8]]
    ],
}


def make_items(count: int, base_url: str) -> list[dict[str, Any]]:
    """Return ``count`` STAC items, one minute apart from 2020-01-01."""
    checksum = "1220" + hashlib.sha256(PAYLOAD).hexdigest()
    start = datetime(2020, 1, 1, 13, 0, 0, tzinfo=UTC)
    items = []
    for index in range(count):
        when = start + timedelta(minutes=index)
        stamp = when.strftime("%Y%m%dT%H%M%S")
        name = f"S2A_MSIL1C_{stamp}_N0500_R038_T23LLF_{stamp}"
        items.append(
            {
                "type": "Feature",
                "stac_version": "1.0.0",
                "id": name,
                "collection": "sentinel-2-l1c",
                "geometry": FOOTPRINT,
                "bbox": [-46.0, -12.8, -45.6, -12.5],
                "properties": {
                    "datetime": when.isoformat().replace("+00:00", "Z"),
                    "eo:cloud_cover": 0.0,
                    "platform": "sentinel-2a",
                    "s2:product_uri": f"{name}.SAFE",
                    "s2:mgrs_tile": "23LLF",
                },
                "assets": {
                    "B04": {
                        "href": f"{base_url}/files/{name}/B04.tif",
                        "type": "image/tiff; application=geotiff",
                        "roles": ["data"],
                        "file:size": len(PAYLOAD),
                        "file:checksum": checksum,
                    }
                },
                "links": [
                    {"rel": "self", "href": f"{base_url}/collections/sentinel-2-l1c/items/{name}"}
                ],
            }
        )
    return items


class TinyCatalog(ThreadingHTTPServer):
    """The server; ``items`` is filled after binding (hrefs need the port)."""

    daemon_threads = True

    def __init__(self, count: int, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.items = make_items(count, self.url)

    def start(self) -> TinyCatalog:
        """Serve in a daemon thread and return self."""
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: TinyCatalog

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def _json(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/geo+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.path.startswith("/files/"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path in ("/", ""):
            self._json(
                {
                    "type": "Catalog",
                    "id": "tiny",
                    "stac_version": "1.0.0",
                    "description": "bench",
                    "links": [],
                    "conformsTo": ["https://api.stacspec.org/v1.0.0/item-search"],
                }
            )
        else:
            self.send_error(404)

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        limit = int(body.get("limit") or 100)
        offset = int(body.get("token") or 0)
        page = self.server.items[offset : offset + limit]
        links = []
        if offset + limit < len(self.server.items):
            links.append(
                {
                    "rel": "next",
                    "href": f"{self.server.url}/search",
                    "method": "POST",
                    "body": {**body, "token": str(offset + limit)},
                }
            )
        self._json(
            {
                "type": "FeatureCollection",
                "features": page,
                "links": links,
                "numberMatched": len(self.server.items),
                "numberReturned": len(page),
            }
        )


def main() -> None:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = TinyCatalog(args.scenes, args.port)
    print(server.url, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
