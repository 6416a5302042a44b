"""Reports invalid pipeline files of `dags/pipelines/` as this file's Airflow DAG import error.

It defines no DAG. `dags/pipelines.py` builds the valid pipelines and skips the invalid ones;
this file raises the invalid ones' problems (file, field and fix), which Airflow shows under
"DAG Import Errors" and in `GET /api/v2/importErrors`. Keeping the errors out of
`pipelines.py` matters: Airflow stops scheduling every DAG of a file that has an import error.
"""

from __future__ import annotations

from pathlib import Path

from radcor_api.pipeline_factory import raise_pipeline_errors

raise_pipeline_errors(Path(__file__).resolve().parent / "pipelines")
