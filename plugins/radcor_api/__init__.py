"""Airflow glue for the collection builder: DAG building blocks (and, later, REST routes)."""
