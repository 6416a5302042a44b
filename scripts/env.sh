# Environment shared by `make demo`, `make test` and the Airflow processes; source it from the repo root.
# Override any variable before sourcing (e.g. CB_PG_DB=mydb).
export REPO_DIR="${REPO_DIR:-$(pwd)}"
export VAR_DIR="${VAR_DIR:-$REPO_DIR/var}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$VAR_DIR/airflow}"
export AIRFLOW_CONFIG="${AIRFLOW_CONFIG:-$REPO_DIR/airflow.cfg}"
export AIRFLOW__CORE__DAGS_FOLDER="$REPO_DIR/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$REPO_DIR/plugins"
export CB_PG_DB="${CB_PG_DB:-collection_builder}"
export CB_PG_URL="${CB_PG_URL:-postgresql+psycopg2://postgres@127.0.0.1:5432/$CB_PG_DB}"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-$CB_PG_URL}"
export COLLECTION_BUILDER_DB_URL="${COLLECTION_BUILDER_DB_URL:-$CB_PG_URL}"
export DATA_DIR="${DATA_DIR:-$VAR_DIR/data}"
export AIRFLOW__API_AUTH__JWT_SECRET="${AIRFLOW__API_AUTH__JWT_SECRET:-collection-builder-demo-secret-change-me}"
# Tasks reach the execution API through base_url: keep it on the port the api-server listens on.
export AIRFLOW__API__BASE_URL="${AIRFLOW__API__BASE_URL:-http://127.0.0.1:${CB_API_PORT:-8080}}"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
export PYTHONPATH="$REPO_DIR:$REPO_DIR/plugins${PYTHONPATH:+:$PYTHONPATH}"
export NO_PROXY="127.0.0.1,localhost"
# Tests and the demo serve catalogs on loopback: let catalog_args and requests reach it (never in production).
export COLLECTION_BUILDER_ALLOW_LOOPBACK="${COLLECTION_BUILDER_ALLOW_LOOPBACK:-true}"
