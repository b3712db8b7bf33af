"""YAML to plain Python values, keeping where each key and value was written.

PyYAML's safe_load forgets positions and silently keeps the last of duplicate keys.
Here we compose the node graph ourselves so every error can name file:line:col, and a
duplicate key is an error. ${VAR} is expanded after parsing, on string scalars only,
so a secret containing ':' or '#' can never change the structure of the document.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

KeyPath = tuple[Hashable, ...]

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# ${VAR}, ${VAR:-default}, and $$ for a literal '$'.
_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Pos:
    line: int  # 1-based
    col: int  # 1-based

    @classmethod
    def of(cls, mark: yaml.Mark) -> Pos:
        return cls(mark.line + 1, mark.column + 1)


@dataclass(frozen=True)
class Marks:
    key: Pos | None  # None for the root and for list items
    value: Pos


@dataclass(frozen=True)
class Problem:
    path: KeyPath
    pos: Pos
    message: str


@dataclass
class Document:
    data: Any
    marks: dict[KeyPath, Marks] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # Every value that came from the environment; the loader blanks them out of messages.
    secrets: set[str] = field(default_factory=set)


# The biggest real config (hundreds of numbers and employees) is well under both.
MAX_CONFIG_CHARS = 4 * 1024 * 1024
MAX_CONFIG_VALUES = 50_000


class YamlSyntaxError(Exception):
    def __init__(self, pos: Pos, message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message


def parse(text: str, env: Mapping[str, str]) -> Document:
    """Parse one YAML document; raises YamlSyntaxError when it is not YAML at all, or
    when it is too big to be a config (a size cap, and a cap on the values it expands to,
    so a few hundred bytes of nested aliases cannot take minutes of CPU)."""
    if len(text) > MAX_CONFIG_CHARS:
        raise YamlSyntaxError(
            Pos(1, 1), f"the file is {len(text)} characters; a config is at most {MAX_CONFIG_CHARS}"
        )
    try:
        loader = yaml.SafeLoader(text)  # checks every character first
    except yaml.reader.ReaderError as exc:  # a character YAML never allows: a binary file
        raise YamlSyntaxError(
            _pos_at(text, exc.position),
            f"character U+{int(exc.character):04X} is not allowed in YAML (not a text file?)",
        ) from None
    try:
        root = loader.get_single_node()
        if root is None:
            raise YamlSyntaxError(Pos(1, 1), "the file is empty")
        doc = Document(data=None)
        doc.data = _Builder(loader, env, doc).build(root, ())
        return doc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = Pos.of(mark) if mark else Pos(1, 1)
        message = " ".join(p for p in (exc.context, exc.problem) if p)
        raise YamlSyntaxError(pos, f"YAML syntax error: {message}") from None
    except RecursionError:  # PyYAML composes nested nodes recursively
        raise YamlSyntaxError(
            Pos(loader.line + 1, loader.column + 1),
            "the document is nested deeper than any config is",
        ) from None
    finally:
        loader.dispose()


def _pos_at(text: str, offset: int) -> Pos:
    line = text.count("\n", 0, offset)
    return Pos(line + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1)


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, env: Mapping[str, str], doc: Document) -> None:
        self.loader = loader
        self.env = env
        self.doc = doc
        self.values = 0

    def build(self, node: yaml.Node, path: KeyPath, key: Pos | None = None) -> Any:
        self.values += 1
        if self.values > MAX_CONFIG_VALUES:
            # An alias is the same node again: nested ones multiply (a "billion laughs").
            raise YamlSyntaxError(
                Pos.of(node.start_mark),
                f"the document expands to more than {MAX_CONFIG_VALUES} values "
                "(aliases nested inside aliases?); a config is far smaller",
            )
        self.doc.marks[path] = Marks(key=key, value=Pos.of(node.start_mark))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        value = self.loader.construct_object(node, deep=True)
        if node.tag == _STR_TAG and isinstance(value, str):
            return self._expand(value, path, Pos.of(node.start_mark))
        return value

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[Hashable, Any]:
        result: dict[Hashable, Any] = {}
        first_seen: dict[Hashable, Pos] = {}
        for key_node, value_node, merged in self._pairs(node):
            key_pos = Pos.of(key_node.start_mark)
            key = self.loader.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable) or isinstance(key, list | dict):
                self.doc.problems.append(Problem(path, key_pos, "a key must be a plain value"))
                continue
            if key in first_seen:
                if not merged:  # keys written here override '<<' merged ones, by YAML rules
                    message = f"duplicate key {key!r} (first at line {first_seen[key].line})"
                    self.doc.problems.append(Problem((*path, key), key_pos, message))
                continue
            first_seen[key] = key_pos
            result[key] = self.build(value_node, (*path, key), key_pos)
        return result

    def _pairs(self, node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node, bool]]:
        """The mapping's own pairs first, then those of '<<: *anchor' merges.

        Our own merge handling rather than PyYAML's flatten_mapping, which puts merged
        pairs first and so would make an override look like a duplicate key.
        """
        own: list[tuple[yaml.Node, yaml.Node, bool]] = []
        merged: list[tuple[yaml.Node, yaml.Node, bool]] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                own.append((key_node, value_node, False))
                continue
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    raise yaml.constructor.ConstructorError(
                        None, None, "'<<' merges only mappings", source.start_mark
                    )
                merged += [(k, v, True) for k, v, _ in self._pairs(source)]
        return own + merged

    def _expand(self, value: str, path: KeyPath, pos: Pos) -> str:
        def substitute(match: re.Match[str]) -> str:
            if match[0] == "$$":
                return "$"
            name, default = match[1], match[2]
            if name in self.env:
                resolved = self.env[name]
            elif default is not None:
                resolved = default
            else:
                # The name only: the value is what must never be printed.
                self.doc.problems.append(
                    Problem(path, pos, f"environment variable {name} is not set")
                )
                return match[0]
            if resolved:
                self.doc.secrets.add(resolved)
            return resolved

        return _ENV_REF.sub(substitute, value)
