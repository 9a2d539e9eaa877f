"""LinearConfig: defaults, validation messages, JSON round trip, run ids; memory estimate."""

from __future__ import annotations

import pytest

from hti.config import ConfigError, format_lr, parse_lr
from hti.linsoftmax import memory
from hti.linsoftmax.config import LinearConfig


def test_default_step_sizes_are_the_papers_tuned_values():
    assert LinearConfig().lr == 1e-3 and LinearConfig().lr_default
    assert LinearConfig(momentum=False).lr == 10**-2.5
    assert LinearConfig(optim="adam").lr == 10**-3.5
    assert LinearConfig(optim="sign", momentum=False).lr == 1e-5
    cfg = LinearConfig(lr="10^-2")
    assert cfg.lr == 0.01 and not cfg.lr_default


def test_step_size_parsing():
    assert parse_lr("10**-1.5") == 10**-1.5 and parse_lr(" 1e-4 ") == 1e-4
    for bad in ("-1", "0", "inf", "nan", "ten", "10^x"):
        with pytest.raises(ConfigError, match="lr must be"):
            parse_lr(bad)
    assert format_lr(1e-3) == "10^-3" and format_lr(10**-2.5) == "10^-2.5" and format_lr(0.02) == "0.02"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"m": 1}, r"m must be in \[2, 16\]; got 1"),
        ({"optim": "sgin"}, "optim must be one of gd, adam, normgd, sign; got 'sgin'"),
        ({"steps": -1}, "steps must be >= 0; got -1"),
        ({"steps": 2.5}, "steps must be an integer; got 2.5"),
        ({"inputs": "normal"}, "inputs must be one of"),
        ({"input_mean": 0.0}, "gaussian inputs only; got inputs=uniform"),
        ({"inputs": "gaussian", "input_scale": 0.0}, "input_scale must be positive"),
        ({"inputs": "orthogonal", "m": 3, "dim": 10}, r"need dim >= n = 24 \(m = 3\); got dim = 10"),
        ({"dim": 0}, "dim must be >= 1; got 0"),
        ({"record_every": 0}, "record_every must be >= 1"),
        ({"save_params_at": (0, 2000)}, r"save_params_at entries must be in \[0, steps = 1000\]; got 2000"),
        ({"beta": 1.0}, r"beta must be a number in \[0.0, 1.0\); got 1.0"),
        ({"device": "tpu"}, "device must be one of cpu, cuda; got 'tpu'"),
        ({"dtype": "float16"}, "dtype must be one of float32, float64"),
        ({"reweight": "sqrt"}, "reweight must be one of none, inv, inv-sqrt"),
    ],
)
def test_bad_values_name_what_was_expected_and_what_arrived(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        LinearConfig(**kwargs)


def test_gaussian_defaults_and_json_round_trip():
    cfg = LinearConfig(inputs="gaussian", optim="adam", save_params_at=(5, 0, 5), steps=10)
    assert (cfg.input_mean, cfg.input_scale) == (1.0, 1.0)
    assert cfg.save_params_at == (0, 5)
    again = LinearConfig.from_json(cfg.to_json())
    assert again == cfg and again.run_id == cfg.run_id and again.lr_default
    with pytest.raises(ConfigError, match=r"unknown LinearConfig fields \['colour'\]"):
        LinearConfig.from_dict({**cfg.to_dict(), "colour": 1})


def test_run_id_changes_with_every_field_that_shapes_the_trajectory():
    base = LinearConfig()
    assert base.run_id.startswith("linear-m8-gd+m-")
    ids = {base.run_id}
    for change in ({"seed": 1}, {"data_seed": 1}, {"lr": 0.1}, {"steps": 3}, {"record_every": 2}, {"dtype": "float64"}):
        ids.add(base.replace(**change).run_id)
    assert len(ids) == 7
    assert LinearConfig(lr=1e-3).run_id == base.run_id  # the explicit default is the same run


def test_record_steps_include_zero_and_the_last_step():
    assert LinearConfig(steps=10, record_every=4).record_steps() == [0, 4, 8, 10]
    assert LinearConfig(steps=8, record_every=4).record_steps() == [0, 4, 8]
    assert LinearConfig(steps=0).record_steps() == [0]


def test_memory_estimate_counts_every_array():
    cfg = LinearConfig(m=11, optim="adam")
    parts = memory.estimate(cfg)
    n, c, d = cfg.shape
    assert parts["X"] == n * d * 4
    assert parts["optimizer state"] == 2 * (c * d + c) * 4
    assert parts["total"] == sum(v for k, v in parts.items() if k != "total")
    # X (2.06 GiB) + 7 parameter-sized arrays (W, gradient, m, v, new m, new v, direction)
    assert parts["total"] == n * d * 4 + 7 * (c * d + c) * 4 + 8 * n * 8


def test_memory_check_refuses_with_the_numbers(monkeypatch):
    import numpy as np

    monkeypatch.setattr(memory, "available_memory", lambda xp: 2**30)
    with pytest.raises(memory.InsufficientMemory, match=r"m = 11 .* needs about 3\.\d GiB \(X 2\.1 GiB.*only 1\.0 GiB is available on cpu"):
        memory.check_memory(LinearConfig(m=11, optim="adam"), np)
    memory.check_memory(LinearConfig(m=4), np)
