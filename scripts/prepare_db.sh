#!/usr/bin/env bash
# Create the PostgreSQL database named by $CB_PG_DB if missing and migrate Airflow's metadata into it.
set -euo pipefail
: "${CB_PG_DB:?source scripts/env.sh first}"
if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='$CB_PG_DB'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -qc "create database \"$CB_PG_DB\""
fi
mkdir -p "$AIRFLOW_HOME" "$DATA_DIR"
"$REPO_DIR/.venv/bin/airflow" db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 \
  || { tail -20 "$AIRFLOW_HOME/db-migrate.log"; exit 1; }
# Each provider's download pool (docs/catalogs.md); an existing pool keeps its size.
"$REPO_DIR/.venv/bin/python" -m radcor_api.pools
echo "metadata DB ready: $CB_PG_DB"
