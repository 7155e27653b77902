"""IngressGroupActor: one per IngressGroup (an explicit `group.name`, or a lone Ingress).

For now a shell: it works out its members from the snapshot — active members (managed Ingresses of this
group, ordered by `group.order` then `namespace/name`) and inactive ones (Ingresses still holding this
group's finalizer) — and publishes them; building and applying the load balancer comes with the Ingress → ALB
issue.
"""

from __future__ import annotations

from typing import Any

from pyrsistent import pset

from actors.base import ReconcilingActor
from model.constants import ANNOTATION_GROUP_ORDER
from model.ingress_class import finalizer_groups
from model.objects import INGRESS, KubeObject
from model.routing import INGRESS_GROUP_ACTOR
from model.snapshot import ClusterSnapshot


def _order(ingress: KubeObject) -> tuple[int, str]:
    try:
        order = int(ingress.annotations.get(ANNOTATION_GROUP_ORDER, "0"))
    except ValueError:
        order = 0  # reported as a build error by the annotation parser, not here
    return order, ingress.key


class IngressGroupActor(ReconcilingActor):
    kind = INGRESS_GROUP_ACTOR

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._active: list[str] = []
        self._inactive: list[str] = []

    def reconcile(self, snapshot: ClusterSnapshot) -> None:
        active: list[KubeObject] = []
        inactive: list[KubeObject] = []
        for ingress_key in snapshot.group_members.get(self.key, pset()):
            ingress = snapshot.get(INGRESS, ingress_key)
            if ingress is None:
                continue
            verdict = snapshot.classify(ingress)
            if verdict.managed and verdict.group_key == self.key:
                active.append(ingress)
            elif self.key in finalizer_groups(ingress):
                inactive.append(ingress)
        self._active = [i.key for i in sorted(active, key=_order)]
        self._inactive = sorted(i.key for i in inactive)

    def details(self) -> dict[str, Any]:
        return {"active_members": self._active, "inactive_members": self._inactive}
