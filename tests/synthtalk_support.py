"""The session's SynthTalk corpus (conftest's synthtalk_* fixtures): its size and params.

Not a test module; imported by conftest.py and the tests that check counts against it."""

from __future__ import annotations

from train_support import tiny_params

from imagintalk.config import Params, SynthConfig

# 4 speakers x 2 clips (seed 0): 1 train, 1 val and 2 unseen test speakers (an evaluation's
# speaker-judge floor needs two different test speakers)
SPEAKERS, CLIPS, TEST_SPEAKERS = 4, 2, 2
N_CLIPS = SPEAKERS * CLIPS


def synthtalk_params() -> Params:
    """Tiny training params (train_support.tiny_params) with the session corpus's synth section."""
    synth = SynthConfig(speakers=SPEAKERS, clips_per_speaker=CLIPS, test_speakers=TEST_SPEAKERS, seed=0)
    return tiny_params().model_copy(update={"synth": synth})
