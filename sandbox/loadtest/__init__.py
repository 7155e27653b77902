"""`lbc loadtest`: the performance instrument — N Ingresses created, left alone, churned and deleted against
`lbc controller` in the sandbox (or any cluster and AWS endpoint), measured from outside the controller.

Parts: `workload` (the objects applied, the minimum AWS calls and the token-bucket lower bound: pure),
`target` (the sandbox world or an external cluster), `observe` (watches, counter/RSS sampling, the controller's
log), `runner` (the phases), `report` (JSON and the summary table), `plots` (PNGs). `run_loadtest` is the
command; it never imports the controller, which runs as a subprocess and is read over HTTP, /proc and its log.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from sandbox.loadtest.runner import LoadTestOptions
from sandbox.loadtest.target import SandboxTarget, Target

__all__ = ["LoadTestOptions", "SandboxTarget", "Target", "run_loadtest"]


def run_loadtest(options: LoadTestOptions, target: Target, *, command: str = "", plots: bool = True) -> int:
    """Run the phases against `target`, write `report.json` (and the plots) into `options.out`, print the
    summary. 0 when every Ingress converged and was deleted with nothing of ours left in AWS, else 1."""
    from loguru import logger
    from rich.console import Console

    from sandbox.loadtest.report import build_report, print_summary
    from sandbox.loadtest.runner import LoadTest

    console = Console(highlight=False, soft_wrap=True)
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    logger.remove()
    (out / "state").mkdir(exist_ok=True)
    (out / "state" / ".gitignore").write_text("*\n", encoding="utf-8")
    logger.add(out / "state" / "loadtest.log", level="INFO")
    started = datetime.now()
    began = time.monotonic()
    with console.status(f"starting the {target.name} (Kubernetes API, AWS, nodes, lbc controller)..."):
        target.start()
    console.print(f"{target.name} ready in {time.monotonic() - began:.1f} s")
    path = out / "report.json"
    command = command or " ".join(sys.argv)

    def write(test: LoadTest, *, final: bool = False) -> dict[str, Any]:
        """The report so far (rewritten after each phase, so a long run leaves numbers even if cut short)."""
        report = build_report(test, command=command, started=started)
        report["complete"] = final
        path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        if plots:
            from sandbox.loadtest.plots import write_plots

            write_plots(report, out)
        return report

    test = LoadTest(target, options, console, on_phase_end=write)

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # SIGTERM stops the run as Ctrl-C does: the target (and its controller) too

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        test.run()
    finally:
        with console.status("stopping..."):
            target.stop()
        signal.signal(signal.SIGTERM, previous)
    report = write(test, final=True)
    print_summary(console, report)
    console.print(f"report: {path}")
    return 0 if all(report["correctness"].values()) else 1


def default_out() -> Path:
    return Path("lbc-loadtest")
