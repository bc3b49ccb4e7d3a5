"""Who is who in the tests: every role is one of ape's test accounts (the `test` mnemonic in
ape-config.yaml), and no two roles share one, so what a test checks of one role (a balance,
an address in an event, a refusal) can never be another role's doing.

The fixtures of the same names in tests/conftest.py are the only place a test takes an account
from: a folder may build on them (the agent's `farm_key` is `provider`'s key), but picks no
index of its own.
"""

from __future__ import annotations

ROLES: dict[str, int] = {
    "owner": 0,  # deploys the contracts and holds their admin roles
    "minter": 1,  # stands in for the token sale: the only account with the minter role
    "client": 2,  # posts jobs and pays for them
    "provider": 3,  # the provider under test (the agent's farm)
    "provider2": 4,  # a second provider
    "oracle1": 5,  # the market's three oracles (threshold two): the `oracles` fixture
    "oracle2": 6,
    "oracle3": 7,
    "stranger": 8,  # holds no role: what it may not do is refused, what anyone may it relays
    "treasury": 9,  # where the market sends its fees
    "outsider_key": 10,  # a key that is not (and never was) an oracle
    "client2": 11,  # a second client, the client of the other job
    # Token holders and sale buyers (the sale's allow-list holds alice, bob and dave).
    "alice": 12,
    "bob": 13,
    "carol": 14,
    "dave": 15,
    "erin": 16,
}

ORACLES = ("oracle1", "oracle2", "oracle3")

assert len(set(ROLES.values())) == len(ROLES), "two roles share an account"

ACCOUNTS_NEEDED = max(ROLES.values()) + 1
"""ape-config.yaml's `test.number_of_accounts` must be at least this (anvil funds only those)."""
