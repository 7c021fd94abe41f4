"""The mixup family beyond the paper (CutMix, Manifold Mixup, RegMixup, label smoothing): each
step checked exactly against its paper's equation, and their parameters' defaults and ranges."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_methods import Recorder, _fits, make
from torch import nn

from study.errors import ConfigError
from study.train import methods, resolve
from study.train.config import MethodConfig
from study.train.models import Staged


def _partner_and_lambda(x, mixed):
    """(partner index per sample, λ) of mixed = λ x + (1 − λ) x[partner], one λ < 1 for the
    batch; a sample left unmixed (its own partner) fits any j with λ = 1 and gets j = i."""
    best = [min(row) for row in _fits(x, mixed)]
    assert all(err < 1e-3 for err, _, _ in best)
    own = [abs(lam - 1) < 1e-4 for _, lam, _ in best]
    partner = torch.tensor([i if own[i] else j for i, (_, _, j) in enumerate(best)])
    lams = {round(lam, 4) for (_, lam, _), o in zip(best, own, strict=True) if not o}
    assert len(lams) == 1
    return partner, next(lam for (_, lam, _), o in zip(best, own, strict=True) if not o)


@pytest.mark.parametrize("seed", range(6))
def test_cutmix_pastes_one_box_and_weights_the_target_by_its_clipped_area(batch, seed):
    x, y = batch
    model = Recorder()
    loss, logits = make("cutmix", seed=seed, alpha=1.0).step(model, x, y)
    seen = model.seen[0]
    box = (seen != x).any(0).any(0)  # (H, W): pixels pasted into some sample
    rows, cols = box.any(1), box.any(0)
    assert torch.equal(box, rows[:, None] & cols[None, :])  # one rectangle for the batch
    area = box.sum().item() / box.numel()
    partner = []
    for i in range(len(x)):
        assert torch.equal(seen[i][:, ~box], x[i][:, ~box])
        same = [j for j in range(len(x)) if torch.equal(seen[i][:, box], x[j][:, box])]
        assert len(same) == 1 or area == 0
        partner.append(same[0] if same else i)
    j = torch.tensor(partner)
    expected = (1 - area) * F.cross_entropy(logits, y) + area * F.cross_entropy(logits, y[j])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_cutmix_boxes_are_clipped_at_the_border_and_their_area_follows_lambda(batch):
    x, y = batch
    clipped, areas = 0, []
    m = make("cutmix", seed=0, alpha=1.0)
    for _ in range(200):
        lam = float(m.rng.beta(1.0))
        top, bottom, left, right = m.box(lam, 32, 32)
        assert 0 <= top <= bottom <= 32 and 0 <= left <= right <= 32
        clipped += (bottom - top) * (right - left) < int(32 * (1 - lam) ** 0.5) ** 2
        areas.append((bottom - top) * (right - left) / 1024)
    assert clipped > 20  # the true area, not 1 − λ, is what the target weight must use
    assert 0.2 < sum(areas) / len(areas) < 0.5  # E[1 − λ] = ½ before clipping, U(0, 1)


def test_label_smoothing_loss_is_the_hand_computed_cross_entropy(batch):
    x, y = batch
    loss, logits = make("label_smoothing", epsilon=0.3).step(Recorder(), x, y)
    q = 0.7 * F.one_hot(y, 4).double() + 0.3 / 4
    expected = -(q * logits.double().log_softmax(1)).sum(1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    no_smoothing, logits0 = make("label_smoothing", epsilon=0.0).step(Recorder(), x, y)
    assert no_smoothing.item() != pytest.approx(loss.item())


@pytest.mark.parametrize("eta", [1.0, 0.5])
def test_regmixup_is_clean_ce_plus_eta_times_the_mixup_loss(batch, eta):
    x, y = batch
    model = Recorder()
    loss, logits = make("regmixup", seed=2, alpha=10.0, eta=eta).step(model, x, y)
    seen = model.seen[0]
    assert len(seen) == 2 * len(x)  # clean and mixed in one forward pass
    torch.testing.assert_close(seen[: len(x)], x)
    partner, lam = _partner_and_lambda(x, seen[len(x) :])
    assert 0.5 <= lam < 0.8  # folded, and α = 10 keeps λ near ½
    with torch.no_grad():
        clean, mixed = model.lin(seen.flatten(1)).split(len(x))
    torch.testing.assert_close(logits, clean)
    mixup = lam * F.cross_entropy(mixed, y) + (1 - lam) * F.cross_entropy(mixed, y[partner])
    expected = F.cross_entropy(clean, y) + eta * mixup
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)


def test_manifold_mixup_at_the_input_is_mixup(batch):
    x, y = batch
    for seed in range(3):
        a, b = Recorder(), Recorder()
        b.load_state_dict(a.state_dict())
        loss_m, logits_m = make("manifold_mixup", seed=seed, alpha=1.0).step(a, x, y)
        loss_x, logits_x = make("mixup", seed=seed, alpha=1.0).step(b, x, y)
        torch.testing.assert_close(a.seen[0], b.seen[0])
        assert loss_m.item() == loss_x.item()


class Hooked(Staged):
    """Three linear stages recording the input of every stage."""

    def __init__(self):
        torch.manual_seed(0)
        super().__init__(
            [
                nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 8)),
                nn.Sequential(nn.Tanh(), nn.Linear(8, 8)),
                nn.Linear(8, 4),
            ]
        )
        self.inputs: list[list[torch.Tensor]] = [[] for _ in self.stages]
        for i, stage in enumerate(self.stages):
            stage.register_forward_pre_hook(lambda _, args, i=i: self.inputs[i].append(args[0]))


def test_manifold_mixup_mixes_the_hidden_state_of_one_drawn_stage(batch):
    x, y = batch
    chosen = set()
    m = make("manifold_mixup", seed=0, alpha=1.0)
    for _ in range(12):
        model = Hooked()
        loss, logits = m.step(model, x, y)
        (s0,), (s1,), (s2,) = model.inputs
        with torch.no_grad():
            clean0 = model.stages[0](x)
        if torch.equal(s0, x):  # mixed at the input of stage 1
            chosen.add(1)
            partner, lam = _partner_and_lambda(clean0.detach(), s1.detach())
        else:  # mixed at the input (stage 0)
            chosen.add(0)
            partner, lam = _partner_and_lambda(x, s0)
            torch.testing.assert_close(s1, model.stages[0](s0))
        assert lam >= 0.5
        expected = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(
            logits, y[partner]
        )
        assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert chosen == {0, 1}  # never the head's input (stage 2)


def test_defaults_and_unused_parameters():
    norm = {
        n: methods.get(n).normalise(MethodConfig(n, eta=2.0, epsilon=0.2)) for n in methods.names()
    }
    assert (norm["regmixup"].alpha, norm["regmixup"].eta, norm["regmixup"].epsilon) == (
        10.0,
        2.0,
        None,
    )
    assert (norm["label_smoothing"].alpha, norm["label_smoothing"].epsilon) == (None, 0.2)
    assert norm["manifold_mixup"].alpha == 2.0 and norm["cutmix"].alpha == 1.0
    assert all(norm[n].eta is None for n in norm if n != "regmixup")
    assert all(norm[n].epsilon is None for n in norm if n != "label_smoothing")
    defaults = resolve.trial_config({"method": {"name": "regmixup"}}).method
    assert (defaults.alpha, defaults.eta) == (10.0, 1.0)
    assert resolve.trial_config({"method": {"name": "label_smoothing"}}).method.epsilon == 0.1


@pytest.mark.parametrize(
    "method,message",
    [
        ({"name": "regmixup", "eta": -1.0}, "method.eta must be >= 0, got -1.0"),
        ({"name": "label_smoothing", "epsilon": 1.0}, "method.epsilon must be in [0, 1), got 1.0"),
        ({"name": "label_smoothing", "epsilon": -0.1}, "method.epsilon must be in [0, 1)"),
        ({"name": "cutmix", "alpha": 0.0}, "method.alpha must be > 0"),
        ({"name": "regmixup", "eta": "big"}, "method.eta must be float or null"),
    ],
)
def test_parameter_ranges_are_user_errors(method, message):
    with pytest.raises(ConfigError) as e:
        resolve.trial_config({"method": method})
    assert message in str(e.value)


NEW_METRICS = [f"test_{c}{m}" for c in ("", "cal_") for m in ("ace", "cw_ece", "smece")]


@pytest.mark.parametrize(
    "method,alpha",
    [("cutmix", 1.0), ("manifold_mixup", 2.0), ("regmixup", 10.0), ("label_smoothing", None)],
)
def test_study_trial_runs_each_new_method_and_writes_its_rows(tmp_path, method, alpha):
    import pandas as pd

    from study.cli.main import main
    from study.results.schema import COLUMN_NAMES

    sets = {
        "dataset.name": "fake",
        "dataset.train_size": 64,
        "dataset.val_size": 40,
        "dataset.test_size": 40,
        "model.width": 4,
        "train.epochs": 1,
        "train.batch_size": 32,
        "runtime.device": "cpu",
        "method.name": method,
    }
    argv = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    assert main(["trial", *argv, "--results", str(tmp_path), "--quiet"]) == 0
    df = pd.read_parquet(tmp_path)
    assert list(df.columns) == COLUMN_NAMES and df["epoch"].tolist() == [1]
    assert (df["method"] == method).all() and (df["status"] == "ok").all()
    assert df["alpha"].isna().all() if alpha is None else (df["alpha"] == alpha).all()
    assert df[NEW_METRICS].notna().all().all()
    assert ((df[NEW_METRICS] >= 0) & (df[NEW_METRICS] <= 1)).all().all()
