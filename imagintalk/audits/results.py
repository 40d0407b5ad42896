"""Structured audit results: what the CLI table, ``result.json`` and the Dagster asset checks read.

GX's own validation results are kept for the data docs; these small dataclasses are the stable
contract our code depends on (one outcome per expectation id, its severity from params, and the
offending clip ids), so a GX upgrade changes one adapter, not every caller.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from imagintalk.config import Severity


@dataclass(frozen=True)
class Offender:
    """One offending row: its id (a clip id, a shard path, a split) and what was wrong with it."""

    id: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.id} ({self.detail})" if self.detail else self.id


@dataclass(frozen=True)
class ExpectationOutcome:
    """The verdict of one expectation of one suite."""

    id: str                    # e.g. "manifest.speaker_disjoint_splits" (key of audit.severity)
    suite: str
    severity: Severity
    success: bool
    description: str
    expectation_type: str      # the GX expectation behind it, e.g. "expect_column_values_to_be_unique"
    observed: str = ""         # GX's observed value or unexpected count, as text
    offenders: tuple[Offender, ...] = ()
    error: str | None = None   # GX raised while evaluating (e.g. a column is missing)

    @property
    def blocking_failure(self) -> bool:
        return not self.success and self.severity == "blocking"


@dataclass(frozen=True)
class SuiteResult:
    """All outcomes of one GX suite run over one table."""

    name: str
    n_rows: int
    outcomes: tuple[ExpectationOutcome, ...]

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    @property
    def passed(self) -> bool:
        return not any(o.blocking_failure for o in self.outcomes)

    def outcome(self, expectation_id: str) -> ExpectationOutcome:
        for o in self.outcomes:
            if o.id == expectation_id:
                return o
        raise KeyError(expectation_id)


@dataclass
class AuditResult:
    """The result of ``imagintalk audit TARGET``; ``passed`` is False when a blocking expectation failed."""

    target: str
    kind: Literal["manifest", "shards"]
    suites: list[SuiteResult]
    report_dir: Path | None = None
    data_docs: Path | None = None      # index.html of the GX data docs, when a report dir was given
    result_json: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def outcomes(self) -> list[ExpectationOutcome]:
        return [o for s in self.suites for o in s.outcomes]

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    @property
    def blocking_failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if o.blocking_failure]

    @property
    def passed(self) -> bool:
        return not self.blocking_failures

    def failed_ids(self) -> set[str]:
        return {o.id for o in self.failures}

    def summary_line(self) -> str:
        n = len(self.outcomes)
        warnings = len(self.failures) - len(self.blocking_failures)
        verdict = "PASSED" if self.passed else "FAILED"
        where = f"; report {self.report_dir}" if self.report_dir else ""
        return (f"audit {verdict}: {self.kind} {self.target}: {n - len(self.failures)}/{n} expectations met, "
                f"{len(self.blocking_failures)} blocking failure(s), {warnings} warning(s){where}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form written to ``result.json`` (every offender, not only the listed ones)."""
        return {
            "target": self.target,
            "kind": self.kind,
            "passed": self.passed,
            "summary": self.summary_line(),
            "data_docs": str(self.data_docs) if self.data_docs else None,
            "suites": [
                {"name": s.name, "n_rows": s.n_rows, "passed": s.passed,
                 "outcomes": [{**asdict(o), "offenders": [asdict(x) for x in o.offenders]}
                              for o in s.outcomes]}
                for s in self.suites
            ],
            **({"extra": self.extra} if self.extra else {}),
        }
