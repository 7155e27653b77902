"""Names shared with the upstream controller: kept exactly as upstream spells them, defined once here.

A user switching from the upstream controller to lbc keeps their objects and AWS resources; that only works if
every annotation key, finalizer, tag key and condition type below is spelled as upstream does
(shared/reference/lbc-features.md).
"""

from __future__ import annotations

# --- IngressClass ------------------------------------------------------------------------------------------
INGRESS_CLASS_CONTROLLER = "ingress.k8s.aws/alb"
ANNOTATION_LEGACY_INGRESS_CLASS = "kubernetes.io/ingress.class"
ANNOTATION_DEFAULT_INGRESS_CLASS = "ingressclass.kubernetes.io/is-default-class"
INGRESS_CLASS_PARAMS_GROUP = "elbv2.k8s.aws"
INGRESS_CLASS_PARAMS_KIND = "IngressClassParams"

# --- Ingress annotations -----------------------------------------------------------------------------------
INGRESS_ANNOTATION_PREFIX = "alb.ingress.kubernetes.io/"
ANNOTATION_GROUP_NAME = INGRESS_ANNOTATION_PREFIX + "group.name"
ANNOTATION_GROUP_ORDER = INGRESS_ANNOTATION_PREFIX + "group.order"

# --- Finalizers --------------------------------------------------------------------------------------------
FINALIZER_IMPLICIT_GROUP = "ingress.k8s.aws/resources"
FINALIZER_EXPLICIT_GROUP_PREFIX = "group.ingress.k8s.aws/"
FINALIZER_SERVICE = "service.k8s.aws/resources"
FINALIZER_TARGET_GROUP_BINDING = "elbv2.k8s.aws/resources"

# --- Labels ------------------------------------------------------------------------------------------------
LABEL_ENDPOINT_SLICE_SERVICE = "kubernetes.io/service-name"
