"""The development chain: anvil, the contracts deployed on it, providers and oracle
processes. Used by the demo, the benchmarks and the tests; shipped by neither the oracle nor
the provider."""
