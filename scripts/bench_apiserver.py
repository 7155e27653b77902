"""Measure the Kubernetes API emulator with the official client: creates/s, gets/s, list latency, watch fan-out.

Run: `.venv/bin/python scripts/bench_apiserver.py [--objects 1000] [--watches 300]`. The server runs in this
process (like the test fixtures); the client talks to it over loopback HTTP.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kubernetes import client

from logs import setup_logging
from sandbox.kube.main import ApiServer


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s ({count} in {seconds:.2f}s)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--watches", type=int, default=300)
    args = parser.parse_args()
    setup_logging(level="warning")
    with ApiServer() as server:
        config = client.Configuration()
        config.host = server.url
        config.connection_pool_maxsize = args.watches + 10
        with client.ApiClient(config) as api:
            core = client.CoreV1Api(api)
            core.create_namespace({"metadata": {"name": "bench"}})
            pod_spec = {"containers": [{"name": "app", "image": "nginx", "ports": [{"containerPort": 80}]}]}

            started = time.perf_counter()
            for i in range(args.objects):
                core.create_namespaced_pod(
                    "bench", {"metadata": {"name": f"p{i}", "labels": {"app": "bench"}}, "spec": pod_spec}
                )
            print("create pod (typed client)      ", _rate(args.objects, time.perf_counter() - started))

            started = time.perf_counter()
            for i in range(args.objects):
                core.read_namespaced_pod(f"p{i % args.objects}", "bench")
            print("get pod (typed client)         ", _rate(args.objects, time.perf_counter() - started))

            started = time.perf_counter()
            for i in range(args.objects):
                core.read_namespaced_pod(f"p{i % args.objects}", "bench", _preload_content=False).read()
            print("get pod (raw bytes)            ", _rate(args.objects, time.perf_counter() - started))

            started = time.perf_counter()
            for i in range(args.objects):
                core.patch_namespaced_pod_status(f"p{i}", "bench", {"status": {"phase": "Running"}})
            print("status patch (typed client)    ", _rate(args.objects, time.perf_counter() - started))

            for label, kwargs in (("typed", {}), ("raw  ", {"_preload_content": False})):
                timings = []
                for _ in range(5):
                    started = time.perf_counter()
                    result = core.list_namespaced_pod("bench", **kwargs)
                    if kwargs:
                        assert len(json.loads(result.read())["items"]) == args.objects
                    timings.append(time.perf_counter() - started)
                print(
                    f"list {args.objects} pods ({label})         best {min(timings) * 1000:.0f} ms, median {sorted(timings)[2] * 1000:.0f} ms"
                )

            rv = core.list_namespaced_config_map("bench").metadata.resource_version
            received: list[float] = []
            lock = threading.Lock()
            connected = threading.Barrier(args.watches + 1, timeout=60)

            def watch_once() -> None:
                response = core.list_namespaced_config_map(
                    "bench", watch=True, resource_version=rv, timeout_seconds=60, _preload_content=False
                )
                connected.wait()
                for line in response:
                    if line.strip():
                        with lock:
                            received.append(time.perf_counter())
                        break
                response.release_conn()

            threads = [threading.Thread(target=watch_once, daemon=True) for _ in range(args.watches)]
            for thread in threads:
                thread.start()
            connected.wait()
            started = time.perf_counter()
            core.create_namespaced_config_map("bench", {"metadata": {"name": "broadcast"}})
            for thread in threads:
                thread.join(timeout=60)
            latest = max(received) - started if received else float("nan")
            print(
                f"{args.watches} concurrent watches: event reached {len(received)} of them, last after {latest * 1000:.0f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
