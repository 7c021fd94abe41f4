"""analysis.findings: the claims' verdicts on synthetic results whose answer is planted."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from analysis_fixtures import grid, write

from analysis import findings, load_results, report, settings, synthetic, trials
from analysis.findings import CONTRADICTED, INCONCLUSIVE, SUPPORTED
from study.results.files import write_atomic

VARIANTS = [
    ("erm", None, None),
    ("mixup", 0.2, None),
    ("mixup", 1.0, None),
    ("mit_a", 1.0, 0.5),
    ("cutmix", 1.0, None),
]
PAPER = {  # per variant: test_acc, test_ece, test_cal_ece — the paper's directions
    "erm": (0.900, 0.050, 0.010),
    ("mixup", 0.2): (0.910, 0.030, 0.015),
    ("mixup", 1.0): (0.920, 0.020, 0.020),
    "mit_a": (0.921, 0.030, 0.008),  # within C3's tolerance of mixup's accuracy
    "cutmix": (0.915, 0.030, 0.006),  # beyond the paper: calibrates better than ERM
}
OPPOSITE = {  # every claim the other way round
    "erm": (0.900, 0.020, 0.020),
    ("mixup", 0.2): (0.920, 0.040, 0.012),
    ("mixup", 1.0): (0.910, 0.050, 0.010),
    "mit_a": (0.880, 0.030, 0.030),
    "cutmix": (0.915, 0.030, 0.030),
}
COLUMNS = ["test_acc", "test_ece", "test_cal_ece"]


def _cells(planted: dict, models: tuple[str, ...] = ("resnet18", "resnet50")) -> pd.DataFrame:
    cells = grid(["cifar10"], list(models), VARIANTS)
    pairs = zip(cells["method"], cells["alpha"], strict=True)
    keys = [m if m in planted else (m, a) for m, a in pairs]
    cells[COLUMNS] = [planted[k] for k in keys]
    cells["test_conf"] = cells["test_acc"] + 0.01
    return cells


def _assess(tmp_path, planted: dict, seeds: int, noise: float = 0.0005, **kwargs):
    directory = write(_cells(planted, **kwargs), tmp_path / "r", seeds=seeds, noise=noise)
    return findings.assess(load_results(directory, columns=findings.COLUMNS))


def test_the_papers_directions_are_supported(tmp_path):
    result = _assess(tmp_path, PAPER, seeds=10)
    assert result.verdicts() == {"C1": SUPPORTED, "C2": SUPPORTED, "C3": SUPPORTED, "C4": SUPPORTED}
    c2 = next(f for f in result.claims if f.claim == "C2")
    (test,) = c2.comparisons  # one pooled test over both α and both backbones
    assert (test.pairs, test.seeds, test.cells) == (40, 10, 4)
    assert {c.variant for c in c2.evidence} == {"Mixup (α=0.2)", "Mixup (α=1.0)"}
    one = next(c for c in c2.evidence if c.variant == "Mixup (α=1.0)")
    assert (one.pairs, one.seeds, one.verdict) == (20, 10, "")  # 2 backbones × 10 replicates
    assert one.mean == pytest.approx(0.010, abs=0.001) and one.lo > 0
    assert result.test_samples == synthetic.TEST_SAMPLES


def test_the_opposite_directions_are_contradicted(tmp_path):
    result = _assess(tmp_path, OPPOSITE, seeds=10)
    assert result.verdicts() == {
        "C1": CONTRADICTED,
        "C2": CONTRADICTED,
        "C3": CONTRADICTED,
        "C4": CONTRADICTED,
    }


def test_one_seed_is_inconclusive_with_the_reason(tmp_path):
    result = _assess(tmp_path, PAPER, seeds=1)
    assert set(result.verdicts().values()) == {INCONCLUSIVE}
    assert all(f.reason.startswith("one replicate") for f in result.claims)
    assert any(w.startswith("One replicate") for w in result.warnings)
    text = findings.markdown(result)
    assert "| C1 | mixup lowers the raw ECE compared with ERM | **inconclusive** | one rep" in text


def test_differences_inside_the_noise_are_inconclusive(tmp_path):
    same = {k: PAPER["erm"] for k in PAPER}
    result = _assess(tmp_path, same, seeds=4, noise=0.01)
    assert result.verdicts()["C1"] == INCONCLUSIVE
    assert "the 95% interval contains the boundary" in result.claims[0].reason


def test_the_pitfall_is_checked_for_every_variant(tmp_path):
    result = _assess(tmp_path, PAPER, seeds=10)
    verdicts = {c.variant: c.verdict for c in result.pitfall}
    assert verdicts == {
        "Mixup (α=0.2)": SUPPORTED,  # calibrated ECE above ERM's: the pitfall
        "Mixup (α=1.0)": SUPPORTED,
        "MIT-A (Δλ>0.5)": CONTRADICTED,  # below ERM's
        "CutMix": CONTRADICTED,
    }
    means = {c.variant: c.mean for c in result.pitfall}
    assert means["CutMix"] == pytest.approx(-0.004, abs=0.001)
    text = findings.markdown(result)
    assert re.search(
        r"\| cifar10 \| CutMix \| -0\.\d\d \| \[-0\.\d\d, -0\.\d\d\] \| \S+ \| 20 \| 10 "
        r"\| \d+ \| below ERM \|",
        text,
    )
    assert re.search(
        r"\| cifar10 \| Mixup \(α=1\.0\) \| \+\d\.\d\d .* above ERM: the pitfall \|", text
    )


def test_the_pitfall_by_each_measure_the_rows_have(tmp_path):
    """ACE planted above ERM's for CutMix (whose 15-bin ECE is below): the pitfall table says
    so measure by measure; a measure ERM's rows lack (written before it existed) is not paired,
    and a report leaves out its table."""
    directory = write(_cells(PAPER), tmp_path / "r", seeds=10, noise=0.0005)
    df = load_results(directory, columns=findings.COLUMNS)
    cutmix = df["variant"].astype(str) == "CutMix"
    df["test_cal_ace"] = np.where(cutmix, df["test_cal_ece"] + 0.02, df["test_cal_ece"])
    df["test_cal_smece"] = np.where(df["variant"].astype(str) == "ERM", np.nan, 0.01)
    result = findings.assess(df)
    by = {(c.metric, c.variant): c.verdict for c in result.pitfall}
    assert by[("test_cal_ece", "CutMix")] == CONTRADICTED
    assert by[("test_cal_ace", "CutMix")] == SUPPORTED
    assert by[("test_cal_ace", "Mixup (α=1.0)")] == SUPPORTED
    assert {m for m, _ in by} == {
        "test_cal_ece",
        "test_cal_ece_debiased",
        "test_cal_ace",
    }  # no smECE
    text = findings.markdown(result)
    assert re.search(r"\| Calibrated ACE \| cifar10 \| CutMix \| \+1\.\d\d .* the pitfall \|", text)
    out = report.build_report(directory, tmp_path / "out")
    assert "### Calibrated ECE (%)" in out.read_text()
    assert "Calibrated ACE" not in out.read_text()  # the synthetic rows have no ACE


def test_missing_methods_are_not_tested(tmp_path):
    cells = _cells(PAPER)
    cells = cells[cells["method"].isin(["erm", "cutmix"])]
    directory = write(cells, tmp_path / "r", seeds=2, noise=0.0005)
    result = findings.assess(load_results(directory, columns=findings.COLUMNS))
    assert set(result.verdicts().values()) == {INCONCLUSIVE}
    assert result.claims[0].reason == "not tested: the results have no ok mixup trials"
    assert [c.variant for c in result.pitfall] == ["CutMix", "CutMix"]  # ECE, debiased ECE


def test_repeated_trials_count_once_and_are_named(tmp_path):
    """Seed 0 run twice by another study: not a second replicate (pairs stay 2, seeds 1)."""
    cells = _cells(PAPER)
    frame = synthetic.trials(cells, 1)
    again = frame.assign(trial_id=[f"r{i:06d}" for i in range(len(frame))], study="again")
    rows = synthetic.epoch_rows(pd.concat([frame, again], ignore_index=True), 2)
    write_atomic(synthetic.to_arrow(rows), tmp_path / "r" / "p.parquet")
    df = load_results(tmp_path / "r", columns=findings.COLUMNS)
    result = findings.assess(df)
    assert result.verdicts()["C2"] == INCONCLUSIVE  # still one seed
    assert {c.pairs for c in result.pitfall} == {2}  # one per backbone, not two
    (repeat,) = [w for w in result.warnings if "repeat" in w]
    assert repeat.startswith(f"{len(frame)} trials repeat an earlier trial's configuration")
    assert "t000000 run again as r000000" in repeat
    assert len(trials.drop_repeats(df)) == len(frame)
    report.build_report(tmp_path / "r", tmp_path / "report")  # the tables count each once too
    table = pd.read_csv(tmp_path / "report" / "tables" / "test_cal_ece.csv")
    assert (table["n"] == 1).all() and table["std"].isna().all()


def test_temperatures_at_the_grid_edge_are_warned(tmp_path):
    cells = _cells(PAPER)
    cells["temperature"] = np.where(cells["method"] == "cutmix", 0.01, 1.3)
    cells["opt_temperature"] = np.where(cells["method"] == "mit_a", 4.99, 1.3)
    directory = write(cells, tmp_path / "r", seeds=1)
    result = findings.assess(load_results(directory, columns=findings.COLUMNS))
    validation, test = [w for w in result.warnings if "edge of the grid" in w]
    assert validation.startswith("2 trials fitted T on validation at the edge of the grid")
    assert "CutMix, seed 0 (t000004: T = 0.01)" in validation
    assert "calibrated ECE is only an upper bound" in validation
    assert test.startswith("2 trials fitted T on test") and "T = 4.99" in test


def test_trials_before_their_planned_last_epoch_are_warned(tmp_path):
    """A study read while it runs (or with trials stopped early) compares some trials at an
    earlier epoch: the Findings say which, and only those."""
    directory = write(_cells(PAPER), tmp_path / "r", seeds=3)
    df = load_results(directory, columns=findings.COLUMNS)
    assert not any("planned last epoch" in w for w in findings.assess(df).warnings)
    late = df["trial_id"].iloc[0]
    df.loc[df["trial_id"] == late, "epoch"] = df["epochs"] - 1
    text = " ".join(findings.assess(df).warnings)
    assert "1 trial did not reach its planned last epoch" in text
    assert f"{late} at epoch" in text


def test_mit_a_as_bad_as_mixup_is_never_supported(tmp_path):
    """C3's tolerance is half the measured pitfall: an MIT-A that calibrates exactly as badly
    as mixup (and keeps its accuracy) fails the calibration half, however many replicates."""
    planted = {**PAPER, "mit_a": PAPER[("mixup", 1.0)]}
    result = _assess(tmp_path, planted, seeds=10)
    c3 = next(f for f in result.claims if f.claim == "C3")
    assert c3.verdict == CONTRADICTED
    half = next(c for c in c3.comparisons if c.metric == "test_cal_ece")
    assert half.boundary == pytest.approx(0.005, abs=0.0005)  # half of mixup's +1.0 points


def test_c3_without_a_gain_or_a_mixup_at_its_alpha_says_so(tmp_path):
    no_gain = {**PAPER, ("mixup", 1.0): (0.85, 0.02, 0.02), ("mixup", 0.2): (0.85, 0.03, 0.015)}
    reason = next(f for f in _assess(tmp_path, no_gain, seeds=5).claims if f.claim == "C3")
    assert reason.verdict == INCONCLUSIVE and "no accuracy gain over ERM" in reason.reason
    cells = _cells(PAPER)
    cells.loc[cells["method"] == "mit_a", "alpha"] = 0.5
    directory = write(cells, tmp_path / "alpha", seeds=3, noise=0.0005)
    result = findings.assess(load_results(directory, columns=findings.COLUMNS))
    c3 = next(f for f in result.claims if f.claim == "C3")
    assert c3.verdict == INCONCLUSIVE and "no mixup trial at MIT-A's α" in c3.reason


def test_c4_is_a_trend_over_every_alpha(tmp_path):
    """Three α: a rise from the smallest to the largest that falls in between is no trend
    unless the slope over all three says so; here the middle α carries the whole effect."""
    result = _assess(tmp_path, PAPER, seeds=10)
    c4 = next(f for f in result.claims if f.claim == "C4")
    assert all("every α" in c.variant and c.cells == 2 for c in c4.comparisons)
    assert {c.metric for c in c4.comparisons} == {"test_acc", "test_cal_ece"}


def test_settings_beyond_the_replicate_are_separate_cells(tmp_path):
    """Trials that differ in `train.epochs` are never averaged as replicates: each setting is
    its own cell, the warning names the key, and replicates that share one split seed warn."""
    directory = write(_cells(PAPER, models=("resnet18",)), tmp_path / "r", seeds=3)
    df = load_results(directory, columns=findings.COLUMNS)
    longer = df.assign(
        trial_id=df["trial_id"].astype(str) + "x",
        config_json=df["config_json"].str.replace('"train": {', '"train": {"epochs": 30, ', 1),
    )
    both = pd.concat([df, longer], ignore_index=True)
    both["config_json"] = both["config_json"].str.replace('"split_seed": 1', '"split_seed": 0')
    both["config_json"] = both["config_json"].str.replace('"split_seed": 2', '"split_seed": 0')
    result = findings.assess(both)
    text = " ".join(result.warnings)
    assert "differ in more than their replicate" in text and "train.epochs" in text
    assert "share one data subset (dataset.split_seed 0)" in text
    separated = settings.separate(both)
    assert separated["backbone"].astype(str).str.contains(r"\[train\.epochs=").all()
    assert settings.separate(separated)["backbone"].equals(separated["backbone"])  # idempotent
