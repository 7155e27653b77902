"""The load test's PNG plots, drawn from the report's time series with matplotlib's Agg backend (no display).

convergence.png (Ingresses converged over time against the token-bucket ideal), aws_calls.png (calls per
second by operation, phases shaded), throttled.png (throttled calls per second by operation),
readiness_flip.png (histogram of readiness-gate flip delays), controller_rss.png (the controller's RSS).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TOP_OPERATIONS = 8


def _rates(t: list[float], cumulative: list[int]) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i in range(1, len(t)):
        dt = t[i] - t[i - 1]
        if dt > 0:
            xs.append(t[i])
            ys.append((cumulative[i] - cumulative[i - 1]) / dt)
    return xs, ys


def write_plots(report: dict[str, Any], out: Path) -> list[Path]:
    """Write the plots into `out`; the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = report.get("timeseries") or {}
    if not series:
        return []
    out.mkdir(parents=True, exist_ok=True)
    t: list[float] = series["t"]
    phases: dict[str, list[float]] = series["phases"]
    written: list[Path] = []
    n = report["workload"]["ingresses"]
    title = f"{n} Ingresses, weather {report['weather']}"

    def shade(ax: Any) -> None:
        for index, (name, (start, end)) in enumerate(phases.items()):
            ax.axvspan(start, end, alpha=0.08, color=f"C{index}")
            ax.text(start, 1.0, name, transform=ax.get_xaxis_transform(), fontsize=8, va="bottom")

    def save(fig: Any, name: str) -> None:
        path = out / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    # convergence over time, with the ideal pace of the mutating bucket
    fig, ax = plt.subplots(figsize=(8, 4.5))
    done = series.get("convergence_s", [])
    ax.step(done, range(1, len(done) + 1), where="post", label="Ingresses converged (status hostname)")
    bound = report["convergence"]["lower_bound_s"]
    if n and bound:
        ax.plot([0, bound], [0, n], "--", label=f"lower bound pace ({bound:.0f} s for all)")
    ax.set(
        xlabel="seconds since the first create", ylabel="Ingresses converged", title=f"Convergence: {title}"
    )
    ax.legend()
    save(fig, "convergence.png")

    for key, name, label in (
        ("calls", "aws_calls.png", "AWS calls per second"),
        ("throttled", "throttled.png", "throttled AWS calls per second"),
    ):
        fig, ax = plt.subplots(figsize=(10, 4.5))
        totals = {op: values[-1] for op, values in series[key].items() if values and values[-1]}
        for op in sorted(totals, key=lambda o: -totals[o])[:TOP_OPERATIONS]:
            xs, ys = _rates(t, series[key][op])
            ax.plot(xs, ys, label=op.rsplit(".", 1)[-1], linewidth=0.9)
        shade(ax)
        ax.set(
            xlabel="seconds since start",
            ylabel=label,
            title=f"{label[0].upper()}{label[1:]} by operation: {title}",
        )
        if totals:
            ax.legend(fontsize=8, ncol=2)
        save(fig, name)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    flips = series.get("readiness_flips_s", [])
    if flips:
        ax.hist(flips, bins=min(50, max(5, len(flips) // 5)))
    ax.set(xlabel="seconds from target healthy to gate True", ylabel="readiness gates",
           title=f"Readiness gate flip delay ({len(flips)} gates): {title}")  # fmt: skip
    save(fig, "readiness_flip.png")

    fig, ax = plt.subplots(figsize=(10, 4.5))
    rss = series.get("rss_mib", [])
    points = [(x, y) for x, y in zip(t, rss, strict=False) if y is not None]
    if points:
        ax.plot([p[0] for p in points], [p[1] for p in points])
    shade(ax)
    ax.set(xlabel="seconds since start", ylabel="MiB", title=f"lbc controller RSS: {title}")
    save(fig, "controller_rss.png")
    return written
