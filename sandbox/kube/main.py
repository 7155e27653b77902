"""Starting and stopping the Kubernetes API emulator: in-process (`ApiServer`) or as `lbc apiserver`.

`ApiServer` wires the registry, store, built-in behaviours and HTTP server together and runs it on a
background thread; tests and the sandbox use it directly. `serve_forever` is the foreground command: it
writes a kubeconfig once the port is bound, logs where it serves, and exits cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType

import yaml
from loguru import logger

from sandbox.kube.builtins import BuiltinHooks, seed_namespaces
from sandbox.kube.resources import Registry
from sandbox.kube.server import ApiHTTPServer, Router
from sandbox.kube.store import Store


class ApiServer:
    """An in-memory Kubernetes API on 127.0.0.1 served from a background thread."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        watch_history: int = 10_000,
        bookmark_interval: float = 60.0,
        namespace_cleanup_delay: float = 0.5,
    ) -> None:
        self.store = Store(registry=Registry(), watch_history=watch_history, hooks=BuiltinHooks())
        self.store.namespace_cleanup_delay = namespace_cleanup_delay
        seed_namespaces(self.store)
        self._router = Router(self.store, bookmark_interval=bookmark_interval)
        self._host = host
        self._port = port
        self._httpd: ApiHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the API server is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> ApiServer:
        if self._httpd is not None:
            return self
        self._httpd = ApiHTTPServer((self._host, self._port), self._router)
        self._router.address = f"{self._host}:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="kube-apiserver",
            daemon=True,
        )
        self._thread.start()
        logger.bind(url=self.url).info("kubernetes api emulator started")
        return self

    def stop(self) -> None:
        """Stop serving: end watches, close connections, join the server threads."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        logger.bind(url=f"http://{self._host}:{httpd.server_address[1]}").info(
            "kubernetes api emulator stopping"
        )
        self.store.close()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.store.closed = False
        logger.info("kubernetes api emulator stopped")

    def kubeconfig(self) -> dict[str, object]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "lbc-sandbox", "cluster": {"server": self.url}}],
            "users": [{"name": "lbc-sandbox", "user": {}}],
            "contexts": [
                {
                    "name": "lbc-sandbox",
                    "context": {"cluster": "lbc-sandbox", "user": "lbc-sandbox", "namespace": "default"},
                }
            ],
            "current-context": "lbc-sandbox",
            "preferences": {},
        }

    def write_kubeconfig(self, path: str) -> str:
        """Write a kubeconfig for this server (plain http, no auth) atomically; return the path."""
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        temporary = f"{path}.tmp{os.getpid()}"
        with open(temporary, "w", encoding="utf-8") as handle:
            yaml.safe_dump(self.kubeconfig(), handle, sort_keys=False)
        os.replace(temporary, path)
        return path

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve_forever(*, host: str, port: int, kubeconfig_out: str, watch_history: int) -> int:
    """Run the emulator in the foreground until SIGINT/SIGTERM; return the exit code (0)."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.bind(signal=signal.Signals(signum).name).info("signal received")
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = ApiServer(host=host, port=port, watch_history=watch_history)
    try:
        server.start()
        path = server.write_kubeconfig(kubeconfig_out)
        logger.bind(url=server.url, kubeconfig=os.path.abspath(path)).info("serving the kubernetes api")
        print(
            f"Kubernetes API emulator serving at {server.url}\n"
            f"  kubectl --kubeconfig {os.path.abspath(path)} get namespaces\n"
            "Ctrl-C stops it.",
            flush=True,
        )
        while not stopping.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
