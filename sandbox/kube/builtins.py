"""What a real apiserver does for built-in kinds beyond storing them: defaults, allocations, validation.

`BuiltinHooks` plugs into the store (called with its lock held, so allocations are atomic): the namespaces
that exist at start, Service cluster IPs (10.96.0.0/12) and NodePorts (30000-32767), Namespace/Pod/Secret
defaults, webhook-configuration defaults, schema validation (422 with causes), custom objects pruned,
defaulted and validated against their CRD version's compiled schema (`sandbox.kube.crd_schema`), and
CustomResourceDefinitions turning into served resource types (with `Established`/`NamesAccepted` conditions)
or ceasing to be served.
"""

from __future__ import annotations

import base64
import ipaddress
import random
from collections.abc import Mapping
from typing import Any

from loguru import logger

from sandbox.kube import schema
from sandbox.kube.resources import CRD_TYPE, ResourceType, crd_types
from sandbox.kube.store import ApiError, Obj, Store, invalid, now_rfc3339

INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
NODE_PORT_RANGE = range(30000, 32768)


def _ports(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [p for p in (obj.get("spec") or {}).get("ports") or [] if isinstance(p, dict)]


class BuiltinHooks:
    """The store hooks for built-in kinds and CRDs (see `sandbox.kube.store.Hooks`)."""

    def __init__(self, *, seed: int | None = None) -> None:
        self._random = random.Random(seed)

    # ------------------------------------------------------------------------------------------- hooks
    def prepare_create(self, store: Store, rt: ResourceType, obj: Obj) -> None:
        self._default(store, rt, obj, None)
        self._validate(rt, obj)

    def prepare_update(self, store: Store, rt: ResourceType, old: Obj, new: Obj) -> None:
        self._default(store, rt, new, old)
        self._validate(rt, new, old)

    def after_write(self, store: Store, rt: ResourceType, obj: Obj, *, deleted: bool) -> None:
        if rt.storage_key != CRD_TYPE.storage_key:
            return
        name = obj["metadata"]["name"]
        if deleted:
            for removed in store.registry.remove_crd(name)[:1]:
                store.remove_all(removed)
            logger.bind(crd=name).info("custom resource definition no longer served")
        else:
            types = crd_types(obj)
            store.registry.set_crd(name, types)
            logger.bind(crd=name).info("custom resource definition served")
            self._default_stored(store, obj, types)

    @staticmethod
    def _default_stored(store: Store, crd: Obj, types: list[ResourceType]) -> None:
        """Objects read after a CRD change carry the storage version's (new) defaults, as real reads do."""
        storage = next((v.get("name") for v in crd["spec"].get("versions") or [] if v.get("storage")), None)
        for rt in types:
            if rt.version == storage and rt.schema is not None and rt.schema.has_defaults:
                changed = store.refresh(rt, rt.schema.apply_defaults)
                logger.bind(crd=crd["metadata"]["name"], objects=changed).debug("stored objects defaulted")
            if rt.schema is not None and rt.schema.skipped_rules:
                logger.bind(
                    crd=crd["metadata"]["name"], version=rt.version, rules=rt.schema.skipped_rules
                ).info("CEL validation rules are not evaluated by the emulator")

    # ---------------------------------------------------------------------------------------- defaults
    def _default(self, store: Store, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        if rt.group == "":
            if rt.kind == "Namespace":
                obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
                obj.setdefault("status", {}).setdefault("phase", "Active")
                labels = obj["metadata"].setdefault("labels", {})
                labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
            elif rt.kind == "Pod":
                self._default_pod(obj)
            elif rt.kind == "Service":
                self._default_service(store, rt, obj, old)
            elif rt.kind == "Secret":
                obj.setdefault("type", "Opaque")
                string_data = obj.pop("stringData", None) or {}
                data = obj.setdefault("data", {}) if string_data else obj.get("data")
                for key, value in string_data.items():
                    assert data is not None
                    data[key] = base64.b64encode(str(value).encode()).decode()
        elif rt.kind == "Deployment" and rt.group == "apps":
            spec = obj.setdefault("spec", {})
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
        elif rt.group == "admissionregistration.k8s.io":
            for hook in obj.get("webhooks") or []:
                hook.setdefault("failurePolicy", "Fail")
                hook.setdefault("matchPolicy", "Equivalent")
                hook.setdefault("namespaceSelector", {})
                hook.setdefault("objectSelector", {})
                hook.setdefault("timeoutSeconds", 10)
                if rt.kind == "MutatingWebhookConfiguration":
                    hook.setdefault("reinvocationPolicy", "Never")
        elif rt.storage_key == CRD_TYPE.storage_key:
            self._crd_status(obj)

    @staticmethod
    def _default_pod(obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("securityContext", {})
        for container in spec.get("containers") or []:
            if isinstance(container, dict):
                container.setdefault("terminationMessagePath", "/dev/termination-log")
                container.setdefault("terminationMessagePolicy", "File")
                container.setdefault("imagePullPolicy", "IfNotPresent")
                container.setdefault("resources", {})
                for port in container.get("ports") or []:
                    port.setdefault("protocol", "TCP")
        status = obj.setdefault("status", {})
        status.setdefault("phase", "Pending")
        status.setdefault("qosClass", "BestEffort")

    def _default_service(self, store: Store, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        spec = obj.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        svc_type = spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in _ports(obj):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        obj.setdefault("status", {}).setdefault("loadBalancer", {})
        if svc_type == "ExternalName":
            return
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        others = [
            e.obj
            for e in store.entries(rt)
            if (e.obj["metadata"].get("namespace"), e.obj["metadata"]["name"])
            != (obj["metadata"].get("namespace"), obj["metadata"]["name"])
        ]
        if not spec.get("clusterIP"):
            spec["clusterIP"] = old_spec.get("clusterIP") or self._allocate_ip(others)
        elif (
            spec["clusterIP"] != "None"
            and spec["clusterIP"] != old_spec.get("clusterIP")
            and any((o.get("spec") or {}).get("clusterIP") == spec["clusterIP"] for o in others)
        ):
            raise invalid(
                rt,
                obj["metadata"]["name"],
                [("spec.clusterIPs", f'Invalid value: ["{spec["clusterIP"]}"]: IP is already allocated')],
            )
        spec["clusterIPs"] = [spec["clusterIP"]]
        if svc_type not in ("NodePort", "LoadBalancer"):
            for port in _ports(obj):
                port.pop("nodePort", None)
            return
        spec.setdefault("externalTrafficPolicy", "Cluster")
        if svc_type == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        used = {p.get("nodePort") for o in others for p in _ports(o)}
        previous = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in _ports(old or {})}
        for index, port in enumerate(_ports(obj)):
            if not port.get("nodePort"):
                port["nodePort"] = previous.get(
                    (port.get("port"), port.get("protocol"))
                ) or self._allocate_port(used)
            elif port["nodePort"] in used:
                raise invalid(
                    rt,
                    obj["metadata"]["name"],
                    [
                        (
                            f"spec.ports[{index}].nodePort",
                            f"Invalid value: {port['nodePort']}: provided port is already allocated",
                        )
                    ],
                )
            used.add(port["nodePort"])

    def _allocate_ip(self, others: list[Obj]) -> str:
        used = {(o.get("spec") or {}).get("clusterIP") for o in others}
        first = int(SERVICE_CIDR.network_address) + 10
        size = SERVICE_CIDR.num_addresses - 12
        for _ in range(1000):
            ip = str(ipaddress.ip_address(first + self._random.randrange(size)))
            if ip not in used:
                return ip
        raise ApiError(500, "InternalError", "range is full: no more cluster IPs")

    def _allocate_port(self, used: set[Any]) -> int:
        free = [p for p in NODE_PORT_RANGE if p not in used] if len(used) > 1000 else None
        if free is not None:
            if not free:
                raise ApiError(500, "InternalError", "range is full: no more node ports")
            return self._random.choice(free)
        while True:
            port = self._random.choice(NODE_PORT_RANGE)
            if port not in used:
                return port

    @staticmethod
    def _crd_status(obj: Obj) -> None:
        spec = obj.get("spec") or {}
        names = dict(spec.get("names") or {})
        names.setdefault("singular", str(names.get("kind", "")).lower())
        names.setdefault("listKind", f"{names.get('kind', '')}List")
        spec.setdefault("names", {}).update(names)
        stamp = now_rfc3339()
        old_conditions = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}

        def condition(kind: str, reason: str, message: str) -> dict[str, Any]:
            previous = old_conditions.get(kind) or {}
            return {
                "type": kind,
                "status": "True",
                "lastTransitionTime": previous.get("lastTransitionTime", stamp),
                "reason": reason,
                "message": message,
            }

        storage = [v.get("name") for v in spec.get("versions") or [] if v.get("storage")]
        obj["status"] = {
            "conditions": [
                condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            ],
            "acceptedNames": names,
            "storedVersions": storage,
        }

    # -------------------------------------------------------------------------------------- validation
    def _validate(self, rt: ResourceType, obj: Obj, old: Obj | None = None) -> None:
        if rt.is_crd:
            causes = list(rt.schema.admit(obj).causes) if rt.schema is not None else []
            if causes and old is not None and rt.schema is not None:
                # Ratcheting (on by default since 1.30): a problem the stored object already had is no reason
                # to refuse an update, so objects made invalid by a stricter CRD can still be changed.
                before = set(rt.schema.validate(old))
                causes = [c for c in causes if c not in before]
        else:
            causes = list(schema.validate(obj))
        if rt.storage_key == CRD_TYPE.storage_key:
            causes.extend(_crd_problems(obj))
        elif rt.kind == "Ingress" and rt.group == "networking.k8s.io":
            reported = {path for path, _ in causes}
            causes.extend(p for p in _ingress_problems(obj) if p[0] not in reported)
        if causes:
            raise invalid(rt, obj["metadata"].get("name", ""), _dedupe(causes))


def _dedupe(causes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(causes))


def _ingress_problems(obj: Obj) -> list[tuple[str, str]]:
    problems = []
    for r, rule in enumerate((obj.get("spec") or {}).get("rules") or []):
        for p, path in enumerate(((rule or {}).get("http") or {}).get("paths") or []):
            if isinstance(path, dict) and not path.get("pathType"):
                problems.append(
                    (
                        f"spec.rules[{r}].http.paths[{p}].pathType",
                        "Required value: pathType must be specified",
                    )
                )
    return problems


def _crd_problems(obj: Obj) -> list[tuple[str, str]]:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    problems = []
    for path, value in (
        ("spec.group", spec.get("group")),
        ("spec.names.plural", names.get("plural")),
        ("spec.names.kind", names.get("kind")),
    ):
        if not value:
            problems.append((path, "Required value"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        problems.append(("spec.scope", f'Unsupported value: "{spec.get("scope")}"'))
    versions = spec.get("versions") or []
    if not versions:
        problems.append(("spec.versions", "Invalid value: must have exactly one version marked as storage"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        problems.append(
            ("spec.versions", "Invalid value: must have exactly one version marked as storage version")
        )
    expected = f"{names.get('plural')}.{spec.get('group')}"
    if obj["metadata"].get("name") != expected:
        problems.append(
            (
                "metadata.name",
                f'Invalid value: "{obj["metadata"].get("name")}": must be spec.names.plural+"."+spec.group',
            )
        )
    return problems


def seed_namespaces(store: Store) -> None:
    """Create the namespaces every cluster has."""
    ns_type = store.registry.lookup("", "v1", "namespaces")
    assert ns_type is not None
    for name in INITIAL_NAMESPACES:
        store.create(ns_type, "", {"metadata": {"name": name}})
