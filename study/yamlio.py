"""YAML as specs and `--set` values read it: PyYAML's safe loader with two fixes.

- `1e-3`, `5e4`, `-2E+1` are floats (YAML 1.2, and what every user writes for a learning rate;
  PyYAML follows YAML 1.1, where a float needs a dot, and would hand them over as strings).
- A key given twice in one mapping is refused (PyYAML silently keeps the last), naming the key
  and its line: `train: {lr: 0.1, lr: 0.01}` is a typo, not a choice.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_FLOAT_WITHOUT_DOT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class SpecLoader(yaml.SafeLoader):
    """SafeLoader + YAML 1.2 exponent floats + duplicate keys refused."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: PyYAML's own error says so
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} at line {key_node.start_mark.line + 1} (YAML would "
                    "keep only the last): remove one",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep)


SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", _FLOAT_WITHOUT_DOT, list("-+0123456789")
)


def load_yaml(text: str) -> Any:
    """Parse YAML text with SpecLoader (raises yaml.YAMLError)."""
    return yaml.load(text, Loader=SpecLoader)  # noqa: S506 - SpecLoader is a SafeLoader


def dump_yaml(data: Any) -> str:
    """YAML text that `load_yaml` reads back as `data` (key order kept)."""
    return yaml.safe_dump(data, sort_keys=False)
