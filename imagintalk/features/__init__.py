"""Audio features on the video clock: 100 Hz log-mel/MFCC (4 per video frame), 50 Hz pooling,
Griffin-Lim resynthesis."""

from imagintalk.features.audio import frames_50hz, griffin_lim, log_mel, mfcc, upsample_100hz

__all__ = ["frames_50hz", "griffin_lim", "log_mel", "mfcc", "upsample_100hz"]
