"""The `lbc` command: one entry point, one subcommand per job.

Each subcommand imports its own machinery lazily so that `lbc --help` stays instant and the controller
process never loads the sandbox (moto, the API emulator) it does not use.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]


def _add_apiserver(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "apiserver",
        help="run the in-memory Kubernetes API emulator (kubectl and the official client work against it)",
        description=(
            "Serve an in-memory Kubernetes API on 127.0.0.1 until interrupted. Like envtest it runs no "
            "controllers: objects are stored, watched, patched and admitted as by a real API server. "
            "Once it serves, a kubeconfig pointing at it is written to --kubeconfig-out, so that "
            "`kubectl --kubeconfig FILE get ns` works."
        ),
    )
    p.add_argument(
        "--port", type=int, default=0, help="TCP port to listen on; 0 picks a free one (default 0)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    p.add_argument(
        "--kubeconfig-out",
        default="lbc-sandbox.kubeconfig",
        help="where to write the kubeconfig once serving (default ./lbc-sandbox.kubeconfig)",
    )
    p.add_argument(
        "--watch-history",
        type=int,
        default=10_000,
        help="watch events kept per resource kind; a watch from an older resourceVersion gets 410 Gone",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(handler=_run_apiserver)


def _run_apiserver(args: argparse.Namespace) -> int:
    from logs import setup_logging
    from sandbox.kube.main import serve_forever

    setup_logging(level=args.log_level)
    return serve_forever(
        host=args.host, port=args.port, kubeconfig_out=args.kubeconfig_out, watch_history=args.watch_history
    )


def _add_controller(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from settings import add_controller_flags

    p = sub.add_parser(
        "controller",
        help="run the load balancer controller against a Kubernetes API and an AWS endpoint",
        description=(
            "Run the controller: watch Ingresses, Services, EndpointSlices, Pods, Nodes and "
            "TargetGroupBindings and keep AWS load balancers in line with them. Flags are the upstream "
            "controller's. Kubernetes comes from --kubeconfig, in-cluster config or ~/.kube/config; AWS from "
            "the standard AWS variables (AWS_ENDPOINT_URL, AWS_REGION, credentials or IRSA)."
        ),
    )
    add_controller_flags(p)
    p.set_defaults(handler=_run_controller)


def _run_controller(args: argparse.Namespace) -> int:
    import os

    from logs import setup_logging
    from settings import SettingsError, settings_from_args

    try:
        settings = settings_from_args(args, env=dict(os.environ))
    except SettingsError as exc:
        print(f"lbc controller: {exc}", file=sys.stderr)
        return 2
    setup_logging(level=settings.log_level)
    from supervisor import run_controller

    return run_controller(settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lbc",
        description=(
            "lbc: the AWS Load Balancer Controller, re-implemented on actors, with a sandbox that needs "
            "no AWS account and no cluster."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_apiserver(sub)
    _add_controller(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
