"""distributed.map_runs over 7 items; rank 0 prints the gathered results as JSON."""
import json
import os

from gpucnn import distributed


def run(item):
    return {"item": item, "square": item * item, "rank": distributed.get_world().rank,
            "pid": os.getpid()}


results = distributed.map_runs(run, range(7))
if distributed.get_world().is_root:
    print("RESULTS " + json.dumps(results))
else:
    assert results is None
