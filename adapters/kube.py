"""The one door to the Kubernetes API: a small typed facade over the official client, raw dicts in and out.

Why it exists: typed kubernetes-client models cost ~9x raw JSON (reference/test-infra.md §E) and leak client
types into the controller. Here the official client is used only as an HTTP layer (configuration, auth,
TLS, connection pool): every call goes through `ApiClient.call_api` with a resource path, so one code path
serves built-in kinds and custom resources alike. Reads are `json.loads` of the raw body; writes take
camelCase, API-shaped dicts. Nothing typed by the client escapes this module: failures become
`KubeApiError` (or its `KubeConnectionError` subclass when the server could not be reached).

What it owns: building the `ApiClient` (explicit kubeconfig, else in-cluster, else the default kubeconfig),
the `Resource` records of the kinds the controller touches, CRUD + patch + status, paginated lists, opening a
raw watch stream (parsed by `adapters/watch.py`), and core/v1 Events with client-go-like de-duplication.
There is no client-side QPS limit: the API server's priority-and-fairness is the only throttle.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import urllib3
from kubernetes import config as kube_config  # untyped functions: used through Any below
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException
from loguru import logger

JsonObj = dict[str, Any]
_load_kube_config: Any = kube_config.load_kube_config
_load_incluster_config: Any = kube_config.load_incluster_config

DEFAULT_REQUEST_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds for ordinary requests
DEFAULT_PAGE_SIZE = 500
_CONNECTION_ERRORS = (urllib3.exceptions.HTTPError, OSError, ApiException)


@dataclass(frozen=True, slots=True)
class Resource:
    """One kind of API object and where it is served. `group` is "" for the core API."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified_name(self) -> str:
        """`plural.group` as kubectl prints it (`ingresses.networking.k8s.io`, `pods`)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, *, namespace: str | None = None, name: str | None = None, subresource: str = "") -> str:
        """The URL path of the collection (or of one object / subresource) for this resource."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        elif self.namespaced and name:
            raise ValueError(f"{self.kind} is namespaced: a namespace is needed to address {name!r}")
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


INGRESS = Resource("networking.k8s.io", "v1", "ingresses", "Ingress", namespaced=True)
INGRESS_CLASS = Resource("networking.k8s.io", "v1", "ingressclasses", "IngressClass", namespaced=False)
INGRESS_CLASS_PARAMS = Resource(
    "elbv2.k8s.aws", "v1beta1", "ingressclassparams", "IngressClassParams", namespaced=False
)
TARGET_GROUP_BINDING = Resource(
    "elbv2.k8s.aws", "v1beta1", "targetgroupbindings", "TargetGroupBinding", namespaced=True
)
SERVICE = Resource("", "v1", "services", "Service", namespaced=True)
ENDPOINT_SLICE = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", namespaced=True)
POD = Resource("", "v1", "pods", "Pod", namespaced=True)
NODE = Resource("", "v1", "nodes", "Node", namespaced=False)
NAMESPACE = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
LEASE = Resource("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True)
EVENT = Resource("", "v1", "events", "Event", namespaced=True)
CUSTOM_RESOURCE_DEFINITION = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False
)


class PatchType(StrEnum):
    """The patch flavour, chosen explicitly by the caller (it is the request's Content-Type)."""

    MERGE = "application/merge-patch+json"  # RFC 7386: null deletes a key; lists are replaced
    STRATEGIC = "application/strategic-merge-patch+json"  # built-in kinds only (415 on custom resources)
    JSON = "application/json-patch+json"  # RFC 6902: a list of operations


class KubeApiError(Exception):
    """A failed API call: HTTP `status` (0 when no answer came), the Status `reason` and `message`."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def is_not_found(self) -> bool:
        return self.status == 404

    @property
    def is_conflict(self) -> bool:
        return self.status == 409

    @property
    def is_gone(self) -> bool:
        return self.status == 410

    @classmethod
    def from_status(cls, status_obj: Mapping[str, Any], *, http_status: int = 0) -> KubeApiError:
        """Build from a metav1.Status dict (an error body, or the object of a watch ERROR event)."""
        code = status_obj.get("code") or http_status
        return cls(int(code), str(status_obj.get("reason") or ""), str(status_obj.get("message") or ""))


class KubeConnectionError(KubeApiError):
    """The API server could not be reached, or the connection broke mid-answer (status 0)."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "ConnectionError", message)


class KubeConfigError(Exception):
    """No usable Kubernetes configuration was found (one clear line for the operator)."""


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, KubeApiError) and exc.is_not_found


def is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, KubeApiError) and exc.is_conflict


def is_gone(exc: BaseException) -> bool:
    return isinstance(exc, KubeApiError) and exc.is_gone


def build_api_client(kubeconfig: str | None = None, *, context: str | None = None) -> ApiClient:
    """An ApiClient from, in order: an explicit kubeconfig path, in-cluster config, the default kubeconfig."""
    configuration = Configuration()
    try:
        if kubeconfig:
            _load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
            source = "kubeconfig"
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            _load_incluster_config(client_configuration=configuration)
            source = "in-cluster"
        else:
            _load_kube_config(context=context, client_configuration=configuration)
            source = "default-kubeconfig"
    except (kube_config.ConfigException, OSError, ValueError, TypeError) as exc:
        raise KubeConfigError(
            f"no usable Kubernetes configuration ({kubeconfig or 'default'}): {exc}"
        ) from exc
    # Watchers each hold one connection for minutes; leave room for writers beside them.
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, 64)
    logger.bind(source=source, host=configuration.host).info("kubernetes client configured")
    return ApiClient(configuration)


class WatchStream:
    """An open watch response: the raw body chunks, and a `close()` callable from any thread."""

    def __init__(self, response: urllib3.HTTPResponse) -> None:
        self._response = response

    def chunks(self) -> Iterator[bytes]:
        """Body bytes as they arrive; ends on a clean end of stream, raises KubeConnectionError otherwise."""
        resp = self._response
        try:
            if resp.chunked:
                yield from resp.read_chunked(decode_content=True)
            else:
                while data := resp.read1(65536):
                    yield data
        except _CONNECTION_ERRORS as exc:
            raise KubeConnectionError(f"watch stream broken: {exc}") from exc

    def close(self) -> None:
        """Unblock a reader stuck in recv (shutdown), then close the connection. Idempotent."""
        try:
            self._response.shutdown()
        except (ValueError, RuntimeError, OSError):
            pass
        try:
            self._response.close()
        except (OSError, urllib3.exceptions.HTTPError):
            pass


class Kube:
    """Raw-dict access to the Kubernetes API. Thread-safe: the connection pool is shared by all callers."""

    def __init__(
        self, api_client: ApiClient, *, request_timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT
    ):
        self._api = api_client
        self._timeout = request_timeout
        self._events = _EventDeduper()

    @classmethod
    def from_config(cls, kubeconfig: str | None = None, *, context: str | None = None) -> Kube:
        return cls(build_api_client(kubeconfig, context=context))

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    # --- HTTP -----------------------------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float] | None = None,
    ) -> urllib3.HTTPResponse:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            request = self._api.param_serialize(
                method, path, query_params=list(query), header_params=headers, body=body,
                auth_settings=["BearerToken"],
            )  # fmt: skip
            rest_response = self._api.call_api(*request, _request_timeout=timeout or self._timeout)
        except _CONNECTION_ERRORS as exc:
            raise KubeConnectionError(f"{method} {path}: {exc}") from exc
        response: urllib3.HTTPResponse = rest_response.response
        if not 200 <= response.status <= 299:
            try:
                raw = response.data
            except _CONNECTION_ERRORS:
                raw = b""
            finally:
                response.release_conn()
            raise _error_from_body(response.status, response.reason or "", raw)
        return response

    def _call(self, method: str, path: str, **kwargs: Any) -> JsonObj:
        response = self._send(method, path, **kwargs)
        try:
            raw = response.data
        except _CONNECTION_ERRORS as exc:
            raise KubeConnectionError(f"{method} {path}: {exc}") from exc
        finally:
            response.release_conn()
        decoded: JsonObj = json.loads(raw) if raw else {}
        return decoded

    # --- verbs ----------------------------------------------------------------------------------------------
    def list_objects(
        self,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> tuple[list[JsonObj], str]:
        """All objects (following `continue`), and the list's resourceVersion to watch from.

        Items get `kind` and `apiVersion` filled in (list items omit them), so every object we hand out
        looks like one read with `get` or seen in a watch.
        """
        items: list[JsonObj] = []
        query = _selectors(label_selector, field_selector)
        continue_token = ""
        while True:
            page_query = [*query, ("limit", str(page_size))]
            if continue_token:
                page_query.append(("continue", continue_token))
            page = self._call("GET", resource.path(namespace=namespace), query=page_query)
            for item in page.get("items") or ():
                item.setdefault("kind", resource.kind)
                item.setdefault("apiVersion", resource.api_version)
                items.append(item)
            metadata = page.get("metadata") or {}
            continue_token = metadata.get("continue") or ""
            if not continue_token:
                return items, str(metadata.get("resourceVersion") or "")

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JsonObj:
        return self._call("GET", resource.path(namespace=namespace, name=name))

    def create(self, resource: Resource, body: Mapping[str, Any], namespace: str | None = None) -> JsonObj:
        namespace = namespace or (body.get("metadata") or {}).get("namespace")
        return self._call("POST", resource.path(namespace=namespace), body=dict(body))

    def replace(self, resource: Resource, body: Mapping[str, Any], namespace: str | None = None) -> JsonObj:
        """PUT the whole object; a stale `metadata.resourceVersion` gives a conflict (409)."""
        metadata = body.get("metadata") or {}
        path = resource.path(namespace=namespace or metadata.get("namespace"), name=metadata["name"])
        return self._call("PUT", path, body=dict(body))

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        patch_type: PatchType,
        namespace: str | None = None,
        subresource: str = "",
    ) -> JsonObj:
        """Patch the object (or a subresource) with an explicitly chosen patch flavour."""
        if (patch_type is PatchType.JSON) != isinstance(patch, Sequence):
            raise ValueError("a JSON patch is a list of operations; merge patches are objects")
        body: Any = [dict(op) for op in patch] if isinstance(patch, Sequence) else dict(patch)
        path = resource.path(namespace=namespace, name=name, subresource=subresource)
        return self._call("PATCH", path, body=body, content_type=patch_type.value)

    def patch_status(
        self,
        resource: Resource,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        patch_type: PatchType = PatchType.MERGE,
        namespace: str | None = None,
    ) -> JsonObj:
        return self.patch(
            resource, name, patch, patch_type=patch_type, namespace=namespace, subresource="status"
        )

    def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
    ) -> JsonObj:
        """Delete; returns the answer (the object while finalizers hold it, else the object or a Status)."""
        options: JsonObj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        return self._call("DELETE", resource.path(namespace=namespace, name=name), body=options)

    def open_watch(
        self,
        resource: Resource,
        *,
        resource_version: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
        read_timeout: float = 330.0,
    ) -> WatchStream:
        """Start a watch from `resource_version` (with bookmarks); parse it with `adapters.watch`."""
        query = [
            *_selectors(label_selector, field_selector),
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        response = self._send(
            "GET", resource.path(namespace=namespace), query=query, timeout=(self._timeout[0], read_timeout)
        )
        return WatchStream(response)

    def create_event(
        self,
        involved: Mapping[str, Any],
        *,
        reason: str,
        message: str,
        type: str = "Normal",
        component: str = "aws-load-balancer-controller",
    ) -> JsonObj:
        """Record a core/v1 Event about `involved` (an API object with kind/apiVersion/metadata).

        As client-go's recorder does, an identical event (same object, type, reason, message) recorded
        recently is not created again: its `count` is bumped and `lastTimestamp` moved instead.
        """
        meta = involved.get("metadata") or {}
        if not involved.get("kind") or not meta.get("name"):
            raise ValueError("an Event needs an involved object with kind and metadata.name")
        namespace = meta.get("namespace") or "default"
        key = (
            str(involved.get("kind")),
            namespace,
            str(meta["name"]),
            str(meta.get("uid", "")),
            type,
            reason,
            message,
        )
        now = _now_rfc3339()
        log = logger.bind(kind=involved.get("kind"), name=meta["name"], namespace=namespace, reason=reason)
        previous = self._events.recent(key)
        if previous is not None:
            event_name, count = previous
            try:
                patched = self.patch(
                    EVENT, event_name, {"count": count + 1, "lastTimestamp": now},
                    patch_type=PatchType.MERGE, namespace=namespace,
                )  # fmt: skip
            except KubeApiError as exc:
                if not exc.is_not_found:
                    raise
            else:
                self._events.remember(key, event_name, count + 1)
                log.bind(count=count + 1).debug("event count bumped")
                return patched
        body: JsonObj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": {
                k: v
                for k, v in (
                    ("kind", involved.get("kind")),
                    ("apiVersion", involved.get("apiVersion")),
                    ("name", meta["name"]),
                    ("namespace", meta.get("namespace")),
                    ("uid", meta.get("uid")),
                    ("resourceVersion", meta.get("resourceVersion")),
                )
                if v
            },
            "reason": reason,
            "message": message,
            "type": type,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": component,
        }
        created = self.create(EVENT, body, namespace=namespace)
        self._events.remember(key, created["metadata"]["name"], 1)
        log.debug("event created")
        return created


class _EventDeduper:
    """A bounded LRU of recently recorded events: identity key -> (event name, count, recorded at)."""

    def __init__(self, *, max_entries: int = 4096, window_seconds: float = 600.0) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, ...], tuple[str, int, float]] = OrderedDict()
        self._max = max_entries
        self._window = window_seconds

    def recent(self, key: tuple[str, ...]) -> tuple[str, int] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or time.monotonic() - entry[2] > self._window:
                return None
            return entry[0], entry[1]

    def remember(self, key: tuple[str, ...], name: str, count: int) -> None:
        with self._lock:
            self._entries[key] = (name, count, time.monotonic())
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


def _selectors(label_selector: str | None, field_selector: str | None) -> list[tuple[str, str]]:
    query = []
    if label_selector:
        query.append(("labelSelector", label_selector))
    if field_selector:
        query.append(("fieldSelector", field_selector))
    return query


def _error_from_body(status: int, http_reason: str, raw: bytes) -> KubeApiError:
    try:
        decoded = json.loads(raw) if raw else None
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and decoded.get("kind") == "Status":
        return KubeApiError(
            status, str(decoded.get("reason") or http_reason), str(decoded.get("message") or "")
        )
    return KubeApiError(status, http_reason, raw[:500].decode("utf-8", "replace"))


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
