"""docker-compose.yaml, Dockerfile and .env.example agree with each other and with the repo.

No Docker engine is needed: the files are parsed and cross-checked (services, images, env,
healthchecks, volumes, every referenced file, pinned versions).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (REPO / "Dockerfile").read_text()
ENV_EXAMPLE = (REPO / ".env.example").read_text()
INIT_SCRIPT = REPO / "docker" / "airflow-init.sh"
AIRFLOW_SERVICES = [name for name in SERVICES if name.startswith("airflow-")]
LONG_RUNNING = [name for name in SERVICES if name != "airflow-init"]
WORKERS = {"airflow-worker-download": "download", "airflow-worker-processing": "processing"}


def _pins(text: str) -> dict[str, str]:
    return {m[1].lower(): m[2] for m in re.finditer(r"([A-Za-z0-9_.\[\]-]+)==([\w.]+)", text)}


def _command(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def test_compose_has_every_service_of_the_deployment() -> None:
    assert set(SERVICES) == {
        "postgres",
        "redis",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker-download",
        "airflow-worker-processing",
        "airflow-init",
        "stac-fastapi-pgstac",
    }
    assert "x-airflow-common" in COMPOSE  # the official compose file's anchor
    assert SERVICES["stac-fastapi-pgstac"]["profiles"] == ["stac"]


def test_compose_images_are_postgis_redis_and_the_built_airflow_image() -> None:
    assert SERVICES["postgres"]["image"] == "postgis/postgis:15-3.4"
    assert SERVICES["redis"]["image"].startswith("redis:7")
    for name in AIRFLOW_SERVICES:
        service = SERVICES[name]
        assert service["build"] == {"context": ".", "target": "airflow"}, name
        assert "collection-builder-airflow" in service["image"], name
    assert SERVICES["stac-fastapi-pgstac"]["build"]["target"] == "stac"


def test_dockerfile_base_image_matches_the_pinned_airflow() -> None:
    pins = _pins((REPO / "requirements.txt").read_text())
    base = re.search(r"^FROM apache/airflow:([\d.]+)-python([\d.]+) AS airflow$", DOCKERFILE, re.M)
    assert base, "FROM apache/airflow:<version>-python<version> AS airflow"
    assert base[1] == pins["apache-airflow"]
    assert base[2] == "3.11"
    assert "pip install --no-cache-dir -r /opt/airflow/requirements.txt" in DOCKERFILE


def test_dockerfile_stac_image_pins_the_tested_stac_fastapi_versions() -> None:
    dev = _pins((REPO / "requirements-dev.txt").read_text())
    stac_stage = DOCKERFILE.split("AS stac", 1)[1]
    pins = _pins(stac_stage)
    assert {"stac-fastapi-pgstac", "stac-fastapi-api", "stac-fastapi-types"} <= set(pins)
    for package, version in pins.items():
        if package in dev:
            assert version == dev[package], package


def test_dockerfile_copies_only_files_that_exist() -> None:
    sources = re.findall(r"^COPY (?:--chown=\S+ )?(\S+) ", DOCKERFILE, re.M)
    assert {"requirements.txt", "include", "plugins", "config", "dags", "airflow.cfg"} <= set(
        sources
    )
    for source in sources:
        assert (REPO / source).exists(), source
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "var" in ignored and ".env" in ignored


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_service_env_uses_celery_postgres_redis_and_the_data_dir(name: str) -> None:
    env = SERVICES[name]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert (
        env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        and "@redis:6379" in env["AIRFLOW__CELERY__BROKER_URL"]
    )
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
        "http://airflow-apiserver:8080/execution/"
    )
    assert "AIRFLOW__API_AUTH__JWT_SECRET" in env  # one secret shared by every service
    assert env["COLLECTION_BUILDER_CATALOG_BACKEND"] == "pgstac"
    assert "@postgres:5432/stac" in env["COLLECTION_BUILDER_PGSTAC_DSN"]
    assert env["COLLECTION_BUILDER_DB_URL"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW_CONFIG"] == "/opt/airflow/airflow.cfg"
    assert "COPY --chown=airflow:0 airflow.cfg /opt/airflow/airflow.cfg" in DOCKERFILE
    mounts = {v.split(":")[1]: v.split(":")[0] for v in SERVICES[name]["volumes"]}
    assert mounts[env["DATA_DIR"]] == "collection-data"  # downloads and processing share it
    assert mounts["/opt/airflow/dags"] == "./dags"
    assert SERVICES[name]["env_file"] == [{"path": ".env", "required": False}]


def test_workers_serve_one_queue_each_matching_the_dag_queues() -> None:
    env = SERVICES["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__COLLECTION_BUILDER__DOWNLOAD_QUEUE"] == "download"
    assert env["AIRFLOW__COLLECTION_BUILDER__PROCESSING_QUEUE"] == "processing"
    assert env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "processing"
    for name, queue in WORKERS.items():
        command = _command(SERVICES[name])
        assert command.startswith("celery worker")
        assert f"--queues {queue} " in command
        assert f'--celery-hostname "{queue}@%h"' in command
        assert f'-d "{queue}@$${{HOSTNAME}}"' in " ".join(SERVICES[name]["healthcheck"]["test"])
        assert SERVICES[name]["environment"]["DUMB_INIT_SETSID"] == "0"


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_service_has_a_healthcheck(name: str) -> None:
    check = SERVICES[name]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert check["interval"] and check["retries"]
    assert SERVICES[name]["restart"] == "always"


def test_services_start_after_their_dependencies() -> None:
    for name, service in SERVICES.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            expected = (
                "service_completed_successfully"
                if dependency == "airflow-init"
                else "service_healthy"
            )
            assert rule["condition"] == expected, (name, dependency)
    for name in AIRFLOW_SERVICES:
        if name != "airflow-init":
            assert "airflow-init" in SERVICES[name]["depends_on"], name


def test_volumes_are_declared_and_bind_mounts_exist() -> None:
    declared = set(COMPOSE["volumes"])
    assert {"postgres-db-volume", "collection-data", "airflow-logs", "airflow-auth"} <= declared
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: {source}"
            else:
                assert source in declared, f"{name}: {source}"
    assert "collection-data" in str(SERVICES["airflow-worker-processing"]["volumes"])
    assert "airflow-auth" in str(SERVICES["airflow-apiserver"]["volumes"])


def test_init_migrates_writes_the_login_creates_pools_and_migrates_pgstac() -> None:
    init = SERVICES["airflow-init"]
    assert init["command"] == ["/opt/airflow/docker/airflow-init.sh"]
    assert "COPY --chown=airflow:0 docker/airflow-init.sh /opt/airflow/docker/airflow-init.sh" in (
        DOCKERFILE
    )
    script = INIT_SCRIPT.read_text()
    for step in (
        "airflow db migrate",
        "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
        "python -m radcor_api.pools",
        "pypgstac migrate --dsn",
        "AIRFLOW_CONN_",
    ):
        assert step in script, step
    if shutil.which("bash"):
        checked = subprocess.run(["bash", "-n", str(INIT_SCRIPT)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr


def test_every_variable_the_compose_reads_has_a_default_or_is_in_env_example() -> None:
    text = (REPO / "docker-compose.yaml").read_text().replace("$$", "")
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE, re.M))
    for name, default in re.findall(r"\$\{([A-Z0-9_]+)(:?-[^}]*)?\}", text):
        assert default or name in documented, f"${{{name}}} has no default and no .env.example line"
    for required in ("AIRFLOW_ADMIN_PASSWORD", "AIRFLOW__API_AUTH__JWT_SECRET"):
        assert required in documented


def test_env_example_names_the_catalog_connections_of_catalogs_yaml() -> None:
    catalogs = yaml.safe_load((REPO / "config" / "catalogs.yaml").read_text())["catalogs"]
    conn_ids = {c["conn_id"] for c in catalogs.values() if c.get("conn_id")}
    assert conn_ids
    for conn_id in conn_ids:
        assert f"AIRFLOW_CONN_{conn_id.upper()}=" in ENV_EXAMPLE
    assert ".env" in (REPO / ".gitignore").read_text().split()


def test_postgres_creates_the_stac_database_the_dsn_names() -> None:
    sql = (REPO / "docker" / "postgres-init.sql").read_text()
    assert re.search(r"^CREATE DATABASE stac;", sql, re.M)
    assert SERVICES["stac-fastapi-pgstac"]["environment"]["PGDATABASE"] == "stac"
    postgres = SERVICES["postgres"]
    assert postgres["healthcheck"]["test"][-1] == postgres["environment"]["POSTGRES_USER"]
