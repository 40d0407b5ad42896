"""ImaginTalk: raw talking-face corpora -> audited shards -> video-to-speech model -> registry -> speech."""

import os as _os

# Must precede the first torch import: with OpenMP's default active spin-waiting, 2 torch threads
# on a busy 2-core machine (Ray workers, GX, dlib beside us) ran 10-30x slower than 1 thread.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
PIPELINE_VERSION = "3"  # 2: speaker.npy in every record; 3: landmarks.npy (expression features)
