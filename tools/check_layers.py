"""The import directions of docs/architecture.md, enforced: `make lint` runs this file,
`make test` runs tests/toolchain/test_layers.py over the same rules.

Every module of the shipped and dev packages is parsed (not imported) and each `import` it
holds, at any depth (function-level imports too), is checked against the rules below.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("neurotoken", "oracle", "devchain", "demo", "bench")
# Layers that hold the market's rules and data formats: importable anywhere (a browser
# back end, a Ray worker, an auditor's notebook), so they talk to no node.
PURE = (
    "neurotoken.jobs",
    "neurotoken.workloads",
    "neurotoken.proofs",
    "neurotoken.market.verdicts",
    "neurotoken.market.job",
    "neurotoken.market.states",
    "neurotoken.units",
    "neurotoken.errors",
    "neurotoken.eip712",
    "neurotoken.redact",
    "neurotoken.chain.fees",
)
NODE_LIBRARIES = ("web3", "ape", "ape_ethereum", "ape_foundry", "ape_solidity", "ethpm_types")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from neurotoken import deployments` names a module too
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _exists(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def rule_violations(module: str, imported: str) -> list[str]:
    """What is wrong with `module` importing `imported` (empty when it is allowed)."""
    wrong = []
    if _within(module, PURE):
        if _within(imported, NODE_LIBRARIES):
            wrong.append("a pure layer imports a node library")
        if _within(imported, PACKAGES) and _exists(imported) and not _within(imported, PURE):
            wrong.append("a pure layer imports a module that is not pure")
    if _within(module, "neurotoken") and _within(imported, ("oracle", "devchain", "demo", "bench")):
        wrong.append("neurotoken imports the oracle, the dev chain, the demo or the benchmarks")
    if _within(module, "oracle") and _within(imported, ("devchain", "demo", "bench")):
        wrong.append("the oracle imports the dev chain, the demo or the benchmarks")
    if _within(module, "devchain") and _within(imported, ("demo", "bench")):
        wrong.append("the dev chain imports the demo or the benchmarks")
    if _within(module, "bench") and _within(imported, "demo"):
        wrong.append("the benchmarks import the demo")
    return wrong


def all_violations() -> list[str]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = _module_name(path)
            for line, imported in _imports(path):
                for why in rule_violations(module, imported):
                    out.append(f"{path.relative_to(ROOT)}:{line}: imports {imported}: {why}")
    return out


def main() -> int:
    violations = all_violations()
    for line in violations:
        print(line)
    if violations:
        print(f"{len(violations)} import(s) break the layers of docs/architecture.md")
        return 1
    print("import directions: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
