"""Names everything else agrees on: corpora, media extensions, file names of the artefacts, and
the vocabularies (emotions, SynthTalk's metadata columns). One definition each, imported
wherever the name is used, so a new extension or corpus is added in one place."""

from __future__ import annotations

# Corpora with a recipe in imagintalk/corpora/<name>.py (scan_<name>) and a card in datasets/.
CORPORA: tuple[str, ...] = ("synthtalk", "grid", "lrs2", "lrs3", "voxceleb2", "cremad", "mead", "ravdess")

SPLITS: tuple[str, ...] = ("train", "val", "test")   # speaker-disjoint

# Media a corpus, `speak` or the raw-clip sensor reads (lower-case suffixes).
VIDEO_SUFFIXES = frozenset({".mp4", ".mpg", ".mpeg", ".flv", ".avi", ".mov", ".mkv", ".webm"})
AUDIO_SUFFIXES = frozenset({".wav", ".m4a", ".flac", ".mp3", ".aac"})
MEDIA_SUFFIXES = VIDEO_SUFFIXES | AUDIO_SUFFIXES

# A shard root: the dataset index (the data version) and the clips refused while sharding.
INDEX_NAME = "index.json"
QUARANTINE_NAME = "quarantine.json"

# Fitted tokenizers in a tokenizer directory (each with a <stem>.json beside it).
UNIT_TOKENIZER_FILE = "unit_tokenizer.npz"
CODEC_FILE = "codec.npz"
TOKENIZER_FILES = (UNIT_TOKENIZER_FILE, CODEC_FILE)
# In a shard root: a copy of the tokenizers its shards were made with (the shard step writes it).
SHARD_TOKENIZER_DIR = "_tokenizers"

# SynthTalk's table at the corpus root: written by the generator, read by the recipe.
SYNTHTALK_METADATA = "metadata.csv"
SYNTHTALK_METADATA_COLUMNS: tuple[str, ...] = (
    "split", "speaker", "clip", "transcript", "emotion", "intensity", "seed", "voice", "identity", "pitch", "rate",
)

# The one emotion vocabulary shared by every corpus, the shards and the model (DESIGN.md §2).
EMOTIONS: tuple[str, ...] = (
    "neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised", "contempt", "calm",
)
EMOTION_INDEX = {name: i for i, name in enumerate(EMOTIONS)}
UNKNOWN_EMOTION = -1   # index of a clip without a label: ignored by losses (like ignore_index)
