"""Gas of NTK's everyday operations beside plain OpenZeppelin and Solady ERC-20s."""

from __future__ import annotations

from typing import Any

from bench.common import BenchContext, Table, deploy_gas, gas_used, ratio
from neurotoken.chain.permit import sign_permit

SUPPLY = 1_000_000 * 10**18


def _measure(ctx: BenchContext, name: str, token: Any, deploy_gas: int) -> dict[str, int]:
    holder, existing, spender, newcomer, newcomer2 = ctx.fresh_accounts(5)
    owner = ctx.owner
    token.transfer(holder, 1_000 * 10**18, sender=owner)
    token.transfer(existing, 1 * 10**18, sender=owner)
    figures = {"deploy": deploy_gas}
    figures["transfer to a new holder"] = gas_used(
        token.transfer(newcomer, 10 * 10**18, sender=holder)
    )
    figures["transfer to an existing holder"] = gas_used(
        token.transfer(existing, 10 * 10**18, sender=holder)
    )
    figures["approve"] = gas_used(token.approve(spender, 100 * 10**18, sender=holder))
    figures["transferFrom"] = gas_used(
        token.transferFrom(holder, newcomer2, 10 * 10**18, sender=spender)
    )
    deadline = int(ctx.chain.pending_timestamp) + 3600
    sig = sign_permit(
        holder.private_key,
        token_name=token.name(),
        token_address=token.address,
        chain_id=ctx.chain.chain_id,
        owner=holder.address,
        spender=newcomer.address,
        value=5 * 10**18,
        nonce=token.nonces(holder),
        deadline=deadline,
    )
    figures["permit"] = gas_used(
        token.permit(holder, newcomer, 5 * 10**18, deadline, sig.v, sig.r, sig.s, sender=spender)
    )
    figures["burn"] = gas_used(token.burn(1 * 10**18, sender=holder))
    return figures


def run(ctx: BenchContext) -> list[Table]:
    owner, project = ctx.owner, ctx.project
    ntk = project.NeuroToken.deploy(owner, sender=owner)
    ntk_deploy = deploy_gas(ctx.chain, ntk)
    ntk.grantRole(ntk.MINTER_ROLE(), owner, sender=owner)
    ntk.mint(owner, SUPPLY, sender=owner)
    oz = project.ReferenceOZToken.deploy(SUPPLY, sender=owner)
    solady = project.ReferenceSoladyToken.deploy(SUPPLY, sender=owner)
    results = {
        "NTK": _measure(ctx, "NTK", ntk, ntk_deploy),
        "OpenZeppelin": _measure(ctx, "OpenZeppelin", oz, deploy_gas(ctx.chain, oz)),
        "Solady": _measure(ctx, "Solady", solady, deploy_gas(ctx.chain, solady)),
    }
    table = Table(
        "Token gas: NTK beside plain OpenZeppelin ERC20 and Solady ERC20 (same run)",
        ["operation", "NTK", "OpenZeppelin", "Solady", "NTK / OZ", "NTK / Solady"],
    )
    for op in results["NTK"]:
        n, o, s = (results[k][op] for k in ("NTK", "OpenZeppelin", "Solady"))
        table.add(op, f"{n:,}", f"{o:,}", f"{s:,}", ratio(n, o), ratio(n, s))
    table.notes = [
        "Gas from transaction receipts (21,000 base included). NTK carries a cap, roles "
        "and a minting switch; the references are bare ERC-20s with permit and burn. "
        "Deploy: NTK's constructor mints nothing, the references mint their supply "
        "in the constructor.",
    ]
    return [table]
