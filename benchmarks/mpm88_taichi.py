"""Time Taichi's own `mpm88` / `mpm3d` examples (shipped inside the taichi package), unchanged but
for the backend and the GUI loop; print one JSON line. Run by benchmarks/simulators.py with a
Python that has taichi installed (it need not have gnsim)."""

import argparse
import json
import time
from pathlib import Path

import taichi as ti

parser = argparse.ArgumentParser()
parser.add_argument("example", choices=["mpm88", "mpm3d"])
parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
parser.add_argument("--seconds", type=float, default=3.0, help="time to measure for")
args = parser.parse_args()

source = (Path(ti.__file__).parent / "examples" / "simulation" / f"{args.example}.py").read_text()
source = source.replace("ti.init(arch=ti.gpu)", f"ti.init(arch=ti.{args.device}, log_level=ti.WARN)")
source = source.split("\ninit()\ngui")[0]  # mpm88 runs its GUI at import; mpm3d guards main()
namespace = {"__name__": "taichi_example"}
exec(compile(source, f"taichi/examples/simulation/{args.example}.py", "exec"), namespace)  # noqa: S102
namespace["init"]()
substep = namespace["substep"]
for _ in range(50):  # compile and warm up
    substep()
ti.sync()
count, start = 0, time.perf_counter()
while time.perf_counter() - start < args.seconds:
    for _ in range(50):
        substep()
    ti.sync()
    count += 50
elapsed = time.perf_counter() - start
print(json.dumps({"particles": namespace["n_particles"], "grid": namespace["n_grid"], "substeps": count,
                  "particle_substeps_per_s": namespace["n_particles"] * count / elapsed,
                  "taichi": ".".join(map(str, ti.__version__))}))
