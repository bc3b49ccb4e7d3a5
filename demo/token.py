"""The token stage: the NTK the sale minted changes hands: a transfer, an EIP-2612 permit
used by someone else, a burn; minting is closed for ever and the balances add up."""

from __future__ import annotations

from demo.economy import Economy, approx
from neurotoken.chain.permit import sign_permit
from neurotoken.units import NTK


def token_stage(e: Economy) -> None:
    """A transfer, a permit and a burn on the sale's NTK, reconciled against the supply."""
    r = e.report.stage("token")
    token, chain, cast = e.need_token(), e.chain, e.cast
    echo = e.echo
    echo("== NTK after the sale: transfers, gasless approvals, burns; no more minting")
    supply = int(token.totalSupply())
    echo(
        f"NeuroToken {token.address}: supply {approx(supply)} of a {approx(token.cap())} "
        f"cap; minting finished: {token.mintingFinished()}"
    )
    r.check("minting is finished after the sale", 1, int(token.mintingFinished()))
    before = {w.address: e.ntk(w) for w in (cast.client, cast.farm_a, cast.farm_c, cast.stranger)}
    tx = token.transfer(cast.farm_c, 100 * NTK, sender=cast.client)
    echo(f"the client sent farm C 100 NTK ({tx.gas_used:,} gas)")
    deadline = int(chain.pending_timestamp) + 3600
    sig = sign_permit(
        cast.farm_a.private_key,
        token_name=token.name(),
        token_address=token.address,
        chain_id=chain.chain_id,
        owner=cast.farm_a.address,
        spender=cast.stranger.address,
        value=50 * NTK,
        nonce=token.nonces(cast.farm_a),
        deadline=deadline,
    )
    token.permit(cast.farm_a, cast.stranger, 50 * NTK, deadline, sig.v, sig.r, sig.s,
                 sender=cast.stranger)  # fmt: skip
    token.transferFrom(cast.farm_a, cast.stranger, 50 * NTK, sender=cast.stranger)
    echo("farm A signed an EIP-2612 permit off-chain; a stranger used it to pull 50 NTK")
    token.burn(40 * NTK, sender=cast.stranger)
    echo("the stranger burned 40 NTK")
    r.figures["burned_ntk"] = 40 * NTK
    r.check("supply fell by the burn", supply - 40 * NTK, token.totalSupply())
    moved = {
        cast.client.address: -100 * NTK,
        cast.farm_c.address: 100 * NTK,
        cast.farm_a.address: -50 * NTK,
        cast.stranger.address: 50 * NTK - 40 * NTK,
    }
    for address, delta in moved.items():
        r.check(f"{address[:10]} NTK balance", before[address] + delta, e.ntk(address))
    for name, who in (("client", cast.client), ("farm A", cast.farm_a), ("farm B", cast.farm_b),
                      ("farm C", cast.farm_c), ("stranger", cast.stranger)):  # fmt: skip
        echo(f"  {name:<9}{approx(e.ntk(who)):>22}")
