"""Media I/O over PyAV: probe, read frames/audio with timestamps, resample, write mp4/wav/flac."""

from imagintalk.media.audio import read_audio, resample_audio, write_audio
from imagintalk.media.clip import AVClip, align_audio_to_video, read_clip
from imagintalk.media.mux import dub_video
from imagintalk.media.probe import MediaInfo, probe
from imagintalk.media.video import VideoFrames, read_video, resample_frames
from imagintalk.media.writer import write_mp4

__all__ = [
    "AVClip", "MediaInfo", "dub_video", "VideoFrames", "align_audio_to_video", "probe", "read_audio", "read_clip",
    "read_video", "resample_audio", "resample_frames", "write_audio", "write_mp4",
]
