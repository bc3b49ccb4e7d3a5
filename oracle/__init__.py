"""The Neurotoken oracle service: watches the compute market, verifies completion proofs by
challenged re-execution, signs EIP-712 verdicts and settles jobs with m-of-n signatures.

Run it with ``python -m oracle run``; see ``oracle.settings`` for its configuration and
``oracle.service`` for how the parts fit.
"""
