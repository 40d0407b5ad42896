"""Training data: the WebDataset loader over shards (local or s3://)."""

from imagintalk.data.loader import UNKNOWN_EMOTION, collate, make_dataset, make_loader, resolve_shards

__all__ = ["UNKNOWN_EMOTION", "collate", "make_dataset", "make_loader", "resolve_shards"]
