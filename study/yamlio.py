"""YAML as specs and `--set` values read it: PyYAML's safe loader made YAML 1.2, and bounded.

PyYAML follows YAML 1.1, whose implicit types surprise: `1:30` is 90 (sexagesimal), `010` is 8
(octal), `yes`/`no`/`on`/`off` are booleans, and `1e-3` is a string (a float needs a dot). Here
the plain scalars resolve as YAML 1.2's core schema does:
- ints are decimal (`010` is 10, as YAML 1.2 and every JSON reader say), `0o17` octal, `0x1F`
  hex; `_` may separate digits (`10_000`), as in Python; `1:30` is the string "1:30" (which a
  number setting then refuses in one line);
- floats are `1.5`, `.5`, `1e-3`, `5E4`, `-2E+1`, `.inf`, `-.inf`, `.nan`;
- booleans are only `true`/`false` (also `True`, `TRUE`, …): `yes`, `no`, `on`, `off` are strings.
Every spec in search_spaces/ reads exactly as it did under YAML 1.1.

And what would otherwise hang, exhaust memory or end in a 3,000-line RecursionError is refused
(`YAMLRefused`, a yaml.YAMLError whose message is one line):
- a document that expands, aliases counted each time they are used, past MAX_NODES nodes (the
  "billion laughs": a 471-byte spec of nested aliases took 38 s and 2 GB);
- an alias inside the node it names (`a: &a [*a]`), and nesting deeper than MAX_DEPTH.
A key given twice in one mapping is refused too (PyYAML silently keeps the last), naming the
key and its line: `train: {lr: 0.1, lr: 0.01}` is a typo, not a choice.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import yaml

from study.errors import ConfigError

MAX_NODES = 100_000  # nodes a document may expand to (the largest spec here has a few hundred)
MAX_DEPTH = 100  # nesting levels (PyYAML's recursive composer overflows the stack near 300)
MAX_SPEC_BYTES = 1 << 20  # a spec file's size (the largest here is 3 kB)

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_CORE = [  # YAML 1.2 core schema (digit separators kept), in the order they are tried
    (_BOOL, r"true|True|TRUE|false|False|FALSE", "tTfF"),
    (
        _INT,
        r"[-+]?[0-9](?:_?[0-9])*|0o[0-7](?:_?[0-7])*|0x[0-9a-fA-F](?:_?[0-9a-fA-F])*",
        "-+0123456789",
    ),
    (
        _FLOAT,
        r"[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?"  # a dot
        r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"  # or an exponent (an int otherwise)
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        "-+.0123456789",
    ),
]


class YAMLRefused(yaml.YAMLError):
    """A document refused before it is built (too large once aliases expand, recursive, too
    deep); `str()` is one line that says why."""


class SpecLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars, bounded expansion, duplicate keys refused."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise YAMLRefused(f"nested more than {MAX_DEPTH} levels deep: refused")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        check_expansion(node)
        return super().construct_document(node)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """Decimal, 0o octal or 0x hex (YAML 1.2): never 1.1's leading-zero octal or base 60."""
        text = str(self.construct_scalar(node)).replace("_", "")
        sign = -1 if text.startswith("-") else 1
        digits = text.lstrip("+-")
        base = {"0o": 8, "0x": 16}.get(digits[:2].lower(), 10)
        try:
            return sign * int(digits[2:] if base != 10 else digits, base)
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, f"{text!r} is not an integer", node.start_mark
            ) from None

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


for _tag, _pattern, _first in _CORE:
    SpecLoader.add_implicit_resolver(_tag, re.compile(f"^(?:{_pattern})$"), list(_first))
SpecLoader.add_constructor(_INT, SpecLoader.construct_yaml_int)


def check_expansion(root: yaml.Node) -> None:
    """Refuse (YAMLRefused) a node graph that contains itself, or whose tree, each alias
    expanded where it is used, has more than MAX_NODES nodes. Iterative, linear in the graph."""
    size: dict[int, int] = {}  # id(node) → nodes of its expanded tree
    open_: set[int] = set()  # nodes on the current path
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        children = _children(node)
        if done:
            open_.discard(id(node))
            size[id(node)] = 1 + sum(size[id(c)] for c in children)
            if size[id(node)] > MAX_NODES:
                raise YAMLRefused(
                    f"the document expands past {MAX_NODES:,} nodes (its aliases, each counted "
                    f"where it is used; line {node.start_mark.line + 1}): refused"
                )
            continue
        if id(node) in size:
            continue
        if id(node) in open_:
            raise YAMLRefused(
                f"an alias refers to the node that contains it (line {node.start_mark.line + 1}):"
                " recursive YAML is refused"
            )
        open_.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in open_:
                raise YAMLRefused(
                    f"an alias refers to the node that contains it (line "
                    f"{child.start_mark.line + 1}): recursive YAML is refused"
                )
            if id(child) not in size:
                stack.append((child, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def read_spec_text(path: Path) -> str:
    """A spec file's text; ConfigError (one line) for what is not a regular file of UTF-8
    text of at most MAX_SPEC_BYTES: a FIFO (reading it would wait for a writer), a device such
    as /dev/zero (endless), a directory, a symlink loop, a binary or UTF-16 file."""
    try:
        mode = path.stat().st_mode  # follows symlinks: a loop is ELOOP
        if not stat.S_ISREG(mode):
            kinds = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO (named pipe)"}
            kind = next((k for test, k in kinds.items() if test(mode)), "not a regular file")
            raise ConfigError(f"spec {path} is {kind}: give a YAML file")
        with path.open("rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read spec {path}: {e.strerror or e}") from None
    if len(data) > MAX_SPEC_BYTES:
        raise ConfigError(f"spec {path} is larger than {MAX_SPEC_BYTES:,} bytes: not a spec")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        why = "UTF-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else f"byte {data[e.start]:#04x}"
        raise ConfigError(
            f"spec {path} is not UTF-8 text ({why} at offset {e.start}): save it as UTF-8"
        ) from None


def load_yaml(text: str) -> Any:
    """Parse YAML text with SpecLoader (raises yaml.YAMLError; YAMLRefused for what is too
    large, recursive or too deep)."""
    return yaml.load(text, Loader=SpecLoader)  # noqa: S506 - SpecLoader is a SafeLoader


class SpecDumper(yaml.SafeDumper):
    """SafeDumper that quotes a string either YAML 1.1 or SpecLoader would read as another
    type (`'010'`, `'1e-3'`, `'yes'`), so both read back what was written."""


SpecDumper.yaml_implicit_resolvers = {
    k: list(v) for k, v in yaml.SafeDumper.yaml_implicit_resolvers.items()
}
for _tag, _pattern, _first in _CORE:
    SpecDumper.add_implicit_resolver(_tag, re.compile(f"^(?:{_pattern})$"), list(_first))


def dump_yaml(data: Any) -> str:
    """YAML text that `load_yaml` reads back as `data` (key order kept)."""
    return yaml.dump(data, Dumper=SpecDumper, sort_keys=False)


def parse_sets(sets: list[str]) -> dict[str, object]:
    """`["a.b=1", "c.d=x"]` → `{"a.b": 1, "c.d": "x"}`, values parsed as YAML 1.2 (this module:
    `010` is 10, `1:30` a string); text that is not YAML stays a string, a value YAML refuses
    (recursive, too large once its aliases expand) is a ConfigError."""
    out = {}
    for item in sets:
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"--set expects SECTION.KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = load_yaml(raw) if raw.strip() else None
        except YAMLRefused as e:
            raise ConfigError(f"--set {key.strip()}: {e}") from None
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out
