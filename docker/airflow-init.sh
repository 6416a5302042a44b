#!/usr/bin/env bash
# One-shot setup run by the `airflow-init` service before the other Airflow services start:
# metadata DB migration, the admin login, pools, the pgstac schema, a report of connections.
set -euo pipefail

: "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD in .env (see .env.example)}"
: "${AIRFLOW__API_AUTH__JWT_SECRET:?set AIRFLOW__API_AUTH__JWT_SECRET in .env (see .env.example)}"

echo "== metadata database"
airflow db migrate

echo "== admin login (simple auth manager)"
python - <<'PY'
import json, os, pathlib
path = pathlib.Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
path.parent.mkdir(parents=True, exist_ok=True)
user = os.environ.get("AIRFLOW_ADMIN_USER", "admin")
path.write_text(json.dumps({user: os.environ["AIRFLOW_ADMIN_PASSWORD"]}))
path.chmod(0o600)
print(f"user {user!r} written to {path}")
PY

echo "== download pools, one per provider (an existing pool keeps its size)"
python -m radcor_api.pools

if [ "${COLLECTION_BUILDER_CATALOG_BACKEND:-static}" = "pgstac" ]; then
  echo "== pgstac schema"
  pypgstac migrate --dsn "$COLLECTION_BUILDER_PGSTAC_DSN"
fi

echo "== connections from the environment (names only)"
env | grep -oE '^AIRFLOW_CONN_[A-Z0-9_]+' | sort || echo "none: add AIRFLOW_CONN_CDSE_DEFAULT etc. to .env"
echo "airflow-init done"
