"""`study run | trial | resume | compact | validate` (README "Commands").

User errors (bad spec, unknown name, missing data, impossible resources) print one line on stderr
and exit with status 2; nothing is started. A full disk is one line too (study.diskfull), exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from study.diskfull import DiskFull
from study.errors import ConfigError

USER_ERROR = 2
EXAMPLES = {  # each command's --help ends with these
    "run": """examples:
  study run search_spaces/demo.yaml --name auto --trials 4 -v \\
    --set train.epochs=2 --set 'train.milestones=[1]'
  study run search_spaces/demo.yaml --name auto       # a new study in studies/demo/
  CIFAR10_DIR=/data/cifar10 study run search_spaces/cifar10_cpu.yaml --address auto
  study run search_spaces/paper_cifar10.yaml --storage s3://bucket/studies --address HOST:6379""",
    "resume": """examples:
  study resume search_spaces/demo.yaml                # after a crash or Ctrl-C (the latest;
                                                      # same spec and --set values as its run)
  study resume search_spaces/demo.yaml --storage studies/demo \\
    --name "$(readlink studies/demo/latest)"     # one study of a folder of studies""",
    "trial": """examples:
  study trial search_spaces/demo.yaml --set method.name=mit_a --results out/
  study trial --set dataset.name=fake --set model.width=8 --set train.epochs=1""",
    "compact": """examples:
  study compact studies/demo/latest                   # an interrupted study's files, merged
  study compact s3://bucket/studies/paper_cifar10""",
    "validate": """examples:
  study validate search_spaces/demo.yaml
  study validate search_spaces/paper_cifar10.yaml""",
}


SETTINGS_NOTE = """\
--set SECTION.KEY=VALUE: VALUE is YAML ('tune.loggers=[csv]', 'search.points=[]'); the keys:"""


def settings_help(study_sections: bool = True) -> str:
    """Every `--set` section and key, from the dataclasses that define them (study.train.config's
    TrialConfig sections; with `study_sections` study.spec's search, resources and tune), so
    the list never drifts."""
    import dataclasses

    from study.spec import Resources, Search, TuneSettings
    from study.train.config import SECTIONS

    sections = {name: factory().__class__ for name, factory in SECTIONS.items()}
    if study_sections:
        sections |= {"search": Search, "resources": Resources, "tune": TuneSettings}
    lines = [SETTINGS_NOTE]
    for name, cls in sections.items():
        lines.append(f"  {name}: {', '.join(f.name for f in dataclasses.fields(cls))}")
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """A command's parser whose help ends with the `--set` keys when it takes --set (built
    when help is asked for: it imports study.spec, which imports optuna)."""

    def format_help(self) -> str:
        text = super().format_help()
        if any(a.dest == "sets" for a in self._actions):
            keys = settings_help(study_sections=not self.prog.endswith(" trial"))
            text = f"{text.rstrip()}\n\n{keys}\n"
        return text


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"study {args.command}: error: {e}", file=sys.stderr)
        return USER_ERROR
    except DiskFull as e:  # the input was fine: exit 1, with what to run once space is freed
        print(f"study {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"study {args.command}: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="study",
        description="Mixup-calibration studies (Wang et al., CVPR 2023) on Ray Tune.",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, **kw: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, epilog=EXAMPLES[name], formatter_class=argparse.RawDescriptionHelpFormatter, **kw
        )

    run = command("run", help="run a study on Ray Tune (a local Ray instance by default)")
    run.add_argument("spec", type=Path, help="study spec (YAML, see search_spaces/)")
    run.add_argument("--address", help="join a Ray cluster: auto or HOST:PORT")
    run.add_argument(
        "--storage",
        help="where studies live: a directory or a URI such as s3://bucket/prefix, gs://, abfs://, "
        "hdfs://, file:// (every node must reach it; default: ./studies)",
    )
    run.add_argument(
        "--name",
        help="study name (default: the spec's name); `auto`: a new study <spec>-<date>-<time> "
        "in the folder of studies <storage>/<spec>/ (its `latest` link points at the newest)",
    )
    run.add_argument(
        "--trials",
        type=int,
        metavar="N",
        help="run N trials: search.trials=N, search.points cut to their first N (a small study)",
    )
    run.add_argument("--resume", action="store_true", help="continue a stopped or crashed study")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="sets",
        help="override a setting, e.g. train.epochs=2 (repeatable; every key: the end of "
        "this help)",
    )
    run.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print every trial's per-epoch line (always in STUDY_DIR/study.log)",
    )
    run.set_defaults(func=_run)

    resume = command("resume", help="continue a stopped or crashed study (run --resume)")
    for a in run._actions[1:]:
        if a.dest not in ("resume", "help"):
            resume._add_action(a)
    resume.set_defaults(func=_resume)

    trial = command("trial", help="run one trial in-process, without Ray (debugging)")
    trial.add_argument("spec", nargs="?", type=Path, help="optional spec: its fixed settings")
    trial.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="sets",
        help="a setting, e.g. method.name=mit_a (repeatable; every key: the end of this help)",
    )
    trial.add_argument("--results", type=Path, help="write the per-epoch Parquet rows here")
    trial.add_argument("--quiet", action="store_true", help="no progress bar")
    trial.set_defaults(func=_trial)

    compact = command(
        "compact", help="merge a study's per-trial results files into one (safe, idempotent)"
    )
    compact.add_argument("directory", help="study directory, its results/, or a URI (s3://…)")
    compact.set_defaults(func=_compact)

    validate = command("validate", help="check a spec and print its search space")
    validate.add_argument("spec", type=Path)
    validate.set_defaults(func=_validate)
    return p


def _run(args: argparse.Namespace) -> int:
    if args.storage is not None and not args.storage.strip():  # not silently ./studies
        raise ConfigError(
            f"--storage {args.storage!r} is empty: give a directory or a URI (s3://…), or leave "
            "--storage out (the spec's storage, else ./studies)"
        )
    if args.verbose:
        os.environ["STUDY_VERBOSE"] = "1"  # read by study.tune.progress.LiveStatus, also on resume
    from study.cli.run import run_study_cli

    return run_study_cli(args)


def _resume(args: argparse.Namespace) -> int:
    args.resume = True
    return _run(args)


def _trial(args: argparse.Namespace) -> int:
    from study.cli.trial import trial_cli

    return trial_cli(args)


def _compact(args: argparse.Namespace) -> int:
    from study.results.compact import compact_cli
    from study.tune.lock import held_if_study

    with held_if_study(args.directory):  # one writer per study
        return compact_cli(args)


def _validate(args: argparse.Namespace) -> int:
    from study.spec import load_spec

    spec = load_spec(args.spec)
    print(spec.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
