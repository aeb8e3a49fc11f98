"""Live classification: sources, time-based windows, the decoupled stream, smoothing and events.

    from lvt_edge.runtime import load_bundle
    from lvt_edge.stream import LiveStream, StreamSettings, open_source

    with load_bundle("lvt-bundle", "int8") as clf, LiveStream(clf, open_source("0")) as stream:
        while not stream.finished:
            messages, frames = stream.poll(0.1)   # classifications, events, status, stats

A causal bundle streams with `load_step(...)` and `StreamSettings(mode="stream")`: one
classification per captured frame from carried states (lvt_edge.stream.phases).

Torch-free: numpy, OpenCV and the runtime only.
"""

from lvt_edge.stream.live import LiveStream, StreamSettings
from lvt_edge.stream.phases import PhaseScheduler
from lvt_edge.stream.smooth import EventDetector, Smoother
from lvt_edge.stream.sources import Frame, Source, SourceOptions, csi_pipeline, gstreamer_available, open_source
from lvt_edge.stream.window import FrameRing, pick_frames, window_times

__all__ = [
    "EventDetector", "Frame", "FrameRing", "LiveStream", "PhaseScheduler", "Smoother", "Source", "SourceOptions", "StreamSettings",
    "csi_pipeline", "gstreamer_available", "open_source", "pick_frames", "window_times",
]
