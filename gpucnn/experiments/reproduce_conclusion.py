"""What the replicated runs of ``gpucnn reproduce`` show: per (training-set size, configuration)
the final gap with its 95% interval across seeds, and per size the change of the gap that each
configuration makes against the unregularised run, paired by seed, with a verdict.

The gap of a run is its final training accuracy minus its final validation accuracy.
"""
from __future__ import annotations

from .common import size_name
from .stats import band, mean_interval, paired_difference, verdict

# The source document's (seeds/000) two claims: the comparison kind -> (claim, verdict it means).
CLAIMS = {"l2": ("0.01 L2 alone changes little", "little"),
          "dropout": ("dropout narrows the gap", "narrows")}
# "Changes little" means the whole 95% interval of the change lies within this share of the
# unregularised gap (and never narrower than one validation sample, the resolution of a gap).
LITTLE_FRACTION = 0.25


def summarise(runs: list[dict]) -> list[dict]:
    """One cell per (training-set size, reg, dropout), in the order of ``runs``: its seeds'
    final gaps and accuracies (``gaps``, ``vals``: seed -> value), their intervals (``gap``,
    ``train``, ``val``) and the mean curves per epoch with 95% half-widths (``train_curve``,
    ``train_band``, ``val_curve``, ``val_band``)."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        spec = run["spec"]
        groups.setdefault((spec["train_size"], spec["reg"], spec["dropout"]), []).append(run)
    cells = []
    for (size, reg, dropout), rs in groups.items():
        seeds = [r["spec"]["seed"] for r in rs]
        train = [r["train_acc"] for r in rs]
        val = [r["val_acc"] for r in rs]
        train_curve, train_band = band(train)
        val_curve, val_band = band(val)
        gaps = {s: t[-1] - v[-1] for s, t, v in zip(seeds, train, val)}
        cells.append({
            "train_size": size, "num_train": rs[0]["num_train"], "num_val": rs[0]["num_val"],
            "reg": reg, "dropout": dropout, "label": rs[0]["label"], "seeds": seeds,
            "gaps": gaps, "vals": {s: v[-1] for s, v in zip(seeds, val)},
            "gap": mean_interval(list(gaps.values())),
            "train": mean_interval([t[-1] for t in train]),
            "val": mean_interval([v[-1] for v in val]),
            "train_curve": train_curve.tolist(), "train_band": train_band.tolist(),
            "val_curve": val_curve.tolist(), "val_band": val_band.tolist()})
    return cells


def compare(base: dict, other: dict, kind: str, margin: float) -> dict:
    """``other``'s change of the gap and of validation accuracy against ``base``, by seed."""
    change = paired_difference(base["gaps"], other["gaps"])
    return {"kind": kind, "from": base["label"], "to": other["label"], "gap_change": change,
            "val_change": paired_difference(base["vals"], other["vals"]), "margin": margin,
            "verdict": verdict(change, margin)}


def conclude_size(cells: list[dict]) -> dict:
    """The comparisons within one training-set size (``cells`` all of that size).

    Every regularised configuration is compared with the unregularised one (kind "l2" for L2
    alone, "dropout" for anything with dropout); a configuration with dropout and L2 also with
    the same L2 alone (kind "dropout on L2"), dropout's own share.
    """
    by_pair = {(c["reg"], c["dropout"]): c for c in cells}
    first = cells[0]
    out = {"train_size": first["train_size"], "num_train": first["num_train"],
           "name": size_name(first["train_size"], first["num_train"]), "baseline": None,
           "overfits": None, "comparisons": []}
    base = by_pair.get((0.0, 0.0))
    if base is None:
        return out
    margin = max(LITTLE_FRACTION * base["gap"].mean, 1 / base["num_val"])
    out.update(baseline=base["gap"], overfits=bool(base["gap"].low > 0), margin=margin)
    for (reg, dropout), cell in by_pair.items():
        if dropout > 0:
            out["comparisons"].append(compare(base, cell, "dropout", margin))
            if reg > 0 and (reg, 0.0) in by_pair:
                out["comparisons"].append(compare(by_pair[(reg, 0.0)], cell, "dropout on L2",
                                                  margin))
        elif reg > 0:
            out["comparisons"].append(compare(base, cell, "l2", margin))
    return out


def conclude(cells: list[dict]) -> dict:
    """``sizes``: :func:`conclude_size` per training-set size; ``text``: the conclusion in
    sentences; ``source``: one sentence per claim of the source document (seeds/000)."""
    sizes = []
    for size in dict.fromkeys(c["train_size"] for c in cells):
        sizes.append(conclude_size([c for c in cells if c["train_size"] == size]))
    text = [sentence for s in sizes for sentence in _size_sentences(s)]
    return {"sizes": sizes, "text": text, "source": [_claim_sentence(k, sizes) for k in CLAIMS],
            "little_fraction": LITTLE_FRACTION}


def _size_sentences(s: dict) -> list[str]:
    name = s["name"][0].upper() + s["name"][1:]
    if s["baseline"] is None:
        return [f"{name}: no unregularised (reg 0, dropout 0) run, so nothing to compare with."]
    gap = s["baseline"]
    state = ("the unregularised net overfits" if s["overfits"] else
             "the unregularised net's gap is not significantly above zero, so there is no "
             "shown overfitting for L2 or dropout to reduce")
    lines = [f"{name}: {state}: final gap {gap.text()}."]
    return lines + [f"{name}: {_change_sentence(c, gap.mean)}" for c in s["comparisons"]]


def _change_sentence(c: dict, base_gap: float) -> str:
    g, v = c["gap_change"], c["val_change"]
    share = f" ({abs(g.mean) / base_gap:.0%} of the unregularised gap)" if base_gap > 0 else ""
    what = {"narrows": f"narrows the gap by {-g.mean:.3f}{share}",
            "widens": f"widens the gap by {g.mean:.3f}{share}",
            "little": f"changes the gap little (within +/-{c['margin']:.3f})",
            "unclear": f"changes the gap by an amount the seeds cannot pin down (neither "
                       f"surely non-zero nor surely within +/-{c['margin']:.3f}; more seeds "
                       f"would tell)"}[c["verdict"]]
    own = " (dropout's own share)" if c["kind"] == "dropout on L2" else ""
    side = ("; the gap closes from the training side: validation accuracy does not move "
            "detectably" if c["verdict"] == "narrows" and not v.excludes_zero() else "")
    return (f"{c['to']} against {c['from']}{own} {what}: change {g.text()}; validation "
            f"accuracy change {v.text()}{side}.")


def _claim_sentence(kind: str, sizes: list[dict]) -> str:
    """Whether the claim of ``kind`` holds here, size by size."""
    claim, expected = CLAIMS[kind]
    parts = []
    for s in sizes:
        for c in (c for c in s["comparisons"] if c["kind"] == kind):
            word = ("cannot tell" if c["verdict"] == "unclear" else
                    "agrees" if c["verdict"] == expected else "differs")
            caveat = "" if s["overfits"] else ", where the unregularised net shows no gap"
            parts.append(f"{word} with {s['name']} ({c['to']}: {c['verdict']}, "
                         f"{c['gap_change'].mean:+.3f}{caveat})")
    if not parts:
        return f"\"{claim}\": not tested by this grid."
    return f"\"{claim}\": " + "; ".join(parts) + "."
