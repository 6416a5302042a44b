"""Run the plan nodes of one task type for one scene, recording each as an activity."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include.catalog.base import CatalogBackend
from include.collectors.limiter import ProviderLimiter
from include.collectors.providers import download_with_fallback
from include.common.config import CollectionConfig, load_collections
from include.common.errors import (
    CollectionBuilderError,
    FieldProblem,
    InvalidInputError,
    TransientError,
)
from include.common.progress import ProgressLogger
from include.common.storage import archive_dir, published_dir, work_dir
from include.processors.base import ProcessorInputs
from include.radcor.activities import (
    DONE_STATES,
    Activity,
    ActivityKey,
    ActivityState,
    ActivityStore,
)
from include.radcor.conf import TaskType
from include.radcor.context import DriverFactory, RunContext
from include.radcor.plan import PlanNode, ScenePlan, is_runnable, nodes_of_type
from include.radcor.waiting import preferred_provider

log = logging.getLogger(__name__)


@dataclass
class StepOutcome:
    """What one step did for one scene: node id -> final state, and the first error raised."""

    states: dict[str, str] = field(default_factory=dict)
    errors: list[CollectionBuilderError | Exception] = field(default_factory=list)
    published: list[dict[str, str]] = field(default_factory=list)
    """Items upserted by this step: ``{"collection", "item_id", "scene_id"}`` each."""

    @property
    def failed(self) -> bool:
        """Whether any node of this step failed."""
        return bool(self.errors)


class StepRunner:
    """Runs the plan nodes of one task type for one scene and records each as an activity.

    A node already done in this run (``success``/``reused``) is kept: a cleared task runs again
    only its unfinished nodes. A node that runs again (a retry, or a clear of a failed task)
    updates its one activity row: ``attempts`` + 1 and ``task_instance`` naming the new try (the
    log link); every change is appended to the history.

    Args:
        plan: the scene's plan.
        context: the orchestrator's opaque ids (the task instance string includes the try).
        store: the activities store.
        backend: the catalog backend, or a function building it (only publish needs it).
        driver_factory: builds a driver by catalog name (the task layer adds credentials).
        collections: configured collections (default ``config/collections.yaml``).
        force: the conf's ``force``: download again even when a valid file is in place (the
            new copy replaces the old one only once verified).
    """

    def __init__(
        self,
        plan: ScenePlan,
        context: RunContext,
        *,
        store: ActivityStore,
        backend: CatalogBackend | Callable[[], CatalogBackend],
        driver_factory: DriverFactory,
        collections: Mapping[str, CollectionConfig] | None = None,
        force: bool = False,
    ) -> None:
        self.plan = plan
        self.context = context
        self.store = store
        self._backend = backend
        self.driver_factory = driver_factory
        self.collections = collections or load_collections()
        self.force = force
        self.log = logging.LoggerAdapter(log, {"scene": plan.scene.scene_id})

    @functools.cached_property
    def backend(self) -> CatalogBackend:
        """The catalog backend, built on first use when given as a function (publish only)."""
        if isinstance(self._backend, CatalogBackend):
            return self._backend
        return self._backend()

    def run(self, task_type: TaskType) -> StepOutcome:
        """Run every node of ``task_type``; a failing node never stops its siblings."""
        outcome = StepOutcome()
        self.store.describe_scene(self.context.run_id, self.plan.scene)
        activities = {
            a.key.node_id: a
            for a in self.store.for_run(self.context.run_id, self.plan.scene.scene_id)
        }
        statuses = {node_id: str(a.status) for node_id, a in activities.items()}
        for node in nodes_of_type(self.plan, task_type):
            key = self._key(node)
            previous = activities.get(node.node_id)
            if previous is not None and previous.status in DONE_STATES:
                self.log.info(
                    "%s.kept node=%s collection=%s state=%s",
                    task_type,
                    node.node_id,
                    node.collection,
                    previous.status,
                )
                outcome.states[node.node_id] = str(previous.status)
                self._note_kept(previous)
                continue
            if node.skip_reason:
                self.store.record(
                    key,
                    ActivityState.SKIPPED,
                    message=node.skip_reason,
                    task_instance=self.context.task_instance,
                )
                statuses[node.node_id] = outcome.states[node.node_id] = ActivityState.SKIPPED
                self.log.info(
                    "%s.skipped node=%s collection=%s reason=%s",
                    task_type,
                    node.node_id,
                    node.collection,
                    node.skip_reason,
                )
                continue
            flags = _stopping_flags(activities.get(node.parent_id or ""))
            if flags:  # the parent ended cleanly without files (fully cloudy, sun too low...)
                reason = f"parent {node.parent_id} flagged {', '.join(flags)}: nothing to process"
                self.store.record(
                    key,
                    ActivityState.SKIPPED,
                    message=reason,
                    outputs={"files": {}, "metadata": {"flags": flags}},
                    task_instance=self.context.task_instance,
                )
                statuses[node.node_id] = outcome.states[node.node_id] = ActivityState.SKIPPED
                self.log.info("%s.skipped node=%s reason=%s", task_type, node.node_id, reason)
                continue
            runnable, reason = is_runnable(node, statuses)
            if not runnable:
                self.store.record(
                    key,
                    ActivityState.UPSTREAM_FAILED,
                    message=reason,
                    task_instance=self.context.task_instance,
                )
                statuses[node.node_id] = outcome.states[node.node_id] = (
                    ActivityState.UPSTREAM_FAILED
                )
                self.log.info("%s.not_run node=%s reason=%s", task_type, node.node_id, reason)
                continue
            state = self._run_node(node, key, activities, outcome)
            statuses[node.node_id] = outcome.states[node.node_id] = state
            activities = {
                a.key.node_id: a
                for a in self.store.for_run(self.context.run_id, self.plan.scene.scene_id)
            }
        return outcome

    def _note_kept(self, previous: Activity) -> None:
        """Name a later try that kept a finished node in the node's history (once per try)."""
        current = self.context.task_instance
        if not current or previous.task_instance == current:
            return
        self.store.note(
            previous.id,
            previous.status,
            task_instance=current,
            message=f"kept: finished already by {previous.task_instance or 'an earlier try'}",
        )

    def _key(self, node: PlanNode) -> ActivityKey:
        return ActivityKey(
            dag_id=self.context.dag_id,
            run_id=self.context.run_id,
            scene_id=self.plan.scene.scene_id,
            node_id=node.node_id,
            task_type=str(node.type),
            collection=node.collection,
        )

    def _run_node(
        self, node: PlanNode, key: ActivityKey, activities: Mapping[str, Any], outcome: StepOutcome
    ) -> ActivityState:
        scene = self.plan.scene
        self.store.record(
            key,
            ActivityState.RUNNING,
            catalog=scene.catalog,
            task_instance=self.context.task_instance,
        )
        started = time.monotonic()
        try:
            if node.type == TaskType.DOWNLOAD:
                facts = self._download(node)
            else:
                parent = activities.get(node.parent_id) if node.parent_id else None
                parent_files = parent.outputs.get("files", {}) if parent is not None else {}
                files = {k: Path(v) for k, v in parent_files.items()}
                if node.type == TaskType.HARMONIZATION:
                    files.update(_upstream_folders(node, self.plan, activities))
                facts = self._process(node, files, activities)
        except Exception as err:  # the step boundary: record, keep siblings going, re-raise later
            state = _failure_state(err)
            self.store.record(
                key,
                state,
                error=f"{type(err).__name__}: {err}",
                task_instance=self.context.task_instance,
            )
            self.log.error(
                "%s.failed node=%s collection=%s error=%s: %s",
                node.type,
                node.node_id,
                node.collection,
                type(err).__name__,
                err,
            )
            outcome.errors.append(err)
            return state
        state = ActivityState.REUSED if facts.pop("reused", False) else ActivityState.SUCCESS
        item_id = facts.get("outputs", {}).get("item_id")
        if item_id:
            outcome.published.append(
                {"collection": node.collection, "item_id": item_id, "scene_id": scene.scene_id}
            )
        self.store.record(key, state, task_instance=self.context.task_instance, **facts)
        self.log.info(
            "%s.done node=%s collection=%s state=%s elapsed_s=%.1f",
            node.type,
            node.node_id,
            node.collection,
            state,
            time.monotonic() - started,
        )
        return state

    def _download(self, node: PlanNode) -> dict[str, Any]:
        scene = self.plan.scene
        dest = archive_dir(node.collection, scene.tile, scene.datetime, scene.scene_id)
        progress = ProgressLogger(self.log, f"download.progress scene={scene.scene_id}")
        started = time.monotonic()
        result, provider = download_with_fallback(
            scene,
            self.collections[node.collection],
            dest,
            driver_factory=self.driver_factory,
            progress=progress,
            limiter=ProviderLimiter.from_environment(),
            prefer=preferred_provider(
                self.store, self.context.run_id, scene.scene_id, node.node_id
            ),
            force=self.force,
        )
        elapsed_s = max(time.monotonic() - started, 1e-9)
        self.log.info(
            "download.done scene=%s catalog=%s size_bytes=%d mb_s=%.2f elapsed_s=%.1f reused=%s "
            "forced=%s",
            scene.scene_id,
            provider,
            result.size_bytes,
            result.size_bytes / 1e6 / elapsed_s,
            elapsed_s,
            result.reused,
            self.force,
        )
        files = {Path(p).stem: str(p) for p in result.files} or {"archive": str(result.path)}
        outputs: dict[str, Any] = {"path": str(result.path), "files": files}
        if result.checksums:  # a folder of assets: each file's checksum, by file name
            outputs["checksums"] = dict(result.checksums)
        facts: dict[str, Any] = {
            "provider": provider,
            "size_bytes": result.size_bytes,
            "checksum": result.checksum,
            "outputs": outputs,
            "reused": result.reused,
        }
        if self.force and not result.reused:
            facts["message"] = "force: downloaded again; the verified copy replaced the old one"
        return facts

    def _lineage(self, node: PlanNode, activities: Mapping[str, Any]) -> dict[str, Any]:
        """Return what the upstream activities of ``node`` recorded, root first."""
        nodes = {n.node_id: n for n in self.plan.nodes}
        steps: list[dict[str, Any]] = []
        current = nodes.get(node.parent_id) if node.parent_id else None
        while current is not None:
            activity = activities.get(current.node_id)
            provider = activity.provider if activity is not None else None
            metadata = activity.outputs.get("metadata") or {} if activity is not None else {}
            software = dict(metadata.get("software") or {})
            if not software and provider and current.type != TaskType.DOWNLOAD:
                from include.processors.registry import make_processor, registered_names

                if provider.lower() in registered_names():
                    software = {provider: make_processor(provider).version}
            steps.append(
                {
                    "task_type": str(current.type),
                    "collection": current.collection,
                    "provider": provider,
                    "software": software,
                }
            )
            current = nodes.get(current.parent_id) if current.parent_id else None
        return {"steps": steps[::-1]}

    def _process(
        self,
        node: PlanNode,
        parent_files: Mapping[str, Path],
        activities: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        from include.processors.registry import make_processor  # rasterio, numpy: only here

        scene = self.plan.scene
        collection = self.collections[node.collection]
        if node.type == TaskType.PUBLISH:
            processor = make_processor("publish")
            output_dir = published_dir(node.collection, scene.tile, scene.datetime, scene.scene_id)
        else:
            processor = make_processor(collection.processors[str(node.type)].name)
            output_dir = work_dir(node.collection, scene.tile, scene.datetime, scene.scene_id)
        if not parent_files:
            raise InvalidInputError(
                FieldProblem(
                    f"node {node.node_id}",
                    f"{node.type} of {node.collection} got no input files",
                    "give it a parent node (download or correction) that produces files",
                )
            )
        output_dir.mkdir(parents=True, exist_ok=True)
        result = processor.run(
            ProcessorInputs(
                scene=scene,
                collection=collection,
                files=parent_files,
                output_dir=output_dir,
                args=node.args,
                source_collection=node.source_collection,
                lineage=self._lineage(node, activities or {}),
                driver_factory=self.driver_factory,
                parent_metadata=_parent_metadata(node, activities or {}),
            )
        )
        facts: dict[str, Any] = {
            "provider": processor.name,
            "outputs": {
                "path": str(output_dir),
                "files": {k: str(v) for k, v in result.files.items()},
                "metadata": result.metadata,
            },
        }
        if result.metadata.get("flags"):
            facts["message"] = "flagged: " + ", ".join(map(str, result.metadata["flags"]))
        if result.item is not None:
            from include.catalog.static_stac import collection_from_config

            self.backend.upsert(result.item, collection_from_config(collection))
            facts["outputs"]["item_id"] = result.item["id"]
            self.log.info("publish.item collection=%s item=%s", node.collection, result.item["id"])
        return facts


def _upstream_folders(
    node: PlanNode, plan: ScenePlan, activities: Mapping[str, Any]
) -> dict[str, Path]:
    """Return the output folders of ``node``'s ancestors, keyed ``upstream_<type>_<node id>``.

    The harmonization finds the product's angle metadata there (MTD_TL.xml, MTL, ANG.txt) when
    the parent's files (a correction's bands) do not carry it.
    """
    nodes = {n.node_id: n for n in plan.nodes}
    folders: dict[str, Path] = {}
    current = nodes.get(node.parent_id) if node.parent_id else None
    while current is not None:
        activity = activities.get(current.node_id)
        path = (activity.outputs or {}).get("path") if activity is not None else None
        if path and Path(path).is_dir():
            folders[f"upstream_{current.type}_{current.node_id}"] = Path(path)
        current = nodes.get(current.parent_id) if current.parent_id else None
    return folders


def _parent_metadata(node: PlanNode, activities: Mapping[str, Any]) -> dict[str, Any]:
    parent = activities.get(node.parent_id) if node.parent_id else None
    metadata = parent.outputs.get("metadata") if parent is not None else None
    return dict(metadata) if isinstance(metadata, Mapping) else {}


def _stopping_flags(parent: Any) -> list[str]:
    """Return the flags of a parent that finished cleanly without files (else ``[]``)."""
    if parent is None or parent.status not in (*DONE_STATES, ActivityState.SKIPPED):
        return []
    outputs = parent.outputs or {}
    flags = (outputs.get("metadata") or {}).get("flags") or []
    return [str(flag) for flag in flags] if flags and not outputs.get("files") else []


def _failure_state(err: BaseException) -> ActivityState:
    return ActivityState.INVALID if isinstance(err, InvalidInputError) else ActivityState.FAILED


def first_error_to_raise(outcome: StepOutcome) -> BaseException | None:
    """Pick the error the task should raise: permanent errors win over transient ones."""
    if not outcome.errors:
        return None
    permanent = [e for e in outcome.errors if not isinstance(e, TransientError)]
    return permanent[0] if permanent else outcome.errors[0]
