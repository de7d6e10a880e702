"""The seeds' experiments as functions that return results, and their report writers.

* :func:`run_reproduce` / :func:`write_report`: the source document's (seeds/000) L2 and
  dropout experiment, replicated over seeds and training-set sizes (``gpucnn reproduce``), with
  :func:`conclude` drawing the conclusion from paired intervals (:mod:`.stats`);
* :func:`run_sanity` / :func:`run_sweep`: seed 002's sanity checks and design sweeps
  (``gpucnn experiment sanity|sweep``).

Settings come from :func:`make_settings` (defaults, a TOML file, then flags).
"""
from .common import DATASET_MODELS, Settings, make_settings, read_config, seed_table, train_run
from .reproduce import run_reproduce
from .reproduce_conclusion import conclude
from .reproduce_report import write_report
from .studies import BASE_NET, SWEEPS, run_sanity, run_sweep, write_sanity, write_sweep

__all__ = ["BASE_NET", "DATASET_MODELS", "SWEEPS", "Settings", "conclude", "make_settings",
           "read_config", "run_reproduce", "run_sanity", "run_sweep", "seed_table", "train_run",
           "write_report", "write_sanity", "write_sweep"]
