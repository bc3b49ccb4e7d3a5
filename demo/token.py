"""The token stage: deploy NTK, mint to a few holders, transfer, permit, burn, close minting."""

from __future__ import annotations

from collections.abc import Callable

from ape import accounts, chain, project

from neurotoken.chain import deployments
from neurotoken.chain.cli import current_network_key
from neurotoken.chain.permit import sign_permit
from neurotoken.units import NTK


def fmt_ntk(wei: int) -> str:
    return f"{wei / NTK:,.2f} NTK"


def token_stage(echo: Callable[[str], None]) -> None:
    """Deploy NTK, mint to a few holders, transfer, permit, burn, close minting."""
    deployer, minter, alice, bob, carol = (accounts.test_accounts[i] for i in range(5))
    echo("== Stage 1: the Neurotoken (NTK) contract")
    token = project.NeuroToken.deploy(deployer, sender=deployer)
    deployments.record(current_network_key(chain.provider), "NeuroToken", token.address)
    echo(f"deployed NeuroToken at {token.address}; cap {fmt_ntk(token.cap())}")
    token.grantRole(token.MINTER_ROLE(), minter, sender=deployer)
    echo(f"granted the minter role to {minter.address} (the sale's place, later)")
    for holder, amount in ((alice, 1_000), (bob, 250), (carol, 40)):
        token.mint(holder, amount * NTK, sender=minter)
        echo(f"minted {fmt_ntk(amount * NTK)} to {holder.address}")
    tx = token.transfer(bob, 100 * NTK, sender=alice)
    echo(f"alice sent 100 NTK to bob ({tx.gas_used:,} gas)")
    deadline = int(chain.pending_timestamp) + 3600
    sig = sign_permit(
        alice.private_key,
        token_name=token.name(),
        token_address=token.address,
        chain_id=chain.chain_id,
        owner=alice.address,
        spender=carol.address,
        value=50 * NTK,
        nonce=token.nonces(alice),
        deadline=deadline,
    )
    token.permit(alice, carol, 50 * NTK, deadline, sig.v, sig.r, sig.s, sender=carol)
    token.transferFrom(alice, carol, 50 * NTK, sender=carol)
    echo("alice signed an EIP-2612 permit off-chain; carol used it to pull 50 NTK")
    token.burn(40 * NTK, sender=carol)
    echo("carol burned 40 NTK")
    token.finishMinting(sender=minter)
    echo(f"minting finished for ever at a supply of {fmt_ntk(token.totalSupply())}")
    for name, holder in (("alice", alice), ("bob", bob), ("carol", carol)):
        echo(f"  {name:<6}{fmt_ntk(token.balanceOf(holder)):>16}")
    total = sum(token.balanceOf(h) for h in (alice, bob, carol))
    assert total == token.totalSupply(), "balances do not add up to the supply"
    echo(f"  total {fmt_ntk(total):>16} == totalSupply")
