"""The registry of resource types the emulator serves: built-in kinds plus those CRDs make served.

A `ResourceType` is one (group, version, plural) the HTTP layer can route to; the versions of one CRD share a
storage key `(group, plural)`, so an object created as v1beta1 is visible as v1 too (only `apiVersion` is
re-stamped, there is no conversion). The registry is read without locks by request threads: every change
replaces its dictionaries wholesale (copy on write) under the store's lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.kube.crd_schema import StructuralSchema, compile_schema

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class PrinterColumn:
    """One column of a CRD's `additionalPrinterColumns` (a JSONPath evaluated on each object)."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    format: str = ""


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    categories: tuple[str, ...] = ()
    has_status: bool = False
    # The object's status is reset on create (Pods, Services, Ingresses, CRD objects...), as real strategies do.
    reset_status_on_create: bool = False
    # None for built-in kinds (columns come from sandbox.kube.tables); a CRD's printer columns otherwise.
    printer_columns: tuple[PrinterColumn, ...] | None = None
    is_crd: bool = False
    extra_subresources: tuple[str, ...] = field(default=())
    # A CRD version's compiled openAPIV3Schema (None: objects are stored as they come). Compiled once per
    # CRD write (each resourceVersion), when `crd_types` builds the served types; not part of equality.
    schema: StructuralSchema | None = field(default=None, compare=False, repr=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified(self) -> str:
        """The resource name used in error messages: `pods`, `ingresses.networking.k8s.io`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def kind_qualified(self) -> str:
        """The kind name used in 422 messages: `Pod`, `Ingress.networking.k8s.io`."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


def _rt(
    gv: str,
    kind: str,
    plural: str,
    *,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    status: bool = False,
    reset: bool = False,
    categories: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
) -> ResourceType:
    group, _, version = gv.rpartition("/")
    return ResourceType(
        group=group,
        version=version,
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        namespaced=namespaced,
        short_names=short,
        categories=categories,
        has_status=status,
        reset_status_on_create=reset,
        extra_subresources=extra,
    )


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _rt("v1", "Namespace", "namespaces", namespaced=False, short=("ns",), status=True, extra=("finalize",)),
    _rt("v1", "Pod", "pods", short=("po",), status=True, reset=True, categories=("all",)),
    _rt("v1", "Service", "services", short=("svc",), status=True, reset=True, categories=("all",)),
    _rt("v1", "Node", "nodes", namespaced=False, short=("no",), status=True),
    _rt("v1", "Endpoints", "endpoints", short=("ep",)),
    _rt("v1", "Event", "events", short=("ev",)),
    _rt("v1", "Secret", "secrets"),
    _rt("v1", "ConfigMap", "configmaps", short=("cm",)),
    _rt("v1", "ServiceAccount", "serviceaccounts", short=("sa",)),
    _rt("discovery.k8s.io/v1", "EndpointSlice", "endpointslices"),
    _rt("networking.k8s.io/v1", "Ingress", "ingresses", short=("ing",), status=True, reset=True),
    _rt("networking.k8s.io/v1", "IngressClass", "ingressclasses", namespaced=False),
    _rt(
        "apps/v1",
        "Deployment",
        "deployments",
        short=("deploy",),
        status=True,
        reset=True,
        categories=("all",),
    ),
    _rt("coordination.k8s.io/v1", "Lease", "leases"),
    _rt(
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        namespaced=False,
        categories=("api-extensions",),
    ),
    _rt(
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        namespaced=False,
        categories=("api-extensions",),
    ),
    _rt(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        namespaced=False,
        short=("crd", "crds"),
        status=True,
        categories=("api-extensions",),
    ),
)

CRD_TYPE = BUILTIN_TYPES[-1]


def crd_types(crd: Mapping[str, Any]) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition serves: one per served version, schema compiled."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    types = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        columns = tuple(
            PrinterColumn(
                name=str(col.get("name", "")),
                type=str(col.get("type", "string")),
                json_path=str(col.get("jsonPath", "")),
                description=str(col.get("description", "")),
                priority=int(col.get("priority", 0)),
                format=str(col.get("format", "")),
            )
            for col in version.get("additionalPrinterColumns") or []
        )
        types.append(
            ResourceType(
                group=str(spec.get("group", "")),
                version=str(version.get("name", "")),
                kind=str(names.get("kind", "")),
                plural=str(names.get("plural", "")),
                singular=str(names.get("singular") or str(names.get("kind", "")).lower()),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                has_status="status" in subresources,
                reset_status_on_create="status" in subresources,
                printer_columns=columns,
                is_crd=True,
                schema=compile_schema((version.get("schema") or {}).get("openAPIV3Schema")),
            )
        )
    return types


class Registry:
    """Lookup tables of served resource types; replaced wholesale on every change (lock-free reads)."""

    def __init__(self, builtin: Iterable[ResourceType] = BUILTIN_TYPES) -> None:
        self._builtin = tuple(builtin)
        self._crds: dict[str, tuple[ResourceType, ...]] = {}
        self._by_path: dict[tuple[str, str, str], ResourceType] = {}
        self._by_kind: dict[tuple[str, str], ResourceType] = {}
        self._groups: dict[str, tuple[str, ...]] = {}
        self.revision = 0  # bumped on every change (caches of derived documents key on it)
        self._rebuild()

    def _rebuild(self) -> None:
        all_types = list(self._builtin)
        for types in self._crds.values():
            all_types.extend(types)
        by_path: dict[tuple[str, str, str], ResourceType] = {}
        by_kind: dict[tuple[str, str], ResourceType] = {}
        groups: dict[str, list[str]] = {}
        for rt in all_types:
            by_path[(rt.group, rt.version, rt.plural)] = rt
            by_kind.setdefault((rt.api_version, rt.kind), rt)
            versions = groups.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        self._by_path = by_path
        self._by_kind = by_kind
        self._groups = {g: tuple(sorted(vs, key=version_priority, reverse=True)) for g, vs in groups.items()}
        self.revision += 1

    def set_crd(self, crd_name: str, types: Iterable[ResourceType]) -> None:
        crds = dict(self._crds)
        crds[crd_name] = tuple(types)
        if not crds[crd_name]:
            del crds[crd_name]
        self._crds = crds
        self._rebuild()

    def remove_crd(self, crd_name: str) -> tuple[ResourceType, ...]:
        crds = dict(self._crds)
        removed = crds.pop(crd_name, ())
        self._crds = crds
        self._rebuild()
        return removed

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        return self._by_kind.get((api_version, kind))

    def groups(self) -> dict[str, tuple[str, ...]]:
        """group -> served versions, preferred first (the core group is "")."""
        return self._groups

    def types_in(self, group: str, version: str) -> list[ResourceType]:
        return [rt for (g, v, _), rt in self._by_path.items() if g == group and v == version]

    def all_types(self) -> list[ResourceType]:
        return list(self._by_path.values())


def version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA > beta > alpha, then by numbers (v1 > v1beta2 > v1beta1 > v1alpha1)."""
    rest = version[1:] if version.startswith("v") else version
    major_digits = ""
    while rest and rest[0].isdigit():
        major_digits, rest = major_digits + rest[0], rest[1:]
    if not major_digits:
        return (-1, 0, 0)
    stage = 2
    minor = 0
    for name, rank in (("beta", 1), ("alpha", 0)):
        if rest.startswith(name):
            stage = rank
            tail = rest[len(name) :]
            minor = int(tail) if tail.isdigit() else 0
    return (stage, int(major_digits), minor)
