"""The emulator's HTTP layer: a stdlib threading server that speaks the Kubernetes REST API.

It parses paths (`/api/v1/namespaces/ns/pods/name/status`, `/apis/group/version/...`), serves discovery,
`/version`, health endpoints and the OpenAPI documents, hands resource requests to `Verbs`, and turns
`ApiError`s into `Status` answers. Details that real clients depend on live here: TCP_NODELAY (without it
keep-alive requests stall 40 ms each), HTTP/1.1 keep-alive, reading every request body (kubectl sends one
with DELETE), chunked watch streams, and closing open connections at shutdown so threads end promptly.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from loguru import logger

from sandbox.kube import schema
from sandbox.kube.openapi import OpenApi
from sandbox.kube.resources import ResourceType
from sandbox.kube.store import ApiError, Store
from sandbox.kube.verbs import Reply, Request, Verbs

_JSON = "application/json"


def version_info() -> dict[str, str]:
    major, minor, _ = ([*schema.KUBERNETES_VERSION.split("."), "0", "0"])[:3]
    return {
        "major": major,
        "minor": minor,
        "gitVersion": f"v{schema.KUBERNETES_VERSION}",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-08-13T00:00:00Z",
        "goVersion": "go1.22.5",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def _resource_entry(rt: ResourceType, name: str, verbs: list[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "singularName": rt.singular if "/" not in name else "",
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": verbs,
    }
    if "/" not in name:
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
    return entry


class Router:
    """Maps (method, path, query, headers, body) to a reply; shared by all request threads."""

    def __init__(self, store: Store, *, bookmark_interval: float = 60.0) -> None:
        self.store = store
        self.verbs = Verbs(store, bookmark_interval=bookmark_interval)
        self.openapi = OpenApi(store.registry, self._crd_schema)
        self.address = "127.0.0.1:0"

    def _crd_schema(self, rt: ResourceType) -> dict[str, Any] | None:
        crd_rt = self.store.registry.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert crd_rt is not None
        try:
            crd = self.store.get(crd_rt, "", f"{rt.plural}.{rt.group}")
        except ApiError:
            return None
        for version in (crd.get("spec") or {}).get("versions") or []:
            if version.get("name") == rt.version:
                found = (version.get("schema") or {}).get("openAPIV3Schema")
                return dict(found) if isinstance(found, dict) else None
        return None

    # ---------------------------------------------------------------------------------------- discovery
    def _discovery(self, parts: list[str]) -> Reply | None:
        registry = self.store.registry
        if parts == ["api"]:
            return Reply(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": self.address}
                    ],
                },
            )
        if parts == ["apis"]:
            groups = [self._group(g, vs) for g, vs in registry.groups().items() if g]
            return Reply(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if len(parts) == 2 and parts[0] == "apis":
            versions = registry.groups().get(parts[1])
            if versions is None:
                return None
            return Reply(200, {"kind": "APIGroup", "apiVersion": "v1", **self._group(parts[1], versions)})
        if parts == ["api", "v1"] or (len(parts) == 3 and parts[0] == "apis"):
            group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
            types = registry.types_in(group, version)
            if not types:
                return None
            resources = []
            for rt in sorted(types, key=lambda t: t.plural):
                resources.append(_resource_entry(rt, rt.plural, list(rt.verbs)))
                if rt.has_status:
                    resources.append(_resource_entry(rt, f"{rt.plural}/status", ["get", "patch", "update"]))
                for sub in rt.extra_subresources:
                    resources.append(_resource_entry(rt, f"{rt.plural}/{sub}", ["update"]))
            group_version = f"{group}/{version}" if group else version
            return Reply(
                200,
                {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": group_version,
                    "resources": resources,
                },
            )
        return None

    @staticmethod
    def _group(name: str, versions: tuple[str, ...]) -> dict[str, Any]:
        listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {"name": name, "versions": listed, "preferredVersion": listed[0]}

    # ------------------------------------------------------------------------------------------ routing
    def route(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[Reply | Iterator[bytes], str]:
        """The reply (or a watch stream) and its content type."""
        split = urlsplit(target)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        parts = [p for p in split.path.split("/") if p]
        accept = headers.get("accept", "")
        if method == "GET":
            if parts in (["healthz"], ["readyz"], ["livez"]) or (
                parts and parts[0] in ("healthz", "readyz", "livez")
            ):
                return Reply(200, raw=b"ok"), "text/plain"
            if parts == ["version"]:
                return Reply(200, version_info()), _JSON
            if parts and parts[0] == "openapi":
                return self._openapi(parts, accept), _JSON
            found = self._discovery(parts)
            if found is not None:
                return found, _JSON
        req, collection = self._parse(parts, query, headers, body)
        if method == "GET":
            if collection:
                watch = query.get("watch") in ("true", "1", "True")
                return (self.verbs.watch(req) if watch else self.verbs.list_objects(req)), _JSON
            return self.verbs.get(req), _JSON
        if collection and method == "POST":
            return self.verbs.create(req), _JSON
        if collection and method == "DELETE":
            return self.verbs.delete_collection(req), _JSON
        if not collection and method == "PUT":
            return self.verbs.update(req), _JSON
        if not collection and method == "PATCH":
            return self.verbs.patch(req), _JSON
        if not collection and method == "DELETE" and not req.subresource:
            return self.verbs.delete(req), _JSON
        raise ApiError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )

    def _parse(
        self, parts: list[str], query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[Request, bool]:
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        rt = self.store.registry.lookup(group, version, rest[0])
        if rt is None or (namespace and not rt.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else ""
        subresource = rest[2] if len(rest) > 2 else ""
        if subresource and not (
            (subresource == "status" and rt.has_status) or subresource in rt.extra_subresources
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if rt.namespaced and name and not namespace:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        req = Request(
            rt=rt,
            namespace=namespace,
            name=name,
            subresource=subresource,
            query=query,
            accept=headers.get("accept", ""),
            content_type=headers.get("content-type", _JSON),
            body=body,
        )
        return req, not name

    def _openapi(self, parts: list[str], accept: str) -> Reply:
        if "protobuf" in accept and "json" not in accept and "*/*" not in accept:
            raise ApiError(406, "NotAcceptable", "only application/json is served")
        found: bytes | None = None
        if parts == ["openapi", "v2"]:
            found = self.openapi.v2()
        elif parts == ["openapi", "v3"]:
            found = self.openapi.v3_index()
        elif len(parts) == 4 and parts[:3] == ["openapi", "v3", "api"]:
            found = self.openapi.v3_group("", parts[3])
        elif len(parts) == 5 and parts[:3] == ["openapi", "v3", "apis"]:
            found = self.openapi.v3_group(parts[3], parts[4])
        if found is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return Reply(200, raw=found)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ApiHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                chunk = self.rfile.read(size) if size else b""
                self.rfile.readline()
                if not size:
                    return b"".join(chunks)
                chunks.append(chunk)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, code: int, payload: bytes, content_type: str, warnings: tuple[str, ...] = ()) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-cache, private")
        for warning in warnings:
            quoted = warning.replace("\\", "\\\\").replace('"', '\\"')  # RFC 7234 quoted-string
            self.send_header("Warning", f'299 - "{quoted}"')
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, events: Iterator[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", _JSON)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()
        try:
            for line in events:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()

    def _dispatch(self) -> None:
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            result, content_type = self.server.router.route(self.command, self.path, headers, body)
            if isinstance(result, Reply):
                self._send(result.code, result.encode(), content_type, result.warnings)
            else:
                self._stream(result)
        except ApiError as err:
            self._send(err.code, json.dumps(err.status()).encode(), _JSON)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            logger.bind(method=self.command, path=self.path, error=repr(exc)).exception("request failed")
            status = ApiError(500, "InternalError", f"Internal error occurred: {exc}").status()
            self._send(500, json.dumps(status).encode(), _JSON)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class ApiHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server whose daemon request threads and connections can all be ended and joined."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], router: Router) -> None:
        self.router = router
        self._connections: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        self._tracking = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        worker = threading.Thread(
            target=self._work, args=(request, client_address), name="kube-apiserver-request", daemon=True
        )
        with self._tracking:
            self._connections.add(request)
            self._workers.add(worker)
        worker.start()

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._tracking:
                self._connections.discard(request)
                self._workers.discard(threading.current_thread())

    def close_connections(self, *, join_timeout: float = 5.0) -> None:
        """Shut every open connection down (idle keep-alives and ended watches) and join the threads."""
        with self._tracking:
            connections, workers = list(self._connections), list(self._workers)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for worker in workers:
            worker.join(join_timeout)
