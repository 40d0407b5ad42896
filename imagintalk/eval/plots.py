"""The evaluation report's figures: one bar chart per metric over the variants, one mel plot per
clip and variant. Written as PNG files next to report.html (the page links them relatively)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imagintalk.eval.catalog import METRICS, RUNGS

RUNG_COLOUR, ABLATION_COLOUR = "tab:blue", "tab:orange"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=80, bbox_inches="tight")
    _plt().close(fig)
    return path


def metric_chart(metric: str, rows: dict[str, dict[str, float]], judge: dict[str, float] | None = None):
    """Bars of one metric per variant (ladder rungs blue, ablations orange); the speaker judge's
    floor and ceiling as dashed lines on speaker_sim."""
    plt = _plt()
    names = [v for v, r in rows.items() if metric in r]
    values = [rows[v][metric] for v in names]
    fig, ax = plt.subplots(figsize=(4.2, 2.6))
    colours = [RUNG_COLOUR if v in RUNGS else ABLATION_COLOUR for v in names]
    ax.bar(range(len(names)), np.nan_to_num(values, nan=0.0), color=colours)
    for i, v in enumerate(values):
        ax.text(i, 0 if not np.isfinite(v) else v, "–" if not np.isfinite(v) else f"{v:.3g}", ha="center",
                va="bottom", fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=7)
    info = METRICS[metric]
    better = {True: "higher is better", False: "lower is better", None: ""}[info.higher_is_better]
    ax.set_title(f"{metric} ({better})", fontsize=9)
    if metric == "speaker_sim" and judge:
        for key, style in (("speaker_sim_floor", "--"), ("speaker_sim_ceiling", ":")):
            value = judge.get(key)
            if value is not None and np.isfinite(value):
                ax.axhline(value, color="k", linestyle=style, linewidth=1, label=key.removeprefix("speaker_sim_"))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper right", framealpha=0.9)
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def mel_plot(mel: np.ndarray, title: str, vmin: float | None = None, vmax: float | None = None):
    """One log-mel (n_mels × frames) at 100 Hz, on the ground truth's colour scale when given."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 1.6))
    ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
              extent=(0, mel.shape[1] / 100.0, 0, mel.shape[0]))
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("s", fontsize=7)
    ax.set_ylabel("mel", fontsize=7)
    ax.tick_params(labelsize=6)
    fig.tight_layout()
    return fig
