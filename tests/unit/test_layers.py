"""The layering of `shared/` (README, "Layers"): a package imports only the packages below it.

Every import counts, type-only ones and those inside functions included: an arrow pointing up is a
module that cannot be understood, tested or moved without the one above it.

`caches` sits below everything but the domain: each process-global cache registers with it at import,
so any layer may; `reset_caches()` forgets them all.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"

# Top-level modules and packages of `shared/`, and what each may import from `shared`.
BASE = {"caches", "keys", "settings", "observability", "messages"}
ALLOWED: dict[str, set[str]] = {
    "domain": {"domain"},
    "caches": set(),
    # Every DynamoDB key (shared/keys.py): plain string builders, for whatever layer stores something.
    "keys": set(),
    "settings": {"domain", "caches"},
    "observability": {"caches"},
    # A function's init, snapshot and restore: the handlers call it; it forgets caches by their registry.
    "lifecycle": {"caches"},
    "messages": {"domain", "caches"},
    "aws": {"domain", *BASE, "aws"},
    "clients": {"domain", *BASE, "aws", "clients"},
    "records": {"domain", *BASE, "aws", "records"},
    "wiring": {"domain", *BASE, "aws", "clients", "records"},
    "flows": {"domain", *BASE, "aws", "clients", "records", "wiring", "flows"},
    "consumers": {"domain", *BASE, "aws", "clients", "records", "wiring", "flows", "consumers"},
    "api": {"domain", *BASE, "aws", "clients", "records", "wiring", "flows", "api"},
}
# The pure domain takes and returns plain values: no AWS, no network, no environment.
FORBIDDEN_IN_DOMAIN = ("boto3", "botocore", "httpx", "aws_lambda_powertools", "os")
# From the records up, DynamoDB is the store's: its own conditions and `ConditionFailed`, never boto's.
ABOVE_THE_STORE = ("records", "wiring", "flows", "consumers", "api")
FORBIDDEN_ABOVE_THE_STORE = ("boto3", "botocore")


def _unit(path: Path) -> str:
    relative = path.relative_to(SHARED)
    return relative.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "shared":
                found.extend((node.lineno, f"shared.{alias.name}") for alias in node.names)
            else:
                found.append((node.lineno, node.module))
    return found


def _modules() -> list[Path]:
    return sorted(p for p in SHARED.rglob("*.py") if p.name != "__init__.py" or p.parent != SHARED)


def test_every_module_of_shared_belongs_to_a_known_layer():
    unknown = sorted({_unit(p) for p in _modules()} - set(ALLOWED))
    assert unknown == [], f"add these to the layering (README, 'Layers') and to ALLOWED: {unknown}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SHARED)))
def test_imports_point_down(path: Path):
    unit = _unit(path)
    upward = [
        f"{path.relative_to(SHARED)}:{line} imports {name}"
        for line, name in _imports(path)
        if name.startswith("shared.") and name.split(".")[1] not in ALLOWED[unit]
    ]
    assert upward == []


@pytest.mark.parametrize(
    "path", sorted((SHARED / "domain").rglob("*.py")), ids=lambda p: str(p.relative_to(SHARED))
)
def test_the_domain_knows_no_aws_no_network_and_no_environment(path: Path):
    impure = [
        f"{path.relative_to(SHARED)}:{line} imports {name}"
        for line, name in _imports(path)
        if name.split(".")[0] in FORBIDDEN_IN_DOMAIN
    ]
    assert impure == []
    assert "environ" not in path.read_text()


@pytest.mark.parametrize(
    "path", [p for p in _modules() if _unit(p) in ABOVE_THE_STORE], ids=lambda p: str(p.relative_to(SHARED))
)
def test_nothing_above_the_store_imports_boto(path: Path):
    boto = [
        f"{path.relative_to(SHARED)}:{line} imports {name}"
        for line, name in _imports(path)
        if name.split(".")[0] in FORBIDDEN_ABOVE_THE_STORE
    ]
    assert boto == []


def test_the_check_itself_catches_an_upward_import(tmp_path: Path):
    module = tmp_path / "rule.py"
    module.write_text("from shared.clients.intercom import IntercomClient\nimport boto3\n")
    names = [name for _, name in _imports(module)]
    assert names == ["shared.clients.intercom", "boto3"]
    assert "clients" not in ALLOWED["domain"]
