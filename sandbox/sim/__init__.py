"""The simulators that make the Kubernetes API emulator feel like a cluster (`ClusterSim`).

Nodes (backed by the AWS sandbox's EC2 instances when given), a scheduler and kubelets (pod IPs from the
node's ENI, Running, Ready with readiness gates), the EndpointSlice controller and a minimal Deployment
controller, all following the emulator's store in-process. Import `ClusterSim` from `sandbox.sim.cluster`.
"""
