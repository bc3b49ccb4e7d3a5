"""`make bench`: each suite module has `run(ctx: BenchContext) -> list[Table]`.

Suites run in the order listed; each measures its reference in the same run.
"""

SUITES: list[str] = [
    "token_gas",
    "sale_gas",
    "compute_speed",
    "ray_farm",
    "market_gas",
    "oracle_speed",
]
