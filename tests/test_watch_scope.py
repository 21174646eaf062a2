"""The operator lists and watches only its own children: the API server filters them by label.

A real cluster holds tens of thousands of ConfigMaps, Jobs and Deployments that are not the operator's; with
a client-side filter each of them was listed, decoded and kept in a Kopf index at every start, so the start
time and the memory followed the whole cluster (issue 13: 156 s to start beside 6000 unrelated ConfigMaps).
"""

from __future__ import annotations

from typing import Any

from kube_fixtures import kube, run_operator
from test_operator import NS, World, operator, world

__all__ = ["kube", "operator", "run_operator", "world"]

CHILD_PLURALS = {"configmaps", "jobs", "deployments", "services", "persistentvolumeclaims"}
SELECTOR = "app.kubernetes.io/managed-by=openmodel-operator"


def _reads(world: World) -> list[Any]:
    """Every list or watch the operator made of a child kind (collection requests: no object name)."""
    return [
        r
        for r in world.kube._requests
        if r.method == "GET" and r.name is None and r.resource is not None and r.resource.plural in CHILD_PLURALS
    ]


async def test_child_kinds_are_listed_and_watched_with_a_server_side_selector(world: World, operator: Any) -> None:
    for index in range(20):  # other tenants' objects, in the model's namespace and another
        for namespace in (NS, "default"):
            world.kube.create_object(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"other-{index}", "namespace": namespace},
                }
            )
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.phase("Pulling")  # control: the model's own children are created and seen
        reads = _reads(world)
        assert {r.resource.plural for r in reads} == CHILD_PLURALS
        # every read carries the selector: the watches, and a pass before the start-up listing ended, which reads
        # one model's children (narrowed further by its name label)
        unfiltered = [
            (r.resource.plural, dict(r.params))
            for r in reads
            if SELECTOR not in str(r.params.get("labelSelector") or "").split(",")
        ]
        assert unfiltered == [], unfiltered
        # what the selector lets through is exactly the operator's own: its children, none of the others
        ours = world.kube.list("configmaps", NS, labels=SELECTOR)
        assert ours and all(not obj["metadata"]["name"].startswith("other-") for obj in ours)
