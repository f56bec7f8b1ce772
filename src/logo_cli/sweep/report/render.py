"""A reproduction's results as a markdown block (between markers, so a rerun replaces only its own)
and as a grouped bar chart."""

from __future__ import annotations

from pathlib import Path

from logo_cli.sweep.report.load import METHOD_LABELS
from logo_cli.sweep.report.stats import Cell

DEFAULT_TAG = "reproduce_smax_3m"


def markers(tag: str = DEFAULT_TAG) -> tuple[str, str]:
    """The block's start and end comments; one block per tag, so several runs share a page."""
    return f"<!-- {tag}:start -->", f"<!-- {tag}:end -->"


START, END = markers()


def scored(cells: list[Cell]) -> bool:
    """True where the cells' runs win nothing (MaMuJoCo): the normalised score is their headline."""
    return any(c.n for c in cells) and all(c.win_rate_mean is None for c in cells if c.n)


def fmt_score(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return "missing"
    return f"{mean:.1f}" + (f" ± {sd:.1f}" if sd is not None else " (1 seed, no sd)")


def fmt(mean: float | None, sd: float | None, pct: bool) -> str:
    if mean is None:
        return "missing"
    scale, unit = (100.0, "%") if pct else (1.0, "")
    digits = 1 if pct else 3
    text = f"{mean * scale:.{digits}f}{unit}"
    return text + (f" ± {sd * scale:.{digits}f}" if sd is not None else " (1 seed, no sd)")


def markdown_block(
    cells: list[Cell],
    walls: dict,
    params: dict,
    data_rates: dict,
    skipped: list[str],
    figure: str | None = None,
    paired: list[dict] | None = None,
    tag: str = DEFAULT_TAG,
) -> str:
    """The table and its notes, between the markers; `figure` is a path relative to the markdown."""
    start, end = markers(tag)
    by_score = scored(cells)
    name = "normalised score" if by_score else "win rate"
    lines = [
        start,
        "",
        f"| quality | method | {name} (mean ± sd) | return (mean ± sd) | seeds | {name} per seed |",
    ]
    lines.append("|---|---|---|---|---|---|")
    for c in cells:
        if by_score:
            per_seed = ", ".join(
                f"s{s}: " + ("-" if v is None else f"{v:.1f}")
                for s, v in zip(c.seeds, c.normalised_scores, strict=True)
            )
            head = fmt_score(c.normalised_score_mean, c.normalised_score_sd)
        else:
            per_seed = ", ".join(
                f"s{s}: " + ("-" if w is None else f"{w:.1%}")
                for s, w in zip(c.seeds, c.win_rates, strict=True)
            )
            head = fmt(c.win_rate_mean, c.win_rate_sd, True)
        seeds = f"{c.n}/{c.expected}" + (
            f" (missing {', '.join(f's{s}' for s in c.missing_seeds)})" if c.missing_seeds else ""
        )
        label = METHOD_LABELS.get(c.method, c.method)
        ret = fmt(c.return_mean, c.return_sd, False)
        lines.append(f"| {c.quality} | {label} | {head} | {ret} | {seeds} | {per_seed or '-'} |")
    lines.append("")
    for d in paired or []:
        diffs = ", ".join(f"{x * 100:+.1f}" for x in d["diffs"])
        lines.append(
            f"- {d['quality']}: {METHOD_LABELS.get(d['reference'], d['reference'])} minus "
            f"{METHOD_LABELS.get(d['method'], d['method'])}, {name} per seed (points): {diffs}; "
            f"mean {d['mean'] * 100:+.1f}"
            + (f" ± {d['sd'] * 100:.1f}" if d["sd"] is not None else "")
            + f", higher on {d['positive']}/{len(d['diffs'])} seeds"
        )
    if paired:
        lines.append("")
    if data_rates:
        if by_score:
            ref = ", ".join(f"{q} {r * 100:.1f}" for q, r in data_rates.items())
        else:
            ref = ", ".join(f"{q} {r:.1%}" for q, r in data_rates.items())
        lines.append(f"Datasets' own {name}s (behaviour policy, sampled actions): {ref}.")
    missing = [f"{c.quality}/{c.method}/s{s}" for c in cells for s in c.missing_seeds]
    lines.append(f"Missing runs: {', '.join(missing) if missing else 'none'}.")
    for s in skipped:
        lines.append(f"Not used: {s}.")
    if walls.get("total_s") is not None:
        stages = ", ".join(f"{k} {v / 60:.1f}" for k, v in sorted(walls["by_stage_s"].items()))
        lines.append(
            f"Wall time: {walls['total_s'] / 60:.1f} min over {walls['sessions']} invocation(s) of the "
            "script "
            f"(step time summed per stage, min: {stages}; steps overlap when JOBS > 1)."
        )
    if params:
        keys = (
            "episodes",
            "wm_steps",
            "horizon",
            "rollout_starts",
            "policy_steps",
            "eval_episodes",
            "train_args",
            "jobs",
            "commit",
        )
        shown = [f"{k} {params[k]}" for k in keys if params.get(k) not in (None, "")]
        lines.append("Parameters: " + ", ".join(shown) + ".")
    if figure is not None:
        lines += ["", f"![{name} and return per quality and method]({figure})"]
    lines += ["", end]
    return "\n".join(lines)


def write_markdown(path: Path, block: str, tag: str = DEFAULT_TAG) -> None:
    """Replace the tag's block between its markers; append it (or create the file) when absent."""
    start, end = markers(tag)
    text = path.read_text() if path.is_file() else "# Results\n"
    if start in text and end in text:
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def plot(cells: list[Cell], path: Path, title: str, data_rates: dict[str, float] | None = None) -> None:
    """Grouped bars per quality (win rate left, return right); the dataset's own win rate dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    qualities = list(dict.fromkeys(c.quality for c in cells))
    methods = list(dict.fromkeys(c.method for c in cells))
    by = {(c.quality, c.method): c for c in cells}
    by_score = scored(cells)
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 3.2 * len(qualities) + 4), 4.6))
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(qualities))
    colors = plt.get_cmap("tab10").colors
    headline = ("normalised_score", "normalised score (0 random, 100 expert)", 1.0)
    for ax, key, label, scale in (
        (axes[0], *(headline if by_score else ("win_rate", "win rate (%)", 100.0))),
        (axes[1], "return", "mean episode return", 1.0),
    ):
        for j, m in enumerate(methods):
            pos = x - 0.4 + width * (j + 0.5)
            for i, q in enumerate(qualities):
                c = by.get((q, m))
                mean = getattr(c, f"{key}_mean") if c else None
                if mean is None:  # asked for but absent: "missing"; never asked for: "not run"
                    absent = "missing" if c else "not run"
                    ax.text(
                        pos[i], 0, absent, rotation=90, ha="center", va="bottom", fontsize=7, color="grey"
                    )
                    continue
                sd = getattr(c, f"{key}_sd")
                ax.bar(
                    pos[i],
                    mean * scale,
                    width,
                    color=colors[j % 10],
                    label=METHOD_LABELS.get(m, m) if i == 0 else None,
                )
                if abs(mean * scale) < 0.5:  # a zero-height bar is invisible: mark it in its colour
                    ax.plot(
                        [pos[i] - width / 2, pos[i] + width / 2],
                        [0, 0],
                        color=colors[j % 10],
                        lw=4,
                        solid_capstyle="butt",
                        clip_on=False,
                    )
                if sd is not None:
                    ax.errorbar(pos[i], mean * scale, yerr=sd * scale, color="black", capsize=3, lw=1)
                # returns in the thousands (MaMuJoCo) get no decimals: labels of neighbouring bars collide
                plain = f"{mean:.0f}" if abs(mean) >= 100 else f"{mean:.2f}"
                note = {"win_rate": f"{mean * scale:.0f}%", "normalised_score": f"{mean:.0f}"}.get(key, plain)
                if c.n < c.expected:
                    note += f"\nn={c.n}"
                top = (mean + (sd or 0.0)) * scale
                ax.text(pos[i], top, note, ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, qualities)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    for i, q in enumerate(qualities):
        if data_rates and q in data_rates:
            axes[0].hlines(
                data_rates[q] * 100,
                x[i] - 0.45,
                x[i] + 0.45,
                colors="black",
                linestyles="dashed",
                lw=1,
                label="dataset (behaviour, sampled)" if i == 0 else None,
            )
    if not by_score:  # a normalised score can fall below 0 or pass 100
        axes[0].set_ylim(0, 105)
    handles, labels = axes[0].get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda k: labels[k].startswith("dataset"))  # methods first
    handles, labels = [handles[k] for k in order], [labels[k] for k in order]
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
