"""The evaluation report a person can judge by ear: metrics.json, metrics.md and report.html.

report.html shows, in this order: the run's lineage (data version, model and stage versions,
commit, MLflow run); the ladder table (one row per metric, one column per variant) with each
metric explained in one line (what, which judge, which direction is better); each metric that
could not be computed, with the reason (e.g. no ASR judge for this corpus); a chart per metric;
and per test clip an audio player and a mel plot for the ground truth and every variant side by
side. Audio (16-bit wav) and images are files next to report.html, linked relatively, so the
folder can be opened locally, served, or browsed as MLflow artifacts. The layout wraps to the
window: no horizontal scrolling on a laptop screen.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from imagintalk.eval.catalog import ABLATIONS, ALIASES, ASR_METRICS, METRICS, RUNGS
from imagintalk.eval.ladder import Clip, Rendered

SAMPLE_RATE = 16000
CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:auto;padding:0 12px;line-height:1.35}
table{border-collapse:collapse;width:100%;table-layout:fixed;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 5px;overflow-wrap:anywhere;text-align:right}
td:first-child,th:first-child{text-align:left;width:16%}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:10px}
.card{border:1px solid #ddd;border-radius:6px;padding:6px}.card img,.grid img{max-width:100%}
audio{width:100%}dt{font-weight:bold;margin-top:4px}dd{margin-left:16px}.muted{color:#666}"""


def _fmt(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def _better(metric: str) -> str:
    return {True: "higher is better", False: "lower is better", None: "reference"}[METRICS[metric].higher_is_better]


def _slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key)


def _label(variant: str, aliases: Mapping[str, str]) -> str:
    also = [a for a, c in aliases.items() if c == variant]
    return variant + (f" (= {', '.join(also)})" if also else "")


def _metrics_in(rows: Mapping[str, Mapping[str, float]]) -> list[str]:
    present = {m for r in rows.values() for m in r}
    return [m for m in METRICS if m in present]


def _judge(metric: str, asr_judge: str | None) -> str:
    """Which judge made the metric: the ASR metrics name the one eval.asr chose."""
    return asr_judge if asr_judge and metric in ASR_METRICS else METRICS[metric].judge


def missing_lines(missing: Mapping[str, str]) -> list[str]:
    """``wer: not computed — <reason>`` per metric the evaluation could not compute."""
    return [f"{m}: not computed — {why}" for m, why in missing.items()]


def definitions_md(metrics: Sequence[str], asr_judge: str | None = None) -> str:
    """One line per metric: what it measures, which judge, which direction is better."""
    return "".join(f"- **{m}**: {METRICS[m].what}; judge: {_judge(m, asr_judge)}; {_better(m)}\n" for m in metrics)


def metrics_table_md(rows: Mapping[str, Mapping[str, float]], judge: Mapping[str, float] | None = None,
                     aliases: Mapping[str, str] = ALIASES) -> str:
    """The ladder as Markdown: one row per metric, one column per variant."""
    variants = list(rows)
    head = ("| metric | " + " | ".join(_label(v, aliases) for v in variants) + " | better |\n|---|"
            + "---|" * (len(variants) + 1) + "\n")
    body = "".join(f"| {m} | " + " | ".join(_fmt(rows[v].get(m)) for v in variants) + f" | {_better(m)} |\n"
                   for m in _metrics_in(rows))
    extra = "".join(f"\n{k}: {_fmt(v)}" for k, v in (judge or {}).items())
    return head + body + extra + "\n"


def _definitions(metrics: Sequence[str], asr_judge: str | None = None) -> str:
    items = "".join(f"<dt>{m}</dt><dd>{html.escape(METRICS[m].what)}; judge: {html.escape(_judge(m, asr_judge))}; "
                    f"<i>{_better(m)}</i></dd>" for m in metrics)
    variants = "".join(f"<dt>{v}</dt><dd>{html.escape(d)}</dd>" for v, d in {**RUNGS, **ABLATIONS}.items())
    return f"<h3>Metrics</h3><dl>{items}</dl><h3>Variants</h3><dl>{variants}</dl>"


def _lineage(meta: Mapping[str, str]) -> str:
    items = []
    for k, v in sorted(meta.items()):
        value = html.escape(str(v))
        if k == "mlflow.run_url" and str(v).startswith("http"):
            value = f'<a href="{value}">{value}</a>'
        items.append(f"<li><b>{html.escape(k)}</b>: {value}</li>")
    return f"<h2>Lineage</h2><ul>{''.join(items)}</ul>"


def write_wav(path: Path, audio: np.ndarray) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(np.nan_to_num(np.asarray(audio, np.float32)), -1, 1), SAMPLE_RATE, subtype="PCM_16")
    return path


def _clip_section(out: Path, clip: Clip, rendered: Mapping[str, Rendered]) -> str:
    from imagintalk.eval.plots import mel_plot, save

    slug = _slug(clip.key)
    gt = Rendered(clip.audio, clip.mel, clip.units)
    entries = {"ground_truth": gt, **{v: r for v, r in rendered.items() if v != "ground_truth"}}
    vmin, vmax = float(np.min(clip.mel)), float(np.max(clip.mel))
    cards = []
    for variant, r in entries.items():
        wav = write_wav(out / "audio" / slug / f"{variant}.wav", r.audio).relative_to(out)
        png = save(mel_plot(r.mel, variant, vmin, vmax), out / "mels" / slug / f"{variant}.png").relative_to(out)
        cards.append(f"<div class='card'><b>{html.escape(variant)}</b>"
                     f"<audio controls preload='none' src='{wav.as_posix()}'></audio>"
                     f"<img alt='mel of {html.escape(variant)}' src='{png.as_posix()}'/></div>")
    said = f" — “{html.escape(clip.transcript)}”" if clip.transcript else ""
    return (f"<h3>{html.escape(clip.key)}{said}</h3><p class='muted'>speaker {html.escape(clip.speaker)}"
            f"{', emotion ' + html.escape(clip.emotion) if clip.emotion else ''}</p>"
            f"<div class='grid'>{''.join(cards)}</div>")


def write_report(out: Path, rows: dict[str, dict[str, float]], meta: Mapping[str, str],
                 samples: Sequence[tuple[Clip, Mapping[str, Rendered]]] = (),
                 judge: Mapping[str, float] | None = None, aliases: Mapping[str, str] = ALIASES,
                 face: Mapping[str, float] | None = None, missing: Mapping[str, str] | None = None,
                 asr: Mapping[str, object] | None = None) -> Path:
    """Write metrics.json, metrics.md, the figures, the clips' audio and report.html into ``out``.

    rows: variant -> metric -> value (ladder order, then ablations); judge: the speaker judge's
    floor/ceiling; aliases: other names of computed variants; samples: the clips to listen to;
    face: what the composite read from the test faces (``expression_acc``: the expression model's
    accuracy on 0.5 s windows against the clips' labels), top-level keys of metrics.json; missing:
    metric -> why it was not computed; asr: the ASR judge and how many clips it graded
    (imagintalk/eval/intelligibility.py coverage)."""
    from imagintalk.eval.plots import metric_chart, save

    out.mkdir(parents=True, exist_ok=True)
    judge = dict(judge or {})
    aliases = {a: c for a, c in aliases.items() if c in rows}
    face = dict(face or {})
    missing = {m: why for m, why in (missing or {}).items() if m in METRICS}
    asr = dict(asr or {})
    asr_judge = str(asr["judge"]) if asr.get("judge") else None
    (out / "metrics.json").write_text(json.dumps(
        {**face, "meta": dict(meta), "metrics": rows, "judge": judge, "aliases": aliases, "missing": missing,
         "asr": asr,
         "variants": {v: d for v, d in {**RUNGS, **ABLATIONS}.items() if v in rows or v in aliases}},
        indent=2, sort_keys=True, default=float))
    face_md = "".join(f"- {k}: {_fmt(v)}\n" for k, v in face.items()) + ("\n" if face else "")
    metrics = _metrics_in(rows)
    explained = [*metrics, *(m for m in METRICS if m in missing and m not in metrics)]
    gaps_md = "".join(f"- {line}\n" for line in missing_lines(missing))
    (out / "metrics.md").write_text(
        f"# ImaginTalk evaluation\n\n{face_md}{metrics_table_md(rows, judge, aliases)}"
        + (f"\n## Not computed\n\n{gaps_md}" if gaps_md else "")
        + f"\n## Metrics\n\n{definitions_md(explained, asr_judge)}")

    charts = [save(metric_chart(m, rows, judge), out / "charts" / f"{m}.png").relative_to(out) for m in metrics]
    head = "".join(f"<th>{html.escape(_label(v, aliases))}</th>" for v in rows)
    trs = "".join(f"<tr><td title='{html.escape(METRICS[m].what)}'>{m}<br><span class='muted'>{_better(m)}</span>"
                  "</td>" + "".join(f"<td>{_fmt(rows[v].get(m))}</td>" for v in rows) + "</tr>" for m in metrics)
    judge_line = "; ".join(f"{k} {_fmt(v)}" for k, v in judge.items())
    gaps_html = "".join(f"<li><b>{html.escape(m)}</b>: not computed — {html.escape(why)}</li>"
                        for m, why in missing.items())
    clips = "".join(_clip_section(out, clip, rendered) for clip, rendered in samples)
    page = (f"<!doctype html><html><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>ImaginTalk evaluation</title><style>{CSS}</style></head><body>"
            f"<h1>ImaginTalk evaluation</h1>{_lineage(meta)}"
            f"<h2>Oracle ladder and ablations</h2><p>Each rung replaces fewer model parts by the truth: where a "
            f"metric drops between two rungs is the part that loses it. Speaker judge's range on these clips: "
            f"{judge_line or '–'}.</p><table><tr><th>metric</th>{head}</tr>{trs}</table>"
            + (f"<h3>Not computed</h3><ul>{gaps_html}</ul>" if gaps_html else "")
            + f"{_definitions(explained, asr_judge)}<h2>Charts</h2><div class='grid'>"
            + "".join(f"<img alt='{c.stem}' src='{c.as_posix()}'/>" for c in charts)
            + f"</div><h2>Listen</h2>{clips or '<p>no clips</p>'}</body></html>")
    path = out / "report.html"
    path.write_text(page)
    return path
