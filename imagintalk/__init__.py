"""ImaginTalk: raw talking-face corpora -> audited shards -> video-to-speech model -> registry -> speech."""

__version__ = "0.1.0"
PIPELINE_VERSION = "1"
