"""Edit the config's YAML in place: comments, key order, quoting and flow style kept.

ruamel.yaml's round-trip mode keeps what PyYAML (the loader's parser) throws away, so an
operator who saves one field in the console finds their file as they wrote it, with only
that line changed. Writes are atomic: a crash mid-save leaves the old file or the new one.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

# An edit that removes the key, so the schema's default applies again.
DELETE: Final = object()

Edit = tuple[tuple[str, ...], Any]
# Phone numbers, extensions and keypad prefixes: quoted as the README asks ("0101" unquoted
# is a number to YAML), in the double quotes numcfg's examples use.
_KEYPAD_TEXT: Final = re.compile(r"^[+0-9*#]+$")


class EditError(ValueError):
    """The file's shape does not allow the edit (e.g. a list where a mapping is expected)."""


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap an operator's long lines
    # ruamel writes an empty value for null; numcfg's files (and SPEC) spell it "null".
    yaml.representer.add_representer(
        type(None), lambda rep, _v: rep.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return yaml


def _detect_indent(text: str, yaml: YAML) -> None:
    # Sequences under a key are written either "- x" flush with the key or indented two;
    # reuse the file's own habit so untouched lists keep their layout.
    lines = text.splitlines()
    for index, line in enumerate(lines[:-1]):
        stripped = line.rstrip()
        nxt = lines[index + 1]
        if stripped.endswith(":") and nxt.lstrip().startswith("- "):
            key_indent = len(line) - len(line.lstrip())
            dash_indent = len(nxt) - len(nxt.lstrip())
            offset = dash_indent - key_indent
            yaml.indent(mapping=2, sequence=offset + 2, offset=offset)
            return
    yaml.indent(mapping=2, sequence=2, offset=0)


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """`text` with each (key path, value) set, or removed for DELETE."""
    yaml = _yaml()
    _detect_indent(text, yaml)
    doc = yaml.load(text)
    if not isinstance(doc, CommentedMap):
        raise EditError("the file is not a mapping of keys")
    for path, value in edits:
        _apply(doc, path, value)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def _apply(doc: CommentedMap, path: tuple[str, ...], value: Any) -> None:
    node: Any = doc
    for depth, key in enumerate(path[:-1]):
        child = node.get(key)
        if child is None:
            if value is DELETE:
                return  # nothing to remove below a key that is not there
            child = CommentedMap()
            node[key] = child
        if not isinstance(child, dict):
            where = ".".join(path[: depth + 1])
            raise EditError(f"{where}: expected a mapping in the file")
        node = child
    last = path[-1]
    if value is DELETE:
        node.pop(last, None)
    else:
        node[last] = _plain_to_yaml(value)


def _plain_to_yaml(value: Any) -> Any:
    if isinstance(value, list):
        seq = CommentedSeq(_plain_to_yaml(v) for v in value)
        seq.fa.set_flow_style()  # short lists of ids or numbers read best inline
        return seq
    if isinstance(value, dict):
        return CommentedMap((k, _plain_to_yaml(v)) for k, v in value.items())
    if isinstance(value, str) and _KEYPAD_TEXT.match(value):
        return DoubleQuotedScalarString(value)
    return value


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one rename, keeping the file's permission bits."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o600
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)
