"""The Kubernetes writes actors make: finalizers, status, Events, TargetGroupBinding objects.

Every write is a patch that says exactly what changes (never a read-modify-PUT of a whole object from a possibly
stale cache): finalizer lists carry the object's resourceVersion so a concurrent change gives 409 (a temporary
error: the next reconcile sees the newer object), status patches touch only `status.loadBalancer`. Writes are
skipped when the object already is as wanted, so a steady-state reconcile writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loguru import logger
from pyrsistent import thaw

from adapters import kube as k8s
from model.objects import KubeObject
from model.observe import binding_object
from model.stack import TargetGroupBinding

_RESOURCES: dict[str, k8s.Resource] = {
    "Ingress": k8s.INGRESS,
    "Service": k8s.SERVICE,
    "TargetGroupBinding": k8s.TARGET_GROUP_BINDING,
    "Pod": k8s.POD,
}


_CUSTOM_KINDS = frozenset({"TargetGroupBinding"})


def involved_object(obj: KubeObject) -> dict[str, Any]:
    """The `involvedObject`-style reference of `obj` for Events."""
    resource = _RESOURCES[obj.kind]
    meta = {
        "name": obj.name,
        "namespace": obj.namespace,
        "uid": obj.uid,
        "resourceVersion": obj.resource_version,
    }
    return {"kind": obj.kind, "apiVersion": resource.api_version, "metadata": meta}


class KubeWriter:
    """Patches and Events through the Kubernetes adapter; raises `KubeApiError` on failure."""

    def __init__(self, kube: k8s.Kube) -> None:
        self._kube = kube

    def event(self, obj: KubeObject, *, reason: str, message: str, warning: bool = False) -> None:
        try:
            self._kube.create_event(
                involved_object(obj), reason=reason, message=message, type="Warning" if warning else "Normal"
            )
        except k8s.KubeApiError as exc:  # an Event is best effort: never fail a reconcile for it
            logger.bind(object=obj.key, reason=reason, error=str(exc)).warning("event not recorded")

    def add_finalizer(self, obj: KubeObject, finalizer: str) -> None:
        if finalizer not in obj.finalizers:
            self._change_finalizers(obj, add=finalizer)

    def remove_finalizer(self, obj: KubeObject, finalizer: str) -> None:
        if finalizer in obj.finalizers:
            self._change_finalizers(obj, remove=finalizer)

    def _change_finalizers(self, obj: KubeObject, *, add: str = "", remove: str = "") -> None:
        """Add or remove one finalizer without touching the others. Built-in kinds take a strategic-merge patch
        (finalizers merge as a set; `$deleteFromPrimitiveList` removes one), which needs no resourceVersion: two
        actors changing different finalizers of one Ingress (a member moving between groups) never conflict.
        Custom resources (strategic merge unsupported) get the whole list with a resourceVersion precondition;
        only their own actor writes them."""
        resource = _RESOURCES[obj.kind]
        if obj.kind in _CUSTOM_KINDS:
            wanted = [f for f in obj.finalizers if f != remove] + ([add] if add else [])
            patch: dict[str, Any] = {
                "metadata": {"finalizers": wanted or None, "resourceVersion": obj.resource_version}
            }
            patch_type = k8s.PatchType.MERGE
        else:
            meta: dict[str, Any] = (
                {"finalizers": [add]} if add else {"$deleteFromPrimitiveList/finalizers": [remove]}
            )
            patch, patch_type = {"metadata": meta}, k8s.PatchType.STRATEGIC
        try:
            self._kube.patch(resource, obj.name, patch, patch_type=patch_type, namespace=obj.namespace)
        except k8s.KubeApiError as exc:
            if not exc.is_not_found:  # gone meanwhile: the next snapshot says so, nothing to hold
                raise

    def set_load_balancer_status(self, obj: KubeObject, ingress_status: list[dict[str, Any]]) -> bool:
        """Set `status.loadBalancer.ingress`; False (and no write) when it already is that."""
        current = (obj.status.get("loadBalancer") or {}).get("ingress") or []
        if thaw(current) == ingress_status:
            return False
        patch = {"status": {"loadBalancer": {"ingress": ingress_status or None}}}
        try:
            self._kube.patch_status(
                _RESOURCES[obj.kind], obj.name, patch, patch_type=k8s.PatchType.MERGE, namespace=obj.namespace
            )
        except k8s.KubeApiError as exc:
            if not exc.is_not_found:
                raise
            return False
        return True

    def patch_pod_status(self, pod: KubeObject, patch: Mapping[str, Any]) -> bool:
        """Strategic-merge `patch` (conditions merged by type; `metadata.uid` a precondition) into the pod's
        status; False when the pod is gone (nothing to do for it any more)."""
        try:
            self._kube.patch_status(
                k8s.POD, pod.name, patch, patch_type=k8s.PatchType.STRATEGIC, namespace=pod.namespace
            )
        except k8s.KubeApiError as exc:
            if exc.is_not_found:
                return False
            raise
        return True

    def set_annotations(self, obj: KubeObject, annotations: Mapping[str, str | None]) -> None:
        """Merge-patch annotations (None removes one); nothing when they already are so."""
        if all(obj.annotations.get(k) == v for k, v in annotations.items()):
            return
        self._kube.patch(
            _RESOURCES[obj.kind],
            obj.name,
            {"metadata": {"annotations": dict(annotations)}},
            patch_type=k8s.PatchType.MERGE,
            namespace=obj.namespace,
        )

    # -- TargetGroupBindings ----------------------------------------------------------------------------------
    def create_binding(self, binding: TargetGroupBinding) -> None:
        try:
            self._kube.create(k8s.TARGET_GROUP_BINDING, binding_object(binding), binding.namespace)
        except k8s.KubeApiError as exc:
            if not exc.is_conflict:
                raise
            self.update_binding(binding)  # left by an earlier reconcile whose answer was lost

    def update_binding(self, binding: TargetGroupBinding) -> None:
        wanted = binding_object(binding)
        patch = {"metadata": {"labels": wanted["metadata"]["labels"]}, "spec": wanted["spec"]}
        self._kube.patch(
            k8s.TARGET_GROUP_BINDING,
            binding.name,
            patch,
            patch_type=k8s.PatchType.MERGE,
            namespace=binding.namespace,
        )

    def delete_binding(self, namespace: str, name: str) -> None:
        try:
            self._kube.delete(k8s.TARGET_GROUP_BINDING, name, namespace)
        except k8s.KubeApiError as exc:
            if not exc.is_not_found:
                raise
