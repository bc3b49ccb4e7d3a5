"""The sale stage: the presale and ICO on the default terms (config/sale.toml), run to success
by ten buyers (the client and the three farms among them) and reconciled to the wei. The NTK
it mints is the whole economy's: no later stage mints."""

from __future__ import annotations

from demo.economy import Economy
from neurotoken.sale.run import SaleReport, run_sale


def sale_stage(e: Economy, n_buyers: int = 10) -> SaleReport:
    """Deploys NTK and its sale, runs the sale to success, and has every buyer claim. Moves
    the local chain's clock about five weeks forward."""
    r = e.report.stage("sale")
    e.echo("== The presale and ICO (config/sale.toml terms): where every NTK comes from")
    e.token_block = int(e.chain.blocks.head.number) + 1
    report = run_sale(
        e.project, e.chain, e.test_accounts, n_buyers=n_buyers, succeed=True, echo=e.echo,
        operator=e.cast.operator, buyers=e.cast.buyers,
    )  # fmt: skip
    e.echo(report.render())
    e.token = e.project.NeuroToken.at(report.token)
    e.sale = e.project.TokenSale.at(report.sale)
    e.report.contracts.update(NeuroToken=report.token, TokenSale=report.sale)
    for c in report.checks:
        r.check(c.name, c.expected, c.actual)
    r.figures.update(
        buyers=len(report.claims),
        wei_raised=report.wei_raised,
        tokens_sold_ntk=report.tokens_sold,
        allocations_ntk=sum(report.allocations.values()),
        supply_ntk=int(e.token.totalSupply()),
    )
    for name, who in (("client", e.cast.client), ("farm_a", e.cast.farm_a),
                      ("farm_b", e.cast.farm_b), ("farm_c", e.cast.farm_c)):  # fmt: skip
        r.figures[f"{name}_claimed_ntk"] = report.claims.get(who.address, 0)
    return report
