"""The import direction and the ARI seal of asterisk_bridge, read from the source (AST).

- policy/ imports nothing of asterisk_bridge outside policy/;
- ari/ imports nothing of asterisk_bridge outside ari/;
- only ari/ builds ARI REST paths or calls `.request(`;
- no import inside a function or class (module level, or `if TYPE_CHECKING:`, only);
- calls/ imports neither api/ nor admin.

Each rule lists its offenders as file:line. Code written before the rules exists in a few
files the call-engine migration is still rewriting; those offenders are in the PENDING_*
sets below. A new offender fails; a PENDING entry that is fixed must be deleted (the
stale-entry test says which), so the sets only shrink.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asterisk_bridge

PACKAGE_DIR = Path(asterisk_bridge.__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
PACKAGE = PACKAGE_DIR.name

REST_PREFIXES = (
    "/channels",
    "/bridges",
    "/recordings",
    "/playbacks",
    "/asterisk/",
    "/applications",
    "/sounds",
)

# Offenders being migrated by the call-engine rework (calls/, app.py). Keys are
# (file, what) without line numbers, so editing the file does not invalidate them.
# Delete an entry when its offence is gone; never add one.
PENDING_REST: set[tuple[str, str]] = set()  # emptied: dispatcher uses continue_in_dialplan
PENDING_LOCAL_IMPORTS: set[tuple[str, str]] = set()  # emptied by the calls/ migration
PENDING_CALLS_TO_API_ADMIN: set[tuple[str, str]] = set()  # workday.py no longer imports admin


@dataclass(frozen=True)
class Module:
    path: str  # relative to the repository, e.g. asterisk_bridge/calls/call.py
    name: str  # dotted, e.g. asterisk_bridge.calls.call
    is_package: bool
    tree: ast.Module


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str  # stable across edits: the imported module, ".request(", a path literal

    @property
    def key(self) -> tuple[str, str]:
        return (self.path, self.what)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


@functools.cache
def modules() -> tuple[Module, ...]:
    found = []
    for file in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = file.relative_to(ROOT)
        parts = list(rel.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(rel))
        found.append(Module(rel.as_posix(), ".".join(parts), is_package, tree))
    return tuple(found)


def imported_modules(module: Module, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Absolute names an import statement pulls in (for `from x import y`, x and x.y:
    y may be a submodule)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module.name if module.is_package else module.name.rpartition(".")[0]
        base_parts = package.split(".")
        if node.level > 1:
            base_parts = base_parts[: -(node.level - 1)]
        base = ".".join(base_parts)
        source = f"{base}.{node.module}" if node.module else base
    else:
        source = node.module or ""
    names = [f"{source}.{alias.name}" for alias in node.names if alias.name != "*"]
    return [source, *names] if node.module else names


def source_module(module: Module, node: ast.Import | ast.ImportFrom) -> str:
    """The one name a finding is keyed by: the module after `from`, else the first one."""
    return imported_modules(module, node)[0]


def inside(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


def ours(name: str) -> bool:
    return inside(name, PACKAGE)


def all_imports(module: Module) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def imports_leaving(package: str, mods: Iterable[Module] | None = None) -> list[Finding]:
    """Imports, by modules of `package`, of our modules outside `package` (at any depth,
    `if TYPE_CHECKING:` included: a type-only edge is still a dependency)."""
    found = []
    for module in modules() if mods is None else mods:
        if not inside(module.name, package):
            continue
        for node in all_imports(module):
            for name in imported_modules(module, node):
                if ours(name) and not inside(name, package):
                    found.append(Finding(module.path, node.lineno, name))
                    break
    return found


def local_imports(mods: Iterable[Module] | None = None) -> list[Finding]:
    """Import statements inside a function or class body (at any depth)."""
    found = []

    class Visitor(ast.NodeVisitor):
        def __init__(self, module: Module) -> None:
            self.module = module
            self.depth = 0

        def _scope(self, node: ast.AST) -> None:
            self.depth += 1
            self.generic_visit(node)
            self.depth -= 1

        visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = _scope

        def _import(self, node: ast.Import | ast.ImportFrom) -> None:
            if self.depth:
                name = source_module(self.module, node)
                found.append(Finding(self.module.path, node.lineno, name))

        visit_Import = visit_ImportFrom = _import

    for module in modules() if mods is None else mods:
        Visitor(module).visit(module.tree)
    return found


def rest_outside_ari(mods: Iterable[Module] | None = None) -> list[Finding]:
    """`.request(` calls and ARI path literals (f-string parts too) outside ari/."""
    found = []
    for module in modules() if mods is None else mods:
        if inside(module.name, f"{PACKAGE}.ari"):
            continue
        # Docstrings and other bare strings describe ARI; they do not call it.
        prose = {
            id(node.value)
            for node in ast.walk(module.tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        }
        for node in ast.walk(module.tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "request"
            ):
                found.append(Finding(module.path, node.lineno, ".request("))
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.startswith(REST_PREFIXES)
                and id(node) not in prose
            ):
                found.append(Finding(module.path, node.lineno, repr(node.value[:40])))
    return found


def calls_to_api_or_admin(mods: Iterable[Module] | None = None) -> list[Finding]:
    """Imports of api/ or admin by calls/ (`from .. import admin` included)."""
    found = []
    forbidden = (f"{PACKAGE}.api", f"{PACKAGE}.admin")
    for module in modules() if mods is None else mods:
        if not inside(module.name, f"{PACKAGE}.calls"):
            continue
        for node in all_imports(module):
            for name in imported_modules(module, node):
                if any(inside(name, layer) for layer in forbidden):
                    found.append(Finding(module.path, node.lineno, name))
                    break
    return found


def new_offenders(found: list[Finding], pending: set[tuple[str, str]]) -> list[str]:
    return sorted({str(f) for f in found if f.key not in pending})


def report(rule: str, offenders: list[str]) -> str:
    return f"{rule}:\n  " + "\n  ".join(offenders)


def test_policy_imports_nothing_of_ours_outside_policy() -> None:
    offenders = sorted({str(f) for f in imports_leaving(f"{PACKAGE}.policy")})
    assert not offenders, report("policy/ must stay pure; it imports", offenders)


def test_ari_imports_nothing_of_ours_outside_ari() -> None:
    offenders = sorted({str(f) for f in imports_leaving(f"{PACKAGE}.ari")})
    assert not offenders, report(
        "ari/ must not depend on the rest of numcfg; it imports", offenders
    )


def test_only_ari_builds_rest_paths_or_sends_requests() -> None:
    offenders = new_offenders(rest_outside_ari(), PENDING_REST)
    assert not offenders, report(
        "ARI REST outside asterisk_bridge/ari/ (add a typed AriClient method instead)",
        offenders,
    )


def test_no_imports_inside_functions() -> None:
    offenders = new_offenders(local_imports(), PENDING_LOCAL_IMPORTS)
    assert not offenders, report(
        "imports inside a function or class (move them to the top; break a cycle by "
        "moving what both sides need into its own module)",
        offenders,
    )


def test_calls_imports_neither_api_nor_admin() -> None:
    offenders = new_offenders(calls_to_api_or_admin(), PENDING_CALLS_TO_API_ADMIN)
    assert not offenders, report("calls/ imports the API or admin layer", offenders)


def test_pending_allowlists_have_no_stale_entries() -> None:
    stale = []
    for name, pending, found in (
        ("PENDING_REST", PENDING_REST, rest_outside_ari()),
        ("PENDING_LOCAL_IMPORTS", PENDING_LOCAL_IMPORTS, local_imports()),
        ("PENDING_CALLS_TO_API_ADMIN", PENDING_CALLS_TO_API_ADMIN, calls_to_api_or_admin()),
    ):
        keys = {f.key for f in found}
        stale += [f"{name}: {path}: {what}" for path, what in sorted(pending - keys)]
    assert not stale, report("fixed offenders still allowed: delete these entries", stale)


def test_the_checks_see_what_they_look_for() -> None:
    """The scanner itself, on a made-up calls/ module: relative imports resolve, a local
    import, a `.request(` and a path literal are found, a docstring is not."""
    source = (
        '"""GET /channels/{id} is described here, not called."""\n'
        "from .. import admin\n"
        "from ..config import schema\n"
        "def f(client):\n"
        "    from . import menu\n"
        "    return client.request('GET', f'/channels/{1}/answer')\n"
    )
    fake = Module("asterisk_bridge/calls/x.py", "asterisk_bridge.calls.x", False, ast.parse(source))
    imports = list(all_imports(fake))
    assert imported_modules(fake, imports[1]) == [
        "asterisk_bridge.config",
        "asterisk_bridge.config.schema",
    ]
    assert imported_modules(fake, imports[2]) == ["asterisk_bridge.calls.menu"]
    assert [str(f) for f in local_imports([fake])] == [
        "asterisk_bridge/calls/x.py:5: asterisk_bridge.calls.menu"
    ]
    assert sorted(f.what for f in rest_outside_ari([fake])) == ["'/channels/'", ".request("]
    assert [f.what for f in calls_to_api_or_admin([fake])] == ["asterisk_bridge.admin"]
    assert [f.what for f in imports_leaving("asterisk_bridge.calls", [fake])] == [
        "asterisk_bridge.admin",
        "asterisk_bridge.config",
    ]
    # The walk sees the real package.
    assert {m.name for m in modules()} >= {
        "asterisk_bridge",
        "asterisk_bridge.ari.events",
        "asterisk_bridge.policy",
    }
