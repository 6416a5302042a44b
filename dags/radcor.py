"""Radcor: collect, correct, harmonize and publish scenes from one radcor conf.

This Airflow DAG takes a radcor conf. Trigger it with one (the form below, the REST API or
the radcor endpoint):
`validate` checks the conf and fails fast naming the field and the fix; `search` queries the
catalog; each scene then runs its own chain `download -> correction -> harmonization -> post ->
publish` (a step with nothing to do for that scene just succeeds), and `report` logs and returns
the totals, failing the run when any scene failed. `action: preview` stops after the search and
returns the matched scenes.
"""

from __future__ import annotations

from radcor_api.dag_factory import build_radcor_dag

radcor = build_radcor_dag("radcor", doc_md=__doc__ or "", tags=["radcor", "collection-builder"])
