"""The compute market from Python: job states, verdicts (EIP-712) and the operations the
`ape run market` commands use."""
