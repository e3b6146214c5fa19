"""The architecture the folders promise, checked on the source: the library never imports its
CLI, and the serving tools and the gateway ask an endpoint only through the client's public
API."""

from __future__ import annotations

import ast
from pathlib import Path

import glyph_render

PACKAGE = Path(glyph_render.__file__).parent


def _modules() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "data" not in p.relative_to(PACKAGE).parts]


def _imported(path: Path) -> set[str]:
    """Dotted names a module imports, relative ones resolved against the package."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = parts[:len(parts) - node.level + (path.name == "__init__.py")] \
                if node.level else []
            mod = ".".join([*base, *([node.module] if node.module else [])])
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}
    return found


def test_no_library_module_imports_the_cli() -> None:
    offenders = [str(p.relative_to(PACKAGE)) for p in _modules()
                 if p.name not in ("cli.py", "__main__.py")
                 and p.relative_to(PACKAGE).parts[0] != "testing"
                 and "glyph_render.cli" in _imported(p)]
    assert offenders == []


def _client_reach(folder: str) -> list[str]:
    """What modules of ``folder`` import from the client other than its package's exports."""
    from glyph_render import client

    public = {"glyph_render.client", *(f"glyph_render.client.{n}" for n in client.__all__)}
    reached = []
    for path in (PACKAGE / folder).glob("*.py"):
        reached += [f"{path.name}: import {name}" for name in _imported(path)
                    if name.startswith("glyph_render.client") and name not in public]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "client"):
                reached.append(f"{path.name}:{node.lineno}: client.{node.attr}")
    return reached


def test_serving_tools_use_only_the_public_client_api() -> None:
    """The doctor and the benchmark prepare and send requests through the client's exports
    (``prepare()`` / ``send()``, its limits and deadline), not its modules."""
    assert _client_reach("serving") == []


def test_gateway_uses_only_the_public_client_api() -> None:
    """The gateway shares the client's retry rules, error translation, reasoning split and
    map-reduce questions through ``glyph_render.client``'s exports, not its modules."""
    assert _client_reach("gateway") == []
