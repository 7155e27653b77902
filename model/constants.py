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

# --- Subnet discovery (§8) ---------------------------------------------------------------------------------
TAG_SUBNET_ROLE_ELB = "kubernetes.io/role/elb"  # internet-facing load balancers
TAG_SUBNET_ROLE_INTERNAL_ELB = "kubernetes.io/role/internal-elb"  # internal load balancers
TAG_CLUSTER_PREFIX = "kubernetes.io/cluster/"  # + cluster name: "owned" or "shared"
TAG_NAME = "Name"
SUBNET_ID_PREFIX = "subnet-"
SUBNET_MIN_AVAILABLE_IPS = 8
SCHEME_INTERNAL = "internal"
SCHEME_INTERNET_FACING = "internet-facing"
LB_TYPE_APPLICATION = "application"
LB_TYPE_NETWORK = "network"
IP_ADDRESS_TYPE_IPV4 = "ipv4"
IP_ADDRESS_TYPE_DUALSTACK = "dualstack"
IP_ADDRESS_TYPE_DUALSTACK_WITHOUT_PUBLIC_IPV4 = "dualstack-without-public-ipv4"

# --- ACM certificate discovery (§4.3) ----------------------------------------------------------------------
ACM_CERTIFICATE_STATUS_ISSUED = "ISSUED"

# --- Tracking tags and stack labels (§4.7, §4.10) ----------------------------------------------------------
TAG_K8S_CLUSTER = "elbv2.k8s.aws/cluster"  # every AWS resource we create: the cluster name
TAG_K8S_RESOURCE = "elbv2.k8s.aws/resource"  # cluster-wide resources: "backend-sg"
TAG_VALUE_BACKEND_SG = "backend-sg"
INGRESS_TRACKING_PREFIX = "ingress.k8s.aws"
TAG_INGRESS_STACK = INGRESS_TRACKING_PREFIX + "/stack"  # the stack id: group name or `namespace/name`
TAG_INGRESS_RESOURCE = INGRESS_TRACKING_PREFIX + "/resource"  # the resource id inside the stack
LABEL_INGRESS_STACK = INGRESS_TRACKING_PREFIX + "/stack"  # TargetGroupBinding label, explicit groups
LABEL_INGRESS_STACK_NAMESPACE = INGRESS_TRACKING_PREFIX + "/stack-namespace"  # implicit groups
LABEL_INGRESS_STACK_NAME = INGRESS_TRACKING_PREFIX + "/stack-name"  # implicit groups

# --- Ingress model building (§4.3-§4.5) --------------------------------------------------------------------
SERVICE_PORT_USE_ANNOTATION = "use-annotation"  # backend port name that means "see actions.<name>"
MESSAGE_BACKEND_SERVICE_MISSING = "Backend service does not exist"
MESSAGE_BACKEND_ACTION_MISSING = "Backend action does not exist"
HEALTH_CHECK_PORT_TRAFFIC_PORT = "traffic-port"
MANAGED_SG_DESCRIPTION = "[k8s] Managed SecurityGroup for LoadBalancer"
DEFAULT_CIDR_IPV4 = "0.0.0.0/0"
DEFAULT_CIDR_IPV6 = "::/0"
LB_ATTRIBUTE_DELETION_PROTECTION = "deletion_protection.enabled"
ADDON_NONE = "none"  # wafv2-acl-arn / wafv2-acl-name / waf-acl-id value that means "no association"
EVENT_REASON_FAILED_BUILD_MODEL = "FailedBuildModel"
EVENT_REASON_FAILED_DEPLOY_MODEL = "FailedDeployModel"
EVENT_REASON_FAILED_RECONCILE = "FailedReconcile"  # TargetGroupBinding
EVENT_REASON_SUCCESSFULLY_RECONCILED = "SuccessfullyReconciled"
EVENT_REASON_FAILED_ADD_FINALIZER = "FailedAddFinalizer"
EVENT_REASON_FAILED_REMOVE_FINALIZER = "FailedRemoveFinalizer"
EVENT_REASON_FAILED_UPDATE_STATUS = "FailedUpdateStatus"
EVENT_REASON_UNSUPPORTED_ANNOTATION = "UnsupportedAnnotation"  # ours: a feature lbc does not support yet

# --- Ingress annotation keys (§1; parsed by model/ingress_config.py) ----------------------------------------
_P = INGRESS_ANNOTATION_PREFIX
ANNOTATION_LOAD_BALANCER_NAME = _P + "load-balancer-name"
ANNOTATION_TAGS = _P + "tags"
ANNOTATION_SCHEME = _P + "scheme"
ANNOTATION_IP_ADDRESS_TYPE = _P + "ip-address-type"
ANNOTATION_SUBNETS = _P + "subnets"
ANNOTATION_SECURITY_GROUPS = _P + "security-groups"
ANNOTATION_MANAGE_BACKEND_SG_RULES = _P + "manage-backend-security-group-rules"
ANNOTATION_INBOUND_CIDRS = _P + "inbound-cidrs"
ANNOTATION_SECURITY_GROUP_PREFIX_LISTS = _P + "security-group-prefix-lists"
ANNOTATION_CUSTOMER_OWNED_IPV4_POOL = _P + "customer-owned-ipv4-pool"
ANNOTATION_IPAM_IPV4_POOL_ID = _P + "ipam-ipv4-pool-id"
ANNOTATION_LOAD_BALANCER_ATTRIBUTES = _P + "load-balancer-attributes"
ANNOTATION_MINIMUM_LB_CAPACITY = _P + "minimum-load-balancer-capacity"
ANNOTATION_WAFV2_ACL_ARN = _P + "wafv2-acl-arn"
ANNOTATION_WAFV2_ACL_NAME = _P + "wafv2-acl-name"
ANNOTATION_WAF_ACL_ID = _P + "waf-acl-id"
ANNOTATION_WEB_ACL_ID = _P + "web-acl-id"  # legacy alias of waf-acl-id (read only when waf-acl-id is absent)
ANNOTATION_SHIELD_ADVANCED_PROTECTION = _P + "shield-advanced-protection"
ANNOTATION_LISTEN_PORTS = _P + "listen-ports"
ANNOTATION_SSL_REDIRECT = _P + "ssl-redirect"
ANNOTATION_CERTIFICATE_ARN = _P + "certificate-arn"
ANNOTATION_SSL_POLICY = _P + "ssl-policy"
ANNOTATION_LISTENER_ATTRIBUTES_PREFIX = _P + "listener-attributes."  # + "<PROTOCOL>-<port>"
ANNOTATION_ACTIONS_PREFIX = _P + "actions."  # + action name
ANNOTATION_CONDITIONS_PREFIX = _P + "conditions."  # + service or action name
ANNOTATION_TRANSFORMS_PREFIX = _P + "transforms."  # + service or action name
ANNOTATION_USE_REGEX_PATH_MATCH = _P + "use-regex-path-match"
ANNOTATION_TARGET_TYPE = _P + "target-type"
ANNOTATION_BACKEND_PROTOCOL = _P + "backend-protocol"
ANNOTATION_BACKEND_PROTOCOL_VERSION = _P + "backend-protocol-version"
ANNOTATION_TARGET_GROUP_ATTRIBUTES = _P + "target-group-attributes"
ANNOTATION_TARGET_NODE_LABELS = _P + "target-node-labels"
ANNOTATION_MULTI_CLUSTER_TARGET_GROUP = _P + "multi-cluster-target-group"
ANNOTATION_HEALTHCHECK_PORT = _P + "healthcheck-port"
ANNOTATION_HEALTHCHECK_PROTOCOL = _P + "healthcheck-protocol"
ANNOTATION_HEALTHCHECK_PATH = _P + "healthcheck-path"
ANNOTATION_HEALTHCHECK_INTERVAL_SECONDS = _P + "healthcheck-interval-seconds"
ANNOTATION_HEALTHCHECK_TIMEOUT_SECONDS = _P + "healthcheck-timeout-seconds"
ANNOTATION_HEALTHY_THRESHOLD_COUNT = _P + "healthy-threshold-count"
ANNOTATION_UNHEALTHY_THRESHOLD_COUNT = _P + "unhealthy-threshold-count"
ANNOTATION_SUCCESS_CODES = _P + "success-codes"
ANNOTATION_DRY_RUN_PLAN = _P + "dry-run-plan"  # written by the controller (gate IngressPlanAnnotation)
# Not supported yet by lbc: detected and reported (IngressConfig.unsupported), never silently ignored.
ANNOTATION_AUTH_TYPE = _P + "auth-type"
ANNOTATION_AUTH_PREFIX = _P + "auth-"  # auth-type, auth-idp-cognito, auth-idp-oidc, auth-scope, ...
ANNOTATION_JWT_VALIDATION = _P + "jwt-validation"
ANNOTATION_MUTUAL_AUTHENTICATION = _P + "mutual-authentication"
ANNOTATION_ENABLE_FRONTEND_NLB = _P + "enable-frontend-nlb"
ANNOTATION_FRONTEND_NLB_PREFIX = _P + "frontend-nlb-"
ANNOTATION_CREATE_ACM_CERT = _P + "create-acm-cert"
ANNOTATION_ACM_PCA_ARN = _P + "acm-pca-arn"
ANNOTATION_TARGET_CONTROL_PORT_PREFIX = _P + "target-control-port."  # + "<svcName>.<svcPort>"
del _P

# --- Annotation values and upstream defaults (§1.2-§1.5) ---------------------------------------------------
AUTH_TYPE_NONE = "none"
TARGET_TYPE_INSTANCE = "instance"
TARGET_TYPE_IP = "ip"
PROTOCOL_HTTP = "HTTP"
PROTOCOL_HTTPS = "HTTPS"
PROTOCOL_VERSION_HTTP1 = "HTTP1"
PROTOCOL_VERSION_HTTP2 = "HTTP2"
PROTOCOL_VERSION_GRPC = "GRPC"
DEFAULT_SSL_POLICY = "ELBSecurityPolicy-2016-08"
DEFAULT_HEALTHCHECK_PATH_HTTP = "/"
DEFAULT_HEALTHCHECK_PATH_GRPC = "/AWS.ALB/healthcheck"
DEFAULT_SUCCESS_CODES_HTTP = "200"
DEFAULT_SUCCESS_CODES_GRPC = "12"
DEFAULT_HEALTHCHECK_INTERVAL_SECONDS = 15
DEFAULT_HEALTHCHECK_TIMEOUT_SECONDS = 5
DEFAULT_HEALTHY_THRESHOLD_COUNT = 2
DEFAULT_UNHEALTHY_THRESHOLD_COUNT = 2
MINIMUM_CAPACITY_UNITS_KEY = "CapacityUnits"  # the only key of minimum-load-balancer-capacity
GROUP_ORDER_MIN = -1000
GROUP_ORDER_MAX = 1000
LOAD_BALANCER_NAME_MAX_LENGTH = 32

# --- Observing and planning a stack (§5.1, §5.3; model/observe.py, model/plan.py) --------------------------
TAG_LEGACY_CLUSTER = "ingress.k8s.aws/cluster"  # legacy cluster tag: still matches a stack's resources
#: Tag keys never removed by tag reconciliation (legacy keys of older controllers); plus any `aws:` key.
TAG_KEYS_IGNORED: tuple[str, ...] = (
    "kubernetes.io/cluster-name",
    "kubernetes.io/namespace",
    "kubernetes.io/ingress-name",
    "kubernetes.io/service-name",
    "kubernetes.io/service-port",
    TAG_LEGACY_CLUSTER,
)
TAG_KEY_PREFIXES_IGNORED: tuple[str, ...] = ("aws:", TAG_CLUSTER_PREFIX)
RESOURCE_ID_DEFAULT_RULE = "default"  # DescribeRules' Priority of a listener's default rule
RULE_PRIORITY_PARK_TOP = 50000  # SetRulePriorities parks rules to be deleted from here downwards
REDIRECT_DEFAULT_PROTOCOL = "#{protocol}"
REDIRECT_DEFAULT_PORT = "#{port}"
REDIRECT_DEFAULT_HOST = "#{host}"
REDIRECT_DEFAULT_PATH = "/#{path}"
REDIRECT_DEFAULT_QUERY = "#{query}"
SHIELD_PROTECTION_NAME = "managed by aws-load-balancer-controller"  # CreateProtection's Name

# --- Pod readiness gate and its mutating webhook (§7; model/pod_mutation.py) -------------------------------
LABEL_POD_READINESS_GATE_INJECT = "elbv2.k8s.aws/pod-readiness-gate-inject"  # on Namespaces
POD_READINESS_GATE_INJECT_ENABLED = "enabled"
READINESS_CONDITION_PREFIX = "target-health.elbv2.k8s.aws/"  # + TargetGroupBinding name
READINESS_CONDITION_PREFIX_LEGACY = "target-health.alb.ingress.k8s.aws"  # v1 gates, dropped when we add ours
WEBHOOK_CONFIGURATION_NAME = "aws-load-balancer-webhook"  # the MutatingWebhookConfiguration
WEBHOOK_POD_NAME = "mpod.elbv2.k8s.aws"
WEBHOOK_POD_PATH = "/mutate-v1-pod"
WEBHOOK_SERVICE_NAME = "aws-load-balancer-webhook-service"  # the chart's Service in front of the webhooks
LABEL_APP_NAME = "app.kubernetes.io/name"
CONTROLLER_APP_NAME = "aws-load-balancer-controller"  # the controller's own pods carry LABEL_APP_NAME=this

# --- Targets of a TargetGroupBinding and readiness decisions (§6.3-§6.5, §7; model/targets*.py, readiness*.py)
EVENT_REASON_BACKEND_NOT_FOUND = "BackendNotFound"  # Service or service port missing: targets deregistered
EVENT_REASON_INVALID_BACKEND = "InvalidBackend"  # ours: e.g. instance targets on a ClusterIP Service
ANNOTATION_CHECKPOINT = "elbv2.k8s.aws/checkpoint"  # on TargetGroupBindings: inputs' hash (§6.5)
ANNOTATION_CHECKPOINT_TIMESTAMP = "elbv2.k8s.aws/checkpoint-timestamp"  # unix seconds
TARGETS_CHUNK_SIZE = 200  # targets per RegisterTargets / DeregisterTargets call
LABEL_NODE_ROLE_MASTER = "node-role.kubernetes.io/master"  # nodes never used as instance targets ...
LABEL_NODE_EXCLUDE_FROM_LB = "node.kubernetes.io/exclude-from-external-load-balancers"
LABEL_NODE_EXCLUDE_BALANCER_ALPHA = "alpha.service-controller.kubernetes.io/exclude-balancer"
LABEL_EKS_COMPUTE_TYPE = "eks.amazonaws.com/compute-type"  # ... nor when this is "fargate"
EKS_COMPUTE_TYPE_FARGATE = "fargate"
TAINT_TO_BE_DELETED_BY_CA = "ToBeDeletedByClusterAutoscaler"  # any effect
TAINT_KARPENTER_DISRUPTED = "karpenter.sh/disrupted"  # with effect NoSchedule
TAINT_EFFECT_NO_SCHEDULE = "NoSchedule"
TARGET_AZ_ALL = "all"  # AvailabilityZone of ip targets outside the VPC
# ELB target health (DescribeTargetHealth TargetHealth.State / .Reason), and the two conditions we synthesise.
TARGET_STATE_INITIAL = "initial"
TARGET_STATE_HEALTHY = "healthy"
TARGET_STATE_UNHEALTHY = "unhealthy"
TARGET_STATE_UNUSED = "unused"
TARGET_STATE_DRAINING = "draining"
TARGET_STATE_UNHEALTHY_DRAINING = "unhealthy.draining"
TARGET_STATE_UNAVAILABLE = "unavailable"
TARGET_REASON_REGISTRATION_IN_PROGRESS = "Elb.RegistrationInProgress"
TARGET_MESSAGE_REGISTRATION_IN_PROGRESS = "Target registration is in progress"
TARGET_MESSAGE_BINDING_DELETED = "Target Group Binding is deleted"

# --- TargetGroupBinding networking: rules on the targets' security groups (§6.6; model/networking.py) -------
NETWORKING_RULE_LABEL = "elbv2.k8s.aws/targetGroupBinding=shared"  # the description of every rule we write
EVENT_REASON_FAILED_NETWORK_RECONCILE = "FailedNetworkReconcile"
NETWORKING_RETRY_SECONDS = 15.0  # --targetgroupbinding-requeue-duration: retry after a networking failure
ANNOTATION_POD_ENI = "vpc.amazonaws.com/pod-eni"  # security groups for pods: the pod's branch ENI (JSON list)
