"""The import directions of docs/architecture.md (rules in tools/check_layers.py, which
`make lint` runs too): the tree follows them, and each rule catches what it forbids."""

from __future__ import annotations

import pytest

from tools.check_layers import all_violations, rule_violations


def test_every_module__follows_the_import_directions() -> None:
    assert all_violations() == []


@pytest.mark.parametrize(
    ("module", "imported"),
    [
        ("neurotoken.proofs.verifier", "web3"),
        ("neurotoken.jobs.spec", "ape.exceptions"),
        ("neurotoken.proofs.bundle", "neurotoken.chain.answers"),
        ("neurotoken.provider.agent", "oracle.store"),
        ("neurotoken.sale.run", "devchain.localnet"),
        ("oracle.service", "devchain.localnet"),
        ("oracle.cli", "demo.oracle"),
        ("devchain.localnet", "bench.common"),
    ],
)
def test_a_forbidden_import__is_caught(module: str, imported: str) -> None:
    assert rule_violations(module, imported)


def test_allowed_imports__pass() -> None:
    assert not rule_violations("neurotoken.proofs.verifier", "neurotoken.jobs.spec")
    assert not rule_violations("oracle.verify", "neurotoken.proofs.verifier")
    assert not rule_violations("demo.oracle", "devchain.localnet")
    assert not rule_violations("bench.oracle_speed", "devchain.localnet")
