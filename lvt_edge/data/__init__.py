"""Clip sets: layouts, decoding under a clip contract, bad-input handling, synthetic motion clips.

Needs numpy and OpenCV, never torch (calibration and evaluation use it without torch).
"""

from lvt_edge.data.clipset import Clip, ClipSet, open_clipset
from lvt_edge.data.decode import BadClip, clip_window, decode_clip, measure_frame_interval
from lvt_edge.data.load import BadClipWarning, DecodedClips, LoadedClips, decode_clips, load_clips

__all__ = [
    "BadClip", "BadClipWarning", "Clip", "ClipSet", "DecodedClips", "LoadedClips", "clip_window",
    "decode_clip", "decode_clips", "load_clips", "measure_frame_interval", "open_clipset",
]
