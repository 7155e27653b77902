"""Server-side printing: the `meta.k8s.io/v1` Table answers that make `kubectl get` show useful columns.

kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`; a real apiserver answers with
columns chosen per kind (and a CRD's `additionalPrinterColumns`). This module owns those column choices for
the built-in kinds the emulator serves and a small JSONPath evaluator for CRD columns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sandbox.kube.resources import PrinterColumn, ResourceType

Obj = Mapping[str, Any]
Cell = Callable[[Obj], Any]
_NONE = "<none>"


def age(obj: Obj) -> str:
    return human_duration((obj.get("metadata") or {}).get("creationTimestamp"))


def human_duration(stamp: Any) -> str:
    if not isinstance(stamp, str) or not stamp:
        return "<unknown>"
    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    seconds = max(0, int((datetime.now(UTC) - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def _get(obj: Obj, *path: str) -> Any:
    node: Any = obj
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _join(values: Sequence[Any]) -> str:
    text = ",".join(str(v) for v in values if v not in (None, ""))
    return text or _NONE


def _pod_ready(obj: Obj) -> str:
    statuses = _get(obj, "status", "containerStatuses") or []
    total = len(_get(obj, "spec", "containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_status(obj: Obj) -> str:
    if _get(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    for status in _get(obj, "status", "containerStatuses") or []:
        waiting = _get(status, "state", "waiting", "reason")
        if waiting:
            return str(waiting)
    return str(_get(obj, "status", "reason") or _get(obj, "status", "phase") or "Pending")


def _readiness_gates(obj: Obj) -> str:
    gates = [g.get("conditionType") for g in _get(obj, "spec", "readinessGates") or []]
    if not gates:
        return _NONE
    conditions = {c.get("type"): c.get("status") for c in _get(obj, "status", "conditions") or []}
    return f"{sum(1 for g in gates if conditions.get(g) == 'True')}/{len(gates)}"


def _service_external(obj: Obj) -> str:
    ingress = _get(obj, "status", "loadBalancer", "ingress") or []
    addresses = [i.get("hostname") or i.get("ip") for i in ingress] + list(
        _get(obj, "spec", "externalIPs") or []
    )
    if addresses:
        return _join(addresses)
    kind = _get(obj, "spec", "type")
    if kind == "LoadBalancer":
        return "<pending>"
    if kind == "ExternalName":
        return str(_get(obj, "spec", "externalName") or _NONE)
    return _NONE


def _service_ports(obj: Obj) -> str:
    parts = []
    for p in _get(obj, "spec", "ports") or []:
        node_port = f":{p['nodePort']}" if p.get("nodePort") else ""
        parts.append(f"{p.get('port')}{node_port}/{p.get('protocol', 'TCP')}")
    return _join(parts)


def _selector(obj: Obj) -> str:
    return _join([f"{k}={v}" for k, v in (_get(obj, "spec", "selector") or {}).items()])


def _node_status(obj: Obj) -> str:
    ready = [c.get("status") for c in _get(obj, "status", "conditions") or [] if c.get("type") == "Ready"]
    text = "Ready" if ready == ["True"] else "NotReady" if ready else "Unknown"
    return text + (",SchedulingDisabled" if _get(obj, "spec", "unschedulable") else "")


def _node_roles(obj: Obj) -> str:
    prefix = "node-role.kubernetes.io/"
    return _join([k[len(prefix) :] for k in _get(obj, "metadata", "labels") or {} if k.startswith(prefix)])


def _endpoints(obj: Obj) -> str:
    out: list[str] = []
    for subset in obj.get("subsets") or []:
        ports = [p.get("port") for p in subset.get("ports") or []] or [None]
        for address in subset.get("addresses") or []:
            out.extend(f"{address.get('ip')}:{port}" if port else address.get("ip") for port in ports)
    return _join(out[:3]) + (f" + {len(out) - 3} more..." if len(out) > 3 else "")


def _slice_endpoints(obj: Obj) -> str:
    addresses = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    return _join(addresses[:3]) + (f" + {len(addresses) - 3} more..." if len(addresses) > 3 else "")


def _ingress_hosts(obj: Obj) -> str:
    hosts = [r.get("host") for r in _get(obj, "spec", "rules") or []]
    return _join(hosts) if any(hosts) else "*"


def _ingress_address(obj: Obj) -> str:
    ingress = _get(obj, "status", "loadBalancer", "ingress") or []
    return ",".join(str(i.get("hostname") or i.get("ip")) for i in ingress)


def _deployment_ready(obj: Obj) -> str:
    return f"{_get(obj, 'status', 'readyReplicas') or 0}/{_get(obj, 'spec', 'replicas') or 0}"


def _event_object(obj: Obj) -> str:
    involved = obj.get("involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def _name(obj: Obj) -> str:
    return str(_get(obj, "metadata", "name") or "")


Column = tuple[str, str, int, Cell]  # name, type, priority, cell
_NAME: Column = ("Name", "string", 0, _name)
_AGE: Column = ("Age", "string", 0, age)

BUILTIN_COLUMNS: dict[tuple[str, str], list[Column]] = {
    ("", "Namespace"): [_NAME, ("Status", "string", 0, lambda o: _get(o, "status", "phase") or ""), _AGE],
    ("", "Pod"): [
        _NAME,
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, _pod_status),
        (
            "Restarts",
            "string",
            0,
            lambda o: str(
                sum(int(s.get("restartCount", 0)) for s in _get(o, "status", "containerStatuses") or [])
            ),
        ),
        _AGE,
        ("IP", "string", 1, lambda o: _get(o, "status", "podIP") or _NONE),
        ("Node", "string", 1, lambda o: _get(o, "spec", "nodeName") or _NONE),
        ("Nominated Node", "string", 1, lambda o: _get(o, "status", "nominatedNodeName") or _NONE),
        ("Readiness Gates", "string", 1, _readiness_gates),
    ],
    ("", "Service"): [
        _NAME,
        ("Type", "string", 0, lambda o: _get(o, "spec", "type") or ""),
        ("Cluster-IP", "string", 0, lambda o: _get(o, "spec", "clusterIP") or _NONE),
        ("External-IP", "string", 0, _service_external),
        ("Port(s)", "string", 0, _service_ports),
        _AGE,
        ("Selector", "string", 1, _selector),
    ],
    ("", "Node"): [
        _NAME,
        ("Status", "string", 0, _node_status),
        ("Roles", "string", 0, _node_roles),
        _AGE,
        ("Version", "string", 0, lambda o: _get(o, "status", "nodeInfo", "kubeletVersion") or ""),
    ],
    ("", "Endpoints"): [_NAME, ("Endpoints", "string", 0, _endpoints), _AGE],
    ("", "Event"): [
        ("Last Seen", "string", 0, lambda o: human_duration(o.get("lastTimestamp") or o.get("eventTime"))),
        ("Type", "string", 0, lambda o: o.get("type") or ""),
        ("Reason", "string", 0, lambda o: o.get("reason") or ""),
        ("Object", "string", 0, _event_object),
        ("Message", "string", 0, lambda o: o.get("message") or ""),
    ],
    ("", "Secret"): [
        _NAME,
        ("Type", "string", 0, lambda o: o.get("type") or ""),
        ("Data", "integer", 0, lambda o: len(o.get("data") or {})),
        _AGE,
    ],
    ("", "ConfigMap"): [_NAME, ("Data", "integer", 0, lambda o: len(o.get("data") or {})), _AGE],
    ("discovery.k8s.io", "EndpointSlice"): [
        _NAME,
        ("AddressType", "string", 0, lambda o: o.get("addressType") or ""),
        ("Ports", "string", 0, lambda o: _join([p.get("port") for p in o.get("ports") or []])),
        ("Endpoints", "string", 0, _slice_endpoints),
        _AGE,
    ],
    ("networking.k8s.io", "Ingress"): [
        _NAME,
        ("Class", "string", 0, lambda o: _get(o, "spec", "ingressClassName") or _NONE),
        ("Hosts", "string", 0, _ingress_hosts),
        ("Address", "string", 0, _ingress_address),
        ("Ports", "string", 0, lambda o: "80, 443" if _get(o, "spec", "tls") else "80"),
        _AGE,
    ],
    ("networking.k8s.io", "IngressClass"): [
        _NAME,
        ("Controller", "string", 0, lambda o: _get(o, "spec", "controller") or ""),
        ("Parameters", "string", 0, lambda o: _get(o, "spec", "parameters", "name") or _NONE),
        _AGE,
    ],
    ("apps", "Deployment"): [
        _NAME,
        ("Ready", "string", 0, _deployment_ready),
        ("Up-to-date", "integer", 0, lambda o: _get(o, "status", "updatedReplicas") or 0),
        ("Available", "integer", 0, lambda o: _get(o, "status", "availableReplicas") or 0),
        _AGE,
    ],
    ("coordination.k8s.io", "Lease"): [
        _NAME,
        ("Holder", "string", 0, lambda o: _get(o, "spec", "holderIdentity") or ""),
        _AGE,
    ],
    ("apiextensions.k8s.io", "CustomResourceDefinition"): [
        _NAME,
        ("Created At", "date", 0, lambda o: _get(o, "metadata", "creationTimestamp") or ""),
    ],
}
for _kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
    BUILTIN_COLUMNS[("admissionregistration.k8s.io", _kind)] = [
        _NAME,
        ("Webhooks", "integer", 0, lambda o: len(o.get("webhooks") or [])),
        _AGE,
    ]

_SEGMENT = re.compile(
    r"\.([A-Za-z0-9_\-/]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]"
)


def jsonpath(obj: Obj, path: str) -> Any:
    """Evaluate the JSONPath subset CRD printer columns use: `.a.b`, `[0]`, `[?(@.type=="Ready")]`."""
    nodes: list[Any] = [obj]
    for match in _SEGMENT.finditer(path.strip().strip("{}")):
        key, index, filter_key, filter_value = match.groups()
        out: list[Any] = []
        for node in nodes:
            if key is not None and isinstance(node, Mapping) and key in node:
                out.append(node[key])
            elif index is not None and isinstance(node, list) and int(index) < len(node):
                out.append(node[int(index)])
            elif filter_key is not None and isinstance(node, list):
                out.extend(
                    item
                    for item in node
                    if isinstance(item, Mapping) and str(_get(item, *filter_key.split("."))) == filter_value
                )
        nodes = out
    if not nodes:
        return None
    return nodes[0] if len(nodes) == 1 else nodes


def _crd_cell(column: PrinterColumn) -> Cell:
    def cell(obj: Obj) -> Any:
        value = jsonpath(obj, column.json_path)
        if value is None:
            return None
        if column.type == "date":
            return human_duration(value)
        if isinstance(value, (dict, list)):
            return json.dumps(value)
        return value

    return cell


def columns_for(rt: ResourceType) -> list[Column]:
    if rt.printer_columns is not None:
        if not rt.printer_columns:
            return [_NAME, _AGE]
        return [_NAME] + [(c.name, c.type, c.priority, _crd_cell(c)) for c in rt.printer_columns]
    return BUILTIN_COLUMNS.get((rt.group, rt.kind), [_NAME, _AGE])


def table(
    rt: ResourceType,
    objects: Sequence[Obj],
    *,
    resource_version: str,
    include_object: str = "Metadata",
    continue_token: str = "",
) -> dict[str, Any]:
    """A `meta.k8s.io/v1` Table of `objects` (rows carry PartialObjectMetadata unless asked otherwise)."""
    columns = columns_for(rt)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [cell(obj) for _, _, _, cell in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata") or {},
            }
        rows.append(row)
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": [
            {
                "name": name,
                "type": kind if kind in ("integer", "number", "boolean") else "string",
                "format": "name" if name == "Name" else ("date" if kind == "date" else ""),
                "description": name,
                "priority": priority,
            }
            for name, kind, priority, _ in columns
        ],
        "rows": rows,
    }
