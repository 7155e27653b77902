"""What the pod mutating webhook decides: which readiness gates a new pod gets, as an RFC 6902 JSON patch.

Why it exists: the webhook server (adapters/webhook.py) only speaks HTTPS and AdmissionReview; the decision
— upstream's pod readiness gate injector (lbc-features.md §7) — is a pure function of the pod being created
and the controller's snapshot of its namespace, so it is tested without a server and without a cluster.

The rules (as upstream):
- Only pods created in namespaces labelled `elbv2.k8s.aws/pod-readiness-gate-inject=enabled` (the webhook's
  namespaceSelector already filters; when the snapshot does not know the namespace yet, e.g. it was created a
  moment ago, the API server's selector is trusted).
- For every TargetGroupBinding of the pod's namespace with `targetType: ip` whose Service exists and has a
  non-empty selector matching the pod's labels, the gate `target-health.elbv2.k8s.aws/<binding>` is added
  unless the pod already has it. Instance bindings never inject.
- When at least one gate is wanted, the legacy (v1 controller) gates `target-health.alb.ingress.k8s.aws...`
  are removed.
- Ours, on purpose: a binding being deleted injects nothing (its pods would wait for a condition that no one
  will ever set).

It also owns the MutatingWebhookConfiguration body that registers the webhook (`webhook_configuration`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from model.constants import (
    CONTROLLER_APP_NAME,
    LABEL_APP_NAME,
    LABEL_POD_READINESS_GATE_INJECT,
    POD_READINESS_GATE_INJECT_ENABLED,
    READINESS_CONDITION_PREFIX,
    READINESS_CONDITION_PREFIX_LEGACY,
    TARGET_TYPE_IP,
    WEBHOOK_CONFIGURATION_NAME,
    WEBHOOK_POD_NAME,
    WEBHOOK_POD_PATH,
)
from model.objects import NAMESPACE, SERVICE, TARGET_GROUP_BINDING, KubeObject
from model.selectors import service_selector_matches
from model.snapshot import ClusterSnapshot

JsonPatch = list[dict[str, Any]]

_GATES_PATH = "/spec/readinessGates"


def readiness_condition_type(binding_name: str) -> str:
    """The pod condition type (and readiness gate) of a TargetGroupBinding."""
    return READINESS_CONDITION_PREFIX + binding_name


def injection_enabled(namespace_labels: Mapping[str, str] | None) -> bool:
    """Whether a namespace asks for readiness gates; None (namespace unknown to us) trusts the API server."""
    if namespace_labels is None:
        return True
    return namespace_labels.get(LABEL_POD_READINESS_GATE_INJECT) == POD_READINESS_GATE_INJECT_ENABLED


def wanted_gates(
    pod_labels: Mapping[str, str] | None,
    *,
    bindings: Iterable[KubeObject],
    services: Mapping[str, KubeObject],
) -> tuple[str, ...]:
    """The condition types the pod should be gated on, in binding-name order.

    `bindings` are the TargetGroupBindings of the pod's namespace, `services` that namespace's Services by name.
    """
    gates: list[str] = []
    for binding in sorted(bindings, key=lambda b: b.name):
        if binding.deleting or binding.spec.get("targetType") != TARGET_TYPE_IP:
            continue
        service = services.get((binding.spec.get("serviceRef") or {}).get("name") or "")
        if service is None:
            continue
        if service_selector_matches(service.spec.get("selector"), pod_labels):
            gates.append(readiness_condition_type(binding.name))
    return tuple(gates)


def readiness_gate_patch(pod: Mapping[str, Any], wanted: Sequence[str]) -> JsonPatch:
    """The JSON patch giving `pod` every gate of `wanted` (dropping legacy gates); [] when nothing changes."""
    if not wanted:
        return []
    spec = pod.get("spec") or {}
    existing = spec.get("readinessGates")
    if not existing:
        value = [{"conditionType": gate} for gate in dict.fromkeys(wanted)]
        if "spec" not in pod:
            return [{"op": "add", "path": "/spec", "value": {"readinessGates": value}}]
        return [{"op": "add", "path": _GATES_PATH, "value": value}]
    legacy = [
        index
        for index, gate in enumerate(existing)
        if str((gate or {}).get("conditionType", "")).startswith(READINESS_CONDITION_PREFIX_LEGACY)
    ]
    present = {(gate or {}).get("conditionType") for gate in existing}
    patch: JsonPatch = [{"op": "remove", "path": f"{_GATES_PATH}/{index}"} for index in reversed(legacy)]
    for gate in dict.fromkeys(wanted):
        if gate not in present:
            patch.append({"op": "add", "path": f"{_GATES_PATH}/-", "value": {"conditionType": gate}})
    return patch


def mutate_pod(
    pod: Mapping[str, Any],
    *,
    namespace_labels: Mapping[str, str] | None,
    bindings: Iterable[KubeObject],
    services: Mapping[str, KubeObject],
) -> JsonPatch:
    """The whole decision for one new pod: its JSON patch ([] = admit unchanged)."""
    if not injection_enabled(namespace_labels):
        return []
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return readiness_gate_patch(pod, wanted_gates(labels, bindings=bindings, services=services))


class SnapshotNotSynced(RuntimeError):
    """The snapshot has not finished its first LIST of a kind the decision reads (the controller is starting)."""


#: The kinds the decision reads; a snapshot missing one of them would silently drop gates.
DECISION_KINDS = (NAMESPACE, SERVICE, TARGET_GROUP_BINDING)


def mutate_pod_from_snapshot(snapshot: ClusterSnapshot, request: Mapping[str, Any]) -> JsonPatch:
    """The decision for an AdmissionRequest (the `request` of an AdmissionReview) over the controller's view.

    Anything but a Pod CREATE is admitted unchanged. The namespace comes from the request (a pod's
    `metadata.namespace` may still be empty at creation). Raises SnapshotNotSynced before the first LISTs (the
    webhook server then admits the pod unchanged and logs why).
    """
    if request.get("operation") != "CREATE" or (request.get("kind") or {}).get("kind") != "Pod":
        return []
    if not snapshot.is_synced(DECISION_KINDS):
        missing = sorted(set(DECISION_KINDS) - set(snapshot.synced))
        raise SnapshotNotSynced(f"waiting for the first LIST of {', '.join(missing)}")
    pod = request.get("object") or {}
    namespace = str(request.get("namespace") or (pod.get("metadata") or {}).get("namespace") or "")
    namespace_object = snapshot.get(NAMESPACE, namespace)
    service_keys = snapshot.services_by_namespace.get(namespace) or ()
    services: dict[str, KubeObject] = {}
    binding_keys: set[str] = set()
    for key in service_keys:
        service = snapshot.get(SERVICE, key)
        if service is not None:
            services[service.name] = service
        binding_keys.update(snapshot.bindings_by_service.get(key) or ())
    bindings = [b for b in (snapshot.get(TARGET_GROUP_BINDING, k) for k in binding_keys) if b is not None]
    return mutate_pod(
        pod,
        namespace_labels=None if namespace_object is None else dict(namespace_object.labels),
        bindings=bindings,
        services=services,
    )


def webhook_configuration(
    *,
    ca_bundle: str,
    url: str = "",
    service: tuple[str, str] | None = None,
    service_port: int = 443,
    timeout_seconds: int = 10,
) -> dict[str, Any]:
    """The MutatingWebhookConfiguration registering the pod webhook (upstream's names and selectors).

    `ca_bundle` is base64 of the PEM CA; the webhook is reached at `url` (`https://host:port`, the path is
    added) or, when `service` = (namespace, name) is given, through that Service.
    """
    if service is not None:
        client_config: dict[str, Any] = {
            "service": {
                "namespace": service[0],
                "name": service[1],
                "path": WEBHOOK_POD_PATH,
                "port": service_port,
            }
        }
    elif url:
        client_config = {"url": url.rstrip("/") + WEBHOOK_POD_PATH}
    else:
        raise ValueError("the webhook needs a url or a service")
    client_config["caBundle"] = ca_bundle
    webhook = {
        "name": WEBHOOK_POD_NAME,
        "admissionReviewVersions": ["v1"],
        "clientConfig": client_config,
        "failurePolicy": "Ignore",
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "timeoutSeconds": timeout_seconds,
        "reinvocationPolicy": "Never",
        "rules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["pods"],
                "scope": "*",
            }
        ],
        "namespaceSelector": {
            "matchExpressions": [
                {
                    "key": LABEL_POD_READINESS_GATE_INJECT,
                    "operator": "In",
                    "values": [POD_READINESS_GATE_INJECT_ENABLED],
                }
            ]
        },
        "objectSelector": {
            "matchExpressions": [
                {"key": LABEL_APP_NAME, "operator": "NotIn", "values": [CONTROLLER_APP_NAME]}
            ]
        },
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_CONFIGURATION_NAME, "labels": {LABEL_APP_NAME: CONTROLLER_APP_NAME}},
        "webhooks": [webhook],
    }
