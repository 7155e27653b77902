"""The `lbc` command: one entry point, one subcommand per job.

Each subcommand imports its own machinery lazily so that `lbc --help` stays instant and the controller
process never loads the sandbox (moto, the API emulator) it does not use. A command-line mistake is one line on
stderr and exit status 2 (argparse's usage block of forty flags would bury it); `main()` returns the status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from settings import Settings

Handler = Callable[[argparse.Namespace], int]

CONTROLLER_EPILOG = """\
example, with no cluster and no AWS account (the sandbox):
  lbc apiserver --port 6443 --kubeconfig-out /tmp/lbc.kubeconfig &   # the Kubernetes API emulator
  kubectl --kubeconfig /tmp/lbc.kubeconfig apply -f helm/aws-load-balancer-controller/crds/crds.yaml
  moto_server -p 5000 &                                              # AWS on loopback (moto)
  export AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_REGION=us-west-2 AWS_EC2_METADATA_DISABLED=true \\
         AWS_ACCESS_KEY_ID=AKIASANDBOXTESTING00 AWS_SECRET_ACCESS_KEY=sandbox-secret
  lbc controller --cluster-name demo --kubeconfig /tmp/lbc.kubeconfig --enable-leader-election=false \\
      --metrics-bind-addr 127.0.0.1:8080 --health-probe-bind-addr 0
  curl 127.0.0.1:8099/readyz          # 200 once every watched kind is listed
  curl 127.0.0.1:8099/actors          # what every actor is doing (or open http://127.0.0.1:8099/)
  curl 127.0.0.1:8080/metrics         # lbc_reconcile_total, lbc_actors, aws_api_calls_total, ...

In a cluster, the upstream chart's flags work unchanged; only --cluster-name is required. SIGTERM stops it
within a few seconds.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `lbc controller: argument --x: ... (see --help)`, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps one-paragraph texts, keeps the layout of texts written on several lines (the epilog), and shows
    each flag's default when it has a meaningful one."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text.strip():
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            action.option_strings
            and default not in (None, "", False, argparse.SUPPRESS)
            and "default" not in text
            and not isinstance(default, (tuple, list))
        ):
            text = f"{text} (default: %(default)s)" if text else "(default: %(default)s)"
        return text


def _add_apiserver(sub: argparse._SubParsersAction[_Parser]) -> None:
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
    p.set_defaults(handler=_run_apiserver, parser=p)


def _run_apiserver(args: argparse.Namespace) -> int:
    from logs import setup_logging
    from sandbox.kube.main import serve_forever

    setup_logging(level=args.log_level)
    return serve_forever(
        host=args.host, port=args.port, kubeconfig_out=args.kubeconfig_out, watch_history=args.watch_history
    )


def _add_controller(sub: argparse._SubParsersAction[_Parser]) -> None:
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
        usage="%(prog)s --cluster-name NAME [flags]",
        epilog=CONTROLLER_EPILOG,
        formatter_class=_HelpFormatter,
    )
    add_controller_flags(p)
    p.set_defaults(handler=_run_controller, parser=p)


def _settings(args: argparse.Namespace, command: str) -> Settings | None:
    """The Settings of `lbc <command>`'s flags, logging set up; None (after one line on stderr) when invalid."""
    import os

    from logs import setup_logging
    from settings import SettingsError, settings_from_args

    try:
        settings = settings_from_args(args, env=dict(os.environ))
    except SettingsError as exc:
        print(f"lbc {command}: {exc} (see lbc {command} --help)", file=sys.stderr)
        return None
    setup_logging(level=settings.log_level)
    return settings


def _run_controller(args: argparse.Namespace) -> int:
    settings = _settings(args, "controller")
    if settings is None:
        return 2
    from controller import run_controller

    return run_controller(settings)


PLAN_EPILOG = """\
examples:
  lbc plan -f ingress.yaml --cluster-name demo --aws-vpc-id vpc-0abc        # the manifests alone are the cluster
  kubectl kustomize overlays/prod | lbc plan -f - --cluster-name prod --kubeconfig ~/.kube/config
  lbc plan -f app.yaml --cluster-name demo --kubeconfig k.yaml --detailed-exitcode || echo "changes or errors"

Each IngressGroup the manifests concern gets a header, one line per AWS change in the order the controller would
make it (+ create, ~ update, - delete, -/+ replace), problems with its members (! namespace/name: Reason: ...),
or "no changes"; a last line sums them up. Exit status: 0 planned, 1 error (a group could not be planned, AWS or
the cluster could not be read), 2 planned with changes when --detailed-exitcode is given.
"""


def _add_plan(sub: argparse._SubParsersAction[_Parser]) -> None:
    from settings import BUILD_FLAG_SECTIONS, add_controller_flags

    p = sub.add_parser(
        "plan",
        help="print the AWS changes some manifests would cause, applying nothing",
        description=(
            "Show what the controller would change in AWS if these manifests were applied: the same build "
            "and plan as `lbc controller`, against the AWS resources as they are now, with AWS read calls "
            "only and no write anywhere. With --kubeconfig the manifests are laid over the cluster's current "
            "objects (as kubectl diff does); without it they are the whole cluster, so include the "
            "IngressClass of your Ingresses (or use the kubernetes.io/ingress.class annotation) and set "
            "--aws-vpc-id unless Nodes are included. AWS comes from the standard AWS variables "
            "(AWS_ENDPOINT_URL, AWS_REGION, credentials)."
        ),
        usage="%(prog)s -f FILE [-f FILE ...] --cluster-name NAME [flags]",
        epilog=PLAN_EPILOG,
        formatter_class=_HelpFormatter,
    )
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="FILE",
        help="multi-document YAML of Kubernetes objects; repeatable; - reads stdin",
    )
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit with status 2 when the plan has changes (0: none, 1: error), as terraform plan",
    )
    add_controller_flags(p, sections=BUILD_FLAG_SECTIONS)
    for action in p._actions:  # the controller's wording of two flags does not fit a one-off command
        if action.dest == "kubeconfig":
            action.help = "lay the manifests over this cluster's objects (default: the manifests alone)"
        elif action.dest == "watch_namespace":
            action.help = "read only this namespace of the cluster (default: all)"
        elif action.dest == "sync_period":
            action.help = argparse.SUPPRESS
    p.set_defaults(handler=_run_plan, parser=p, log_level="warning")


def _run_plan(args: argparse.Namespace) -> int:
    settings = _settings(args, "plan")
    if settings is None:
        return 2
    from planner_cli import run_plan

    return run_plan(settings, paths=args.filename, detailed_exitcode=args.detailed_exitcode)


SANDBOX_EPILOG = """\
examples:
  lbc sandbox --demo                   # the tutorial's Ingress, narrated live until every pod is Ready
  lbc sandbox --demo --keep            # the same, then keep everything running to explore
  lbc sandbox                          # just the world; then, in another terminal:
  kubectl --kubeconfig lbc-sandbox.kubeconfig get nodes,ingress -A

Ctrl-C (or SIGTERM) stops the controller, the simulators, AWS and the Kubernetes API, in that order.
"""


def _add_sandbox(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser(
        "sandbox",
        help="run the whole system on this machine: Kubernetes API emulator, AWS sandbox, nodes, lbc controller",
        description=(
            "Start, in one process tree, the Kubernetes API emulator with the project's CRDs and IngressClass "
            "alb, the AWS sandbox (moto with AWS-like weather and target health, a VPC tagged for the "
            "cluster), simulators that make the emulator a cluster (three nodes backed by EC2 instances, "
            "pods, EndpointSlices, Deployments) and `lbc controller` with its webhook registered; print how "
            "to reach each of them and serve until interrupted. With --demo, apply the tutorial's example "
            "and narrate what the controller does."
        ),
        epilog=SANDBOX_EPILOG,
        formatter_class=_HelpFormatter,
    )
    p.add_argument(
        "--demo", action="store_true", help="apply the tutorial's example and narrate it, then exit"
    )
    p.add_argument("--keep", action="store_true", help="with --demo: keep running after it until Ctrl-C")
    p.add_argument(
        "--workdir",
        default=".",
        help="where lbc-sandbox.kubeconfig goes; logs and webhook certificates go to its .lbc-sandbox/",
    )
    p.add_argument("--port", type=int, default=0, help="Kubernetes API port on 127.0.0.1; 0 picks a free one")
    p.add_argument(
        "--weather",
        choices=["calm", "aws"],
        default="aws",
        help="AWS API behaviour: aws = AWS-like latency and throttling at AWS's rates; calm = neither",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=10.0,
        help="target health checks run this many times faster than configured (1 = as in AWS)",
    )
    p.add_argument("--nodes-per-az", type=int, default=1, help="Nodes (EC2 instances) in each of the 3 zones")
    p.add_argument(
        "--timeout", type=float, default=120.0, help="seconds the demo waits for everything to converge"
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(handler=_run_sandbox, parser=p)


def _run_sandbox(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.time_scale <= 0 or args.nodes_per_az < 1 or args.timeout <= 0:
        print(
            "lbc sandbox: --time-scale and --timeout must be positive, --nodes-per-az at least 1 "
            "(see lbc sandbox --help)",
            file=sys.stderr,
        )
        return 2
    from sandbox.world import SandboxOptions, run_sandbox

    options = SandboxOptions(
        workdir=Path(args.workdir),
        port=args.port,
        weather=args.weather,
        time_scale=args.time_scale,
        nodes_per_az=args.nodes_per_az,
        log_level=args.log_level,
        demo=args.demo,
        keep=args.keep,
        timeout=args.timeout,
    )
    return run_sandbox(options)


LOADTEST_EPILOG = """\
examples:
  lbc loadtest                                       # 1,000 Ingresses, AWS-like weather, 10 min steady state
  lbc loadtest --ingresses 50 --steady-minutes 0.5 --weather calm --out /tmp/lt   # a quick smoke run
  lbc loadtest --kubeconfig ~/.kube/config --controller-metrics http://127.0.0.1:8080/metrics  # any cluster

Writes OUT/report.json and OUT/*.png and prints a summary table; exit status 0 when every Ingress converged
and was deleted with nothing left in AWS, 1 otherwise.
"""


def _add_loadtest(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser(
        "loadtest",
        help="measure the controller with N Ingresses: create, steady state, churn, delete",
        description=(
            "Start the sandbox (or, with --kubeconfig and the standard AWS variables, use any cluster where "
            "the controller runs) and drive it with N Ingresses over M Services and P pods, in phases: create "
            "all, steady state, churn (edits and pod scaling), delete all. Reports time to converge against "
            "the AWS-rate lower bound, AWS calls by operation per phase, mutating calls per Ingress against "
            "the minimum, calls in steady state, readiness-gate flip delay, Ingress event to first AWS call "
            "and the controller's peak RSS, as JSON, PNG plots and a table."
        ),
        epilog=LOADTEST_EPILOG,
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--ingresses", type=int, default=1000, help="N, the Ingresses created")
    p.add_argument("--services", type=int, default=0, help="M, the Services they use (default N/10)")
    p.add_argument("--pods", type=int, default=0, help="P, the pods behind the Services (default 3M)")
    p.add_argument("--steady-minutes", type=float, default=10.0, help="length of the steady state")
    p.add_argument(
        "--churn-fraction", type=float, default=0.1, help="share of Ingresses edited and Deployments scaled"
    )
    p.add_argument(
        "--target-group-attributes",
        action="store_true",
        help="give every Ingress the tutorial's target-group attributes (one more mutating call each)",
    )
    p.add_argument(
        "--weather",
        choices=["calm", "aws"],
        default="aws",
        help="sandbox AWS behaviour: aws = AWS-like latency and throttling at AWS's rates; calm = neither",
    )
    p.add_argument(
        "--time-scale", type=float, default=10.0, help="sandbox health checks run this much faster"
    )
    p.add_argument("--nodes-per-az", type=int, default=2, help="sandbox Nodes in each of the 3 zones")
    p.add_argument("--phase-timeout", type=float, default=3600.0, help="seconds each phase may take at most")
    p.add_argument("--out", default="lbc-loadtest", help="folder for report.json, the plots and the logs")
    p.add_argument("--no-plots", action="store_true", help="write the JSON report only")
    p.add_argument("--kubeconfig", default="", help="drive this cluster instead of the sandbox")
    p.add_argument("--cluster-name", default="", help="with --kubeconfig: the controller's cluster name")
    p.add_argument(
        "--controller-metrics", default="", help="with --kubeconfig: the controller's /metrics URL"
    )
    p.add_argument(
        "--controller-pid", type=int, default=0, help="with --kubeconfig: a local controller's pid"
    )
    p.add_argument("--controller-log", default="", help="with --kubeconfig: a local controller's log file")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(handler=_run_loadtest, parser=p)


def _run_loadtest(args: argparse.Namespace) -> int:
    from pathlib import Path

    services = args.services or max(1, args.ingresses // 10)
    pods = args.pods or 3 * services
    if (
        args.ingresses < 1
        or args.steady_minutes < 0
        or not 0 < args.churn_fraction <= 1
        or args.time_scale <= 0
    ):
        print(
            "lbc loadtest: --ingresses must be positive, --steady-minutes not negative, --churn-fraction in "
            "(0, 1], --time-scale positive (see lbc loadtest --help)",
            file=sys.stderr,
        )
        return 2
    from sandbox.loadtest import LoadTestOptions, SandboxTarget, Target, run_loadtest

    out = Path(args.out)
    options = LoadTestOptions(
        ingresses=args.ingresses,
        services=services,
        pods=pods,
        steady_minutes=args.steady_minutes,
        churn_fraction=args.churn_fraction,
        target_group_attributes=args.target_group_attributes,
        phase_timeout_s=args.phase_timeout,
        out=out,
    )
    target: Target
    if args.kubeconfig:
        target = Target(
            kubeconfig=Path(args.kubeconfig),
            cluster_name=args.cluster_name,
            metrics_url=args.controller_metrics,
            controller_pid=args.controller_pid or None,
            controller_log=Path(args.controller_log) if args.controller_log else None,
        )
    else:
        target = SandboxTarget(
            workdir=out / "state",
            weather=args.weather,
            time_scale=args.time_scale,
            nodes_per_az=args.nodes_per_az,
            log_level=args.log_level,
        )
    return run_loadtest(options, target, command="lbc " + " ".join(sys.argv[1:]), plots=not args.no_plots)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    _add_plan(sub)
    _add_sandbox(sub)
    _add_loadtest(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); return the exit status."""
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # reported by the subcommand, so that the line names it
            args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:  # --help (0) or a command-line mistake (2), already printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
