"""Installing the project's CustomResourceDefinitions (the Helm chart's `crds/crds.yaml`) in one line.

Tests that need TargetGroupBinding or IngressClassParams objects call `apply_crds(api_client)` against the
Kubernetes API emulator (or any API server); the file read is the one the chart ships, so tests exercise the
real definitions. `remove_crds` undoes it for tests that share a server with others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

CRD_FILE = (
    Path(__file__).resolve().parents[2] / "helm" / "aws-load-balancer-controller" / "crds" / "crds.yaml"
)


def load_crds(path: Path = CRD_FILE) -> list[dict[str, Any]]:
    """The CustomResourceDefinition documents of `path`, in file order (empty documents skipped)."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def apply_crds(api_client: client.ApiClient, path: Path = CRD_FILE) -> list[str]:
    """Create every CRD of `path`; one that already exists is left as it is (409 ignored). Returns the names."""
    ext = client.ApiextensionsV1Api(api_client)
    names = []
    for crd in load_crds(path):
        try:
            ext.create_custom_resource_definition(crd)  # type: ignore[arg-type]  # dict bodies pass through
        except client.ApiException as exc:
            if exc.status != 409:
                raise
        names.append(str(crd["metadata"]["name"]))
    return names


def remove_crds(api_client: client.ApiClient, path: Path = CRD_FILE) -> None:
    """Delete every CRD of `path` (and so all their objects); missing ones are ignored."""
    ext = client.ApiextensionsV1Api(api_client)
    for crd in load_crds(path):
        try:
            ext.delete_custom_resource_definition(crd["metadata"]["name"])
        except client.ApiException as exc:
            if exc.status != 404:
                raise
