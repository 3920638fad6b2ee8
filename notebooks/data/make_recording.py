"""Make the small recording ``analysis.ipynb`` reads: ``python notebooks/data/make_recording.py``.

The demo pipeline for a few seconds with tracing on and a tap on the filter's output; the
cutoff is changed half-way and a small result table is added. Writes ``demo.ezrec`` here
(about 0.3 MB). Re-run it only to change the data; the notebook's outputs then change too
(rebuild it with ``python notebooks/build.py analysis``).
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from ezmsg_lab import Lab
from ezmsg_lab.demo import DemoPipeline

HERE = Path(__file__).parent


def main() -> None:
    path = HERE / "demo.ezrec"
    with Lab(poll_hz=5) as lab:
        lab.launch(DemoPipeline(), name="DEMO")
        lab.wait_for_profile()
        with lab.record(path, taps=["DEMO/FILTER/OUTPUT_SIGNAL"], overwrite=True) as rec:
            lab.trace(duration=3.0, wait=True)
            lab.set("DEMO/FILTER", cutoff_hz=40.0)
            time.sleep(2.0)
            p99 = lab.latency(since="2s").query("metric == 'user_span_ns'")["p99_ms"].max()
            rec.add_result("check", pd.DataFrame({"cutoff_hz": [40.0], "p99_ms": [p99]}))
    print(path, f"{path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
