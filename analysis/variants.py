"""Names shown to readers: variant labels, backbone labels and the metrics the tables rank.

A *variant* is a method with its parameters, one column of the paper's Tables 4 and 5 ("ERM",
"Mixup (0.1)", "Mixup (DT)", "MIT-A (Δλ > ½)", …). Labels are built from the `method`, `alpha`
and `margin` columns of the results, so the same trial always gets the same label:

- mixup always shows its α ("Mixup (α=0.1)"), as Tables 1, 4 and 5 give one column per α;
- MIT always shows its margin ("MIT-A (Δλ>0.5)"; a null margin, the constraint switched off, is
  "Δλ>0" since λ1 ≥ ½ ≥ λ2 always holds);
- every other method shows its α only when the results hold more than one α for it
  ("Mixup-DT" alone, or "Mixup-DT (α=0.5)" and "Mixup-DT (α=1.0)").

Fractions versus percentages: results hold fractions in [0, 1]; the paper prints percentages.
`PERCENT` is the one factor between them (used by the display code and by `analysis.paper`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

PERCENT = 100.0  # paper value = PERCENT × our fraction, for metrics with `percent=True`

METHOD_NAMES = {
    "erm": "ERM",
    "mixup": "Mixup",
    "mixup_dt": "Mixup-DT",
    "mixup_to": "Mixup-TO",
    "mixup_sc": "Mixup-SC",
    "mixup_io": "Mixup-IO",
    "mit_l": "MIT-L",
    "mit_a": "MIT-A",
    "cutmix": "CutMix",
    "manifold_mixup": "Manifold Mixup",
    "regmixup": "RegMixup",
    "label_smoothing": "Label smoothing",
}
ALPHA_ALWAYS = frozenset({"mixup"})  # one table column per α (Tables 1, 4, 5)
MARGIN_METHODS = frozenset({"mit_l", "mit_a"})  # the Δλ constraint of MIT
BASELINE = "ERM"  # the variant every gain and difference is measured against
PRETRAINED_MARK = "†"  # the paper's mark of an ImageNet-pretrained backbone

UNKNOWN = "?"  # the label part of a null method or model
VARIANT_KEYS = ["method", "alpha", "margin"]
BACKBONE_KEYS = ["model", "pretrained"]


@dataclass(frozen=True)
class Metric:
    """A result column the tables rank: its label and whether higher values are better."""

    column: str
    label: str
    higher_is_better: bool
    percent: bool  # a fraction the paper prints as a percentage

    def show(self, value: float, signed: bool = False) -> str:
        """The value as the paper prints it (percent, 2 decimals; else 3); empty when missing."""
        if pd.isna(value):
            return ""
        scale, digits = (PERCENT, 2) if self.percent else (1.0, 3)
        return f"{value * scale:{'+' if signed else ''}.{digits}f}"

    @property
    def title(self) -> str:
        """The label with its unit, e.g. "Calibrated ECE (%)"."""
        return f"{self.label} (%)" if self.percent else self.label


METRICS = {
    m.column: m
    for m in [
        Metric("test_acc", "Accuracy", True, True),
        Metric("test_ece", "ECE", False, True),
        Metric("test_cal_ece", "Calibrated ECE", False, True),
        Metric("test_opt_ece", "Optimal ECE", False, True),
        Metric("test_ace", "ACE", False, True),
        Metric("test_cal_ace", "Calibrated ACE", False, True),
        Metric("test_cw_ece", "Classwise ECE", False, True),
        Metric("test_cal_cw_ece", "Calibrated classwise ECE", False, True),
        Metric("test_smece", "smECE", False, True),
        Metric("test_cal_smece", "Calibrated smECE", False, True),
        # derived by the loader from the stored bins (analysis.ece_bias), not Parquet columns
        Metric("test_cal_ece_debiased", "Debiased calibrated ECE", False, True),
        Metric("test_cal_ece_floor", "Calibrated ECE noise floor", False, True),
        Metric("test_nll", "NLL", False, False),
        Metric("test_brier", "Brier", False, False),
        Metric("val_acc", "Validation accuracy", True, True),
        Metric("val_ece", "Validation ECE", False, True),
        Metric("val_cal_ece", "Validation calibrated ECE", False, True),
        Metric("val_nll", "Validation NLL", False, False),
    ]
}


def get_metric(column: str) -> Metric:
    """The spec of a ranked metric; ValueError naming the valid ones otherwise."""
    if column not in METRICS:
        raise ValueError(f"unknown metric {column!r}; valid: {', '.join(METRICS)}")
    return METRICS[column]


DIGITS = 3  # significant digits of α and Δλ in labels (a searched α is not 0.123457)


def format_alpha(alpha: float, digits: int = DIGITS) -> str:
    """α as the paper writes it: at least one decimal ("1.0", "0.1", "0.25"), at most `digits`
    significant digits ("0.123")."""
    text = f"{alpha:.{digits}g}"
    return text if any(c in text for c in ".e") else f"{alpha:.1f}"


def variant_label(
    method: str,
    alpha: float | None,
    margin: float | None,
    show_alpha: bool = False,
    digits: int = DIGITS,
) -> str:
    """The display label of one (method, α, margin), e.g. "MIT-A (Δλ>0.5)" (module docstring)."""
    parts = []
    if method in MARGIN_METHODS:
        parts.append(f"Δλ>{0.0 if pd.isna(margin) else margin:.{digits}g}")
    if (show_alpha or method in ALPHA_ALWAYS) and not pd.isna(alpha):
        parts.append(f"α={format_alpha(alpha, digits)}")
    name = METHOD_NAMES.get(method, method)
    return f"{name} ({', '.join(parts)})" if parts else name


def _sort_key(method: str, alpha: float | None, margin: float | None) -> tuple:
    rank = list(METHOD_NAMES).index(method) if method in METHOD_NAMES else len(METHOD_NAMES)
    return (rank, method, _or_zero(margin), _or_zero(alpha))


def _or_zero(x: float | None) -> float:
    return 0.0 if pd.isna(x) else float(x)


def _names(values: pd.Series) -> pd.Series:
    """Names as plain strings, UNKNOWN where null (an error row of a config that failed)."""
    return values.astype(object).where(values.notna(), UNKNOWN).astype(str)


def combination_codes(df: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """0, 1, 2, … per distinct combination of `keys` (nulls included), by first appearance.

    Each column is factorised on its own and the codes are combined into one integer, so no
    tuples are built (a MultiIndex of millions of rows costs seconds).
    """
    codes = np.zeros(len(df), dtype=np.int64)
    for key in keys:
        key_codes, uniques = pd.factorize(df[key], use_na_sentinel=False)
        codes = codes * len(uniques) + key_codes
    return pd.factorize(codes)[0]


def label_combinations(
    df: pd.DataFrame,
    keys: list[str],
    make_labels: Callable[[pd.DataFrame], list[str]],
    order: Callable[[list[str], pd.DataFrame], list[str]],
) -> pd.Categorical:
    """Label every row by its `keys` combination, as an ordered categorical.

    `make_labels(combos)` labels the distinct combinations and `order(labels, combos)` sorts the
    distinct labels. The rows are factorised (hashing, no sort and no Python call per row), so
    this stays fast on millions of rows.
    """
    groups = combination_codes(df, keys)
    first = pd.Series(groups).drop_duplicates().index.to_numpy()
    combos = df[keys].iloc[first].reset_index(drop=True)
    labels = make_labels(combos)
    categories = order(labels, combos)
    lookup = np.array([categories.index(label) for label in labels], dtype=np.int64)
    return pd.Categorical.from_codes(lookup[groups], categories=categories, ordered=True)


def variant_column(df: pd.DataFrame) -> pd.Categorical:
    """The `variant` label of every row, an ordered categorical in the tables' column order."""
    return label_combinations(df, VARIANT_KEYS, variant_labels, variant_order)


def variant_labels(combos: pd.DataFrame) -> list[str]:
    """Labels of distinct (method, alpha, margin) rows, by the rules of the module docstring."""
    methods = _names(combos["method"])
    n_alphas = combos["alpha"].groupby(methods).nunique()
    rows = list(zip(methods, combos["alpha"], combos["margin"], strict=True))
    labels = [variant_label(m, a, g, show_alpha=n_alphas[m] > 1) for m, a, g in rows]
    clash = {x for x in labels if labels.count(x) > 1}  # rounding never merges two variants
    return [
        variant_label(m, a, g, show_alpha=n_alphas[m] > 1, digits=17) if x in clash else x
        for x, (m, a, g) in zip(labels, rows, strict=True)
    ]


def variant_order(labels: list[str], combos: pd.DataFrame) -> list[str]:
    """Distinct labels in table order: ERM, mixup by α, the ablations, then MIT."""
    methods = _names(combos["method"])
    rows = zip(methods, combos["alpha"], combos["margin"], strict=True)
    keys = [_sort_key(m, a, g) for m, a, g in rows]
    return list(dict.fromkeys(label for _, label in sorted(zip(keys, labels, strict=True))))


def backbone_label(model: str, pretrained: bool) -> str:
    """The model name, marked "†" when ImageNet-pretrained (Tables 4 and 5)."""
    return f"{model}{PRETRAINED_MARK}" if pretrained else str(model)


def backbone_column(df: pd.DataFrame) -> pd.Categorical:
    """The `backbone` label of every row (`backbone_label` of its model and pretrained flag)."""
    return label_combinations(df, BACKBONE_KEYS, _backbone_labels, _backbone_order)


def _backbone_labels(combos: pd.DataFrame) -> list[str]:
    flags = combos["pretrained"].fillna(False).astype(bool)
    return [backbone_label(m, p) for m, p in zip(_names(combos["model"]), flags, strict=True)]


def _backbone_order(labels: list[str], combos: pd.DataFrame) -> list[str]:
    return sorted(set(labels), key=_natural_key)


def _natural_key(label: str) -> tuple:
    """Sort "resnet18" before "resnet110" and pretrained rows last, as the paper's tables do."""
    digits = "".join(c for c in label if c.isdigit())
    return (label.endswith(PRETRAINED_MARK), label.rstrip("0123456789†"), int(digits or 0))
