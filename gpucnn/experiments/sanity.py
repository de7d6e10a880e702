"""The source document's sanity checks (seeds/002), replicated over seeds: the initial loss of a
freshly initialised base net against ln(10) and its rise with L2 0.5, and the base net
overfitting a small training subset.

A seed fixes the net's initialisation, the subset (stratified by class), the batch order and the
dropout stream.  The runs are kept, resumed and spread over processes by :mod:`.replicate`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..checks import check_int
from ..config import three_layer_kwargs
from ..models import ThreeLayerConvNet
from .common import Settings, check_train_sizes, public, train_run, training_data
from .replicate import run_replicated
from .stats import band, mean_interval

LN10 = math.log(10)
REG_CHECK = 0.5  # the source's L2 strength for the second initial loss
# The source document's numbers (one CIFAR-10 net): initial loss without and with reg 0.5.
SOURCE_LOSS = {"0": 2.30258789799, "0.5": 2.50854087057}
# A fresh net with small weights scores every class about alike: its loss is ln(10) within this.
LOSS_TOLERANCE = 0.05
OVERFIT_TRAIN, OVERFIT_GAP = 0.95, 0.10  # "training accuracy near 1, validation far lower"


@dataclass(frozen=True)
class SanitySpec:
    """One seed's checks: initial losses, then training on ``subset`` samples."""

    subset: int
    seed: int

    @property
    def key(self) -> str:
        return f"subset{self.subset}_seed{self.seed}"

    @property
    def title(self) -> str:
        return f"{self.subset} training samples"

    def train(self, s: Settings, dataset) -> dict:
        """This seed's initial losses (``initial_loss``: reg -> loss, ``num_weights``) and its
        training run on the subset."""
        data = training_data(dataset, self.subset, self.seed)
        seeded = dataclasses.replace(s, seed=self.seed)
        losses, weights = initial_losses(seeded, data)
        run = public(train_run(seeded, data, self.title, progress=False))
        return {**run, "num_train": len(data["y_train"]), "initial_loss": losses,
                "num_weights": weights}


def initial_losses(s: Settings, data: dict) -> tuple[dict, int]:
    """The loss of the base net ``s`` as initialised for training (seed ``s.seed``, dropout off)
    on the run's training samples, without L2 ("0") and with :data:`REG_CHECK` ("0.5"); and its
    number of weights (those L2 adds up)."""
    meta = data["meta"]
    model = ThreeLayerConvNet(meta.shape, num_classes=meta.num_classes, seed=s.seed,
                              **three_layer_kwargs({**s.to_dict(), "reg": 0.0, "dropout": 0.0}))
    x, y = data["X_train"], data["y_train"]
    without = float(model.loss(x, y)[0])
    model.reg = REG_CHECK
    params = model.state_dict()
    return ({"0": without, f"{REG_CHECK:g}": float(model.loss(x, y)[0])},
            int(sum(params[k].size for k in model.weight_names())))


def run_sanity(s: Settings, folder: str, subset: int = 100, *, fresh: bool = False,
               workers: int | None = None,
               echo=lambda text: print(text, flush=True)) -> dict | None:
    """One run per seed of ``s.seeds`` into ``folder`` (see :func:`.replicate.run_replicated`),
    plus ``subset``.  MPI ranks other than 0 return None."""
    check_int("--subset", subset, 1)
    specs = [SanitySpec(subset, seed) for seed in s.seeds]
    result = run_replicated("sanity", s, folder, specs, fresh=fresh, workers=workers,
                            check=lambda d: check_train_sizes(s, d, {"--subset": subset}),
                            echo=echo)
    return None if result is None else {**result, "subset": subset}


def expected_rise(weight_scale: float | None, num_weights: int) -> float | None:
    """The mean rise of the initial loss with :data:`REG_CHECK` over initialisations: 0.5 * reg *
    E[sum of squared weights] = 0.5 * reg * weight_scale^2 * weights (None for He init, whose
    scale differs per layer)."""
    return None if weight_scale is None else 0.5 * REG_CHECK * weight_scale ** 2 * num_weights


def analyse(result: dict) -> dict:
    """``result`` with ``checks``: the initial loss's offset from ln(10) and its rise with reg
    (``offset``, ``rise``: intervals; ``spread``: standard deviation, min, max of each;
    ``expected_rise``), the subset's final ``train``, ``val`` and ``gap`` intervals, the mean
    curves with 95% bands, and a verdict per check: ``loss_verdict`` "close" when every seed's
    loss is within :data:`LOSS_TOLERANCE` of ln(10), ``rise_verdict`` "rises" when every
    seed's does, ``overfit_verdict`` (:func:`_overfit`)."""
    runs = result["runs"]
    reg = f"{REG_CHECK:g}"
    offsets = [r["initial_loss"]["0"] - LN10 for r in runs]
    rises = [r["initial_loss"][reg] - r["initial_loss"]["0"] for r in runs]
    train = mean_interval([r["train_acc"][-1] for r in runs])
    val = mean_interval([r["val_acc"][-1] for r in runs])
    gap = mean_interval([r["train_acc"][-1] - r["val_acc"][-1] for r in runs])
    offset, rise = mean_interval(offsets), mean_interval(rises)
    train_curve, train_band = band([r["train_acc"] for r in runs])
    val_curve, val_band = band([r["val_acc"] for r in runs])
    checks = {
        "offset": offset, "rise": rise, "train": train, "val": val, "gap": gap,
        "spread": {k: _spread(v) for k, v in (("offset", offsets), ("rise", rises))},
        "expected_rise": expected_rise(result["settings"]["weight_scale"],
                                       runs[0]["num_weights"]),
        "loss_verdict": ("close" if all(abs(o) < LOSS_TOLERANCE for o in offsets) else
                         "not close"),
        "rise_verdict": "rises" if min(rises) > 0 else "does not rise",
        "overfit_verdict": _overfit(train, gap),
        "curves": {"train_curve": train_curve.tolist(), "train_band": train_band.tolist(),
                   "val_curve": val_curve.tolist(), "val_band": val_band.tolist()}}
    return {**result, "checks": checks}


def _spread(values: list[float]) -> dict:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"sd": sd, "min": min(values), "max": max(values)}


def _overfit(train, gap) -> str:
    """"overfits": mean training accuracy >= OVERFIT_TRAIN and the gap's interval above
    OVERFIT_GAP; "does not overfit": training below or the gap's interval under it; "unclear"
    otherwise (or with one seed when neither holds for it)."""
    low, high = (gap.mean, gap.mean) if gap.n < 2 else (gap.low, gap.high)
    if train.mean >= OVERFIT_TRAIN and low >= OVERFIT_GAP:
        return "overfits"
    if train.mean < OVERFIT_TRAIN or high < OVERFIT_GAP:
        return "does not overfit"
    return "unclear"
