"""Trigger the `radcor` DAG through Airflow's REST API with a radcor conf and show what it made.

Usage: python scripts/demo.py [conf.json]. Assumes `scripts/services.py start` has run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import httpx

API = f"http://127.0.0.1:{os.environ.get('CB_API_PORT', '8080')}"
USER, PASSWORD = "admin", os.environ.get("CB_ADMIN_PASSWORD", "admin")


def token(client: httpx.Client) -> str:
    """Return a JWT from the simple auth manager."""
    response = client.post(f"{API}/auth/token", json={"username": USER, "password": PASSWORD})
    response.raise_for_status()
    return str(response.json()["access_token"])


def wait_for_dag(client: httpx.Client, dag_id: str, timeout_s: float = 300) -> None:
    """Wait until the dag-processor has parsed ``dag_id``, then unpause it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = client.get(f"{API}/api/v2/dags/{dag_id}")
        if response.status_code == 200:
            client.patch(
                f"{API}/api/v2/dags/{dag_id}", json={"is_paused": False}
            ).raise_for_status()
            return
        time.sleep(2)
    errors = client.get(f"{API}/api/v2/importErrors").json()
    raise SystemExit(f"DAG {dag_id} did not appear in {timeout_s:.0f} s; import errors: {errors}")


def trigger(client: httpx.Client, dag_id: str, conf: dict[str, object]) -> str:
    """Trigger a run and return its id (a Param violation answers 400 with the reason)."""
    response = client.post(
        f"{API}/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf}
    )
    if response.status_code >= 400:
        raise SystemExit(f"trigger refused ({response.status_code}): {response.text}")
    return str(response.json()["dag_run_id"])


def wait_for_run(client: httpx.Client, dag_id: str, run_id: str, timeout_s: float = 900) -> str:
    """Poll the run until it finishes; print task states as they change."""
    deadline = time.monotonic() + timeout_s
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        run = client.get(f"{API}/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
        tis = (
            client.get(
                f"{API}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000}
            )
            .json()
            .get("task_instances", [])
        )
        for ti in tis:
            name = f"{ti['task_id']}[{ti.get('rendered_map_index') or ti['map_index']}]"
            if ti.get("state") and seen.get(name) != ti["state"]:
                seen[name] = ti["state"]
                print(f"  {name}: {ti['state']}")
        if run["state"] in ("success", "failed"):
            return str(run["state"])
        time.sleep(3)
    raise SystemExit(f"run {run_id} did not finish in {timeout_s:.0f} s")


def main() -> None:
    """Trigger the demo conf and print the summary, items and quicklooks."""
    conf_path = Path(sys.argv[1] if len(sys.argv) > 1 else "examples/demo_conf.json")
    conf = json.loads(conf_path.read_text())
    with httpx.Client(timeout=30) as client:
        client.headers["Authorization"] = f"Bearer {token(client)}"
        wait_for_dag(client, "radcor")
        run_id = trigger(client, "radcor", conf)
        print(f"triggered radcor run {run_id} with {conf_path}")
        state = wait_for_run(client, "radcor", run_id)
        result = client.get(
            f"{API}/api/v2/dags/radcor/dagRuns/{run_id}/taskInstances/report/xcomEntries/return_value"
        )
        summary = result.json().get("value") if result.status_code == 200 else None
    print(f"\nrun {run_id}: {state}")
    print("summary:", json.dumps(summary, indent=2))
    stac_root = Path(os.environ["DATA_DIR"]) / "stac"
    items = sorted(stac_root.glob("*/items/*.json"))
    print(f"\npublished STAC items ({len(items)}) under {stac_root}:")
    for item_path in items:
        item = json.loads(item_path.read_text())
        quicklook = item["assets"].get("quicklook", {}).get("href", "-")
        print(
            f"  {item['id']}  cloud={item['properties'].get('eo:cloud_cover')}  "
            f"quicklook={quicklook}"
        )
    print(f"\nAirflow UI: {API}  (login {USER} / {PASSWORD})")
    print(f"Static STAC catalog: {stac_root / 'catalog.json'}")
    if state != "success":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
