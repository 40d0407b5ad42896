"""Stage ``audit``: run the GX suites on a manifest or a shard root (DESIGN.md §5, CLI §7).

The same function serves the CLI (`imagintalk audit`), dvc.yaml and the Dagster assets. It prints
a table of the failures with the offending clip ids, writes the data docs (HTML) and
``result.json`` into ``report`` when given, and returns an :class:`AuditResult` whose ``passed`` is
False when a blocking expectation failed (the CLI then exits 1).
"""

from __future__ import annotations

import logging
from pathlib import Path

from imagintalk.audits.gx_session import GXSession
from imagintalk.audits.report import print_failures, write_result_json
from imagintalk.audits.results import AuditResult
from imagintalk.audits.suites import audit_manifest, audit_shards
from imagintalk.audits.targets import is_manifest_target, load_manifest_tables, load_shard_tables
from imagintalk.config import Params, load_params

log = logging.getLogger(__name__)
DOCS_DIR = "data_docs"

__all__ = ["AuditResult", "audit_target"]


def audit_target(target: str | Path, report: Path | None = None, params: Params | None = None) -> AuditResult:
    """Audit ``target`` (a manifest ``.parquet``, or a shard root: local path or fsspec URL).

    Raises ConfigError / CorpusLayoutError when the target cannot be read at all (missing file,
    no index.json, malformed JSON): that is bad input, not a data-quality finding.
    """
    params = params or load_params()
    target = str(target)
    report = Path(report) if report is not None else None
    session = GXSession(docs_dir=report / DOCS_DIR if report is not None else None)
    if is_manifest_target(target):
        suites = audit_manifest(load_manifest_tables(target), params, session)
        kind = "manifest"
    else:
        tables = load_shard_tables(target, params.storage, verify_sha256=params.audit.verify_tar_sha256,
                                   max_listed=params.audit.max_listed_failures)
        suites = audit_shards(tables, params, session)
        kind = "shards"
    result = AuditResult(target=target, kind=kind, suites=suites, report_dir=report,
                         data_docs=session.docs_index())
    print_failures(result, params.audit.max_listed_failures)
    if report is not None:
        result.result_json = write_result_json(result, report)
    for o in result.failures:
        log.info("audit %s %s: %s (%d offenders)", o.severity, o.id, o.observed, len(o.offenders))
    return result
