"""The `advisor compare` chart: one bar per hardware profile for each figure, labelled with the pick."""

from __future__ import annotations

from pathlib import Path

PANELS = (("e2e_p95_ms", "end-to-end p95 (ms)\nlower is better"),
          ("tokens_per_s", "generated tokens/s\nhigher is better"),
          ("memory_gb", "memory per device (GB)"))


def compare_png(rows: list[dict], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    labels = [f"{r['profile']}" + ("" if r.get("target") in (None, "local") else f" -> {r['target']} (what-if)")
              + f"\n{r['task']}: {r['pick'] or 'no pick'}" for r in rows]
    height = max(2.8, 0.75 * len(rows) + 1.6)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5.2 * len(PANELS), height), sharey=True)
    colors = plt.get_cmap("tab10")
    for ax, (key, title) in zip(axes, PANELS):
        values = [r.get(key) for r in rows]
        ys = range(len(rows))
        bars = ax.barh(list(ys), [v or 0 for v in values], color=[colors(i % 10) for i in ys])
        for bar, v in zip(bars, values):
            text = "n/a" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:,.1f}")
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {text}", va="center", fontsize=9)
        ax.set_title(title, fontsize=10)
        ax.margins(x=0.25)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(list(range(len(rows))), labels, fontsize=9)
    axes[0].invert_yaxis()
    fig.suptitle("model-advisor: the pick on each machine", fontsize=12)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
