"""`ClusterSim`: what makes the API emulator feel like a cluster — nodes, scheduler, kubelets, controllers.

Started around a running (or merely constructed) `ApiServer`, optionally with the AWS sandbox behind the
nodes. It follows the store in-process (`sandbox.sim.informer`) and writes through the emulator's verbs
with admission (`sandbox.sim.client`), so every change it makes is seen by watches exactly as a real
component's would be. Parts, each level-triggered on its own worker thread:
- nodes (`add_nodes`, `set_node_ready`): Node objects, backed by EC2 instances when AWS is given;
- `PodSim` (`sandbox.sim.pods`): scheduler and kubelets — pods get a node, an IP, Running and Ready,
  readiness gates respected;
- `EndpointSliceSim` (`sandbox.sim.endpointslices`): Services' EndpointSlices follow their pods;
- `DeploymentSim` (`sandbox.sim.deployments`): Deployments get their pods, scaled and rolled.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from loguru import logger

from sandbox.kube.main import ApiServer
from sandbox.kube.store import ApiError, Obj, Store
from sandbox.sim.client import ApiWriter
from sandbox.sim.deployments import DeploymentSim
from sandbox.sim.endpointslices import EndpointSliceSim
from sandbox.sim.informer import Informer
from sandbox.sim.nodes import NodeNetwork, node_object, ready_condition
from sandbox.sim.pods import PodSim
from sandbox.sim.workqueue import Worker

if TYPE_CHECKING:  # importing sandbox.aws loads moto (about a second); the simulators need it only typed
    from sandbox.aws import NodeInstance

FAKE_ZONES = ("us-west-2a", "us-west-2b", "us-west-2c")


class NodeProvider(Protocol):
    """What the simulators need of the AWS sandbox (`sandbox.aws.AwsSandbox` satisfies it)."""

    region: str

    def launch_nodes(self, *, per_az: int = 1) -> list[NodeInstance]: ...

    def assign_pod_ips(self, eni_id: str, *, count: int = 1, ips: list[str] | None = None) -> list[str]: ...


class ClusterSim:
    """Nodes, scheduler, kubelets, EndpointSlice and Deployment controllers on an in-process API emulator."""

    def __init__(
        self,
        api: ApiServer | Store,
        *,
        aws: NodeProvider | None = None,
        start_delay_s: float = 0.0,
        ip_batch: int = 4,
        ip_cooldown_s: float = 30.0,
        zones: Sequence[str] = FAKE_ZONES,
        region: str = "us-west-2",
    ) -> None:
        self.store = api.store if isinstance(api, ApiServer) else api
        self.aws = aws
        self.region = aws.region if aws is not None else region
        self.zones = tuple(zones)
        self.writer = ApiWriter(self.store)
        self.network = NodeNetwork(
            assign_eni_ips=aws.assign_pod_ips if aws is not None else None,
            ip_batch=ip_batch,
            ip_cooldown_s=ip_cooldown_s,
        )
        self.instances: dict[str, NodeInstance] = {}  # node name -> the EC2 instance behind it
        self._node_rt = self.writer.type("", "v1", "nodes")
        informers = {
            plural: Informer(self.store, self.writer.type(group, "v1", plural))
            for group, plural in (
                ("", "nodes"),
                ("", "pods"),
                ("", "services"),
                ("discovery.k8s.io", "endpointslices"),
                ("apps", "deployments"),
            )
        }
        self.informers = informers
        self.pods = PodSim(
            self.writer,
            pods=informers["pods"],
            nodes=informers["nodes"],
            network=self.network,
            start_delay_s=start_delay_s,
        )
        self.endpoint_slices = EndpointSliceSim(
            self.writer,
            services=informers["services"],
            pods=informers["pods"],
            slices=informers["endpointslices"],
            nodes=informers["nodes"],
        )
        self.deployments = DeploymentSim(
            self.writer, deployments=informers["deployments"], pods=informers["pods"]
        )
        self._workers: list[Worker[tuple[str, str]]] = [
            self.pods.worker,
            self.endpoint_slices.worker,
            self.deployments.worker,
        ]
        self._started = False

    # --------------------------------------------------------------------------------------- life cycle
    def start(self, *, timeout: float = 10.0) -> ClusterSim:
        """Start following the store (returns once every informer has its first list) and the workers."""
        if self._started:
            return self
        self._started = True
        for informer in self.informers.values():
            informer.start()
        for informer in self.informers.values():
            if not informer.synced.wait(timeout):
                raise TimeoutError(f"the {informer.rt.plural} informer did not sync in {timeout}s")
        for worker in self._workers:
            worker.start()
        logger.bind(aws=self.aws is not None).info("cluster simulators started")
        return self

    def stop(self) -> None:
        """Stop the workers (finishing the reconcile in progress), then the informers. Idempotent."""
        if not self._started:
            return
        self._started = False
        for worker in self._workers:
            worker.stop()
        for informer in self.informers.values():
            informer.stop(wait=False)
        for informer in self.informers.values():
            informer.join()
        logger.info("cluster simulators stopped")

    def __enter__(self) -> ClusterSim:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def idle(self) -> bool:
        """Every informer has delivered every event so far and no worker has work now (delayed work, such
        as a pending container start, does not count). A snapshot: the next write may wake them again."""
        return all(i.caught_up() for i in self.informers.values()) and all(
            w.queue.idle() for w in self._workers
        )

    # -------------------------------------------------------------------------------------------- nodes
    def add_nodes(self, n_per_az: int = 1) -> list[str]:
        """Create `n_per_az` Nodes in each zone (EC2 instances in each private subnet when AWS is given);
        return their names."""
        created: list[Obj] = []
        if self.aws is not None:
            for instance in self.aws.launch_nodes(per_az=n_per_az):
                name = instance.private_dns_name
                self.network.register_eni(name, instance.primary_eni_id)
                self.instances[name] = instance
                created.append(
                    node_object(
                        name,
                        zone=instance.availability_zone,
                        region=self.region,
                        instance_id=instance.instance_id,
                        private_ip=instance.private_ip,
                    )
                )
        else:
            for zone in self.zones:
                for _ in range(n_per_az):
                    ordinal, node_ip, pod_cidr = self.network.fake_addresses()
                    created.append(
                        node_object(
                            f"ip-{node_ip.replace('.', '-')}.{self.region}.compute.internal",
                            zone=zone,
                            region=self.region,
                            instance_id=f"i-{ordinal:017x}",
                            private_ip=node_ip,
                            pod_cidr=pod_cidr,
                        )
                    )
        names = []
        for body in created:
            node = self.writer.create(self._node_rt, "", body)
            names.append(node["metadata"]["name"])
            logger.bind(name=node["metadata"]["name"], provider_id=node["spec"]["providerID"]).info(
                "node created"
            )
        return names

    def set_node_ready(self, name: str, status: bool | str = True) -> Obj:
        """Set a node's Ready condition (True/False/Unknown); pods on it follow (Ready False off a Ready node)."""
        for attempt in range(10):
            node = copy.deepcopy(self.store.get(self._node_rt, "", name))
            conditions = node.setdefault("status", {}).setdefault("conditions", [])
            old = next((c for c in conditions if c.get("type") == "Ready"), None)
            fresh = ready_condition(status)
            if old is not None and old.get("status") == fresh["status"]:
                fresh["lastTransitionTime"] = old.get("lastTransitionTime", fresh["lastTransitionTime"])
            node["status"]["conditions"] = [c for c in conditions if c.get("type") != "Ready"] + [fresh]
            try:
                updated = self.writer.replace_status(self._node_rt, node)
            except ApiError as err:
                if err.code != 409 or attempt == 9:
                    raise
                continue
            logger.bind(name=name, ready=fresh["status"]).info("node readiness set")
            return updated
        raise AssertionError("unreachable")
