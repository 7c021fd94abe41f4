"""run_trial: every contract column each epoch, exact resume, divergence as a status."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_config

from study.errors import ConfigError
from study.results.schema import COLUMN_NAMES
from study.train import methods, resolve
from study.train.methods.mixing import mean_folded
from study.train.runtime import resolve_device
from study.train.trial import run_trial

VOLATILE = {"epoch_seconds", "samples_per_second", "hostname"}


def collect(cfg, data, resume=None, keep_state_at=None):
    rows, states = [], {}

    def on_epoch(row, state_fn):
        rows.append(row)
        if row["epoch"] == keep_state_at:
            states[row["epoch"]] = state_fn()

    outcome = run_trial(cfg, on_epoch, resume=resume, data=data)
    return outcome, rows, states


def test_rows_carry_every_contract_column(fake_data):
    outcome, rows, _ = collect(tiny_config(**{"train.epochs": 2}), fake_data)
    assert outcome.status == "ok" and outcome.epochs_done == 2
    assert [r["epoch"] for r in rows] == [1, 2]
    caller_sets = {"study", "trial_id", "node_id", "gpu_ids", "schema_version"}
    assert set(COLUMN_NAMES) - caller_sets <= set(rows[0])
    for key in ("val_acc", "test_acc", "test_cal_ece", "val_cal_ece", "test_opt_ece"):
        assert 0 <= rows[-1][key] <= 1
    assert rows[0]["alpha"] is None and rows[0]["margin"] is None  # erm


@pytest.mark.parametrize("method", ["mit_a", "mixup_sc"])
def test_resume_gives_the_same_numbers_as_a_straight_run(fake_data, method):
    cfg = tiny_config(**{"train.epochs": 3, "method.name": method, "train.milestones": [2]})
    _, straight, _ = collect(cfg, fake_data)
    _, first, states = collect(
        resolve.replace(cfg, **{"train.epochs": 3}), fake_data, keep_state_at=1
    )
    _, rest, _ = collect(cfg, fake_data, resume=states[1])
    resumed = first[:1] + rest
    assert [r["epoch"] for r in resumed] == [1, 2, 3]
    for a, b in zip(straight, resumed, strict=True):
        for key in set(a) - VOLATILE:
            assert repr(a[key]) == repr(b[key]), (a["epoch"], key)  # NaN-aware, exact
    assert straight[2]["lr"] == pytest.approx(0.01)


def test_divergence_stops_with_a_status(fake_data):
    cfg = tiny_config(**{"train.epochs": 3, "train.lr": 1e30, "train.momentum": 0.0})
    outcome, rows, _ = collect(cfg, fake_data)
    assert outcome.status == "diverged"
    assert outcome.message.startswith("diverged at epoch 1, step ")
    assert rows[-1]["status"] == "diverged" and rows[-1]["message"] == outcome.message
    assert len(rows) == 1 and outcome.epochs_done == 0


def test_cuda_where_there_is_none_is_a_user_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device(tiny_config(**{"runtime.device": "cuda"}).runtime)


def test_mixup_dt_uses_the_normalised_mean_training_image(fake_data, monkeypatch):
    """Mixup-DT's x̄ is the mean training image after normalisation, (mean(x)/255 − μ)/σ with
    the dataset's μ, σ (docs/protocol.md), computed here by hand; ȳ the class frequencies. Seen
    through the MethodContext the trial hands to `methods.build`, and through the inputs the
    built method feeds the model: x̄ + λ̄(x − x̄)."""
    built = []
    real_build = methods.build

    def spy(cfg, ctx):
        built.append((real_build(cfg, ctx), ctx))
        return built[-1][0]

    monkeypatch.setattr(methods, "build", spy)
    cfg = tiny_config(**{"method.name": "mixup_dt", "method.alpha": 0.5})
    outcome, rows, _ = collect(cfg, fake_data)
    assert outcome.status == "ok" and math.isfinite(rows[0]["train_loss"])
    method, ctx = built[0]
    mean = torch.tensor(fake_data.mean, dtype=torch.float64)[:, None, None]
    std = torch.tensor(fake_data.std, dtype=torch.float64)[:, None, None]
    by_hand = (fake_data.train_x.double().mean(0) / 255 - mean) / std
    assert by_hand.shape == fake_data.train_x.shape[1:]
    torch.testing.assert_close(ctx.mean_input().double(), by_hand, atol=1e-5, rtol=0)
    counts = torch.bincount(fake_data.train_y, minlength=fake_data.num_classes).double()
    torch.testing.assert_close(ctx.mean_target.double(), counts / counts.sum())
    x = (fake_data.train_x[:8].double() / 255 - mean) / std
    inputs, _ = method.transform(x.float(), fake_data.train_y[:8])
    lam = mean_folded(0.5)
    torch.testing.assert_close(inputs.double(), by_hand + lam * (x - by_hand), atol=1e-5, rtol=0)
