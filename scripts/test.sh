#!/usr/bin/env bash
# `make test`: run every test layer against a throwaway PostgreSQL database and data folder.
set -euo pipefail
cd "$(dirname "$0")/.."
export CB_PG_DB="cb_test_$(date +%s)_$$"
export VAR_DIR="$(pwd)/var/test-$$"
source scripts/env.sh
cleanup() {
  .venv/bin/python scripts/services.py stop >/dev/null 2>&1 || true
  psql -h 127.0.0.1 -U postgres -qc "drop database if exists \"$CB_PG_DB\" with (force)" || true
  rm -rf "$VAR_DIR"
}
trap cleanup EXIT
scripts/prepare_db.sh
.venv/bin/pytest -m "integration or e2e or not (integration or e2e)" -q "$@"
