"""Orchestration overhead: the radcor DAG vs a bare mapped DAG with the same tasks per scene.

Starts a real Airflow (api-server, scheduler, dag-processor, triggerer; LocalExecutor) on a
throwaway PostgreSQL database, serves N tiny scenes from an in-memory STAC API, and times
trigger -> done for (a) `radcor` with a download-only conf and (b) `bench_bare`, DAGs with the
same shape (validate, search, one mapped group with one no-op task per radcor step, report;
more than --scenes-per-run scenes go to child runs of that many, --runs-active at once), in
the same run. Prints seconds, per-scene overhead and the ratio (a)/(b), how many task
instances ran a process (radcor's scheduler skips the 4 steps a download-only conf does not ask
for without queueing them; bench_bare runs all 6 per scene), how long a small conf triggered
meanwhile waits for its first task, and at the end the peak RSS of the Airflow processes and
the metadata DB growth.

Usage: .venv/bin/python bench/dag_overhead.py [--scenes 100 1000] [--scenes-per-run 100]
       [--runs-active 4] [--keep] [--radcor-only] [--stop-after-s S]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "plugins"))

BARE_DAG = '''"""Bare Airflow DAGs for bench/dag_overhead.py: the radcor shape with no-op tasks.

Like radcor, a run of more than SCENES_PER_RUN scenes maps none itself: it starts one run of
bench_bare_scenes per range of scenes and waits for them in the triggerer.
"""
from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, get_current_context, task, task_group

STEPS = {steps!r}
SCENES_PER_RUN = {scenes_per_run!r}


def scene_chains(plans):
    @task_group(group_id="scene")
    def scene(plan):
        previous = None
        for name in STEPS:
            current = task(task_id=name, trigger_rule="all_done")(lambda plan: plan)(plan)
            if previous is not None:
                previous >> current
            previous = current

    return scene.expand(plan=plans)


@dag(dag_id="bench_bare", schedule=None, tags=["bench"], max_active_runs=1)
def bench_bare():
    @task
    def validate(**context):
        return dict(context["params"])

    @task
    def search(conf):
        count = int(conf.get("scenes", 1))
        return list(range(count)) if count <= SCENES_PER_RUN else []

    @task
    def child_runs(conf):
        count, run_id = int(conf.get("scenes", 1)), get_current_context()["run_id"]
        if count <= SCENES_PER_RUN:
            return []
        return [
            {{"trigger_run_id": f"{{run_id}}__{{start}}",
             "conf": {{"start": start, "stop": min(start + SCENES_PER_RUN, count)}}}}
            for start in range(0, count, SCENES_PER_RUN)
        ]

    @task(trigger_rule="all_done")
    def report(plans):
        return len(plans)

    conf = validate()
    plans = search(conf)
    runs = TriggerDagRunOperator.partial(
        task_id="scene_runs", trigger_dag_id="bench_bare_scenes", wait_for_completion=True,
        deferrable=True, poke_interval=10, logical_date=None,
    ).expand_kwargs(child_runs(conf))
    [scene_chains(plans), runs] >> report(plans)


@dag(dag_id="bench_bare_scenes", schedule=None, tags=["bench"], max_active_runs={runs_active!r},
     is_paused_upon_creation=False)
def bench_bare_scenes():
    @task
    def scenes():
        conf = get_current_context()["dag_run"].conf
        return list(range(conf["start"], conf["stop"]))

    @task(trigger_rule="all_done")
    def report(plans):
        return len(plans)

    plans = scenes()
    scene_chains(plans) >> report(plans)


bench_bare()
bench_bare_scenes()
'''


def _env(
    var_dir: Path, db: str, port: int, scenes_per_run: int, runs_active: int
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "REPO_DIR": str(REPO),
            "VAR_DIR": str(var_dir),
            "CB_PG_DB": db,
            "CB_API_PORT": str(port),
            "DATA_DIR": str(var_dir / "data"),
        }
    )
    out = subprocess.run(
        ["bash", "-c", "source scripts/env.sh && env"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    env.update(dict(line.split("=", 1) for line in out.splitlines() if "=" in line))
    dags = var_dir / "dags"
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    env["AIRFLOW__CORE__PARALLELISM"] = "8"
    env["AIRFLOW__COLLECTION_BUILDER__SCENES_PER_RUN"] = str(scenes_per_run)
    env["AIRFLOW__COLLECTION_BUILDER__SCENE_RUNS_ACTIVE"] = str(runs_active)
    return env


def _steps() -> list[str]:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags" / "radcor.py")).dags["radcor"]
    return [
        t.task_id.split(".", 1)[1] for t in dag.topological_sort() if t.task_id.startswith("scene.")
    ]


def _client(port: int) -> httpx.Client:
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    token = client.post("/auth/token", json={"username": "admin", "password": "admin"})
    token.raise_for_status()
    client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    return client


def _wait_dag(client: httpx.Client, dag_id: str) -> None:
    for _ in range(300):
        if client.get(f"/api/v2/dags/{dag_id}").status_code == 200:
            client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
            return
        time.sleep(1)
    raise SystemExit(f"{dag_id} never appeared")


def _trigger(client: httpx.Client, dag_id: str, conf: dict[str, object]) -> str:
    body = {"logical_date": None, "conf": conf}
    response = client.post(f"/api/v2/dags/{dag_id}/dagRuns", json=body)
    response.raise_for_status()
    return str(response.json()["dag_run_id"])


def _psql(db: str, query: str, **variables: str) -> list[list[str]]:
    """Run ``query`` in ``db`` (``:'name'`` for each variable, quoted by psql); return the rows."""
    settings = [arg for name, value in variables.items() for arg in ("-v", f"{name}={value}")]
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAF,", *settings],
        input=query,
        capture_output=True,
        text=True,
    ).stdout
    return [line.split(",") for line in out.splitlines() if line]


def _scenes_done(db: str, dag_id: str) -> int:
    """Scenes whose download task (no-op or not) ended, in the runs of ``dag_id`` and its child."""
    query = (
        "select count(*) from task_instance where dag_id in (:'dag', :'dag' || '_scenes') "
        "and task_id = 'scene.download_demo' and state in ('success', 'failed', 'skipped')"
    )
    rows = _psql(db, query, dag=dag_id)
    return int(rows[0][0]) if rows else 0


def _wait(
    client: httpx.Client,
    dag_id: str,
    run_id: str,
    started: float,
    timeout_s: float,
    db: str,
    stop_after_s: float | None = None,
) -> float:
    """Return seconds from ``started`` to the run's end; print progress every 5 minutes.

    With ``stop_after_s``, stop waiting then, print how far the run got, and return NaN.
    """
    done_before, last_report = _scenes_done(db, dag_id), time.monotonic()
    while time.monotonic() - started < timeout_s:
        state = client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
        if state in ("success", "failed"):
            if state != "success":
                print(f"  warning: {dag_id} run {run_id} ended {state}")
            return time.monotonic() - started
        elapsed_s = time.monotonic() - started
        if stop_after_s is not None and elapsed_s >= stop_after_s:
            done = _scenes_done(db, dag_id) - done_before
            print(
                f"  {dag_id}: stopped waiting after {elapsed_s:.0f} s with {done} scenes done "
                f"({elapsed_s / max(done, 1) * 1000:.0f} ms per scene so far)",
                flush=True,
            )
            return float("nan")
        if time.monotonic() - last_report >= 300:
            last_report = time.monotonic()
            done = _scenes_done(db, dag_id) - done_before
            print(f"  {dag_id}: {done} scenes done after {elapsed_s:.0f} s", flush=True)
        time.sleep(1)
    raise SystemExit(f"{dag_id} did not finish within {timeout_s:.0f} s")


def _run(
    client: httpx.Client, dag_id: str, conf: dict[str, object], timeout_s: float, db: str
) -> float:
    started = time.monotonic()
    return _wait(client, dag_id, _trigger(client, dag_id, conf), started, timeout_s, db)


def _first_task_delay(client: httpx.Client, conf: dict[str, object]) -> float:
    """Trigger a small preview run and return seconds until its first task starts running."""
    started = time.monotonic()
    run_id = _trigger(client, "radcor", {**conf, "action": "preview"})
    while time.monotonic() - started < 900:
        url = f"/api/v2/dags/radcor/dagRuns/{run_id}/taskInstances/validate"
        ti = client.get(url).json()
        if ti.get("state") in ("running", "success", "failed"):
            return time.monotonic() - started
        time.sleep(0.5)
    return float("nan")


def _peak_rss_mb(var_dir: Path) -> dict[str, float]:
    """Sum VmHWM (peak RSS) over the live processes of each service's process group."""
    groups = {p.stem: int(p.read_text().strip()) for p in (var_dir / "run").glob("*.pid")}
    peaks = dict.fromkeys(groups, 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pgrp = int(stat.read_text().rsplit(")", 1)[1].split()[2])
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        for name, pid in groups.items():
            if pgrp == pid:
                hwm = next((line for line in status.splitlines() if line.startswith("VmHWM")), "")
                peaks[name] += float(hwm.split()[1]) / 1024 if hwm else 0.0
    return peaks


def _tasks_run(db: str) -> dict[str, tuple[int, int]]:
    """Per DAG family (radcor, bench_bare): (task instances that ran a process, all of them)."""
    query = (
        "select case when dag_id like 'bench_bare%' then 'bare' else 'radcor' end, "
        "count(*) filter (where try_number > 0), count(*) from task_instance group by 1"
    )
    return {family: (int(ran), int(total)) for family, ran, total in _psql(db, query)}


def _db_size_mb(db: str) -> float:
    rows = _psql(db, "select pg_database_size(current_database())")
    return int(rows[0][0]) / 1e6 if rows else 0.0


def main() -> None:
    """Run the benchmark and print the table."""
    from tiny_catalog import TinyCatalog

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--port", type=int, default=8093)
    parser.add_argument("--scenes-per-run", type=int, default=100, help="both DAGs' split size")
    parser.add_argument("--runs-active", type=int, default=4, help="child runs at once")
    parser.add_argument("--keep", action="store_true", help="keep the database and folder")
    parser.add_argument(
        "--radcor-only", action="store_true", help="skip bench_bare (a long N = 10,000 run)"
    )
    parser.add_argument(
        "--stop-after-s",
        type=float,
        default=None,
        help="stop waiting for radcor then and report how far it got (a sample of a long run)",
    )
    args = parser.parse_args()
    db = f"cb_bench_{int(time.time())}"
    var_dir = REPO / "var" / db
    env = _env(var_dir, db, args.port, args.scenes_per_run, args.runs_active)
    (var_dir / "dags").mkdir(parents=True)
    shutil.copy(REPO / "dags" / "radcor.py", var_dir / "dags" / "radcor.py")
    bare = BARE_DAG.format(
        steps=_steps(), scenes_per_run=args.scenes_per_run, runs_active=args.runs_active
    )
    (var_dir / "dags" / "bench_bare.py").write_text(bare)
    services = [sys.executable, "scripts/services.py"]
    names = ["api-server", "scheduler", "dag-processor", "triggerer"]
    subprocess.run(["scripts/prepare_db.sh"], cwd=REPO, env=env, check=True)
    subprocess.run([*services, "start", *names], cwd=REPO, env=env, check=True)
    rows = []
    try:
        client = _client(args.port)
        _wait_dag(client, "radcor")
        _wait_dag(client, "bench_bare")
        _wait_dag(client, "radcor_scenes")
        _wait_dag(client, "bench_bare_scenes")
        for count in args.scenes:
            catalog = TinyCatalog(count).start()
            db_before = _db_size_mb(db)
            tasks_before = _tasks_run(db)
            conf = {
                "w": -45.9,
                "s": -12.74,
                "e": -45.8,
                "n": -12.6,
                "catalog": "demo",
                "catalog_args": {"url": catalog.url, "page_size": 1000},
                "dataset": "S2MSI1C",
                "start": "2020-01-01T00:00:00",
                "end": "2020-12-31T23:59:59",
                "action": "start",
                "tasks": [{"type": "download", "collection": "S2_L1C-1"}],
            }
            timeout_s = 600 + count * 12.0
            bare_s = (
                float("nan")
                if args.radcor_only
                else _run(client, "bench_bare", {"scenes": count}, timeout_s, db)
            )
            print(f"N={count}: bare {bare_s:.1f} s", flush=True)
            started = time.monotonic()
            run_id = _trigger(client, "radcor", conf)
            time.sleep(min(15.0, count / 10))
            delay_s = _first_task_delay(client, conf)
            print(f"N={count}: a small conf triggered during the run started in {delay_s:.1f} s")
            ours_s = _wait(client, "radcor", run_id, started, timeout_s, db, args.stop_after_s)
            catalog.stop()
            rows.append((count, ours_s, bare_s, _db_size_mb(db) - db_before))
            tasks_after = _tasks_run(db)
            ran = {
                family: (
                    ran - tasks_before.get(family, (0, 0))[0],
                    total - tasks_before.get(family, (0, 0))[1],
                )
                for family, (ran, total) in tasks_after.items()
            }
            print(
                f"N={count}: task instances that ran a process (of all): radcor "
                f"{ran.get('radcor', (0, 0))[0]} of {ran.get('radcor', (0, 0))[1]} (and the "
                f"small conf's), bare {ran.get('bare', (0, 0))[0]} of {ran.get('bare', (0, 0))[1]}",
                flush=True,
            )
            print(
                f"N={count}: radcor {ours_s:.1f} s ({ours_s / count * 1000:.0f} ms per scene), "
                f"bare {bare_s:.1f} s, "
                f"ratio {ours_s / bare_s:.2f}, per-scene overhead "
                f"{(ours_s - bare_s) / count * 1000:.0f} ms",
                flush=True,
            )
        peaks = _peak_rss_mb(var_dir)
    finally:
        subprocess.run([*services, "stop", *names], cwd=REPO, env=env, check=False)
        if not args.keep:
            subprocess.run(
                [
                    "psql",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-qc",
                    f'drop database if exists "{db}" with (force)',
                ],
                check=False,
            )
            shutil.rmtree(var_dir, ignore_errors=True)
    print("\n| scenes | radcor s | bare s | ratio | overhead ms/scene | DB growth MB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for count, ours_s, bare_s, growth in rows:
        print(
            f"| {count} | {ours_s:.1f} | {bare_s:.1f} | {ours_s / bare_s:.2f} | "
            f"{(ours_s - bare_s) / count * 1000:.0f} | {growth:.1f} |"
        )
    print("peak RSS (MB, process groups):", {k: round(v) for k, v in peaks.items()})


if __name__ == "__main__":
    main()
