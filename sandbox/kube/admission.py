"""Calling admission webhooks the way kube-apiserver does (admissionregistration.k8s.io/v1).

The emulator hands this module the stored Mutating/ValidatingWebhookConfigurations and one write; it decides
which webhooks match (rules, scope, namespaceSelector, objectSelector), POSTs an AdmissionReview v1 over HTTPS
(verified against `caBundle`, or the system CAs), applies JSONPatch responses and turns denials and call
failures into `AdmissionDenied` as the apiserver would (honouring failurePolicy and timeoutSeconds). It holds
no state and must be called outside the store's lock: a webhook may call back into the API.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger

from model.selectors import SelectorError, label_selector_from_spec
from sandbox.kube.patch import PatchError, apply_json_patch

DEFAULT_TIMEOUT_SECONDS = 10
_USER_INFO = {"username": "system:admin", "groups": ["system:masters", "system:authenticated"]}
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    422: "Invalid",
}
_OPTIONS_KIND = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}


class AdmissionDenied(Exception):
    """A write refused by admission; the server answers with a Status of this code, message and reason."""

    def __init__(self, code: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "InternalError" if code >= 500 else "BadRequest")


class _CallFailed(Exception):
    """The webhook could not be called or answered nonsense; failurePolicy decides what happens."""


@dataclass(frozen=True)
class AdmissionRequest:
    operation: str  # CREATE | UPDATE | DELETE | CONNECT
    group: str
    version: str
    resource: str  # plural
    subresource: str
    kind_group: str
    kind_version: str
    kind: str
    namespace: str
    name: str
    obj: Mapping[str, Any] | None
    old_obj: Mapping[str, Any] | None
    namespace_labels: Mapping[str, str]
    dry_run: bool


# ---------------------------------------------------------------------------------------------- matching


def _rule_matches(rule: Mapping[str, Any], request: AdmissionRequest) -> bool:
    def listed(field: str, value: str) -> bool:
        values = rule.get(field) or []
        return "*" in values or value in values

    if not (
        listed("operations", request.operation)
        and listed("apiGroups", request.group)
        and listed("apiVersions", request.version)
    ):
        return False
    scope = rule.get("scope") or "*"
    if (scope == "Cluster" and request.namespace) or (scope == "Namespaced" and not request.namespace):
        return False
    for entry in rule.get("resources") or []:
        resource, _, subresource = str(entry).partition("/")
        if resource in ("*", request.resource) and subresource in ("*", request.subresource):
            return True
    return False


def _labels(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def _webhook_matches(webhook: Mapping[str, Any], request: AdmissionRequest) -> bool:
    if not any(_rule_matches(rule, request) for rule in webhook.get("rules") or []):
        return False
    try:
        namespace_selector = label_selector_from_spec(webhook.get("namespaceSelector"))
        object_selector = label_selector_from_spec(webhook.get("objectSelector"))
    except SelectorError:
        return False
    if request.group == "" and request.resource == "namespaces":
        namespace_ok = namespace_selector.matches(_labels(request.obj or request.old_obj))
    else:
        namespace_ok = not request.namespace or namespace_selector.matches(request.namespace_labels)
    if not namespace_ok:
        return False
    candidates = [obj for obj in (request.obj, request.old_obj) if obj is not None]
    return any(object_selector.matches(_labels(obj)) for obj in candidates or [{}])


def _ordered_webhooks(configs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    by_name = sorted(configs, key=lambda config: str((config.get("metadata") or {}).get("name", "")))
    return [webhook for config in by_name for webhook in config.get("webhooks") or []]


# ---------------------------------------------------------------------------------------------- calling


def _review(request: AdmissionRequest, uid: str, obj: Mapping[str, Any] | None) -> dict[str, Any]:
    kind = {"group": request.kind_group, "version": request.kind_version, "kind": request.kind}
    resource = {"group": request.group, "version": request.version, "resource": request.resource}
    body: dict[str, Any] = {
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": request.name,
        "namespace": request.namespace,
        "operation": request.operation,
        "userInfo": _USER_INFO,
        "object": obj,
        "oldObject": request.old_obj,
        "dryRun": request.dry_run,
    }
    if request.subresource:
        body["subResource"] = request.subresource
        body["requestSubResource"] = request.subresource
    if request.operation in _OPTIONS_KIND:
        body["options"] = {"apiVersion": "meta.k8s.io/v1", "kind": _OPTIONS_KIND[request.operation]}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": body}


def _url(client_config: Mapping[str, Any], timeout: int) -> str:
    url = client_config.get("url")
    if url:
        if not str(url).startswith("https://"):
            raise _CallFailed(f"webhook url {url!r} is not https: 'https' is the only allowed URL scheme")
        separator = "&" if "?" in str(url) else "?"
        return f"{url}{separator}timeout={timeout}s"
    service = client_config.get("service")
    if service:
        where = f"{service.get('name')}.{service.get('namespace')}.svc:{service.get('port', 443)}"
        raise _CallFailed(
            f'failed to call webhook: Post "https://{where}{service.get("path") or ""}?timeout={timeout}s": '
            "service references are not reachable from the emulator (no cluster DNS); use clientConfig.url"
        )
    raise _CallFailed("the webhook's clientConfig has neither url nor service")


def _tls_context(client_config: Mapping[str, Any]) -> ssl.SSLContext:
    bundle = client_config.get("caBundle")
    if not bundle:
        return ssl.create_default_context()
    try:
        pem = base64.b64decode(str(bundle), validate=True).decode("ascii")
        return ssl.create_default_context(cadata=pem)
    except (binascii.Error, UnicodeDecodeError, ssl.SSLError, ValueError) as exc:
        raise _CallFailed(f"invalid caBundle: {exc}") from exc


# Never route webhook calls through an HTTP(S) proxy from the environment (they are loopback calls).
_NO_PROXY = urllib.request.ProxyHandler({})


def _call(webhook: Mapping[str, Any], review: Mapping[str, Any]) -> Mapping[str, Any]:
    """POST the review; return its `response` (checked) or raise _CallFailed."""
    if "v1" not in (webhook.get("admissionReviewVersions") or []):
        raise _CallFailed("admissionReviewVersions does not include v1, the only version the emulator sends")
    timeout = int(webhook.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS)
    client_config = webhook.get("clientConfig") or {}
    url = _url(client_config, timeout)
    opener = urllib.request.build_opener(
        _NO_PROXY, urllib.request.HTTPSHandler(context=_tls_context(client_config))
    )
    http_request = urllib.request.Request(
        url,
        data=json.dumps(review).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    try:
        with opener.open(http_request, timeout=timeout) as answer:
            body = answer.read()
    except urllib.error.HTTPError as exc:
        raise _CallFailed(f'failed to call webhook: Post "{url}": the server answered {exc.code}') from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise _CallFailed(f'failed to call webhook: Post "{url}": {reason}') from exc
    try:
        decoded = json.loads(body)
    except ValueError as exc:
        raise _CallFailed(f"received invalid webhook response: {exc}") from exc
    response = decoded.get("response") if isinstance(decoded, Mapping) else None
    if not isinstance(response, Mapping):
        raise _CallFailed("received invalid webhook response: no response")
    expected_uid = review["request"]["uid"]
    if response.get("uid") != expected_uid:
        raise _CallFailed(f"expected response.uid={expected_uid!r}, got {response.get('uid')!r}")
    return response


def _denial(name: str, response: Mapping[str, Any]) -> AdmissionDenied:
    status = response.get("status") or {}
    code = int(status.get("code") or 400)
    denied_by = f'admission webhook "{name}" denied the request'
    message = (
        f"{denied_by}: {status['message']}" if status.get("message") else f"{denied_by} without explanation"
    )
    return AdmissionDenied(code, message, str(status.get("reason") or ""))


def _admit(
    webhook: Mapping[str, Any], request: AdmissionRequest, obj: Mapping[str, Any] | None, *, mutating: bool
) -> Mapping[str, Any] | None:
    """Call one matching webhook; return the (possibly patched) object, or raise AdmissionDenied."""
    name = str(webhook.get("name", ""))
    log = logger.bind(webhook=name, operation=request.operation, resource=request.resource, name=request.name)
    if request.dry_run and webhook.get("sideEffects") not in ("None", "NoneOnDryRun"):
        raise AdmissionDenied(400, f'admission webhook "{name}" does not support dry run', "BadRequest")
    try:
        log.debug("calling webhook")
        response = _call(webhook, _review(request, str(uuid.uuid4()), obj))
        if not response.get("allowed"):
            log.info("webhook denied the request")
            raise _denial(name, response)
        if mutating and response.get("patch") is not None:
            if response.get("patchType") != "JSONPatch":
                raise _CallFailed(f"unsupported patchType {response.get('patchType')!r}")
            try:
                operations = json.loads(base64.b64decode(str(response["patch"])))
                patched: Mapping[str, Any] = apply_json_patch(obj or {}, operations)
            except (ValueError, binascii.Error, PatchError) as exc:
                raise _CallFailed(f"the webhook's JSON patch cannot be applied: {exc}") from exc
            log.info("webhook patched the object")
            return patched
        log.debug("webhook allowed the request")
        return obj
    except _CallFailed as exc:
        if webhook.get("failurePolicy") == "Ignore":
            log.bind(error=str(exc)).warning("webhook call failed, ignored by failurePolicy")
            return obj
        log.bind(error=str(exc)).warning("webhook call failed, request rejected by failurePolicy")
        raise AdmissionDenied(
            500, f'Internal error occurred: failed calling webhook "{name}": {exc}', "InternalError"
        ) from exc


def run_mutating(configs: Sequence[Mapping[str, Any]], request: AdmissionRequest) -> Mapping[str, Any] | None:
    """Run the matching mutating webhooks in order (configs by name); return the resulting object."""
    obj = request.obj
    for webhook in _ordered_webhooks(configs):
        current = request if obj is request.obj else dataclasses.replace(request, obj=obj)
        if _webhook_matches(webhook, current):
            obj = _admit(webhook, current, obj, mutating=True)
    return obj


def run_validating(configs: Sequence[Mapping[str, Any]], request: AdmissionRequest) -> None:
    """Run the matching validating webhooks; raise AdmissionDenied on the first denial or failed call."""
    for webhook in _ordered_webhooks(configs):
        if _webhook_matches(webhook, request):
            _admit(webhook, request, request.obj, mutating=False)
