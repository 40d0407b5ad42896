"""`imagintalk promote`: the gate between a registered challenger and the serving champion.

The rules live in :mod:`imagintalk.registry.gate` (first the absolute floors of the challenger's
corpus, then the champion comparison); this module reads the registry, applies them, and writes
the outcome where a person will look for it: tags on both versions (decision, reason, the metric
comparison and the floor checks as JSON), a run in the ``imagintalk-promote`` experiment, and,
for the pipeline, promotion.json with a one-line summary. Aliases, not
the deprecated stages: ``champion`` serves, ``previous-champion`` is the one-step rollback target,
``challenger`` is consumed when it wins. ``--version V`` promotes V without the metric comparison
(an operator's rollback) but still refuses data that failed the audit.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from imagintalk.config import Params, load_params
from imagintalk.registry import tracking
from imagintalk.registry.gate import FloorCheck, GateDecision, MetricComparison, audit_status, compare_metrics
from imagintalk.registry.versions import RegistryError, alias_version, all_versions, resolve_version

PROMOTE_EXPERIMENT = "imagintalk-promote"


@dataclass(frozen=True)
class PromoteResult:
    name: str
    version: str
    promoted: bool
    decision: str                   # promoted | first-champion | rollback | already-champion | refused
    reason: str
    champion_before: str | None
    comparisons: tuple[MetricComparison, ...] = field(default_factory=tuple)
    floors: tuple[FloorCheck, ...] = field(default_factory=tuple)   # the challenger's corpus floors

    def summary_line(self) -> str:
        before = f"v{self.champion_before}" if self.champion_before else "none"
        verdict = "PROMOTED" if self.promoted else "REFUSED"
        return (f"promote {self.name} v{self.version}: {verdict} ({self.decision}); "
                f"champion before: {before}; {self.reason}")


def _pick_candidate(c: MlflowClient, name: str, version: str | None, params: Params) -> ModelVersion:
    if version is not None:
        return resolve_version(c, name, version)
    cfg = params.promote
    challenger = alias_version(c, name, cfg.challenger_alias)
    if challenger is not None:
        return challenger
    versions = all_versions(c, name)
    if not versions:
        raise RegistryError(f"models:/{name}", "no registered version to promote")
    return versions[-1]


def _record(c: MlflowClient, name: str, result: PromoteResult, decision: GateDecision) -> None:
    """Tags on both versions plus a run, so that a refusal is visible in the MLflow UI."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    comparison = decision.comparison_json()
    against = result.champion_before or ""
    for key, value in {"gate.decision": result.decision, "gate.promoted": str(result.promoted).lower(),
                       "gate.reason": result.reason, "gate.against": against,
                       "gate.comparison": comparison, "gate.floors": decision.floors_json(),
                       "gate.time": stamp}.items():
        c.set_model_version_tag(name, result.version, key, value)
    if against and against != result.version:
        for key, value in {"gate.challenged_by": result.version, "gate.challenge_decision": result.decision,
                           "gate.challenge_reason": result.reason, "gate.challenge_comparison": comparison,
                           "gate.challenge_time": stamp}.items():
            c.set_model_version_tag(name, against, key, value)
    exp_id = tracking.ensure_experiment(PROMOTE_EXPERIMENT)
    run = c.create_run(exp_id, run_name=f"{name}-v{result.version}-{result.decision}",
                       tags={"model.name": name, "model.version": result.version,
                             "gate.decision": result.decision, "gate.reason": result.reason,
                             "gate.against": against})
    metrics = {"promoted": float(result.promoted)}
    for comp in result.comparisons:
        for role, value in (("challenger", comp.challenger), ("champion", comp.champion)):
            if value is not None:
                metrics[f"{comp.name}.{role}"] = value
    tracking.log_step_metrics(c, run.info.run_id, metrics, step=0)
    c.log_text(run.info.run_id, comparison, "comparison.json")
    c.log_text(run.info.run_id, decision.floors_json(), "floors.json")
    c.set_terminated(run.info.run_id)


def _move_aliases(c: MlflowClient, name: str, new: str, old: str | None, params: Params) -> None:
    cfg = params.promote
    if old is not None:
        c.set_registered_model_alias(name, cfg.previous_alias, old)
        c.set_model_version_tag(name, old, "gate.replaced_by", new)
        c.set_model_version_tag(name, new, "gate.previous_champion", old)
    c.set_registered_model_alias(name, cfg.champion_alias, new)
    challenger = alias_version(c, name, cfg.challenger_alias)
    if challenger is not None and str(challenger.version) == new:
        c.delete_registered_model_alias(name, cfg.challenger_alias)


def promote_model(name: str = "imagintalk", version: str | None = None, params: Params | None = None,
                  decision_path: str | Path | None = None) -> PromoteResult:
    """Make the challenger (or ``version``) the champion if the gate allows; record the decision
    (and, with ``decision_path``, write it as JSON: the pipeline's record of this step)."""
    params = params or load_params()
    cfg = params.promote
    c = tracking.client()
    candidate = _pick_candidate(c, name, version, params)
    champion = alias_version(c, name, cfg.champion_alias)
    new = str(candidate.version)
    old = str(champion.version) if champion is not None else None
    if old == new:
        same = PromoteResult(name, new, version is not None, "already-champion",
                             "this version already is the champion", old)
        if decision_path is not None:
            write_decision(same, decision_path)
        return same

    tags = dict(candidate.tags or {})
    decision = compare_metrics(tags, dict(champion.tags or {}) if champion is not None else None, cfg)
    audited, audit_source = audit_status(tags, cfg, params.storage)
    if cfg.require_audit and not audited:
        why = "failed" if audited is False else "has no result"
        kind, promoted, reason = "refused", False, f"data audit {why} ({audit_source})"
    elif version is not None:
        kind = "rollback" if old is not None and int(new) < int(old) else "manual"
        promoted, reason = True, f"explicit --version {version}; gate comparison: {decision.reason}"
    elif decision.passed:
        kind, promoted, reason = ("first-champion" if old is None else "promoted"), True, decision.reason
    else:
        kind, promoted, reason = "refused", False, decision.reason

    result = PromoteResult(name, new, promoted, kind, reason, old, decision.comparisons, decision.floors)
    if promoted:
        _move_aliases(c, name, new, old, params)
    _record(c, name, result, decision)
    if decision_path is not None:
        write_decision(result, decision_path)
    return result


def write_decision(result: PromoteResult, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    body = {**asdict(result), "summary": result.summary_line()}
    out.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    return out
