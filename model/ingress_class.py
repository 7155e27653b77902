"""Which Ingresses are ours, and which IngressGroup each belongs to (upstream §3.1, §3.2).

Pure functions over the cluster's IngressClasses, IngressClassParams and Namespaces. The answer for one Ingress:

- not managed (another controller's, or no class while `--ingress-class` is non-empty);
- managed, with its group key (`<group.name>` for an explicit group, `<namespace>/<name>` for an implicit one);
- invalid class (`ErrInvalidIngressClass` upstream): missing IngressClass or params, wrong params kind, the
  params' namespaceSelector not matching — the Ingress belongs to no group, and the error says why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pyrsistent import PClass, field

from model.constants import (
    ANNOTATION_DEFAULT_INGRESS_CLASS,
    ANNOTATION_GROUP_NAME,
    ANNOTATION_LEGACY_INGRESS_CLASS,
    FINALIZER_EXPLICIT_GROUP_PREFIX,
    FINALIZER_IMPLICIT_GROUP,
    INGRESS_CLASS_CONTROLLER,
    INGRESS_CLASS_PARAMS_GROUP,
    INGRESS_CLASS_PARAMS_KIND,
)
from model.objects import KubeObject
from model.selectors import SelectorError, label_selector_from_spec

_GROUP_NAME = re.compile(r"^([a-z0-9][-a-z0-9.]*)?[a-z0-9]$")


class Classification(PClass):
    """The verdict on one Ingress. `group_key` is "" unless managed."""

    managed: bool = field(type=bool, mandatory=True)
    group_key: str = field(type=str, initial="")
    explicit_group: bool = field(type=bool, initial=False)
    class_name: str = field(type=str, initial="")
    params_name: str = field(type=str, initial="")
    error: str = field(type=str, initial="")


NOT_MANAGED = Classification(managed=False)


def default_ingress_class(classes: Iterable[KubeObject]) -> tuple[str, str]:
    """(name of the default IngressClass or "", error if more than one is marked default)."""
    defaults = sorted(
        c.name for c in classes if c.annotations.get(ANNOTATION_DEFAULT_INGRESS_CLASS) == "true"
    )
    if len(defaults) > 1:
        return "", f"multiple default IngressClasses: {', '.join(defaults)}"
    return (defaults[0] if defaults else ""), ""


def valid_group_name(name: str) -> bool:
    return len(name) <= 63 and bool(_GROUP_NAME.match(name))


def classify_ingress(
    ingress: KubeObject,
    *,
    ingress_class_flag: str,
    classes: Mapping[str, KubeObject],
    params: Mapping[str, KubeObject],
    namespaces: Mapping[str, KubeObject],
) -> Classification:
    """Decide whether `ingress` is ours and its group. Being deleted means no group (upstream §3.1 step 1)."""
    if ingress.deleting:
        return NOT_MANAGED
    legacy = ingress.annotations.get(ANNOTATION_LEGACY_INGRESS_CLASS)
    if legacy is not None:
        if legacy != (ingress_class_flag or "alb"):
            return NOT_MANAGED
        return _grouped(ingress, class_name="", params_obj=None)
    class_name = ingress.spec.get("ingressClassName") or ""
    if not class_name:
        class_name, error = default_ingress_class(classes.values())
        if error:
            return Classification(managed=False, error=error)
    if not class_name:
        return _grouped(ingress, class_name="", params_obj=None) if ingress_class_flag == "" else NOT_MANAGED
    ingress_class = classes.get(class_name)
    if ingress_class is None:
        return Classification(
            managed=False, class_name=class_name, error=f"IngressClass {class_name} not found"
        )
    if ingress_class.spec.get("controller") != INGRESS_CLASS_CONTROLLER:
        return NOT_MANAGED
    parameters = ingress_class.spec.get("parameters")
    if not parameters:
        return _grouped(ingress, class_name=class_name, params_obj=None)
    return _with_params(ingress, class_name, parameters, params, namespaces)


def _with_params(
    ingress: KubeObject,
    class_name: str,
    parameters: Mapping[str, Any],
    params: Mapping[str, KubeObject],
    namespaces: Mapping[str, KubeObject],
) -> Classification:
    def invalid(error: str) -> Classification:
        return Classification(managed=False, class_name=class_name, error=error)

    if (
        parameters.get("apiGroup") != INGRESS_CLASS_PARAMS_GROUP
        or parameters.get("kind") != INGRESS_CLASS_PARAMS_KIND
    ):
        return invalid(
            f"IngressClass {class_name} parameters must be {INGRESS_CLASS_PARAMS_GROUP}/IngressClassParams"
        )
    params_name = parameters.get("name") or ""
    params_obj = params.get(params_name)
    if params_obj is None:
        return invalid(f"IngressClassParams {params_name} not found")
    namespace = namespaces.get(ingress.namespace)
    try:
        selector = label_selector_from_spec(params_obj.spec.get("namespaceSelector"))
    except SelectorError as exc:
        return invalid(f"IngressClassParams {params_name} namespaceSelector: {exc}")
    if not selector.matches(namespace.labels if namespace else None):
        return invalid(f"namespace {ingress.namespace} is not selected by IngressClassParams {params_name}")
    return _grouped(ingress, class_name=class_name, params_obj=params_obj)


def _grouped(ingress: KubeObject, *, class_name: str, params_obj: KubeObject | None) -> Classification:
    params_group = ((params_obj.spec.get("group") or {}).get("name") or "") if params_obj else ""
    group_name = params_group or ingress.annotations.get(ANNOTATION_GROUP_NAME, "")
    params_name = params_obj.name if params_obj else ""
    if group_name:
        if not valid_group_name(group_name):
            return Classification(
                managed=False, class_name=class_name, params_name=params_name,
                error=f"invalid IngressGroup name {group_name!r}",
            )  # fmt: skip
        return Classification(
            managed=True, group_key=group_name, explicit_group=True, class_name=class_name,
            params_name=params_name,
        )  # fmt: skip
    return Classification(managed=True, group_key=ingress.key, class_name=class_name, params_name=params_name)


def finalizer_groups(ingress: KubeObject) -> frozenset[str]:
    """The group keys this Ingress still holds a finalizer for (it stays an inactive member of those)."""
    groups: set[str] = set()
    for finalizer in ingress.finalizers:
        if finalizer == FINALIZER_IMPLICIT_GROUP:
            groups.add(ingress.key)
        elif finalizer.startswith(FINALIZER_EXPLICIT_GROUP_PREFIX):
            groups.add(finalizer[len(FINALIZER_EXPLICIT_GROUP_PREFIX) :])
    return frozenset(groups)


def group_finalizer(group_key: str, *, explicit: bool) -> str:
    """The finalizer an active member of `group_key` carries."""
    return FINALIZER_EXPLICIT_GROUP_PREFIX + group_key if explicit else FINALIZER_IMPLICIT_GROUP
