"""Corpus recipes (one module per corpus, ``scan_<corpus>(root) -> ScanResult``), their cards in
``datasets/``, the shared ingest step (``imagintalk.corpora.ingest``) and the manifest schema."""
