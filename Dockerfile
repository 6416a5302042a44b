# Images for docker-compose.yaml (no Docker engine is needed to develop; see docs/deploy.md).
#   target "airflow": apache/airflow + requirements.txt + this project's code and settings
#   target "stac":    stac-fastapi-pgstac serving the published pgstac catalog (compose profile "stac")

FROM apache/airflow:3.3.2-python3.11 AS airflow
USER root
# OS packages, one per line in packages.txt (Astronomer convention); none are needed today
COPY packages.txt /tmp/packages.txt
RUN grep -vE '^[[:space:]]*(#|$)' /tmp/packages.txt > /tmp/packages.list || true; \
    if [ -s /tmp/packages.list ]; then \
      apt-get update && xargs -a /tmp/packages.list apt-get install -y --no-install-recommends \
      && apt-get clean && rm -rf /var/lib/apt/lists/*; \
    fi; \
    mkdir -p /opt/airflow/data /opt/airflow/auth && chown -R airflow:0 /opt/airflow/data /opt/airflow/auth
USER airflow
# requirements.txt pins apache-airflow==3.3.2 itself, so pip keeps the image's Airflow version
COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt
COPY --chown=airflow:0 airflow.cfg /opt/airflow/airflow.cfg
COPY --chown=airflow:0 include /opt/airflow/include
COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 config /opt/airflow/config
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 docker/airflow-init.sh /opt/airflow/docker/airflow-init.sh
# bytecode once here, so task processes do not each compile the project's modules again
RUN python -m compileall -q /opt/airflow/include /opt/airflow/plugins /opt/airflow/dags
ENV AIRFLOW_CONFIG=/opt/airflow/airflow.cfg \
    PYTHONPATH=/opt/airflow:/opt/airflow/plugins \
    COLLECTION_BUILDER_CONFIG_DIR=/opt/airflow/config \
    DATA_DIR=/opt/airflow/data

FROM python:3.11-slim AS stac
# the versions the test suite runs (requirements-dev.txt); tests/deploy/test_compose.py checks they match
RUN pip install --no-cache-dir stac-fastapi-pgstac==6.3.1 stac-fastapi-api==6.3.2 \
    stac-fastapi-types==6.3.2 stac-fastapi-extensions==6.3.2 uvicorn==0.54.0
USER nobody
EXPOSE 8082
CMD ["uvicorn", "stac_fastapi.pgstac.app:app", "--host", "0.0.0.0", "--port", "8082"]
