"""Asset checks whose verdicts come from the project's own rules: the audit's GX suites (on the
audit assets) and the promotion gate's floors (on the evaluation, imagintalk.registry.gate)."""

from __future__ import annotations

from typing import Any

import dagster as dg

from imagintalk.config import Params
from imagintalk.registry import tracking
from imagintalk.registry.gate import check_floor, floors_for

GX_CHECK = "gx_blocking_expectations"
FLOORS_CHECK = "gate_floors"

CHECK_SPECS: dict[str, list[dg.AssetCheckSpec]] = {
    **{name: [dg.AssetCheckSpec(GX_CHECK, asset=name, blocking=True,
                                description="Great Expectations suite: blocking expectations all pass")]
       for name in ("audit_manifest", "audit_shards")},
    # not blocking: the promote asset still runs and records the gate's refusal with its reason
    "evaluate": [dg.AssetCheckSpec(FLOORS_CHECK, asset="evaluate",
                                   description="the promotion gate's absolute floors for the evaluated corpus "
                                               "(params.yaml promote.floors)")],
}


def gx_check(result: Any, metadata: dict[str, Any]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=GX_CHECK, passed=bool(result.passed),
                               severity=dg.AssetCheckSeverity.ERROR, metadata=metadata)


def floors_check(result: Any, params: Params) -> dg.AssetCheckResult:
    """The evaluated version's eval.* tags against its corpus's floors, by the gate's own rules."""
    if result.version is None:
        return dg.AssetCheckResult(check_name=FLOORS_CHECK, passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                   description=f"{result.model_uri} is not a registered version")
    name = result.model_uri.removeprefix("models:/").split("/")[0].split("@")[0]
    tags = dict(tracking.client().get_model_version(name, result.version).tags or {})
    corpus, floors = floors_for(tags, params.promote)
    checks = [check_floor(tags, f) for f in floors]
    return dg.AssetCheckResult(
        check_name=FLOORS_CHECK, passed=all(c.passed for c in checks), severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(c.describe() for c in checks if not c.passed) or f"{len(checks)} floors met",
        metadata={"corpus": corpus or "default", **{
            f"{c.metric}": dg.MetadataValue.text(f"{'ok' if c.passed else 'BELOW'}: {c.describe()}")
            for c in checks}})
