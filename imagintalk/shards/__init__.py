"""WebDataset shards of the sample record (DESIGN.md §3): record codec, writer, index."""

from imagintalk.shards.index import build_index, read_index, read_quarantine, shard_urls
from imagintalk.shards.record import (
    FIELDS,
    ShardRecord,
    clip_id_to_key,
    decode_field,
    decode_record,
    encode_record,
    key_to_clip_id,
)
from imagintalk.shards.writer import ShardSpec, plan_shards, read_sidecar, write_shard

__all__ = [
    "FIELDS", "ShardRecord", "ShardSpec", "build_index", "clip_id_to_key", "decode_field", "decode_record",
    "encode_record", "key_to_clip_id", "plan_shards", "read_index", "read_quarantine", "read_sidecar",
    "shard_urls", "write_shard",
]
