"""TargetGroupActor: one per TargetGroupBinding.

For now a shell: it reads its binding from the snapshot and publishes what it targets; registering targets
comes with the targets issue.
"""

from __future__ import annotations

from typing import Any

from actors.base import ReconcilingActor
from model.objects import TARGET_GROUP_BINDING
from model.routing import TARGET_GROUP_ACTOR
from model.snapshot import ClusterSnapshot


class TargetGroupActor(ReconcilingActor):
    kind = TARGET_GROUP_ACTOR

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._binding: dict[str, Any] = {}

    def reconcile(self, snapshot: ClusterSnapshot) -> None:
        binding = snapshot.get(TARGET_GROUP_BINDING, self.key)
        if binding is None:
            self._binding = {}
            return
        spec = binding.spec
        self._binding = {
            "targetGroupARN": spec.get("targetGroupARN", ""),
            "targetType": spec.get("targetType", ""),
            "serviceRef": dict(spec.get("serviceRef") or {}),
        }

    def details(self) -> dict[str, Any]:
        return {"binding": self._binding}
