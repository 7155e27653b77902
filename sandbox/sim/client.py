"""How the simulators write: through the emulator's verbs, in-process, exactly as an API client's request.

`ApiWriter` builds the same `Request` the HTTP layer would and hands it to `Verbs`, so every write of a
simulator gets what a client's gets: mutating and validating admission webhooks (the controller's pod webhook
injects readiness gates into the pods a Deployment creates), defaults and validation, resourceVersion
preconditions (409 Conflict), status-subresource separation, finalizers. Only the HTTP round trip is skipped.
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.kube.resources import ResourceType
from sandbox.kube.store import ApiError, Obj, Store
from sandbox.kube.verbs import Request, Verbs

JSON = "application/json"


class ApiWriter:
    """Create / replace / replace status / delete, through admission, on an in-process store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._verbs = Verbs(store)

    def type(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self.store.registry.lookup(group, version, plural)
        if rt is None:
            raise LookupError(f"{group}/{version} {plural} is not served")
        return rt

    def _request(
        self, rt: ResourceType, namespace: str, name: str, body: Any, *, subresource: str = ""
    ) -> Request:
        return Request(
            rt=rt,
            namespace=namespace if rt.namespaced else "",
            name=name,
            subresource=subresource,
            query={},
            accept=JSON,
            content_type=JSON,
            body=json.dumps(body, separators=(",", ":")).encode() if body is not None else b"",
        )

    @staticmethod
    def _obj(body: Any) -> Obj:
        if not isinstance(body, dict):
            raise ApiError(500, "InternalError", "the API answered without an object")
        return body

    def create(self, rt: ResourceType, namespace: str, obj: Obj) -> Obj:
        return self._obj(self._verbs.create(self._request(rt, namespace, "", obj)).body)

    def replace(self, rt: ResourceType, obj: Obj) -> Obj:
        """PUT the object; its `metadata.resourceVersion` is the precondition (409 when stale)."""
        meta = obj["metadata"]
        request = self._request(rt, meta.get("namespace", ""), meta["name"], obj)
        return self._obj(self._verbs.update(request).body)

    def replace_status(self, rt: ResourceType, obj: Obj) -> Obj:
        """PUT `<kind>/status`: only the status is taken; resourceVersion precondition as for `replace`."""
        meta = obj["metadata"]
        request = self._request(rt, meta.get("namespace", ""), meta["name"], obj, subresource="status")
        return self._obj(self._verbs.update(request).body)

    def delete(self, rt: ResourceType, namespace: str, name: str, *, uid: str | None = None) -> Obj | None:
        """Delete (with a UID precondition when given); None when it was already gone."""
        options = {"preconditions": {"uid": uid}} if uid else None
        try:
            return self._obj(self._verbs.delete(self._request(rt, namespace, name, options)).body)
        except ApiError as err:
            if err.code == 404:
                return None
            raise
