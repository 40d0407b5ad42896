"""The evaluation report: a Markdown + JSON table, plots, and one HTML page that embeds them."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np

LOWER_IS_BETTER = {"wer", "wer_ground_truth", "uer_before", "uer_after", "mcd", "f0_rmse", "sync_offset_abs"}


def metrics_table_md(rows: dict[str, dict[str, float]]) -> str:
    """rows: variant -> metric -> value (variant 'full' first, then the ablations)."""
    metrics = sorted({m for r in rows.values() for m in r})
    head = "| variant | " + " | ".join(metrics) + " |\n|---|" + "---|" * len(metrics) + "\n"
    body = "".join(
        f"| {v} | " + " | ".join(_fmt(r.get(m)) for m in metrics) + " |\n" for v, r in rows.items())
    return head + body + "\n(lower is better: " + ", ".join(sorted(LOWER_IS_BETTER)) + ")\n"


def _fmt(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def mel_figure(gt: np.ndarray, gen: np.ndarray, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(8, 4), sharex=True)
    for ax, m, name in zip(axes, (gt, gen), ("ground truth", "generated"), strict=True):
        ax.imshow(m, origin="lower", aspect="auto", cmap="magma")
        ax.set_ylabel(name)
    axes[0].set_title(title)
    return fig


def bars_figure(rows: dict[str, dict[str, float]]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in ("wer", "speaker_sim", "emotion_acc", "stoi", "estoi", "uer_after")
               if any(m in r for r in rows.values())]
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics), 3))
    for ax, m in zip(np.atleast_1d(axes), metrics, strict=True):
        names = list(rows)
        ax.bar(range(len(names)), [rows[n].get(m, float("nan")) for n in names], color="tab:blue")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_title(m)
    fig.tight_layout()
    return fig


def write_report(out: Path, rows: dict[str, dict[str, float]], meta: dict[str, str],
                 mel_pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> Path:
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"meta": meta, "metrics": rows}, indent=2, sort_keys=True,
                                                 default=float))
    table = metrics_table_md(rows)
    (out / "metrics.md").write_text(f"# ImaginTalk evaluation\n\n{table}")
    figs = [("metrics", bars_figure(rows))] + [(k, mel_figure(g, p, k)) for k, g, p in mel_pairs]
    imgs = []
    for name, fig in figs:
        data = _png(fig)
        (out / f"{name.replace('/', '_')}.png").write_bytes(base64.b64decode(data))
        imgs.append(f'<h3>{html.escape(name)}</h3><img src="data:image/png;base64,{data}"/>')
        plt.close(fig)
    metrics = sorted({m for r in rows.values() for m in r})
    trs = "".join(f"<tr><td>{html.escape(v)}</td>" + "".join(f"<td>{_fmt(r.get(m))}</td>" for m in metrics)
                  + "</tr>" for v, r in rows.items())
    metas = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in sorted(meta.items()))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>ImaginTalk evaluation</title>"
            f"<style>body{{font-family:sans-serif}}td,th{{border:1px solid #ccc;padding:3px 6px}}"
            f"table{{border-collapse:collapse}}</style></head><body><h1>ImaginTalk evaluation</h1><ul>{metas}</ul>"
            f"<table><tr><th>variant</th>{''.join(f'<th>{m}</th>' for m in metrics)}</tr>{trs}</table>"
            f"<p>Lower is better: {', '.join(sorted(LOWER_IS_BETTER))}.</p>{''.join(imgs)}</body></html>")
    path = out / "report.html"
    path.write_text(page)
    return path
