"""Discrete speech tokens: semantic units (k-means over 50 Hz features) and acoustic codes
(residual k-means over 50 Hz log-mel). Both are versioned artifacts: ``<name>.npz`` + ``<name>.json``.
"""

from imagintalk.tokenizers.codec import ResidualCodec
from imagintalk.tokenizers.units import UnitTokenizer

UNIT_TOKENIZER_FILE = "unit_tokenizer.npz"
CODEC_FILE = "codec.npz"

__all__ = ["CODEC_FILE", "UNIT_TOKENIZER_FILE", "ResidualCodec", "UnitTokenizer"]
