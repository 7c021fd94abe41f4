"""The `study` command: `main` parses (study.cli.main), `run` drives a study (study.cli.run),
`trial` trains one trial in-process (study.cli.trial). The top layer: it may import any other,
and nothing imports it."""
