"""Discrete speech tokens: semantic units (k-means over 50 Hz features) and acoustic codes
(residual k-means over 50 Hz log-mel, or a pretrained neural codec's: ``neural_codec``). All are
versioned artifacts: ``<name>.npz`` + ``<name>.json`` (a pretrained codec's records which weights).
"""

from imagintalk.conventions import CODEC_FILE, UNIT_TOKENIZER_FILE
from imagintalk.tokenizers.codec import ResidualCodec
from imagintalk.tokenizers.units import UnitTokenizer

__all__ = ["CODEC_FILE", "UNIT_TOKENIZER_FILE", "ResidualCodec", "UnitTokenizer"]
