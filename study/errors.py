"""The user-error type of configs and specs, below everything that raises it: the registries
(datasets, models, methods) and study.train.config both import it from here, so neither imports the
other to raise one (study.train.config re-exports it)."""


class ConfigError(ValueError):
    """A user error in a config or spec: the message is one line naming the valid choices."""
