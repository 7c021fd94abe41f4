"""`analysis report RESULTS_DIR [--out DIR] [--epochs last|best]`: the paper's tables and figures.

User errors (no results, another schema version, a bad argument) print one line on stderr and
exit with status 2, without a traceback (DESIGN.md, "CLI"). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from analysis.load import ResultsError


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
        help="write report.md, figures and tables",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  analysis report studies/demo/latest/results      # → studies/demo/latest/report/report.md
  analysis report out/ --out report/               # rows of `study trial --results out/`
  analysis report studies/demo/latest/results --epochs best""",
    )
    report.add_argument("results", type=Path, help="directory of <trial_id>.parquet results")
    report.add_argument(
        "--out", type=Path, default=None, help="output directory (default: RESULTS/../report)"
    )
    report.add_argument(
        "--epochs",
        choices=["last", "best"],
        default="last",
        help="row of each trial in the tables: its last epoch, or its best by val_acc",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `analysis` console script; returns the exit status."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as done:  # usage errors (status 2, one line) and --help (status 0)
        return int(done.code or 0)
    from analysis.report import build_report  # pandas and friends only after parsing

    out = args.out or args.results.resolve().parent / "report"
    try:
        path = build_report(args.results, out, args.epochs, progress=_stderr)
    except ResultsError as err:
        print(f"analysis: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
