"""`analysis report STUDY|RESULTS|URI [--out DIR] [--epochs last|best] [--select METRIC]`.

User errors (no results, another schema version, a bad argument) print one line on stderr and
exit with status 2, without a traceback (README, "A study on Ray Tune"). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from analysis.load import ResultsError

SELECTABLE = ("val_acc", "val_cal_ece", "val_ece", "val_nll")  # validation only: never test


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (exit 2), not the whole usage text."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message}\n")


def parser() -> argparse.ArgumentParser:
    """The command line: one subcommand, `report`."""
    p = _Parser(prog="analysis", description="Tables and figures of mixup-calibration results.")
    commands = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    report = commands.add_parser(
        "report",
        help="write report.md (Findings on the paper's claims first), figures, tables",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  analysis report studies/demo/latest              # → studies/demo/latest/report/report.md
  analysis report out/ --out report/               # rows of `study trial --results out/`
  analysis report s3://bucket/studies/NAME --epochs best""",
    )
    report.add_argument(
        "results", help="study directory, its results/ directory, one file, or a URI (s3://…)"
    )
    report.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output directory (default: STUDY/report; ./report for a URI)",
    )
    report.add_argument(
        "--epochs",
        choices=["last", "best"],
        default="last",
        help="row of each trial in the tables: its last epoch, or its best by val_acc",
    )
    report.add_argument(
        "--select",
        default=None,
        metavar="METRIC",
        help="validation metric that picks a searched method's best trial per cell and "
        "replicate (val_acc, val_cal_ece, val_ece, val_nll; default: the spec's first "
        "objective); the report states the rule",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `analysis` console script; returns the exit status."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as done:  # usage errors (status 2, one line) and --help (status 0)
        return int(done.code or 0)
    from analysis.report import build_report  # pandas and friends only after parsing
    from study.errors import ConfigError
    from study.paths import writable_dir

    if args.select is not None and args.select not in SELECTABLE:
        print(
            f"analysis: --select must be one of {', '.join(SELECTABLE)}; got {args.select!r}",
            file=sys.stderr,
        )
        return 2
    out = args.out or _default_out(args.results)
    try:  # before any work (a missing RESULTS is the loader's one line, nothing made)
        if "://" in args.results or Path(args.results).exists():
            writable_dir(out, "--out")
    except ConfigError as err:
        print(f"analysis: {err}", file=sys.stderr)
        return 2
    try:
        path = build_report(args.results, out, args.epochs, _stderr, args.select)
    except ResultsError as err:
        print(f"analysis: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


def _default_out(results: str) -> Path:
    """STUDY/report for a study directory or its results/; ./report for a URI."""
    if "://" in results:
        return Path("report")
    path = Path(results).resolve()
    return (path if (path / "results").is_dir() else path.parent) / "report"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
