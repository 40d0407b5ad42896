"""Data-quality audits with Great Expectations (manifest and shard suites, data docs, a blocking gate)."""

from imagintalk.audits.results import AuditResult, ExpectationOutcome, Offender, SuiteResult
from imagintalk.audits.suites import audit_manifest, audit_shards

__all__ = ["AuditResult", "ExpectationOutcome", "Offender", "SuiteResult", "audit_manifest", "audit_shards"]
