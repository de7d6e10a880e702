"""Internal entry of the CPU memory probes, run in a fresh process by
:func:`gpucnn.bench.memory.cpu_peak_memory`:
``python -m gpucnn.bench --probe-memory FRAMEWORK CONFIG DTYPE STEPS``."""
import json
import os
import sys

from .memory import CHILD_ENV, probe_cpu_memory

if len(sys.argv) == 6 and sys.argv[1] == "--probe-memory" and os.environ.get(CHILD_ENV):
    print(json.dumps(probe_cpu_memory(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))))
else:
    sys.exit("gpucnn.bench is run as `gpucnn bench`; see `gpucnn bench --help`")
