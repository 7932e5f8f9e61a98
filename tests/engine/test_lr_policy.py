import math

import pytest

from vtn.config import load_config
from vtn.engine.lr_policy import get_lr_at_epoch, set_lr, unreached_steps


def cfg_with(*opts):
    return load_config(None, list(opts))


def test_steps_with_relative_lrs():
    cfg = cfg_with(
        "SOLVER.BASE_LR", 0.1, "SOLVER.STEPS", [0, 10, 15], "SOLVER.LRS", [1, 0.1, 0.01], "SOLVER.MAX_EPOCH", 20
    )
    for epoch, lr in [(0, 0.1), (9.99, 0.1), (10, 0.01), (14.5, 0.01), (15, 0.001), (19.9, 0.001)]:
        assert get_lr_at_epoch(cfg, epoch) == pytest.approx(lr), epoch


def test_the_default_and_every_config_reach_each_of_their_lr_steps():
    import glob
    import os

    from tests.helpers import REPO

    assert unreached_steps(cfg_with()) == []  # the default steps policy steps twice within MAX_EPOCH
    assert unreached_steps(cfg_with("SOLVER.STEPS", [0, 20, 25], "SOLVER.MAX_EPOCH", 25)) == [25]
    cosine = cfg_with("SOLVER.LR_POLICY", "cosine", "SOLVER.STEPS", [0, 30], "SOLVER.LRS", [1, 0.1])
    assert unreached_steps(cosine) == []
    for path in glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True):
        assert unreached_steps(load_config(path)) == [], path


def test_cosine_from_base_to_end():
    cfg = cfg_with(
        "SOLVER.LR_POLICY", "cosine", "SOLVER.BASE_LR", 0.1, "SOLVER.COSINE_END_LR", 0.001, "SOLVER.MAX_EPOCH", 40
    )
    assert get_lr_at_epoch(cfg, 0) == pytest.approx(0.1)
    assert get_lr_at_epoch(cfg, 20) == pytest.approx(0.001 + 0.099 * 0.5)
    assert get_lr_at_epoch(cfg, 10) == pytest.approx(0.001 + 0.099 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert get_lr_at_epoch(cfg, 40) == pytest.approx(0.001)


def test_linear_warmup_joins_the_policy():
    cfg = cfg_with(
        "SOLVER.LR_POLICY",
        "cosine",
        "SOLVER.BASE_LR",
        0.1,
        "SOLVER.MAX_EPOCH",
        10,
        "SOLVER.WARMUP_EPOCHS",
        2.0,
        "SOLVER.WARMUP_START_LR",
        0.01,
    )
    target = get_lr_at_epoch(cfg_with("SOLVER.LR_POLICY", "cosine", "SOLVER.BASE_LR", 0.1, "SOLVER.MAX_EPOCH", 10), 2.0)
    assert get_lr_at_epoch(cfg, 0) == pytest.approx(0.01)
    assert get_lr_at_epoch(cfg, 1) == pytest.approx(0.01 + (target - 0.01) / 2)
    assert get_lr_at_epoch(cfg, 2) == pytest.approx(target)
    assert get_lr_at_epoch(cfg, 1.999) < target


def test_set_lr_applies_group_scales():
    import torch

    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p1], "lr_scale": 0.1}, {"params": [p2]}], lr=1.0)
    set_lr(opt, 0.5)
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(0.05), 0.5]


def test_unknown_policy_is_a_config_error():
    from vtn.config import ConfigError

    with pytest.raises(ConfigError, match="SOLVER.LR_POLICY = 'step'.*steps_with_relative_lrs"):
        cfg_with("SOLVER.LR_POLICY", "step")
