"""The Great Expectations 1.x adapter: one ephemeral context per audit.

Why ephemeral: an audit is a pure function of the tables it is given; nothing about it should
persist between runs except the report (data docs HTML + result.json), which goes to the report
directory through a filesystem data-docs site. One context per audit keeps GX's start-up cost to
one import and a few milliseconds per suite.

Every suite is a pandas data asset with a whole-dataframe batch definition, an ExpectationSuite,
a ValidationDefinition and a Checkpoint; the data docs are built once at the end of the audit.
Our expectation ids and severities ride in each expectation's ``meta`` and ``description``, so the
data docs show them, and the GX results are mapped back onto :mod:`imagintalk.audits.results`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.metadata_types import FailureSeverity

from imagintalk.audits.results import ExpectationOutcome, Offender, SuiteResult
from imagintalk.config import Severity

DOCS_SITE = "imagintalk_audit"
RUN_NAME = "imagintalk-audit"


@dataclass(frozen=True)
class ExpectationSpec:
    """One audit expectation: our id and severity, and the GX expectation that checks it.

    ``detail_columns`` are looked up for each offending row and shown next to its id (e.g. the
    speaker and split of a clip whose speaker is in two splits). Aggregate expectations (row
    count, mean) have no offending rows in GX's result; ``offenders`` then lists them from the
    table (e.g. the quarantined inputs behind a too-high quarantine rate).
    """

    id: str
    severity: Severity
    description: str
    expectation: Expectation
    detail_columns: tuple[str, ...] = ()
    offenders: Callable[[pd.DataFrame], list[Offender]] | None = None


@dataclass
class SuiteSpec:
    """A named table and the expectations to run on it; ``id_column`` names each row's offender id."""

    name: str
    frame: pd.DataFrame
    id_column: str
    expectations: list[ExpectationSpec] = field(default_factory=list)


class GXSession:
    """An ephemeral GX context; pass ``docs_dir`` to render data docs (HTML) there."""

    def __init__(self, docs_dir: Path | None = None):
        self.context = gx.get_context(mode="ephemeral")
        # GX's tqdm bars would interleave with our own progress and table; we print one summary.
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_pandas("imagintalk")
        self.docs_dir = Path(docs_dir) if docs_dir is not None else None
        self.run_id = RunIdentifier(run_name=RUN_NAME, run_time=dt.datetime.now(dt.UTC))
        if self.docs_dir is not None:
            self.docs_dir.mkdir(parents=True, exist_ok=True)
            self.context.add_data_docs_site(site_name=DOCS_SITE, site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(self.docs_dir.resolve())},
            })

    def validate(self, spec: SuiteSpec) -> SuiteResult:
        """Run one suite over its table and return our structured result."""
        frame = spec.frame.reset_index(drop=True)
        if spec.id_column not in frame.columns:
            raise KeyError(f"suite {spec.name}: id column {spec.id_column!r} not in the table")
        batch = self.source.add_dataframe_asset(spec.name).add_batch_definition_whole_dataframe("all")
        suite = self.context.suites.add(gx.ExpectationSuite(
            name=spec.name, expectations=[e.expectation for e in spec.expectations]))
        validation = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=spec.name, data=batch, suite=suite))
        checkpoint = self.context.checkpoints.add(gx.Checkpoint(
            name=f"audit_{spec.name}", validation_definitions=[validation], actions=[],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [spec.id_column]},
        ))
        run = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=self.run_id)
        by_id = {e.id: e for e in spec.expectations}
        outcomes: list[ExpectationOutcome] = []
        for validation_result in run.run_results.values():
            for r in validation_result.results:
                audit_id = r.expectation_config.meta["audit_id"]
                outcomes.append(_outcome(by_id[audit_id], spec, frame, r))
        order = {e.id: i for i, e in enumerate(spec.expectations)}
        outcomes.sort(key=lambda o: order[o.id])
        return SuiteResult(name=spec.name, n_rows=len(frame), outcomes=tuple(outcomes))

    def docs_index(self) -> Path | None:
        """Render the data docs of every suite run so far; returns their index.html.

        Built once per audit rather than by an UpdateDataDocsAction on each checkpoint: every
        build re-renders the whole site, so one build at the end saves a render per suite.
        """
        if self.docs_dir is None:
            return None
        self.context.build_data_docs(site_names=[DOCS_SITE])
        index = self.docs_dir / "index.html"
        return index if index.exists() else None


def make_expectation(cls: type[Expectation], audit_id: str, severity: Severity, description: str,
                     **kwargs: Any) -> Expectation:
    """A GX expectation tagged with our id and severity.

    The ``description`` replaces GX's generated sentence in the data docs, so a reader sees the
    id that the failure table and result.json use; GX's own ``severity`` mirrors ours.
    ``catch_exceptions`` turns a missing column into a failed expectation instead of an abort.
    """
    return cls(meta={"audit_id": audit_id, "severity": severity},
               description=f"{audit_id} [{severity}]: {description}",
               severity=FailureSeverity.CRITICAL if severity == "blocking" else FailureSeverity.WARNING,
               catch_exceptions=True, **kwargs)


def _outcome(spec: ExpectationSpec, suite: SuiteSpec, frame: pd.DataFrame, r: Any) -> ExpectationOutcome:
    result = r.result or {}
    info = r.exception_info or {}
    error = info.get("exception_message") if info.get("raised_exception") else None
    offenders: list[Offender] = []
    if not r.success:
        if spec.offenders is not None:
            offenders = spec.offenders(frame)
        else:
            offenders = _row_offenders(result.get("unexpected_index_list") or [], suite.id_column,
                                       spec.detail_columns, frame)
    return ExpectationOutcome(
        id=spec.id, suite=suite.name, severity=spec.severity, success=bool(r.success),
        description=spec.description, expectation_type=r.expectation_config.type,
        observed=_observed(result), offenders=tuple(offenders), error=error,
    )


def _row_offenders(entries: list[dict[str, Any]], id_column: str, detail_columns: tuple[str, ...],
                   frame: pd.DataFrame) -> list[Offender]:
    """Offending rows from GX's unexpected index list, one per id, with the tested values."""
    rows = frame.drop_duplicates(id_column).set_index(id_column) if detail_columns else None
    seen: dict[str, Offender] = {}
    for entry in entries:
        oid = str(entry.get(id_column))
        if oid in seen:
            continue
        values = {k: v for k, v in entry.items() if k != id_column}
        if rows is not None and oid in rows.index:
            values.update({c: rows.at[oid, c] for c in detail_columns})
        seen[oid] = Offender(oid, ", ".join(f"{k}={_fmt(v)}" for k, v in values.items()))
    return list(seen.values())


def _observed(result: dict[str, Any]) -> str:
    if "observed_value" in result:
        return _fmt(result["observed_value"])
    if "unexpected_count" in result:
        return f"{result['unexpected_count']} of {result.get('element_count', '?')} rows unexpected"
    return ""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "null" if math.isnan(value) else f"{value:.4g}"
    if value is None:
        return "null"
    if hasattr(value, "item"):  # numpy scalar
        return _fmt(value.item())
    return str(value)
