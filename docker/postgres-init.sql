-- Runs once, when the PostgreSQL volume is created: the database of the published catalog
-- (pgstac; `airflow-init` migrates it). Airflow's metadata and the activities live in `airflow`.
-- (pypgstac migrate, run as this superuser, creates the postgis extensions it needs)
CREATE DATABASE stac;
