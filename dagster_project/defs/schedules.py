"""The nightly audit: re-run the GX suites on every corpus partition."""


import dagster as dg

from dagster_project.defs.jobs import nightly_audit_job
from dagster_project.defs.partitions import corpus_names


@dg.schedule(job=nightly_audit_job, cron_schedule="0 3 * * *", default_status=dg.DefaultScheduleStatus.STOPPED)
def nightly_audit_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    day = context.scheduled_execution_time.strftime("%Y%m%d")
    return [dg.RunRequest(run_key=f"audit-{c}-{day}", partition_key=c) for c in corpus_names()]
