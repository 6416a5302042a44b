"""A bounded fuzz of the radcor endpoints on a started Airflow: a few hundred generated requests.

Seeded ``random`` mutations of the demo conf (dropped fields, values of every JSON type, control
characters, oversize strings, credentials, URL overrides to forbidden hosts, broken task trees,
raw bodies that are not JSON) go to ``/radcor-api/radcor``, ``/api/radcor`` and
``/radcor-api/radcor/check``, always as previews. Whatever arrives: no server error (a valid
preview whose catalog is unreachable answers 502 naming the catalog), a refusal is a 400 error
list, no run is created, and the api-server's log holds neither a password (the conf's
nor a Connection's) nor a value of a conf above DEBUG.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers.airflow_stack import AirflowStack
from tests.helpers.bad_confs import FAKE_PASSWORD, node

SEED = 23
REQUESTS = 300
CONN_ID = "fuzz_conn"
CONN_PASSWORD = "Conn-Pa55word-Never-Logged"  # noqa: S105 - a fake secret that must never show
MARKER = "FUZZ{index:04d}X"
"""Part of every string value generated for request ``index``: no api-server log line above
DEBUG may hold the marker of a refused request (an accepted search may name its dataset)."""
DUMPED_CONF = re.compile(r"""["'](catalog_args|catalog_search_args|tasks)["']\s*:""")
"""A conf dumped whole (JSON or a dict's repr) in a log line."""
MARKER_RE = re.compile(r"FUZZ\d{4}X")
CATALOG_FAILED = {502: "failed at the catalog", 504: "did not finish within"}
"""What a valid preview answers when its catalog fails or is too slow (docs/api.md)."""
PATHS = ("/radcor-api/radcor", "/api/radcor", "/radcor-api/radcor/check")
FIELDS = (
    *("w", "s", "e", "n", "geom", "scenes", "tiles", "catalog", "catalog_args"),
    *("catalog_search_args", "platform", "tags", "dataset", "start", "end", "cloud", "action"),
    *("force", "tasks"),
)
ODD_CHARACTERS = ("\x00", "\n", "\r", "\t", "\x1b[31m", "\x7f", "\u202e", "\ud800", "é", "'", '"')
URLS = (
    "http://169.254.169.254/latest/meta-data",
    "http://10.0.0.1/stac",
    "http://[::1]:1/stac",
    "https://example.org/stac",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    f"http://user:{FAKE_PASSWORD}@127.0.0.1:1/",
    f"http://127.0.0.1:1/?token={FAKE_PASSWORD}",
)


class ConfFuzzer:
    """Generates mutated confs and raw bodies from a valid conf, with one seeded ``Random``."""

    def __init__(self, base: dict[str, Any], catalog_url: str, seed: int) -> None:
        self.base = base
        self.catalog_url = catalog_url
        self.rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
        self.marker = MARKER.format(index=0)

    def text(self) -> str:
        """A string holding the marker, sometimes odd characters, sometimes very long."""
        rng = self.rng
        parts = [self.marker, *rng.sample(ODD_CHARACTERS, k=rng.randint(0, 2))]
        rng.shuffle(parts)
        text = "".join(parts)
        return text * rng.choice((1, 1, 1, 50, 5000))

    def value(self, depth: int = 0) -> Any:
        """Any JSON value (nested up to a few levels, or once in a while very deep)."""
        rng = self.rng
        kind = rng.randrange(9 if depth < 3 else 6)
        if kind == 0:
            return None
        if kind == 1:
            return rng.choice((True, False))
        if kind == 2:
            return rng.choice((0, -1, 1e308, -1e308, 2**63, 181, -91, 100.5, float("nan")))
        if kind in (3, 4, 5):
            return self.text()
        if kind == 6:
            return [self.value(depth + 1) for _ in range(rng.randint(0, 3))]
        if kind == 7:
            return {self.text()[:40]: self.value(depth + 1) for _ in range(rng.randint(0, 3))}
        nested: Any = self.marker
        for _ in range(rng.randint(10, 60)):
            nested = [nested]
        return nested

    def catalog_args(self) -> dict[str, Any]:
        rng = self.rng
        choices: list[dict[str, Any]] = [
            {"url": rng.choice(URLS)},
            {"url": self.catalog_url, "password": FAKE_PASSWORD},
            {"url": self.catalog_url, "conn_id": CONN_ID},
            {"url": rng.choice(URLS), "conn_id": CONN_ID},
            {
                "url": self.catalog_url,
                "api_key": FAKE_PASSWORD,
                "page_size": rng.randint(-5, 20000),
            },
            {"url": self.catalog_url, "token_url": rng.choice(URLS)},
            {"url": self.catalog_url, self.text()[:30]: self.value()},
        ]
        return rng.choice(choices)

    def tasks(self) -> Any:
        rng = self.rng
        types = ("download", "correction", "harmonization", "post", "publish", "fetch", "")
        collections = ("S2_L1C-1", "S2_L2A-1", "S2_L1C-9", self.text(), "")
        tree = node(rng.choice(types), rng.choice(collections))
        for _ in range(rng.randint(0, 8)):
            tree = node(rng.choice(types), rng.choice(collections), tree)
        if rng.random() < 0.3:
            tree["args"] = {rng.choice(("password", "x", self.marker)): self.value()}
        return rng.choice(([tree], tree, [tree] * rng.randint(2, 70), self.value()))

    def mutate(self, conf: dict[str, Any]) -> None:
        rng = self.rng
        field = rng.choice(FIELDS)
        roll = rng.random()
        if roll < 0.15:
            conf.pop(field, None)
        elif roll < 0.3:
            conf["catalog_args"] = self.catalog_args()
        elif roll < 0.4:
            conf["tasks"] = self.tasks()
        elif roll < 0.5:
            conf[self.text()[:80]] = self.value()
        elif roll < 0.6:
            conf["catalog"] = rng.choice(("demo", "DEMO", "esa", "cdse", "nope", "", self.text()))
        elif roll < 0.7:
            conf["dataset"] = rng.choice(("S2MSI1C", "S2MSI1X", "s2msi2a", "", self.text()))
        else:
            conf[field] = self.value()

    def body(self, index: int) -> bytes:
        """Request ``index``'s body: mostly a mutated conf, sometimes bytes that are not one."""
        rng = self.rng
        self.marker = MARKER.format(index=index)
        conf = copy.deepcopy(self.base)
        conf["action"] = "preview"
        for _ in range(rng.randint(1, 3)):
            self.mutate(conf)
        action = conf.get("action")
        if isinstance(action, str) and action.strip().lower() == "start":
            conf["action"] = "preview"  # a fuzzed conf must never start work
        text = json.dumps(conf)
        roll = rng.random()
        if roll < 0.05:
            return text[: rng.randrange(len(text))].encode()
        if roll < 0.08:
            return bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        if roll < 0.1:
            return json.dumps([conf]).encode()
        return text.encode()


@pytest.fixture
def fuzz_connection(airflow_stack: AirflowStack) -> Iterator[str]:
    """An Airflow Connection with a password, named by some fuzzed confs."""
    with airflow_stack.client() as client:
        created = client.post(
            "/api/v2/connections",
            json={
                "connection_id": CONN_ID,
                "conn_type": "http",
                "login": "fuzz",
                "password": CONN_PASSWORD,
            },
        )
        assert created.status_code in (201, 409), created.text
        try:
            yield CONN_ID
        finally:
            client.delete(f"/api/v2/connections/{CONN_ID}")


def _run_ids(client: httpx.Client) -> set[str]:
    runs = client.get("/api/v2/dags/radcor/dagRuns", params={"limit": 1000}).json()
    return {str(run["dag_run_id"]) for run in runs["dag_runs"]}


def test_fuzzed_requests_never_fail_the_server_start_runs_or_leak_into_its_log(
    airflow_stack: AirflowStack, demo_conf: dict[str, Any], fuzz_connection: str
) -> None:
    fuzzer = ConfFuzzer(demo_conf, airflow_stack.catalog_url, SEED)
    log_path = airflow_stack.var_dir / "run" / "api-server.log"
    log_start = log_path.stat().st_size
    statuses: dict[int, int] = {}
    failures: list[str] = []
    refused: set[str] = set()
    with airflow_stack.client() as client:
        before = _run_ids(client)
        for index in range(REQUESTS):
            body = fuzzer.body(index)
            path = PATHS[index % len(PATHS)]
            response = client.post(path, content=body, headers={"Content-Type": "application/json"})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code in CATALOG_FAILED:
                # a valid preview whose catalog is unreachable (a loopback port nobody serves,
                # CDSE without network): the catalog's failure, answered as such, never a crash
                if CATALOG_FAILED[response.status_code] not in response.json()["detail"]:
                    failures.append(f"{index} {path}: {response.status_code} {response.text}")
            elif response.status_code >= 500:
                failures.append(f"{index} {path}: {response.status_code} {response.text[:200]}")
            elif response.status_code == 400:
                refused.add(MARKER.format(index=index))
                errors = response.json()["errors"]
                if not errors or not all(e["field"] and e["message"] and e["fix"] for e in errors):
                    failures.append(f"{index} {path}: 400 without field and fix: {errors}")
            elif response.status_code != 200:
                failures.append(f"{index} {path}: {response.status_code} {response.text[:200]}")
        after = _run_ids(client)
    assert not failures, "\n".join(failures)
    assert statuses.get(400, 0) > REQUESTS / 2 and statuses.get(200, 0) > 0, statuses
    assert after == before, "a fuzzed request created a run"
    with log_path.open("rb") as handle:
        handle.seek(log_start)
        written = handle.read().decode("utf-8", errors="replace")
    assert FAKE_PASSWORD not in written and CONN_PASSWORD not in written
    above_debug = [line for line in written.splitlines() if "[debug" not in line.lower()]
    leaked = [line for line in above_debug if set(MARKER_RE.findall(line)) & refused]
    assert not leaked, "\n".join(leaked[:5])
    dumped = [line for line in above_debug if DUMPED_CONF.search(line)]
    assert not dumped, "\n".join(dumped[:5])
