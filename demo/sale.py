"""The sale stage: a short presale and ICO on the default terms (config/sale.toml), run to
success by ten buyers and reconciled to the wei."""

from __future__ import annotations

from collections.abc import Callable

from neurotoken.sale.run import SaleReport, SaleRunError, run_sale


def sale_stage(echo: Callable[[str], None], n_buyers: int = 10) -> SaleReport:
    """`make demo`'s sale stage: a short sale on the default terms (success path), reconciled,
    and its report. Moves the local chain's clock about five weeks forward."""
    from ape import accounts, chain, project

    echo("== The presale and ICO (config/sale.toml terms)")
    report = run_sale(project, chain, accounts, n_buyers=n_buyers, succeed=True, echo=echo)
    echo(report.render())
    if not report.ok:
        raise SaleRunError(f"the demo sale did not reconcile: {report.summary()}")
    return report
