"""Dagster entry point (`dagster dev -m dagster_project.definitions`)."""

import dagster as dg

from dagster_project.defs.assets import ASSETS
from dagster_project.defs.jobs import full_pipeline, nightly_audit_job, retrain_job
from dagster_project.defs.resources import default_resources
from dagster_project.defs.schedules import nightly_audit_schedule
from dagster_project.defs.sensors import new_raw_clips_sensor

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[full_pipeline, retrain_job, nightly_audit_job],
    sensors=[new_raw_clips_sensor],
    schedules=[nightly_audit_schedule],
    resources=default_resources(),
)
