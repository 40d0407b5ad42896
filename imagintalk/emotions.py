"""Corpus emotion labels onto the one vocabulary (defined in imagintalk.conventions, DESIGN.md §2)."""

from __future__ import annotations

from imagintalk.conventions import EMOTION_INDEX, EMOTIONS, UNKNOWN_EMOTION

__all__ = ["EMOTIONS", "EMOTION_INDEX", "UNKNOWN_EMOTION", "emotion_override", "normalize_emotion"]

# Corpus codes and synonyms onto the vocabulary. CREMA-D: ANG DIS FEA HAP NEU SAD.
# RAVDESS third field: 01 neutral 02 calm 03 happy 04 sad 05 angry 06 fearful 07 disgust 08 surprised.
# MEAD folder names: angry contempt disgusted fear happy neutral sad surprised.
_ALIASES = {
    "ang": "angry", "dis": "disgusted", "fea": "fearful", "hap": "happy", "neu": "neutral", "sad": "sad",
    "fear": "fearful", "disgust": "disgusted", "surprise": "surprised", "anger": "angry",
    "happiness": "happy", "sadness": "sad",
}


def normalize_emotion(label: str | None) -> str | None:
    """Map a corpus label onto the vocabulary; ``None`` when the corpus has no label.

    Raises ValueError for a label that maps to nothing, so an unknown code is never silently kept.
    """
    if label is None or label == "":
        return None
    key = label.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in EMOTION_INDEX:
        raise ValueError(f"unknown emotion label {label!r}")
    return key


def emotion_override(name: str | None) -> int | None:
    """A user's choice of emotion (``speak --emotion``, the endpoint's ``emotion`` field) → its
    index in the vocabulary; None or "" → None (the emotion is read from the face). A name
    outside the vocabulary is a one-line ConfigError that lists the vocabulary."""
    if name is None or str(name).strip() == "":
        return None
    key = str(name).strip().lower()
    if key not in EMOTION_INDEX:
        from imagintalk.errors import ConfigError

        raise ConfigError("emotion", f"unknown emotion {name!r}: choose from {', '.join(EMOTIONS)}")
    return EMOTION_INDEX[key]
