"""The promotion gate's rules, as pure functions over version tags (no registry I/O here).

A challenger beats the champion when, for every gate metric, its improvement over the champion
is at least that metric's margin (improvement = champion - challenger for lower-is-better
metrics such as WER, challenger - champion for higher-is-better ones such as speaker
similarity; a negative margin tolerates a small regression), and, with
``require_strict_improvement``, at least one metric is strictly better — so re-registering an
identical model does not churn the champion. The evaluation writes the numbers as version tags
``eval.<metric>`` (``eval.<variant>.<metric>`` for the ladder's other rungs) and the corpus it
evaluated on as ``eval.corpus``; the data audit writes ``audit.passed``.

Before any comparison, the challenger's own numbers must meet the absolute floors of its corpus
(``promote.floors``), so that a model that does not speak is not promoted just for being first.
A floor or gate metric the evaluation could not compute refuses promotion; the reason quotes why
it was not computed (the evaluation's ``eval.missing.<metric>`` tag, e.g. no ASR judge's weights).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from imagintalk import storage
from imagintalk.config import MetricFloor, PromoteConfig, StorageConfig

EVAL_PREFIX = "eval."
MISSING_PREFIX = "eval.missing."    # + metric: why the evaluation could not compute it
AUDIT_TAG = "audit.passed"
DATA_TAGS = ("data.shards", "eval.shards")
EVAL_DATA_TAG = "eval.data_version"
EVAL_CORPUS_TAG = "eval.corpus"
DEFAULT_FLOORS = "default"


@dataclass(frozen=True)
class MetricComparison:
    name: str
    challenger: float | None
    champion: float | None
    higher_is_better: bool
    margin: float
    improvement: float | None       # positive = challenger better
    passed: bool

    def describe(self) -> str:
        if self.challenger is None:
            return f"{self.name}: challenger not evaluated"
        if self.champion is None:
            return f"{self.name}: {self.challenger:.4g} (champion not evaluated)"
        sign = "<" if not self.higher_is_better else ">"
        verdict = "ok" if self.passed else "FAIL"
        return (f"{self.name}: {self.challenger:.4g} vs {self.champion:.4g} "
                f"(better is {sign}, improvement {self.improvement:+.4g}, margin {self.margin:+.4g}) {verdict}")


@dataclass(frozen=True)
class FloorCheck:
    metric: str
    value: float | None
    bound: str                      # e.g. "<= 0.3", ">= ground_truth.dnsmos_p808 - 0.4 (= 2.85)"
    passed: bool
    missing: str | None = None      # why the evaluation could not compute the value, when it said

    def describe(self) -> str:
        if self.value is not None:
            got = f"{self.value:.4g}"
        else:
            got = f"not computed ({self.missing})" if self.missing else "not evaluated"
        return f"{self.metric} {got}, needs {self.bound}"


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    comparisons: tuple[MetricComparison, ...]
    floors: tuple[FloorCheck, ...] = ()

    def comparison_json(self) -> str:
        return json.dumps([asdict(c) for c in self.comparisons], sort_keys=True)

    def floors_json(self) -> str:
        # ``missing`` only where the evaluation said why a value is absent
        return json.dumps([{k: v for k, v in asdict(f).items() if k != "missing" or v is not None}
                           for f in self.floors], sort_keys=True)


def eval_metric(tags: Mapping[str, str], name: str) -> float | None:
    """``eval.<name>`` as a float; None when absent or not a finite number."""
    raw = tags.get(f"{EVAL_PREFIX}{name}")
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def missing_reason(tags: Mapping[str, str], key: str) -> str | None:
    """Why the evaluation did not compute ``key`` (``wer``, ``resynthesis.wer``), if it recorded why."""
    from imagintalk.eval.catalog import split_key

    try:
        _, metric = split_key(key)
    except ValueError:
        return None
    return tags.get(f"{MISSING_PREFIX}{metric}")


def floors_for(tags: Mapping[str, str], cfg: PromoteConfig) -> tuple[str, list[MetricFloor]]:
    """(corpus, its floors): the challenger's ``eval.corpus`` entry, else ``default``, else none."""
    corpus = tags.get(EVAL_CORPUS_TAG, "")
    if corpus in cfg.floors:
        return corpus, cfg.floors[corpus]
    return corpus, cfg.floors.get(DEFAULT_FLOORS, [])


def check_floor(tags: Mapping[str, str], floor: MetricFloor) -> FloorCheck:
    """One floor against the version's own eval tags (a missing value fails it)."""
    value = eval_metric(tags, floor.metric)
    base = 0.0
    if floor.relative_to is not None:
        ref = eval_metric(tags, floor.relative_to)
        if ref is None:
            why = missing_reason(tags, floor.relative_to)
            ref_state = f"not computed: {why}" if why else "not evaluated"
            return FloorCheck(floor.metric, value, f"{floor.relative_to} ({ref_state})", False,
                              missing_reason(tags, floor.metric) if value is None else None)
        base = ref

    def bound(op: str, x: float) -> str:
        if floor.relative_to is None:
            return f"{op} {x:.4g}"
        return f"{op} {floor.relative_to} {x:+.4g} (= {base + x:.4g})"

    parts, ok = [], value is not None
    if floor.min is not None:
        parts.append(bound(">=", floor.min))
        ok = ok and value >= base + floor.min
    if floor.max is not None:
        parts.append(bound("<=", floor.max))
        ok = ok and value <= base + floor.max
    return FloorCheck(floor.metric, value, " and ".join(parts), bool(ok),
                      missing_reason(tags, floor.metric) if value is None else None)


def compare_metrics(challenger: Mapping[str, str], champion: Mapping[str, str] | None,
                    cfg: PromoteConfig) -> GateDecision:
    """Apply the gate to two versions' tags; ``champion=None`` means there is none yet.
    The challenger's corpus floors come first: below one, it is refused whatever the champion."""
    corpus, floors = floors_for(challenger, cfg)
    checks = tuple(check_floor(challenger, f) for f in floors)
    below = [f for f in checks if not f.passed]
    decision = _compare(challenger, champion, cfg)
    if below:
        return GateDecision(False, f"below the floors of {corpus or DEFAULT_FLOORS}: "
                                   + "; ".join(f.describe() for f in below), decision.comparisons, checks)
    if checks:
        note = f" (all {len(checks)} floors of {corpus or DEFAULT_FLOORS} met)"
    else:
        note = f" (no floors for corpus {corpus or '?'})" if cfg.floors else ""
    return GateDecision(decision.passed, decision.reason + note, decision.comparisons, checks)


def _compare(challenger: Mapping[str, str], champion: Mapping[str, str] | None,
             cfg: PromoteConfig) -> GateDecision:
    """The champion comparison alone."""
    comps: list[MetricComparison] = []
    for m in cfg.metrics:
        ch = eval_metric(challenger, m.name)
        cp = eval_metric(champion, m.name) if champion is not None else None
        if ch is None or cp is None:
            comps.append(MetricComparison(m.name, ch, cp, m.higher_is_better, m.margin, None,
                                          passed=ch is not None and champion is None))
            continue
        improvement = (ch - cp) if m.higher_is_better else (cp - ch)
        comps.append(MetricComparison(m.name, ch, cp, m.higher_is_better, m.margin, improvement,
                                      passed=improvement >= m.margin))
    comps_t = tuple(comps)
    missing = [c.name for c in comps if c.challenger is None]
    if missing:
        why = "".join(f"; {m} not computed: {r}" for m in missing if (r := missing_reason(challenger, m)))
        return GateDecision(False, f"challenger not evaluated: no eval.{', eval.'.join(missing)}{why}", comps_t)
    if champion is None:
        return GateDecision(True, "no champion yet: first evaluated challenger", comps_t)
    missing = [c.name for c in comps if c.champion is None]
    if missing:
        return GateDecision(False, f"champion has no eval.{', eval.'.join(missing)}: cannot compare "
                                   "(promote explicitly with --version)", comps_t)
    if cfg.require_same_eval_data:
        a, b = challenger.get(EVAL_DATA_TAG), champion.get(EVAL_DATA_TAG)
        if not a or a != b:
            return GateDecision(False, f"evaluated on different data ({a} vs {b})", comps_t)
    failed = [c for c in comps if not c.passed]
    if failed:
        return GateDecision(False, "worse than champion: " + "; ".join(c.describe() for c in failed), comps_t)
    if cfg.require_strict_improvement and not any((c.improvement or 0.0) > 0 for c in comps):
        return GateDecision(False, "no gate metric improves on the champion", comps_t)
    return GateDecision(True, "beats champion: " + "; ".join(c.describe() for c in comps), comps_t)


def audit_status(tags: Mapping[str, str], cfg: PromoteConfig,
                 storage_cfg: StorageConfig | None = None) -> tuple[bool | None, str]:
    """Whether the version's data passed the audit, and where that came from.

    The ``audit.passed`` tag wins; otherwise the audit's ``result.json`` under the shard root the
    version was trained/evaluated on. ``None`` = unknown (no tag, no result file).
    """
    tag = tags.get(AUDIT_TAG)
    if tag is not None:
        return tag.strip().lower() == "true", f"tag {AUDIT_TAG}={tag}"
    for key in DATA_TAGS:
        root = tags.get(key)
        if not root:
            continue
        url = storage.join(root, cfg.audit_result)
        if storage.exists(url, storage_cfg):
            try:
                result = json.loads(storage.read_text(url, storage_cfg))
            except json.JSONDecodeError:
                return False, f"{url}: not valid JSON"
            return bool(result.get("passed")), url
    return None, f"no {AUDIT_TAG} tag and no {cfg.audit_result} under the data root"
