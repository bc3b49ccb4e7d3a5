"""The project's one exception root and its small hierarchy.

Every error raised on purpose by the sale, the market tools, the provider agent, the proofs
and the oracle derives from `NeurotokenError`, and its message is a sentence for the user:
what was wrong and what to do. A CLI's error boundary (`neurotoken.chain.cli.friendly`) turns
any of them into one line and exit status 1. No message ever holds a secret (password,
private key, database password, RPC URL credentials).
"""

from __future__ import annotations


class NeurotokenError(Exception):
    """Root of every error the project raises on purpose."""


class ConfigError(NeurotokenError):
    """The settings or files a user gave are unusable (missing address, unknown network, no
    build manifest, a node that cannot be reached, ...)."""


class KeystoreError(ConfigError):
    """A keystore is missing, unreadable, or its password is not set or wrong. The message
    never holds key material or the password."""


class InputError(NeurotokenError, ValueError):
    """Data from outside (a job spec, a bundle, a canonical JSON document, a sale config, an
    allow-list) is not what it must be. Also a ValueError, as parsers' callers expect."""


class ChainError(NeurotokenError):
    """A node or a contract refused, or would refuse, what was asked."""
