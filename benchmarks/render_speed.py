"""Time ramos.motion.render on the embedded walk clip: a 200-frame GIF, a strip and a 6-row grid.

    python benchmarks/render_speed.py

Prints one result line and updates benchmarks/results/render_speed.json.
"""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from ramos.motion import render
from ramos.motion.io import READERS
from ramos.motion.skeleton import HUMANML3D
from ramos.utils.atomic import write_json


def main() -> None:
    clips = READERS["builtin"].read_all(None)
    walk = next(c for c in clips if c.labels == ["walk"]).positions
    motion = np.concatenate([walk] * 6)[:200]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        render.render_gif(motion, HUMANML3D, Path(tmp) / "a.gif", fps=20)
        t1 = time.perf_counter()
        render.render_strip(motion, HUMANML3D, Path(tmp) / "a.png", n_frames=8)
        t2 = time.perf_counter()
        render.render_grid([c.positions for c in clips[:6]], HUMANML3D, Path(tmp) / "g.png", n_frames=6)
        t3 = time.perf_counter()
    result = {"gif_200_frames_s": round(t1 - t0, 3), "strip_8_s": round(t2 - t1, 3),
              "grid_6x6_s": round(t3 - t2, 3), "machine": platform.processor() or platform.machine(),
              "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    print(f"render_speed: GIF 200 frames {result['gif_200_frames_s']} s, strip {result['strip_8_s']} s, "
          f"grid {result['grid_6x6_s']} s")
    out = Path(__file__).parent / "results" / "render_speed.json"
    write_json(out, result)


if __name__ == "__main__":
    main()
