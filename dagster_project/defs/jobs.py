"""Jobs over the asset graph: the whole flow, retraining after new raw data, the nightly audit."""

from __future__ import annotations

import dagster as dg

from dagster_project.defs.partitions import corpus_partitions

full_pipeline = dg.define_asset_job("full_pipeline", selection=dg.AssetSelection.all(),
                                    partitions_def=corpus_partitions)
# New raw clips: everything from the manifest on is affected; the raw corpus itself is the input.
retrain_job = dg.define_asset_job("retrain_on_new_data", selection=dg.AssetSelection.assets("ingest").downstream(),
                                  partitions_def=corpus_partitions)
nightly_audit_job = dg.define_asset_job(
    "nightly_audit", selection=dg.AssetSelection.assets("audit_manifest", "audit_shards"),
    partitions_def=corpus_partitions)
