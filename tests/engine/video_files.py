"""Test helpers: small videos with what the colorizer cannot carry over (an audio track)
or miscounts (an edit list), written with PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def video_with_audio(path: Path, frames: list[np.ndarray], fps: int = 12) -> Path:
    """An MP4 of ``frames`` (HxWx3 uint8, even sizes), each a keyframe, with a 1 s tone."""
    import av

    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=fps)
        v.height, v.width = frames[0].shape[:2]
        v.pix_fmt = "yuv420p"
        v.gop_size = 1  # every frame a keyframe: a cut anywhere decodes
        a = c.add_stream("aac", rate=44100)
        for img in frames:
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        tone = (0.2 * np.sin(np.arange(44100) / 10.0)).astype(np.float32)[None]
        for s in range(0, tone.shape[1], 1024):
            af = av.AudioFrame.from_ndarray(tone[:, s : s + 1024].copy(), "fltp", "mono")
            af.sample_rate = 44100
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    return path


def cut_with_edit_list(src: Path, path: Path, cut: int) -> Path:
    """``src``'s video track with its first ``cut`` frames hidden by an edit list (as
    `ffmpeg -ss ... -c copy` writes): its header counts more frames than decode."""
    import av

    with av.open(str(src)) as inp, av.open(str(path), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        step = int(round(1 / (vin.average_rate * vin.time_base)))
        for pkt in inp.demux(vin):
            if pkt.dts is None:
                continue
            pkt.pts -= cut * step
            pkt.dts -= cut * step
            pkt.stream = vout
            out.mux(pkt)
    return path
