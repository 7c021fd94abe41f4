"""The paper's own numbers: Tables 1, 4 and 5 of Wang et al., CVPR 2023, as data.

Transcribed from the authors' slides (shared/paper/pitfall-of-mixup-slides.txt): Table 1 (ECE,
calibrated ECE, optimal ECE of ERM and mixup α ∈ {0.1, 0.5, 1.0}; ResNet-18/50/110/152), Table 4
(calibrated ECE) and Table 5 (accuracy) with the paper's ranks and "Avg. gain" rows. The paper
prints percentages; `value` and `gain` here are fractions (÷ `variants.PERCENT`), like results.

Column mapping of Tables 4 and 5. The slides' text garbles the heads of the last three columns
into "MIT-A (Δλ>½) | MIT-L (Δλ>½) | MIT-A (Δλ>½)", and two columns cannot both be MIT-A with the
same margin. We keep the method names as printed (plain text survives extraction better than
the math beside it) and read the first column as MIT-A *without* the constraint:
    MIT-A (Δλ>0) | MIT-L (Δλ>0.5) | MIT-A (Δλ>0.5)
Support: the authors' code README demonstrates MIT-A with margin 0 and with margin 0.5 (and
MIT-L with margin 0), so MIT-A is run both ways; the first and last columns are also close to
each other in every row (e.g. Table 5, Tiny-ImageNet ResNet-110: 48.6, 44.4, 50.8), as two
runs of the same method would be, while the middle one differs. The alternative reading
"MIT-L (Δλ>0) | MIT-L (Δλ>0.5) | MIT-A (Δλ>0.5)" renames a printed MIT-A; change `COLUMNS_4_5`
to switch. The slides do not give α for the ablations and MIT; we take 1.0 (the README's
demos), which only matters for synthetic results: labels of those variants omit α.
"""

from __future__ import annotations

import re

import pandas as pd

from analysis import render
from analysis.tables import ok_trials
from analysis.variants import PERCENT, backbone_label, get_metric, variant_label

# (method, alpha, margin) of each column of Tables 4 and 5, left to right.
COLUMNS_4_5 = [
    ("erm", None, None),
    ("mixup", 0.1, None),
    ("mixup", 0.5, None),
    ("mixup", 1.0, None),
    ("mixup_dt", 1.0, None),
    ("mixup_to", 1.0, None),
    ("mixup_sc", 1.0, None),
    ("mixup_io", 1.0, None),
    ("mit_a", 1.0, 0.0),
    ("mit_l", 1.0, 0.5),
    ("mit_a", 1.0, 0.5),
]
COLUMNS_1 = COLUMNS_4_5[:4]  # Table 1: ERM, mixup α = 0.1, 0.5, 1.0
TABLE1_BACKBONES = ["ResNet18", "ResNet50", "ResNet110", "ResNet152"]
BACKBONES = {  # the paper's row names → (model, pretrained)
    "ResNet18": ("resnet18", False),
    "ResNet50": ("resnet50", False),
    "ResNet110": ("resnet110", False),
    "ResNet152": ("resnet152", False),
    "ResNet18†": ("tv_resnet18", True),
    "ResNet152†": ("tv_resnet152", True),
}

# Tables 5 (accuracy) and 4 (calibrated ECE): "value(rank)" per column; "gain" rows: Avg. gain.
TABLE5 = """
svhn          ResNet18    95.4(5)  95.5(4)  94.8(7)  94.5(8)  95.6(3)  96.0(1)  94.3(9)  93.5(10)  95.0(6)  93.2(11)  95.7(2)
svhn          ResNet50    96.0(4)  96.0(3)  95.8(5)  95.5(8)  95.5(7)  95.7(6)  95.3(9)  94.9(10)  96.2(2)  94.3(11)  96.2(1)
svhn          ResNet110   96.0(5)  96.1(4)  96.3(3)  95.8(7)  95.6(8)  95.9(6)  95.4(9)  95.3(10)  96.5(2)  95.0(11)  96.7(1)
svhn          ResNet152   96.2(5)  96.6(2)  96.4(4)  96.2(6)  95.6(8)  95.9(7)  95.5(9)  95.5(10)  96.5(3)  94.9(11)  96.7(1)
svhn          gain        —  +0.11  -0.10  -0.40  -0.32  -0.06  -0.78  -1.12  +0.14  -1.55  +0.41
cifar10       ResNet18    94.5(9)  95.1(6)  95.7(3)  95.8(2)  93.9(11)  94.5(8)  94.4(10)  94.7(7)  95.5(4)  95.2(5)  95.9(1)
cifar10       ResNet50    94.4(9)  95.3(7)  95.8(3)  96.0(1)  93.1(11)  94.2(10)  94.5(8)  95.3(6)  95.8(4)  95.7(5)  96.0(2)
cifar10       ResNet110   94.7(9)  95.7(6)  96.3(1)  96.2(2)  93.7(11)  94.3(10)  95.1(8)  95.4(7)  96.1(4)  96.0(5)  96.1(3)
cifar10       ResNet152   95.1(8)  95.8(7)  96.4(2)  96.7(1)  93.9(11)  94.8(10)  95.0(9)  95.8(6)  96.3(4)  96.2(5)  96.4(3)
cifar10       gain        —  +0.78  +1.36  +1.53  -1.01  -0.21  +0.08  +0.64  +1.27  +1.12  +1.41
cifar100      ResNet18    74.4(8)  75.3(7)  76.8(2)  77.2(1)  72.4(11)  76.4(4)  72.6(9)  72.5(10)  76.2(5)  75.9(6)  76.6(3)
cifar100      ResNet50    73.9(9)  76.4(6)  78.3(2)  77.8(3)  68.2(11)  75.1(7)  72.9(10)  74.5(8)  78.3(1)  76.6(5)  77.7(4)
cifar100      ResNet110   76.1(9)  77.9(6)  80.1(1)  79.3(2)  70.9(11)  77.3(7)  74.6(10)  76.7(8)  78.7(4)  77.9(5)  79.1(3)
cifar100      ResNet152   75.3(9)  78.2(6)  79.7(2)  79.6(3)  72.5(11)  76.9(7)  75.1(10)  76.7(8)  79.1(4)  78.2(5)  79.8(1)
cifar100      gain        —  +2.01  +3.79  +3.55  -3.92  +1.50  -1.12  +0.18  +3.14  +2.24  +3.38
tiny_imagenet ResNet18    46.1(9)  46.6(7)  47.4(5)  47.8(4)  36.5(11)  47.1(6)  43.0(10)  46.6(8)  49.5(1)  48.5(3)  49.3(2)
tiny_imagenet ResNet50    49.3(7)  49.5(6)  50.0(5)  50.4(4)  37.5(11)  49.0(8)  46.4(10)  48.8(9)  51.4(2)  51.0(3)  51.8(1)
tiny_imagenet ResNet110   48.5(3)  43.6(7)  42.7(9)  42.6(10)  35.6(11)  44.6(4)  43.9(6)  43.5(8)  48.6(2)  44.4(5)  50.8(1)
tiny_imagenet ResNet152   47.3(2)  44.7(5)  42.3(9)  44.6(6)  34.5(11)  45.5(4)  43.0(8)  39.7(10)  46.1(3)  43.8(7)  50.0(1)
tiny_imagenet ResNet18†   53.6(6)  53.5(8)  54.0(5)  53.5(7)  44.1(11)  54.7(1)  49.7(10)  50.5(9)  54.5(3)  54.4(4)  54.7(2)
tiny_imagenet ResNet152†  62.4(6)  63.2(2)  63.7(1)  63.0(3)  49.6(11)  62.6(4)  58.8(10)  59.9(9)  61.9(7)  62.5(5)  61.6(8)
tiny_imagenet gain        —  -1.01  -1.18  -0.87  -11.5  -0.60  -3.70  -3.04  +0.81  -0.41  +1.83
"""  # noqa: E501
TABLE4 = """
svhn          ResNet18    0.50(2)  0.99(7)  1.23(11)  1.12(10)  1.01(8)  1.05(9)  0.50(3)  0.61(5)  0.47(1)  0.65(6)  0.53(4)
svhn          ResNet50    0.87(6)  1.03(7)  1.21(9)  1.18(8)  1.55(11)  1.39(10)  0.59(4)  0.50(2)  0.49(1)  0.52(3)  0.66(5)
svhn          ResNet110   0.75(6)  1.08(7)  1.28(9)  1.14(8)  1.39(10)  1.43(11)  0.50(2)  0.60(4)  0.48(1)  0.53(3)  0.70(5)
svhn          ResNet152   0.90(6)  1.05(8)  1.21(9)  1.04(7)  1.28(10)  1.37(11)  0.57(2)  0.65(4)  0.61(3)  0.53(1)  0.67(5)
svhn          gain        —  +0.28  +0.47  +0.36  +0.55  +0.55  -0.21  -0.16  -0.24  -0.19  -0.11
cifar10       ResNet18    0.65(6)  1.04(8)  1.15(9)  0.94(7)  1.70(11)  1.45(10)  0.62(4)  0.61(3)  0.56(1)  0.59(2)  0.62(5)
cifar10       ResNet50    0.79(6)  1.07(8)  1.15(9)  0.91(7)  1.81(11)  1.64(10)  0.65(4)  0.46(1)  0.63(3)  0.59(2)  0.68(5)
cifar10       ResNet110   0.83(7)  1.08(9)  0.95(8)  0.83(6)  1.52(10)  1.56(11)  0.54(3)  0.50(1)  0.52(2)  0.54(4)  0.78(5)
cifar10       ResNet152   0.65(4)  1.12(9)  1.05(8)  0.76(7)  1.55(11)  1.42(10)  0.67(5)  0.48(1)  0.57(3)  0.50(2)  0.67(6)
cifar10       gain        —  +0.34  +0.34  +0.13  +0.91  +0.78  -0.11  -0.21  -0.15  -0.17  -0.04
cifar100      ResNet18    2.56(9)  1.76(5)  1.22(1)  1.25(2)  5.24(11)  3.33(10)  2.00(7)  1.87(6)  1.44(3)  2.18(8)  1.75(4)
cifar100      ResNet50    2.41(7)  1.87(2)  2.63(8)  2.66(9)  4.86(11)  4.55(10)  1.82(1)  2.10(5)  1.90(3)  2.15(6)  1.97(4)
cifar100      ResNet110   2.64(7)  1.37(1)  3.21(9)  3.02(8)  4.70(11)  4.45(10)  1.76(2)  1.93(3)  1.98(4)  2.25(6)  2.00(5)
cifar100      ResNet152   2.42(6)  1.67(2)  2.57(8)  3.52(9)  4.19(11)  3.97(10)  1.65(1)  1.98(4)  1.71(3)  2.47(7)  2.17(5)
cifar100      gain        —  -0.84  -0.10  +0.10  +2.24  +1.56  -0.69  -0.53  -0.74  -0.24  -0.53
tiny_imagenet ResNet18    1.33(4)  1.32(2)  1.33(3)  1.49(8)  2.22(11)  1.55(10)  1.38(5)  1.30(1)  1.47(7)  1.54(9)  1.41(6)
tiny_imagenet ResNet50    1.23(3)  1.28(4)  1.46(6)  1.65(9)  2.08(11)  1.83(10)  1.59(8)  1.58(7)  1.18(1)  1.23(2)  1.36(5)
tiny_imagenet ResNet110   1.36(4)  1.55(8)  1.52(7)  2.26(11)  2.14(10)  1.28(1)  1.92(9)  1.49(6)  1.35(3)  1.29(2)  1.39(5)
tiny_imagenet ResNet152   1.33(3)  2.08(10)  1.82(7)  2.00(8)  1.81(6)  2.06(9)  1.46(5)  2.19(11)  1.43(4)  1.17(1)  1.30(2)
tiny_imagenet ResNet18†   1.12(2)  1.43(5)  1.22(3)  1.31(4)  2.83(11)  1.90(10)  1.58(7)  1.72(8)  1.56(6)  1.79(9)  1.11(1)
tiny_imagenet ResNet152†  1.96(6)  1.57(4)  2.75(9)  2.74(8)  4.83(10)  6.60(11)  1.19(1)  1.68(5)  1.37(3)  2.58(7)  1.26(2)
tiny_imagenet gain        —  +0.14  +0.29  +0.51  +1.26  +1.14  +0.13  +0.27  0.00  +0.21  -0.08
"""  # noqa: E501
# Table 1: per row, ERM then mixup α = 0.1, 0.5, 1.0, each over ResNet-18, 50, 110, 152.
TABLE1 = """
svhn          test_ece     2.15 2.67 2.43 2.56  3.96 1.89 2.46 1.38  11.2 9.48 8.04 9.37  14.8 13.7 13.8 12.9
svhn          test_cal_ece 0.50 0.87 0.75 0.90  0.99 1.03 1.08 1.05  1.23 1.21 1.28 1.21  1.12 1.18 1.14 1.04
svhn          test_opt_ece 0.24 0.56 0.45 0.58  0.75 0.74 0.85 0.68  1.12 0.95 0.95 0.88  1.04 0.98 0.88 0.78
cifar10       test_ece     3.33 3.99 3.78 3.47  2.57 2.22 2.55 2.53  6.87 6.25 6.55 6.20  12.1 11.5 10.5 11.2
cifar10       test_cal_ece 0.65 0.79 0.83 0.65  1.04 1.07 1.08 1.12  1.15 1.15 0.95 1.05  0.94 0.91 0.83 0.76
cifar10       test_opt_ece 0.59 0.63 0.61 0.52  0.97 0.98 1.01 1.01  0.97 1.03 0.88 0.88  0.85 0.80 0.71 0.65
cifar100      test_ece     10.9 12.5 11.9 11.7  2.43 6.63 5.95 5.59  10.8 3.89 3.91 3.85  13.0 7.44 7.50 7.55
cifar100      test_cal_ece 2.56 2.41 2.64 2.42  1.76 1.87 1.37 1.67  1.22 2.63 3.21 2.57  1.25 2.66 3.02 3.52
cifar100      test_opt_ece 2.45 2.29 2.44 2.31  1.60 1.59 1.23 1.45  0.98 2.46 3.04 2.39  1.09 2.54 2.85 3.38
tiny_imagenet test_ece     23.2 20.5 20.7 21.6  8.57 7.51 9.76 10.4  3.98 3.92 2.16 3.29  6.85 7.44 4.98 5.93
tiny_imagenet test_cal_ece 1.33 1.23 1.36 1.33  1.32 1.28 1.55 2.08  1.33 1.46 1.52 1.82  1.49 1.65 2.26 2.00
tiny_imagenet test_opt_ece 1.14 1.00 1.16 1.16  1.02 1.05 1.40 1.93  1.08 1.21 1.23 1.60  1.20 1.30 1.91 1.69
"""  # noqa: E501
RANKED = {"Table 4": ("test_cal_ece", TABLE4), "Table 5": ("test_acc", TABLE5)}
CELL = re.compile(r"([\d.]+)\((\d+)\)")


def _column(table: str, metric: str, dataset: str, paper_row: str, column: tuple) -> dict:
    model, pretrained = BACKBONES[paper_row]
    method, alpha, margin = column
    return {
        "table": table,
        "metric": metric,
        "dataset": dataset,
        "model": backbone_label(model, pretrained),
        "variant": variant_label(method, alpha, margin),
        "method": method,
        "alpha": alpha,
        "margin": margin,
        "pretrained": pretrained,
    }


def _rows(text: str) -> list[list[str]]:
    return [line.split(maxsplit=2) for line in text.strip().splitlines()]


def paper_cells() -> pd.DataFrame:
    """Every printed cell of Tables 1, 4, 5: table, metric, dataset, model, variant, the
    variant's method/alpha/margin, pretrained, value (a fraction) and rank (NaN in Table 1)."""
    cells = []
    for table, (metric, text) in RANKED.items():
        for dataset, row, rest in (r for r in _rows(text) if r[1] != "gain"):
            for column, (value, rank) in zip(COLUMNS_4_5, CELL.findall(rest), strict=True):
                cell = _column(table, metric, dataset, row, column)
                cells.append({**cell, "value": float(value) / PERCENT, "rank": float(rank)})
    for dataset, metric, rest in _rows(TABLE1):
        values = iter(rest.split())
        for column in COLUMNS_1:
            for row in TABLE1_BACKBONES:
                cell = _column("Table 1", metric, dataset, row, column)
                cells.append({**cell, "value": float(next(values)) / PERCENT, "rank": None})
    return pd.DataFrame(cells).astype({"rank": float})


def paper_gains() -> pd.DataFrame:
    """The "Avg. gain" rows of Tables 4 and 5: table, metric, dataset, variant, gain (fraction)."""
    gains = []
    for table, (metric, text) in RANKED.items():
        for dataset, _, rest in (r for r in _rows(text) if r[1] == "gain"):
            for column, token in zip(COLUMNS_4_5[1:], rest.split()[1:], strict=True):
                variant = variant_label(*column)
                gains.append((table, metric, dataset, variant, float(token) / PERCENT))
    return pd.DataFrame(gains, columns=["table", "metric", "dataset", "variant", "gain"])


def compare(df: pd.DataFrame) -> pd.DataFrame:
    """Our mean beside the paper's value for every cell both have (one row per trial in).

    Columns: table, metric, dataset, model, variant, ours, paper, diff (= ours − paper) and
    n (our seeds); values are fractions.
    """
    ok = ok_trials(df)
    paper = paper_cells()
    keys = ["dataset", "backbone", "variant"]
    ours = []
    for metric in paper["metric"].unique():
        means = ok.groupby(keys, observed=True)[metric].agg(["mean", "count"])
        ours.append(means.reset_index().assign(metric=metric))
    ours_long = pd.concat(ours).astype({k: str for k in keys}).rename(columns={"backbone": "model"})
    merged = paper.merge(ours_long, on=["metric", "dataset", "model", "variant"])
    merged = merged.dropna(subset=["mean"]).rename(columns={"mean": "ours", "value": "paper"})
    merged["diff"] = merged["ours"] - merged["paper"]
    columns = ["table", "metric", "dataset", "model", "variant", "ours", "paper", "diff"]
    return merged[columns].assign(n=merged["count"]).reset_index(drop=True)


def comparison_markdown(comparison: pd.DataFrame) -> str:
    """The comparison as a markdown table, in the paper's units (percent for fractions)."""
    header = ["table", "metric", "dataset", "model", "variant", "ours", "paper", "ours − paper"]
    rows = []
    for r in comparison.itertuples(index=False):
        spec = get_metric(r.metric)
        head = [r.table, spec.label, r.dataset, r.model, r.variant]
        rows.append([*head, spec.show(r.ours), spec.show(r.paper), spec.show(r.diff, True)])
    return render.markdown_table(header, rows)
