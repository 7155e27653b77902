"""Registering the pod webhook: create or update the MutatingWebhookConfiguration `aws-load-balancer-webhook`.

Why it exists: upstream relies on its Helm chart to install the configuration; lbc can also run with no chart
(the sandbox, a laptop against a cluster), so with `--webhook-register` the controller registers itself at
start, with the caBundle of the certificate it serves. The body is built by
`model.pod_mutation.webhook_configuration`; this module only writes it.

Ownership: only our entry (`mpod.elbv2.k8s.aws`) is replaced; other webhooks of the same configuration (the
chart's validators, a user's additions) are kept as they are. A concurrent writer (409) makes it read again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loguru import logger

from adapters.kube import JsonObj, Kube, KubeApiError, Resource

MUTATING_WEBHOOK_CONFIGURATION = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "mutatingwebhookconfigurations",
    "MutatingWebhookConfiguration",
    namespaced=False,
)
_ATTEMPTS = 5


def merged_configuration(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """`current` with `desired`'s webhooks put in place (by name) and its labels added; None if unchanged."""
    metadata = dict(current.get("metadata") or {})
    labels = {**(metadata.get("labels") or {}), **((desired.get("metadata") or {}).get("labels") or {})}
    wanted = {hook["name"]: hook for hook in desired.get("webhooks") or ()}
    webhooks = [wanted.pop(hook.get("name"), hook) for hook in current.get("webhooks") or ()]
    webhooks.extend(wanted.values())
    if webhooks == list(current.get("webhooks") or ()) and labels == (metadata.get("labels") or {}):
        return None
    metadata["labels"] = labels
    return {**current, "metadata": metadata, "webhooks": webhooks}


def register_webhook_configuration(kube: Kube, desired: Mapping[str, Any]) -> JsonObj:
    """Create `desired` or update the existing configuration of that name; returns the stored object.

    Raises KubeApiError when the API refuses (e.g. no RBAC), or after repeated conflicts.
    """
    name = str(desired["metadata"]["name"])
    log = logger.bind(kind="MutatingWebhookConfiguration", name=name)
    for _ in range(_ATTEMPTS):
        try:
            current = kube.get(MUTATING_WEBHOOK_CONFIGURATION, name)
        except KubeApiError as exc:
            if not exc.is_not_found:
                raise
            log.info("webhook configuration creating")
            try:
                created = kube.create(MUTATING_WEBHOOK_CONFIGURATION, desired)
            except KubeApiError as create_error:
                if create_error.status == 409:  # AlreadyExists
                    continue  # created meanwhile by someone else: read it and merge
                raise
            log.info("webhook configuration created")
            return created
        updated = merged_configuration(current, desired)
        if updated is None:
            log.debug("webhook configuration up to date")
            return current
        log.info("webhook configuration updating")
        try:
            stored = kube.replace(MUTATING_WEBHOOK_CONFIGURATION, updated)
        except KubeApiError as exc:
            if exc.is_conflict:
                continue
            raise
        log.info("webhook configuration updated")
        return stored
    raise KubeApiError(409, "Conflict", f"MutatingWebhookConfiguration {name}: too many concurrent updates")
