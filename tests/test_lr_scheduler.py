"""Learning-rate schedules: each one's rates against torch.optim.lr_scheduler (where torch is
installed), warmup as torch's LinearLR then the schedule, the plateau's state through a
round trip, and bad settings."""
import numpy as np
import pytest

from gpucnn.lr_scheduler import (CosineAnnealingLR, ExponentialLR, MultiStepLR,
                                 ReduceLROnPlateau, StepLR, Warmup, make_schedule)

torch = pytest.importorskip("torch", reason="torch is not installed: no reference rates")
S = torch.optim.lr_scheduler


def _torch_rates(make, epochs, base=0.1, metrics=None):
    """The lr torch's scheduler gives each epoch, stepped once per epoch (with the metric)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    sched = make(opt)
    rates = []
    for e in range(epochs):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step(*([] if metrics is None else [metrics[e]]))
    return rates


def _ours(schedule, epochs, base=0.1, metrics=None):
    rates = []
    for t in range(epochs):
        rates.append(schedule.get_lr(base, t))
        if metrics is not None:
            schedule.step(metrics[t])
    return rates


@pytest.mark.parametrize("ours, theirs", [
    (ExponentialLR(0.9), lambda o: S.ExponentialLR(o, 0.9)),
    (StepLR(3, 0.5), lambda o: S.StepLR(o, 3, 0.5)),
    (MultiStepLR([2, 5, 6], 0.3), lambda o: S.MultiStepLR(o, [2, 5, 6], 0.3)),
    (CosineAnnealingLR(8, 1e-3), lambda o: S.CosineAnnealingLR(o, 8, 1e-3)),
])
def test_closed_forms_are_torchs(ours, theirs):
    np.testing.assert_allclose(_ours(ours, 9), _torch_rates(theirs, 9), rtol=1e-12)


def test_cosine_holds_its_floor_after_t_max():
    c = CosineAnnealingLR(4, 0.01)
    assert [c.get_lr(1.0, t) for t in (4, 5, 9)] == [0.01] * 3


@pytest.mark.parametrize("mode, metrics", [
    ("min", [1.0, 0.9, 0.95, 0.91, 0.92, 0.93, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1]),
    ("max", [0.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]),
])
def test_plateau_cuts_as_torchs_and_resumes_from_its_state(mode, metrics):
    theirs = _torch_rates(lambda o: S.ReduceLROnPlateau(o, mode, 0.5, patience=1, cooldown=1,
                                                        min_lr=0.02), 13, metrics=metrics)
    ours = ReduceLROnPlateau(mode, 0.5, patience=1, cooldown=1, min_lr=0.02)
    first = _ours(ours, 6, metrics=metrics)
    again = ReduceLROnPlateau(mode, 0.5, patience=1, cooldown=1, min_lr=0.02)
    again.load_state_dict(ours.state_dict())
    rest = []
    for t in range(6, 13):
        rest.append(again.get_lr(0.1, t))
        again.step(metrics[t])
    np.testing.assert_allclose(first + rest, theirs, rtol=1e-12)
    assert min(theirs) == 0.02 < max(theirs)  # cut, down to the floor


def test_warmup_then_the_schedule_is_torchs_linear_lr_then_the_schedule():
    w = 3
    theirs = _torch_rates(lambda o: S.SequentialLR(o, [
        S.LinearLR(o, start_factor=1 / (w + 1), total_iters=w), S.StepLR(o, 2, 0.5)], [w]), 10)
    np.testing.assert_allclose(_ours(Warmup(StepLR(2, 0.5), w), 10), theirs, rtol=1e-12)
    assert _ours(Warmup(ExponentialLR(), 3), 5, base=1.0) == [0.25, 0.5, 0.75, 1.0, 1.0]


def test_a_plateau_after_warmup_hears_no_metric_during_it():
    plan = make_schedule("plateau", gamma=0.5, plateau_patience=0, mode="min", warmup_epochs=2)
    rates = _ours(plan, 5, base=1.0, metrics=[1.0, 2.0, 3.0, 4.0, 5.0])
    # the first metric heard (3.0) is the best yet; hearing 1.0 and 2.0 would have cut at once
    assert rates == [1 / 3, 2 / 3, 1.0, 1.0, 0.5]


@pytest.mark.parametrize("make, message", [
    (lambda: StepLR(0), r"step_size=0: expected an integer >= 1"),
    (lambda: MultiStepLR([]), r"milestones=\[\]"),
    (lambda: ExponentialLR(1.5), r"gamma=1.5"),
    (lambda: ReduceLROnPlateau("up"), r"mode='up'"),
    (lambda: make_schedule("linear"), r"schedule='linear': expected one of constant"),
    (lambda: make_schedule("step"), r"step_size=None"),
])
def test_bad_settings_are_one_line(make, message):
    with pytest.raises(ValueError, match=message):
        make()
