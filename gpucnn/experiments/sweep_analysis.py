"""What the sweep's replicated runs show: per training-set size and configuration the final
training and validation accuracy and gap with 95% intervals across seeds; per swept value its
change against the base net, paired by seed, and a verdict; the best net; the source document's
claims (seeds/002) beside ours.

A run's gap is its final training accuracy minus its final validation accuracy.  A value is
*better* / *worse* than the base net when the 95% interval of its paired change of validation
accuracy lies above / below zero, *indistinguishable* otherwise; it *overfits more* / *less*
when that of the gap does.  The best net is chosen only among values whose improvement also
holds at the family-wise level (Bonferroni over the size's comparisons): with ten comparisons
at 95% each, one spurious "better" among values that change nothing is likely (40%).
"""
from __future__ import annotations

from .common import size_name
from .stats import direction, family_level, mean_interval, paired_difference

METRICS = ("train", "val", "gap", "test")
NAMES = {"train": "training accuracy", "val": "validation accuracy", "gap": "gap",
         "test": "test accuracy"}
VERDICT = {"higher": "better", "lower": "worse", "indistinguishable": "indistinguishable"}
OVERFIT = {"higher": "overfits more", "lower": "overfits less",
           "indistinguishable": "indistinguishable"}
# The source document's claims (seeds/002, one CIFAR-10 run per value), each as checks
# (parameter, value, metric, expectation) on the paired changes against the base net.
CLAIMS = [
    ("dropout does not improve accuracy over the base net",
     [("dropout", v, "val", "not higher") for v in (0.1, 0.3, 0.5, 0.8)]),
    ("too high a dropout rate (0.8) gives bad results", [("dropout", 0.8, "val", "lower")]),
    ("hidden 500 (the base net's) gives the best result",
     [("hidden", 300, "val", "not higher"), ("hidden", 700, "val", "not higher")]),
    ("hidden 700 overfits", [("hidden", 700, "gap", "higher")]),
    ("hidden 300 has lower training and validation accuracy",
     [("hidden", 300, "train", "lower"), ("hidden", 300, "val", "lower")]),
    ("48 filters overfit", [("filters", 48, "gap", "higher")]),
    ("16 filters beat 32 (the source's best net)", [("filters", 16, "val", "higher")]),
    ("filter sizes 3 and 5 overfit",
     [("filter-size", 3, "gap", "higher"), ("filter-size", 5, "gap", "higher")]),
]


def summarise(runs: list[dict]) -> list[dict]:
    """One cell per (training-set size, configuration), in the order of ``runs``: per metric
    its seeds' final values (``values[metric]``: seed -> value) and their 95% interval
    (``intervals[metric]``)."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        spec = run["spec"]
        groups.setdefault((spec["train_size"], spec["param"], spec["value"]), []).append(run)
    cells = []
    for (size, param, value), rs in groups.items():
        values = {m: {} for m in METRICS}
        for r in rs:
            seed, train, val = r["spec"]["seed"], r["train_acc"][-1], r["val_acc"][-1]
            values["train"][seed], values["val"][seed] = train, val
            values["gap"][seed], values["test"][seed] = train - val, r["test_acc"]
        cells.append({"train_size": size, "num_train": rs[0]["num_train"],
                      "num_val": rs[0]["num_val"], "param": param, "value": value,
                      "label": rs[0]["label"], "seeds": sorted(values["val"]), "values": values,
                      "intervals": {m: mean_interval(list(v.values()))
                                    for m, v in values.items()}})
    return cells


def compare(base: dict, cell: dict, level: float) -> dict:
    """``cell``'s changes against ``base`` per metric, paired by seed: ``changes`` (95%) and
    ``family`` (at the family-wise ``level``) intervals, ``directions``, and the verdicts on
    validation accuracy and on the gap."""
    changes = {m: paired_difference(base["values"][m], cell["values"][m]) for m in METRICS}
    directions = {m: direction(iv) for m, iv in changes.items()}
    return {"param": cell["param"], "value": cell["value"], "label": cell["label"],
            "changes": changes, "directions": directions,
            "verdict": VERDICT[directions["val"]], "overfit": OVERFIT[directions["gap"]],
            "family": {m: paired_difference(base["values"][m], cell["values"][m], level)
                       for m in METRICS}}


def conclude_size(cells: list[dict], swept: dict, base_values: dict) -> dict:
    """One training-set size: ``rows`` (parameter -> a row per value, the base net's among
    them, in increasing order: ``value``, ``cell``, ``comparison``, None for the base net's
    value), ``comparisons``, ``family_level``, ``best`` (the chosen comparison or None),
    ``claims``."""
    base = next(c for c in cells if c["param"] is None)
    others = [c for c in cells if c["param"] is not None]
    level = family_level(len(others))
    comparisons = {(c["param"], c["value"]): compare(base, c, level) for c in others}
    rows = {p: [{"value": v, "cell": base if v == base_values[p] else
                 next(c for c in others if (c["param"], c["value"]) == (p, v)),
                 "comparison": comparisons.get((p, v))} for v in sorted({*vs, base_values[p]})]
            for p, vs in swept.items()}
    proven = [c for c in comparisons.values() if c["family"]["val"].low > 0]
    return {"train_size": base["train_size"], "num_train": base["num_train"],
            "name": size_name(base["train_size"], base["num_train"]), "base": base,
            "rows": rows, "comparisons": list(comparisons.values()), "family_level": level,
            "best": max(proven, key=lambda c: c["changes"]["val"].mean, default=None),
            "claims": [check_claim(claim, checks, comparisons, base_values)
                       for claim, checks in CLAIMS]}


def judge(change, expect: str) -> str:
    """What a paired ``change`` (an interval) says of a claim that expects it "higher",
    "lower" or "not higher" than zero: "agrees" when the interval lies on the claimed side,
    "differs" when it rules that side out (an interval of exactly zero rules out "lower"),
    "cannot tell" otherwise (and with one seed: no interval)."""
    if change.n < 2:
        return "cannot tell"
    if expect == "not higher":
        return "differs" if change.low > 0 else "agrees"
    agree, differ = ((change.low > 0, change.high <= 0) if expect == "higher" else
                     (change.high < 0, change.low >= 0))
    return "agrees" if agree else "differs" if differ else "cannot tell"


def check_claim(claim: str, checks: list, comparisons: dict, base_values: dict) -> dict:
    """Whether our paired changes agree with ``claim`` (each check by :func:`judge`):
    ``word`` is "differs" (a check differs), else "cannot tell" (one cannot), else "agrees"
    (every check agrees), "agrees where tested" (the others' values were not swept, or are the
    base net's own) or "not tested" (none was); ``evidence`` gives each check's change, its
    direction and whether that holds at the family-wise level too."""
    words, evidence = [], []
    for param, value, metric, expect in checks:
        c = comparisons.get((param, value))
        if c is None:
            words.append("not tested")
            why = "the base net's own value" if base_values.get(param) == value else "not swept"
            evidence.append(f"{param}={value:g}: {why}")
            continue
        iv, found, family = c["changes"][metric], c["directions"][metric], c["family"][metric]
        words.append(judge(iv, expect))
        held = ("" if found == "indistinguishable" else
                f", {'also' if family.excludes_zero() else 'not'} at the family-wise "
                f"{100 * family.level:.3g}% level")
        if iv.n > 1 and iv.low == iv.high == 0:
            found = "the same for every seed"
        evidence.append(f"{c['label']}: {NAMES[metric]} {iv.text()}, {found}{held}")
    tested = [w for w in words if w != "not tested"]
    word = next((w for w in ("differs", "cannot tell") if w in tested),
                "not tested" if not tested else
                "agrees" if len(tested) == len(words) else "agrees where tested")
    return {"claim": claim, "word": word, "evidence": evidence}


def conclude(cells: list[dict], swept: dict, base_values: dict) -> dict:
    """``sizes``: :func:`conclude_size` per training-set size; ``text``: the conclusion in
    sentences."""
    sizes = [conclude_size([c for c in cells if c["train_size"] == size], swept, base_values)
             for size in dict.fromkeys(c["train_size"] for c in cells)]
    return {"sizes": sizes, "text": [t for s in sizes for t in _size_sentences(s)]}


def best_sentence(s: dict) -> str:
    """The best net of one size, or why there is none."""
    m = len(s["comparisons"])
    family = f"{100 * s['family_level']:.3g}%"
    better = [c for c in s["comparisons"] if c["verdict"] == "better"]
    if s["best"] is None:
        tail = ""
        if better:
            tail = (f" ({', '.join(c['label'] for c in better)} "
                    f"{'is' if len(better) == 1 else 'are each'} better at 95% on its own, not "
                    f"at the {family} level that {m} comparisons need together)")
        return (f"no value is distinguishable from the base{tail}: the best net is the base "
                f"net, test accuracy {s['base']['intervals']['test'].text('.3f')}.")
    c = s["best"]
    return (f"the best net is {c['label']}: validation accuracy "
            f"{c['changes']['val'].text()} against the base net, better also at the {family} "
            f"level of {m} comparisons ({c['family']['val'].low:+.3f} to "
            f"{c['family']['val'].high:+.3f}); on the test split {c['changes']['test'].text()}.")


def _size_sentences(s: dict) -> list[str]:
    name = s["name"][0].upper() + s["name"][1:]
    gap = s["base"]["intervals"]["gap"]
    lines = [f"{name}: the base net reaches validation accuracy "
             f"{s['base']['intervals']['val'].text('.3f')}, gap {gap.text()}."]
    for verdict in ("better", "worse"):
        found = [c["label"] for c in s["comparisons"] if c["verdict"] == verdict]
        if found:
            lines.append(f"{name}: {verdict} than the base net (95%): {', '.join(found)}.")
    same = [c["label"] for c in s["comparisons"] if c["verdict"] == "indistinguishable"]
    if same:
        lines.append(f"{name}: indistinguishable from the base net: {', '.join(same)}.")
    more = [c["label"] for c in s["comparisons"] if c["overfit"] == "overfits more"]
    less = [c["label"] for c in s["comparisons"] if c["overfit"] == "overfits less"]
    if more or less:
        lines.append(f"{name}: a wider gap than the base net: {', '.join(more) or 'none'}; a "
                     f"narrower one: {', '.join(less) or 'none'}.")
    return lines + [f"{name}: {best_sentence(s)}"]
