"""`lbc plan`: the AWS changes some Kubernetes manifests would cause, computed against AWS as it is, applied never.

A composition root, like supervisor.py, and for the same reason: it wires the controller's own parts (the AWS
gateway and the shared facts cache over `Boto3Adapter`, the Kubernetes client, the snapshot) and then runs the
read-only half of a group's reconcile, `GroupPlanner.plan_group`, for every IngressGroup the manifests concern,
so the plan printed is the plan the controller would apply. It owns what is particular to the command: reading
manifests, laying them over the cluster's objects (as `kubectl diff` does), choosing the groups concerned, and
showing the plans readably.

It never writes. The gateway is wrapped so that any call that is not a Describe/Get/List is refused before it
leaves the process, and the one write the read-only half can make on its own (creating the cluster's shared
backend security group the first time) is replaced by a look-up: a missing group is shown as a planned create.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pykka
import yaml
from pyrsistent import thaw
from rich.console import Console
from rich.text import Text

from actors.aws_gateway.facade import AwsGateway, start_gateway
from actors.errors import PermanentError
from actors.facts import AwsFacts
from actors.ingress_group.pipeline import GroupPlanner, group_members
from adapters import kube as k8s
from adapters.aws import Boto3Adapter
from model.constants import (
    ANNOTATION_LEGACY_INGRESS_CLASS,
    INGRESS_CLASS_CONTROLLER,
    TAG_K8S_CLUSTER,
    TAG_K8S_RESOURCE,
    TAG_VALUE_BACKEND_SG,
)
from model.naming import backend_security_group_name
from model.objects import INGRESS, INGRESS_CLASS, KubeObject, from_raw, object_key
from model.plan import KIND_BINDING, Step
from model.routing import INGRESS_GROUP_ACTOR, affected_actors
from model.snapshot import ClusterSnapshot, empty_snapshot, replace_kind, upsert
from model.throttle import AwsApiError, ErrorClass
from settings import Settings

#: The kinds that shape a plan, and how each is listed from a cluster. Others (Deployments, Pods...) are ignored.
RESOURCES: Mapping[str, k8s.Resource] = {
    "Namespace": k8s.NAMESPACE,
    "IngressClass": k8s.INGRESS_CLASS,
    "IngressClassParams": k8s.INGRESS_CLASS_PARAMS,
    "Node": k8s.NODE,
    "Service": k8s.SERVICE,
    "EndpointSlice": k8s.ENDPOINT_SLICE,
    "Ingress": k8s.INGRESS,
    "TargetGroupBinding": k8s.TARGET_GROUP_BINDING,
}
READ_PREFIXES = ("Describe", "Get", "List")
#: Stands for the id of the shared backend security group while it does not exist yet.
NEW_BACKEND_SG = "(new backend security group)"
_SYMBOL_STYLES = {"+": "green", "~": "yellow", "-": "red", "-/+": "magenta", "!": "bold red"}
EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


class ManifestError(ValueError):
    """A manifest cannot be read; the message names the file."""


# -- manifests ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Manifests:
    objects: tuple[KubeObject, ...]
    notes: tuple[str, ...]


def _documents(path: str, stdin: TextIO) -> Iterator[Any]:
    try:
        text = stdin.read() if path == "-" else Path(path).read_text()
        docs = list(yaml.safe_load_all(text))
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"{path}: {exc}") from None
    for doc in docs:
        if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") and "items" in doc:
            yield from doc.get("items") or ()
        elif doc is not None:
            yield doc


def load_manifests(paths: Sequence[str], *, stdin: TextIO) -> Manifests:
    """The objects of every file (`-`: stdin) that shape a plan, and a note for each object ignored."""
    objects: list[KubeObject] = []
    notes: list[str] = []
    for path in paths:
        for doc in _documents(path, stdin):
            if not isinstance(doc, dict):
                raise ManifestError(f"{path}: a document is not a Kubernetes object")
            kind = str(doc.get("kind") or "")
            meta = dict(doc.get("metadata") or {})
            if not kind or not meta.get("name"):
                raise ManifestError(f"{path}: an object lacks kind or metadata.name")
            resource = RESOURCES.get(kind)
            if resource is None:
                where = object_key(str(meta.get("namespace") or ""), str(meta["name"]))
                notes.append(f"ignored {kind} {where}: it does not shape load balancers")
                continue
            meta["namespace"] = (meta.get("namespace") or "default") if resource.namespaced else ""
            objects.append(from_raw(kind, {**doc, "metadata": meta}))
    return Manifests(tuple(objects), tuple(notes))


def _over(live: KubeObject | None, manifest: KubeObject) -> KubeObject:
    """The manifest as the cluster would hold it once applied: what the API server and controllers own (uid,
    finalizers, deletion, status) is kept from the live object."""
    if live is None:
        return manifest
    return manifest.set(
        uid=live.uid,
        resource_version=live.resource_version,
        finalizers=live.finalizers,
        deleting=live.deleting,
        status=manifest.status or live.status,
    )


def snapshots(
    manifests: Manifests, *, ingress_class_flag: str, kube: k8s.Kube | None, namespace: str = ""
) -> tuple[ClusterSnapshot, ClusterSnapshot]:
    """(the cluster as it is, the cluster with the manifests applied). Without `kube` the cluster is empty."""
    before = empty_snapshot(ingress_class_flag=ingress_class_flag)
    for kind, resource in RESOURCES.items():
        where = namespace if namespace and resource.namespaced else None
        raws = kube.list_objects(resource, where)[0] if kube is not None else []
        before = replace_kind(before, kind, [from_raw(kind, raw) for raw in raws])
    after = before
    for obj in manifests.objects:
        after = upsert(after, _over(before.get(obj.kind, obj.key), obj))
    return before, after


def concerned_groups(
    before: ClusterSnapshot, after: ClusterSnapshot, objects: Sequence[KubeObject]
) -> list[str]:
    """The IngressGroups whose plan the manifests may change (as the controller's routing decides)."""
    groups = {
        key
        for obj in objects
        for actor_kind, key in affected_actors(before, after, obj.kind, obj.key)
        if actor_kind == INGRESS_GROUP_ACTOR
    }
    return sorted(groups)


def why_not_ours(snapshot: ClusterSnapshot, ingress: KubeObject) -> str:
    """Why the controller leaves this Ingress alone ("" when it is ours)."""
    verdict = snapshot.classify(ingress)
    if verdict.managed:
        return ""
    if verdict.error:
        return verdict.error
    if ingress.deleting:
        return "it is being deleted"
    legacy = ingress.annotations.get(ANNOTATION_LEGACY_INGRESS_CLASS)
    if legacy is not None:
        return f"its {ANNOTATION_LEGACY_INGRESS_CLASS} annotation is {legacy!r}, not {snapshot.ingress_class_flag!r}"
    class_name = ingress.spec.get("ingressClassName") or ""
    ingress_class = snapshot.get(INGRESS_CLASS, class_name) if class_name else None
    if ingress_class is not None:
        controller = ingress_class.spec.get("controller")
        return f"IngressClass {class_name} is for controller {controller!r}, not {INGRESS_CLASS_CONTROLLER!r}"
    return (
        "it names no IngressClass and none is the default: include your IngressClass (spec.controller "
        f"{INGRESS_CLASS_CONTROLLER}) in the manifests, or use the {ANNOTATION_LEGACY_INGRESS_CLASS} annotation"
    )


# -- read-only AWS -----------------------------------------------------------------------------------------
class ReadOnlyGateway(AwsGateway):
    """The controller's gateway, refusing (before it leaves the process) every call that is not a read."""

    def submit(
        self, service: str, operation: str, params: Mapping[str, Any] | None = None
    ) -> pykka.Future[Mapping[str, Any]]:
        if operation.startswith(READ_PREFIXES):
            return super().submit(service, operation, params)
        future: pykka.ThreadingFuture[Mapping[str, Any]] = pykka.ThreadingFuture()
        error = AwsApiError(
            "PlanIsReadOnly", "lbc plan makes no change", 0, ErrorClass.PERMANENT,
            service=service, operation=operation,
        )  # fmt: skip
        future.set_exception((type(error), error, None))
        return future


class ReadOnlyFacts(AwsFacts):
    """The shared facts, except that the backend security group is only looked up; `missing_backend_sg` names
    the VPCs where the controller would create it."""

    def __init__(self, gateway: AwsGateway, *, cluster_name: str) -> None:
        super().__init__(gateway, cluster_name=cluster_name)
        self._gateway_ro = gateway
        self._cluster_name = cluster_name
        self._backend_sgs: dict[str, str] = {}
        self.missing_backend_sg: set[str] = set()

    def backend_security_group(self, vpc_id: str) -> str:
        if vpc_id not in self._backend_sgs:
            filters = [
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": f"tag:{TAG_K8S_CLUSTER}", "Values": [self._cluster_name]},
                {"Name": f"tag:{TAG_K8S_RESOURCE}", "Values": [TAG_VALUE_BACKEND_SG]},
            ]
            ids = sorted(
                group["GroupId"]
                for page in self._gateway_ro.paginate("ec2", "DescribeSecurityGroups", {"Filters": filters})
                for group in thaw(page.get("SecurityGroups") or ())
            )
            self._backend_sgs[vpc_id] = ids[0] if ids else NEW_BACKEND_SG
            if not ids:
                self.missing_backend_sg.add(vpc_id)
        return self._backend_sgs[vpc_id]


# -- output ------------------------------------------------------------------------------------------------
class Printer:
    """Lines on stdout: coloured by rich on a terminal, plain text otherwise (pipes, tests)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._console = Console(file=stream, highlight=False, soft_wrap=True) if stream.isatty() else None

    def line(self, text: str = "", style: str = "") -> None:
        if self._console is None:
            print(text, file=self._stream)
        else:
            self._console.print(Text(text, style=style))

    def step(self, text: str) -> None:
        symbol = text.split(" ", 1)[0]
        self.line("  " + text, _SYMBOL_STYLES.get(symbol, ""))


@dataclass
class Totals:
    create: int = 0
    update: int = 0
    delete: int = 0
    aws_calls: int = 0
    errors: int = 0

    def add(self, step: Step) -> None:
        if step.action == "create":
            self.create += 1
        elif step.action in ("delete", "replace"):
            self.delete += 1
        else:
            self.update += 1
        if step.kind != KIND_BINDING:
            self.aws_calls += 1

    @property
    def changes(self) -> int:
        return self.create + self.update + self.delete


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def plan_groups(
    settings: Settings, snapshot: ClusterSnapshot, groups: Sequence[str], out: Printer, totals: Totals
) -> None:
    """Plan and print each group (AWS read calls only)."""
    region = settings.aws_region
    gateway = start_gateway(
        adapter=Boto3Adapter(region, max_pool_connections=settings.aws_max_in_flight),
        region=region,
        rules=settings.aws_api_throttle,
        max_retries=settings.aws_max_retries,
        max_in_flight=settings.aws_max_in_flight,
    )
    try:
        read_only = ReadOnlyGateway(gateway.ref, default_timeout=gateway.default_timeout)
        facts = ReadOnlyFacts(read_only, cluster_name=settings.cluster_name)
        for group_key in groups:
            _plan_one(settings, snapshot, group_key, read_only, facts, out, totals)
    finally:
        gateway.stop(timeout=10)


def _plan_one(
    settings: Settings,
    snapshot: ClusterSnapshot,
    group_key: str,
    gateway: AwsGateway,
    facts: ReadOnlyFacts,
    out: Printer,
    totals: Totals,
) -> None:
    problems: list[str] = []

    def report(ingress: KubeObject, reason: str, message: str) -> None:
        line = f"! {ingress.key}: {reason}: {message}"
        if line not in problems:
            problems.append(line)

    members = group_members(snapshot, group_key)
    header = f"IngressGroup {group_key} ({_plural(len(members.active), 'member')})"
    if members.inactive:
        header += f", {len(members.inactive)} leaving"
    out.line(header, "bold")
    planner = GroupPlanner(settings=settings, gateway=gateway, facts=facts, report=report)
    missing_before = set(facts.missing_backend_sg)
    try:
        planned = planner.plan_group(snapshot, group_key, previous=None)
    except (PermanentError, AwsApiError) as exc:
        for line in problems:
            out.step(line)
        reported = any(line.endswith(f": {exc}") for line in problems)
        out.step("! cannot plan this group" + (": the problem above stops it" if reported else f": {exc}"))
        totals.errors += 1
        out.line()
        return
    for line in problems:
        out.step(line)
    steps = list(planned.plan.steps)
    held = [s for s in steps if planned.skip_deletes and s.action in ("delete", "replace")]
    steps = [s for s in steps if s not in held]
    for vpc_id in sorted(facts.missing_backend_sg - missing_before):
        name = backend_security_group_name(settings.cluster_name)
        steps.insert(0, Step("create", "SecurityGroup", "BackendSecurityGroup", "CreateSecurityGroup", {},
                             f"create SecurityGroup BackendSecurityGroup ({name}, shared, in {vpc_id})"))  # fmt: skip
    if not steps:
        out.step("no changes")
    for step in steps:
        out.step(step.render())
        totals.add(step)
    if held:
        out.step(
            f"(and {_plural(len(held), 'delete')} held back, as the controller does while an invalid member's "
            "last good state is unknown)"
        )
    out.line()


def run_plan(
    settings: Settings,
    *,
    paths: Sequence[str],
    detailed_exitcode: bool = False,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Entry point of `lbc plan`: 0 planned, 1 error, 2 planned with changes when `detailed_exitcode`."""
    out = Printer(stdout or sys.stdout)
    try:
        manifests = load_manifests(paths, stdin=stdin or sys.stdin)
    except ManifestError as exc:
        print(f"lbc plan: {exc}", file=sys.stderr)
        return EXIT_ERROR
    kube: k8s.Kube | None = None
    try:
        if settings.kubeconfig:
            kube = k8s.Kube.from_config(settings.kubeconfig)
        before, after = snapshots(
            manifests,
            ingress_class_flag=settings.ingress_class,
            kube=kube,
            namespace=settings.watch_namespace,
        )
    except Exception as exc:  # an unreadable kubeconfig, an unreachable cluster
        print(f"lbc plan: cannot read the cluster: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if kube is not None:
            kube.close()
    notes = list(manifests.notes)
    for ingress in (o for o in manifests.objects if o.kind == INGRESS):
        reason = why_not_ours(after, after.get(INGRESS, ingress.key) or ingress)
        if reason:
            notes.append(f"Ingress {ingress.key} is not handled by this controller: {reason}")
    for note in notes:
        out.line(f"note: {note}", "dim")
    if notes:
        out.line()
    groups = concerned_groups(before, after, manifests.objects)
    totals = Totals()
    if groups:
        try:
            plan_groups(settings, after, groups, out, totals)
        except Exception as exc:  # the gateway did not start, e.g. no credentials
            print(f"lbc plan: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_ERROR
    else:
        out.line("No IngressGroup is concerned by these manifests.")
    summary = (
        f"Plan: {totals.create} to create, {totals.update} to update, {totals.delete} to delete "
        f"(AWS calls: {totals.aws_calls})"
    )
    if totals.errors:
        summary += f"; {_plural(totals.errors, 'group')} could not be planned"
    out.line(summary, "bold red" if totals.errors else "bold")
    if totals.errors:
        return EXIT_ERROR
    return EXIT_CHANGES if detailed_exitcode and totals.changes else EXIT_OK
