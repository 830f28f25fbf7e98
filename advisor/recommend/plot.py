"""The Pareto plot: quality proxy against p95 latency, marker size = memory, frontier and pick marked."""

from __future__ import annotations

from pathlib import Path

from advisor.recommend.schema import Candidate, Recommendation


def distinct_figures(cands: list[Candidate]) -> list[Candidate]:
    """fp16 duplicates bf16's figures on most targets: keep one point per distinct (model, figures)."""
    seen, out = set(), []
    for c in sorted(cands, key=lambda c: (c.format != "bf16", c.key)):
        sig = (c.model, round(c.e2e_p95_ms, 3), c.memory_bytes, c.quality_proxy)
        if sig not in seen:
            seen.add(sig)
            out.append(c)
    return out


def _staircase(cands: list[Candidate], cost) -> list[Candidate]:
    """Candidates that no one cheaper by `cost` beats on quality, in order of cost."""
    best, out = float("-inf"), []
    for c in sorted(cands, key=lambda c: (cost(c), -(c.quality_proxy or 0))):
        if c.quality_proxy is not None and c.quality_proxy > best:
            out.append(c)
            best = c.quality_proxy
    return out


def _frontier_2d(cands: list[Candidate]) -> list[Candidate]:
    """Passing candidates not beaten on both quality and latency, sorted by latency (a staircase)."""
    return _staircase(cands, lambda c: c.e2e_p95_ms)


def pareto_png(rec: Recommendation, path: Path, target: str | None = None) -> Path:
    """One panel per target (only `target`'s when given). The pick is always drawn: an unscored pick
    (--allow-unscored) sits on the 'unscored' strip below the scored candidates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = [t for t in rec.targets if target is None or t.target == target] or rec.targets[:1]
    fig, axes = plt.subplots(len(targets), 1, figsize=(10, 6.5 * len(targets)), dpi=110, squeeze=False)
    for ax, t in zip(axes[:, 0], targets):
        _panel(ax, rec, t)
    return _save(plt, fig, path)


def _panel(ax, rec: Recommendation, t) -> None:
    import math

    from matplotlib.ticker import FuncFormatter

    timed = [c for c in rec.candidates if c.target == t.target and (c.e2e_p95_ms or 0) > 0]
    cands = distinct_figures([c for c in timed if c.quality_proxy is not None])
    unscored = distinct_figures([c for c in timed if c.quality_proxy is None])
    scored_q = [c.quality_proxy for c in cands if c.quality_proxy is not None]
    # the strip for unscored candidates: a band below the lowest scored one
    strip = (min(scored_q) if scored_q else 50.0) - 8.0
    y = lambda c: c.quality_proxy if c.quality_proxy is not None else strip  # noqa: E731
    everyone = cands + unscored
    max_mem = max((c.memory_bytes or 0 for c in everyone), default=1) or 1
    size = lambda c: 30 + 500 * (c.memory_bytes or 0) / max_mem  # noqa: E731
    for passed, color, label in ((False, "#c8c8c8", "rejected"), (True, "#1f77b4", "meets every constraint")):
        pts = [c for c in everyone if c.passed == passed]
        if pts:
            ax.scatter([c.e2e_p95_ms / 1000 for c in pts], [y(c) for c in pts], s=[size(c) for c in pts],
                       c=color, alpha=0.6, edgecolors="white", linewidths=0.5, label=label, zorder=2)
    ring = [c for c in cands if c.on_frontier]
    if ring:
        ax.scatter([c.e2e_p95_ms / 1000 for c in ring], [c.quality_proxy for c in ring], s=[size(c) + 60 for c in ring],
                   facecolors="none", edgecolors="#2ca02c", linewidths=1.4, zorder=3,
                   label="Pareto frontier (quality, latency, memory)")
    pick = t.pick
    placed = [(math.log10(pick.e2e_p95_ms / 1000), y(pick))] if pick is not None and pick.e2e_p95_ms else []
    stairs = _frontier_2d([c for c in cands if c.passed])
    if stairs:
        ax.step([c.e2e_p95_ms / 1000 for c in stairs], [c.quality_proxy for c in stairs], where="post", color="#2ca02c",
                lw=1.2, alpha=0.8, zorder=3, label="best quality for a given latency")
        for c in stairs:
            x, yy = math.log10(c.e2e_p95_ms / 1000), c.quality_proxy
            # greedy de-cluttering: label a point only when no labelled point is close by
            if any(abs(x - px) < 0.12 and abs(yy - py) < 2.5 for px, py in placed):
                continue
            placed.append((x, yy))
            ax.annotate(f"{c.model} {c.format}", (c.e2e_p95_ms / 1000, c.quality_proxy), textcoords="offset points",
                        xytext=(8, -10), ha="left", fontsize=8, color="#1d5c1d", zorder=4)
    show_strip = bool(unscored) or (pick is not None and pick.quality_proxy is None)
    if rec.latency_budget_ms:
        ax.axvline(rec.latency_budget_ms / 1000, color="#d62728", ls="--", lw=1,
                   label=f"latency budget {rec.latency_budget_ms / 1000:g} s")
    if pick is not None and pick.e2e_p95_ms:
        note = "" if pick.quality_proxy is not None else ", unscored"
        ax.scatter([pick.e2e_p95_ms / 1000], [y(pick)], marker="*", s=520, c="#ff7f0e",
                   edgecolors="black", zorder=5, label=f"pick: {pick.model} ({pick.format}{note})")
        ax.annotate(f"PICK {pick.model} {pick.format}", (pick.e2e_p95_ms / 1000, y(pick)),
                    textcoords="offset points", xytext=(10, -4), fontsize=9, weight="bold", zorder=6)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if str(f"{v:g}")[0] in "25" else ""))
    ax.set_xlabel(f"end-to-end p95 latency in seconds, log scale ({rec.shape.prompt_tokens} tokens in, "
                  f"{rec.shape.new_tokens} out, batch {rec.shape.batch}; {rec.runtime})")
    ax.set_ylabel("task quality proxy (0-100, from published benchmarks)")
    bases = sorted({c.latency_basis for c in everyone if c.latency_basis})
    ax.set_title(f"{rec.task} on {t.target_name} ({t.device_summary})\nmarker size = memory per device; "
                 f"latency basis: {', '.join(bases) or '-'}"
                 + ("; 'unscored': too few published scores for a quality proxy" if show_strip else ""), fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    if show_strip:   # the strip gets a tick of its own, below a dotted line
        top = max(scored_q, default=strip + 20.0) + 6.0
        ax.set_ylim(strip - 4.0, top)
        ticks = [v for v in ax.get_yticks() if strip + 4.0 < v <= top]
        ax.set_yticks(ticks + [strip], [f"{v:g}" for v in ticks] + ["unscored"])
        ax.axhline(strip + 4.0, color="#999999", lw=0.8, ls=":", zorder=1)
    # above and left of the frontier nothing can lie: the legend hides no point there
    ax.legend(loc="upper left", fontsize=8, markerscale=0.5, framealpha=0.9)


def _cost_frontier(cands: list[Candidate]) -> list[Candidate]:
    """Candidates no cheaper one beats on quality, by cost (a staircase)."""
    return _staircase(cands, lambda c: c.cost_per_hour_usd)


def quality_cost_png(rec: Recommendation, path: Path) -> Path:
    """Under a load (--rps / --concurrency): quality proxy against USD per hour at that load, every
    target in one plot (one colour each), the cheapest and the best-quality deployments marked."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    load = rec.load
    cands = [c for c in rec.candidates if c.quality_proxy is not None and c.cost_per_hour_usd]
    seen, points = set(), []
    for c in sorted(cands, key=lambda c: (c.format != "bf16", c.key)):   # fp16 repeats bf16
        sig = (c.model, c.target, round(c.cost_per_hour_usd, 4), c.quality_proxy)
        if sig not in seen:
            seen.add(sig)
            points.append(c)
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=110)
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
    names = {t.target: t.target_name for t in rec.targets}
    for i, t in enumerate(rec.targets):
        mine = [c for c in points if c.target == t.target]
        ok = [c for c in mine if c.passed]
        bad = [c for c in mine if not c.passed]
        colour = colours[i % len(colours)]
        if ok:
            ax.scatter([c.cost_per_hour_usd for c in ok], [c.quality_proxy for c in ok], s=46, c=colour, alpha=0.75,
                       edgecolors="white", linewidths=0.5, label=f"{names[t.target]}: meets the SLOs", zorder=3)
        if bad:
            ax.scatter([c.cost_per_hour_usd for c in bad], [c.quality_proxy for c in bad], s=30, facecolors="none",
                       edgecolors=colour, alpha=0.45, linewidths=0.8, label=f"{names[t.target]}: rejected", zorder=2)
    stairs = _cost_frontier([c for c in points if c.passed])
    if stairs:
        ax.step([c.cost_per_hour_usd for c in stairs], [c.quality_proxy for c in stairs], where="post",
                color="#2ca02c", lw=1.2, alpha=0.8, zorder=3, label="best quality for a given cost")
        placed: list[tuple[float, float]] = []
        for c in stairs:
            x, y = math.log10(c.cost_per_hour_usd), c.quality_proxy
            if any(abs(x - px) < 0.15 and abs(y - py) < 2.5 for px, py in placed):
                continue
            placed.append((x, y))
            ax.annotate(f"{c.model} {c.format}, {c.replicas} x TP{c.tensor_parallel} {c.target}",
                        (c.cost_per_hour_usd, c.quality_proxy), textcoords="offset points", xytext=(7, -10),
                        fontsize=7.5, color="#1d5c1d", zorder=4)
    by_key = {c.key: c for c in rec.candidates}
    for key, marker, colour, label in ((load.pick, "*", "#ff7f0e", "pick (cheapest within the quality tolerance)"),
                                       (load.best_quality, "D", "#d62728", "best quality")):
        c = by_key.get(key) if key else None
        if c is not None and c.cost_per_hour_usd and c.quality_proxy is not None:
            ax.scatter([c.cost_per_hour_usd], [c.quality_proxy], marker=marker, s=420 if marker == "*" else 150,
                       c=colour, edgecolors="black", zorder=5, label=f"{label}: {c.model} ({c.format}) on {c.target}")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"${v:g}"))
    what = f"{load.rps:g} req/s" if load.rps is not None else f"{load.concurrency} clients"
    ax.set_xlabel(f"USD per hour to serve {what} within the SLOs, log scale (replicas x GPUs x on-demand price)")
    ax.set_ylabel("task quality proxy (0-100, from published benchmarks)")
    slo = ", ".join(f"{k} {v:g} ms" for k, v in (("TTFT", load.max_ttft_ms), ("TPOT", load.max_tpot_ms),
                                                  ("e2e", load.max_latency_ms)) if v is not None)
    ax.set_title(f"{rec.task} at {what}, p95 {slo} ({rec.shape.prompt_tokens} in / {rec.shape.new_tokens} out)\n"
                 "each point: one model x format x target at its cheapest layout; unscored and unpriced not shown",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=7.5, markerscale=0.6, framealpha=0.9)
    return _save(plt, fig, path)


def _save(plt, fig, path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
