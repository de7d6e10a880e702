"""The source documents' experiments as functions that return results, and their report writers.

* :func:`run_reproduce` / :func:`write_report`: the source document's L2 and dropout experiment
  (seeds/000), replicated over seeds and training-set sizes (``gpucnn reproduce``), with
  :func:`conclude` drawing the conclusion from paired intervals (:mod:`.stats`);
* :func:`run_sanity` / :func:`write_sanity` and :func:`run_sweep` / :func:`write_sweep`: the
  source document's sanity checks and design sweeps (seeds/002), replicated over seeds the same
  way (``gpucnn experiment sanity|sweep``).

Every experiment keeps its runs in its output folder, one file each, and resumes from them
(:mod:`.replicate`).  Settings come from :func:`make_settings` (the schema's defaults, the
experiment's protocol, a TOML file, then flags; see :mod:`gpucnn.config`).
"""
from .common import DATASET_MODELS, Settings, make_settings, read_config, seed_table, train_run
from .reproduce import run_reproduce
from .reproduce_conclusion import conclude
from .reproduce_report import write_report
from .sanity import run_sanity
from .sanity_report import write_sanity
from .sweep import BASE_NET, SWEEPS, run_sweep
from .sweep_report import write_sweep

__all__ = ["BASE_NET", "DATASET_MODELS", "SWEEPS", "Settings", "conclude", "make_settings",
           "read_config", "run_reproduce", "run_sanity", "run_sweep", "seed_table", "train_run",
           "write_report", "write_sanity", "write_sweep"]
