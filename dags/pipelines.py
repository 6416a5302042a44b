"""Scheduled collections: one DAG `pipeline_<name>` per YAML file in `dags/pipelines/`.

Each file holds a radcor conf without dates plus its schedule (cron, preset or a period such as
`16 days`), `start_date`, `catchup`, tags, owner, retries, pools and queues. Every run collects
its data interval, so `airflow backfill create` fills a past period one interval per run. A
malformed file is skipped here (the other pipelines still load and run) and reported by
`dags/pipeline_check.py` as an import error naming the YAML file, the field and the fix.
See docs/deploy.md, "Scheduling a collection".
"""

from __future__ import annotations

from pathlib import Path

from radcor_api.pipeline_factory import register_pipeline_dags

register_pipeline_dags(
    Path(__file__).resolve().parent / "pipelines", globals(), module_doc=__doc__ or ""
)
