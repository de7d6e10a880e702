"""The GPU acceptance run: ``PYTHONPATH=$PWD python3 scripts/gpu_acceptance.py --out DIR`` from
the source tree on a GPU machine (8 minutes on an H100), or ``--rehearse`` on a CPU with the
stand-in CuPy of tests/fakecupy.  See gpucnn/bench/acceptance.py and docs/benchmarks.md."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # the source tree's gpucnn, as its children get it
    sys.path.insert(0, ROOT)

from gpucnn.bench.acceptance import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(root=ROOT))
