"""The Pareto plot: quality proxy against p95 latency, marker size = memory, frontier and pick marked."""

from __future__ import annotations

from pathlib import Path

from advisor.recommend.schema import Recommendation


def pareto_png(rec: Recommendation, path: Path, target: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = next((x for x in rec.targets if x.target == target), rec.targets[0])
    cands = [c for c in rec.candidates if c.target == t.target and c.quality is not None and c.e2e_p95_ms > 0]
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=110)
    max_mem = max((c.memory_bytes for c in cands), default=1) or 1
    for passed, color, label in ((False, "#bbbbbb", "rejected"), (True, "#1f77b4", "meets constraints")):
        pts = [c for c in cands if c.passed == passed]
        if pts:
            ax.scatter([c.e2e_p95_ms / 1000 for c in pts], [c.quality for c in pts],
                       s=[40 + 600 * c.memory_bytes / max_mem for c in pts], c=color, alpha=0.55,
                       edgecolors="white", linewidths=0.5, label=label, zorder=2)
    front = sorted((c for c in cands if c.on_frontier), key=lambda c: c.e2e_p95_ms)
    if front:
        ax.plot([c.e2e_p95_ms / 1000 for c in front], [c.quality for c in front], "-", color="#2ca02c",
                lw=1.5, zorder=3, label="Pareto frontier (quality, latency, memory)")
        for c in front:
            ax.annotate(f"{c.model} {c.format}", (c.e2e_p95_ms / 1000, c.quality), textcoords="offset points",
                        xytext=(6, 4), fontsize=8, color="#225522")
    budget = rec.latency_budget_ms
    if budget:
        ax.axvline(budget / 1000, color="#d62728", ls="--", lw=1, label=f"latency budget {budget / 1000:g} s")
    if t.pick is not None and t.pick.quality is not None:
        ax.scatter([t.pick.e2e_p95_ms / 1000], [t.pick.quality], marker="*", s=500, c="#ff7f0e",
                   edgecolors="black", zorder=5, label=f"pick: {t.pick.model} ({t.pick.format})")
    ax.set_xscale("log")
    ax.set_xlabel(f"end-to-end p95 latency, s (log scale; {rec.shape.prompt_tokens} in / {rec.shape.new_tokens} out)")
    ax.set_ylabel("task quality proxy (0-100)")
    ax.set_title(f"{rec.task} on {t.target_name}: {t.device_summary}\nmarker size = memory per device", fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, markerscale=0.5)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
