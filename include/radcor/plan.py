"""One scene's plan: the conf's task tree flattened in pre-order, with skip decisions.

Node ids are paths in the tree (``"0"``, ``"0.1"``, ``"0.1.0"``). A node runs after its parent for
the same scene; siblings never depend on each other. Without ``force``, a node is skipped when
every publish node of its subtree (itself included) is already published and there is at least
one, and the subtree of a skipped node is skipped with it (DESIGN 1.1 ``force``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from include.collectors.base import Scene
from include.radcor.conf import RadcorConf, TaskNode, TaskType

RUNNABLE_PARENT_STATES = frozenset({"success", "reused"})


@dataclass(frozen=True, slots=True)
class PlanNode:
    """One task node for one scene; ``source_collection`` is the parent's collection."""

    node_id: str
    type: TaskType
    collection: str
    args: dict[str, Any] = field(default_factory=dict)
    parent_id: str | None = None
    source_collection: str | None = None
    skip_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {
            "node_id": self.node_id,
            "type": str(self.type),
            "collection": self.collection,
            "args": self.args,
            "parent_id": self.parent_id,
            "source_collection": self.source_collection,
            "skip_reason": self.skip_reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlanNode:
        """Rebuild a node from ``to_dict`` output.

        Raises:
            KeyError: when ``node_id``, ``type`` or ``collection`` is missing.
            ValueError: when ``type`` is not a task type.
        """
        return cls(
            node_id=data["node_id"],
            type=TaskType(data["type"]),
            collection=data["collection"],
            args=dict(data.get("args") or {}),
            parent_id=data.get("parent_id"),
            source_collection=data.get("source_collection"),
            skip_reason=data.get("skip_reason"),
        )


@dataclass(frozen=True, slots=True)
class ScenePlan:
    """The nodes to run for one scene, parents before children (tree pre-order)."""

    scene: Scene
    nodes: tuple[PlanNode, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (an XCom value)."""
        return {"scene": self.scene.to_dict(), "nodes": [node.to_dict() for node in self.nodes]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScenePlan:
        """Rebuild a plan from ``to_dict`` output.

        Raises:
            KeyError: when a required key is missing.
            ValueError: when a node type is not a task type.
        """
        return cls(
            scene=Scene.from_dict(dict(data["scene"])),
            nodes=tuple(PlanNode.from_dict(node) for node in data["nodes"]),
        )

    def node(self, node_id: str) -> PlanNode:
        """Return the node with ``node_id``.

        Raises:
            KeyError: when the plan has no such node.
        """
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(node_id)


def plan_scene(
    conf: RadcorConf, scene: Scene, *, is_published: Callable[[str, str], bool]
) -> ScenePlan:
    """Return ``scene``'s plan for the conf's task tree.

    Args:
        conf: a validated conf.
        scene: the scene to plan.
        is_published: ``(collection, scene_id) -> bool``, whether that collection already has a
            published item for the scene; asked at most once per collection.

    Returns:
        The plan, nodes in pre-order, with ``skip_reason`` set on skipped nodes.
    """
    answers: dict[str, bool] = {}

    def published(collection: str) -> bool:
        if collection not in answers:
            answers[collection] = bool(is_published(collection, scene.scene_id))
        return answers[collection]

    nodes: list[PlanNode] = []
    for index, task in enumerate(conf.tasks):
        _add(task, str(index), None, None, conf.force, published, nodes)
    return ScenePlan(scene=scene, nodes=tuple(nodes))


def _add(
    task: TaskNode,
    node_id: str,
    parent: TaskNode | None,
    inherited_skip: str | None,
    force: bool,
    published: Callable[[str], bool],
    out: list[PlanNode],
) -> None:
    skip_reason = None if force else _published_reason(task, published) or inherited_skip
    out.append(
        PlanNode(
            node_id=node_id,
            type=task.type,
            collection=task.collection,
            args=dict(task.args),
            parent_id=node_id.rpartition(".")[0] or None,
            source_collection=parent.collection if parent is not None else None,
            skip_reason=skip_reason,
        )
    )
    for index, child in enumerate(task.tasks):
        _add(child, f"{node_id}.{index}", task, skip_reason, force, published, out)


def _published_reason(task: TaskNode, published: Callable[[str], bool]) -> str | None:
    """Return the skip reason when every publish node below (and at) ``task`` is published."""
    targets = _publish_collections(task)
    if not targets or not all(published(collection) for collection in targets):
        return None
    return f"already published in {', '.join(targets)}"


def _publish_collections(task: TaskNode) -> list[str]:
    found = [task.collection] if task.type == TaskType.PUBLISH else []
    for child in task.tasks:
        found += [c for c in _publish_collections(child) if c not in found]
    return found


def nodes_of_type(plan: ScenePlan, task_type: TaskType | str) -> list[PlanNode]:
    """Return the plan's nodes of ``task_type`` in tree pre-order (parents first).

    Raises:
        ValueError: when ``task_type`` is not a task type.
    """
    wanted = TaskType(task_type)
    return [node for node in plan.nodes if node.type == wanted]


def is_runnable(node: PlanNode, statuses: Mapping[str, str]) -> tuple[bool, str]:
    """Return whether ``node`` may run now, and why not.

    A node runs when it has no parent or its parent finished as ``success`` or ``reused``;
    siblings never matter.

    Args:
        node: the node to check.
        statuses: node id -> final status of the nodes of this scene that finished so far.

    Returns:
        ``(True, "")`` or ``(False, reason)`` such as ``"parent 0 failed"``.
    """
    if node.parent_id is None:
        return True, ""
    status = statuses.get(node.parent_id)
    if status is None:
        return False, f"parent {node.parent_id} has not run"
    if str(status) in RUNNABLE_PARENT_STATES:
        return True, ""
    return False, f"parent {node.parent_id} {str(status)}"
