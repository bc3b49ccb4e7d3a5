"""Unit tests for NeuroToken: every function and every revert path."""

from __future__ import annotations

from typing import Any

import ape
import pytest
from ape.exceptions import VirtualMachineError
from eth_utils.crypto import keccak

from tests.constants import MAX_UINT256, NTK_CAP, ZERO_ADDRESS


def test_metadata__is_neurotoken_ntk_18_decimals(token: Any) -> None:
    assert token.name() == "Neurotoken"
    assert token.symbol() == "NTK"
    assert token.decimals() == 18
    assert token.cap() == NTK_CAP == token.CAP()
    assert token.totalSupply() == 0
    assert not token.mintingFinished()


def test_roles__deployer_is_admin_and_minter_role_is_keccak(
    token: Any, owner: Any, minter: Any, alice: Any
) -> None:
    assert token.MINTER_ROLE() == keccak(text="MINTER_ROLE")
    assert token.hasRole(token.DEFAULT_ADMIN_ROLE(), owner)
    assert token.hasRole(token.MINTER_ROLE(), minter)
    assert not token.hasRole(token.MINTER_ROLE(), owner)
    assert not token.hasRole(token.MINTER_ROLE(), alice)


def test_mint__by_minter__credits_and_emits_transfer(token: Any, minter: Any, alice: Any) -> None:
    tx = token.mint(alice, 5 * 10**18, sender=minter)
    assert token.balanceOf(alice) == 5 * 10**18
    assert token.totalSupply() == 5 * 10**18
    events = tx.decode_logs(token.Transfer)
    assert len(events) == 1
    assert events[0].event_arguments == {
        "from": ZERO_ADDRESS,
        "to": alice.address,
        "value": 5 * 10**18,
    }


def test_mint__by_non_minter__reverts(token: Any, owner: Any, alice: Any) -> None:
    with ape.reverts(
        token.AccessControlUnauthorizedAccount,
        account=owner.address,
        neededRole=token.MINTER_ROLE(),
    ):
        token.mint(alice, 1, sender=owner)


def test_mint__to_zero_address__reverts(token: Any, minter: Any) -> None:
    with ape.reverts(token.ERC20InvalidReceiver, receiver=ZERO_ADDRESS):
        token.mint(ZERO_ADDRESS, 1, sender=minter)


def test_mint__exactly_the_cap__succeeds(token: Any, minter: Any, alice: Any) -> None:
    token.mint(alice, NTK_CAP, sender=minter)
    assert token.totalSupply() == NTK_CAP


def test_mint__past_the_cap__reverts(token: Any, minter: Any, alice: Any) -> None:
    token.mint(alice, NTK_CAP - 1, sender=minter)
    with ape.reverts(token.ERC20ExceededCap, increasedSupply=NTK_CAP + 1, cap=NTK_CAP):
        token.mint(alice, 2, sender=minter)


def test_mint__max_uint__reverts_without_overflow(token: Any, minter: Any, alice: Any) -> None:
    token.mint(alice, 1, sender=minter)
    # totalSupply + MAX overflows in ERC20._update: a checked-arithmetic panic (0x11).
    with pytest.raises(VirtualMachineError, match="0x11"):
        token.mint(alice, MAX_UINT256, sender=minter)
    assert token.totalSupply() == 1


def test_mint__zero_amount__is_a_no_op_transfer(token: Any, minter: Any, alice: Any) -> None:
    tx = token.mint(alice, 0, sender=minter)
    assert token.totalSupply() == 0
    assert len(tx.decode_logs(token.Transfer)) == 1


def test_finish_minting__closes_minting_for_ever(token: Any, minter: Any, alice: Any) -> None:
    token.mint(alice, 7, sender=minter)
    tx = token.finishMinting(sender=minter)
    assert token.mintingFinished()
    events = tx.decode_logs(token.MintingFinished)
    assert len(events) == 1
    assert events[0].account == minter.address
    assert events[0].finalSupply == 7
    with ape.reverts(token.NeuroTokenMintingFinished):
        token.mint(alice, 1, sender=minter)


def test_finish_minting__twice__reverts(token: Any, minter: Any) -> None:
    token.finishMinting(sender=minter)
    with ape.reverts(token.NeuroTokenMintingFinished):
        token.finishMinting(sender=minter)


def test_finish_minting__by_non_minter__reverts(token: Any, owner: Any) -> None:
    with ape.reverts(token.AccessControlUnauthorizedAccount):
        token.finishMinting(sender=owner)


def test_finish_minting__even_a_newly_granted_minter_cannot_mint(
    token: Any, owner: Any, minter: Any, alice: Any
) -> None:
    token.finishMinting(sender=minter)
    token.grantRole(token.MINTER_ROLE(), alice, sender=owner)
    with ape.reverts(token.NeuroTokenMintingFinished):
        token.mint(alice, 1, sender=alice)


def test_admin__has_no_power_over_balances(
    token: Any, owner: Any, minter: Any, alice: Any, bob: Any
) -> None:
    token.mint(alice, 100, sender=minter)
    with ape.reverts(
        token.ERC20InsufficientAllowance, spender=owner.address, allowance=0, needed=1
    ):
        token.transferFrom(alice, bob, 1, sender=owner)
    with ape.reverts(token.ERC20InsufficientAllowance):
        token.burnFrom(alice, 1, sender=owner)
    abi_names = {abi.name for abi in token.contract_type.abi if getattr(abi, "name", None)}
    assert not abi_names & {"pause", "unpause", "freeze", "blacklist", "adminTransfer"}


def test_admin__can_renounce_and_nobody_can_grant_minter_after(
    token: Any, owner: Any, alice: Any
) -> None:
    token.renounceRole(token.DEFAULT_ADMIN_ROLE(), owner, sender=owner)
    with ape.reverts(token.AccessControlUnauthorizedAccount):
        token.grantRole(token.MINTER_ROLE(), alice, sender=owner)


def test_transfer__moves_balance_and_emits(token: Any, minter: Any, alice: Any, bob: Any) -> None:
    token.mint(alice, 10, sender=minter)
    tx = token.transfer(bob, 4, sender=alice)
    assert (token.balanceOf(alice), token.balanceOf(bob)) == (6, 4)
    event = tx.decode_logs(token.Transfer)[0]
    assert (event["from"], event.to, event.value) == (alice.address, bob.address, 4)


def test_transfer__more_than_balance__reverts(
    token: Any, minter: Any, alice: Any, bob: Any
) -> None:
    token.mint(alice, 10, sender=minter)
    with ape.reverts(token.ERC20InsufficientBalance, sender=alice.address, balance=10, needed=11):
        token.transfer(bob, 11, sender=alice)


def test_transfer__to_zero_address__reverts(token: Any, minter: Any, alice: Any) -> None:
    token.mint(alice, 10, sender=minter)
    with ape.reverts(token.ERC20InvalidReceiver, receiver=ZERO_ADDRESS):
        token.transfer(ZERO_ADDRESS, 1, sender=alice)


def test_transfer__to_self__keeps_balance(token: Any, minter: Any, alice: Any) -> None:
    token.mint(alice, 10, sender=minter)
    token.transfer(alice, 10, sender=alice)
    assert token.balanceOf(alice) == 10


def test_approve__sets_allowance_and_emits(token: Any, alice: Any, bob: Any) -> None:
    tx = token.approve(bob, 123, sender=alice)
    assert token.allowance(alice, bob) == 123
    event = tx.decode_logs(token.Approval)[0]
    assert (event.owner, event.spender, event.value) == (alice.address, bob.address, 123)


def test_approve__zero_spender__reverts(token: Any, alice: Any) -> None:
    with ape.reverts(token.ERC20InvalidSpender, spender=ZERO_ADDRESS):
        token.approve(ZERO_ADDRESS, 1, sender=alice)


def test_transfer_from__spends_allowance(
    token: Any, minter: Any, alice: Any, bob: Any, carol: Any
) -> None:
    token.mint(alice, 10, sender=minter)
    token.approve(bob, 6, sender=alice)
    token.transferFrom(alice, carol, 4, sender=bob)
    assert token.allowance(alice, bob) == 2
    assert token.balanceOf(carol) == 4
    with ape.reverts(token.ERC20InsufficientAllowance, spender=bob.address, allowance=2, needed=3):
        token.transferFrom(alice, carol, 3, sender=bob)


def test_transfer_from__infinite_allowance__is_not_spent(
    token: Any, minter: Any, alice: Any, bob: Any
) -> None:
    token.mint(alice, 10, sender=minter)
    token.approve(bob, MAX_UINT256, sender=alice)
    token.transferFrom(alice, bob, 10, sender=bob)
    assert token.allowance(alice, bob) == MAX_UINT256


def test_burn__reduces_supply(token: Any, minter: Any, alice: Any) -> None:
    token.mint(alice, 10, sender=minter)
    token.finishMinting(sender=minter)
    tx = token.burn(3, sender=alice)
    assert token.totalSupply() == 7
    assert token.balanceOf(alice) == 7
    event = tx.decode_logs(token.Transfer)[0]
    assert (event["from"], event.to, event.value) == (alice.address, ZERO_ADDRESS, 3)


def test_burn__more_than_balance__reverts(token: Any, minter: Any, alice: Any) -> None:
    token.mint(alice, 10, sender=minter)
    with ape.reverts(token.ERC20InsufficientBalance, sender=alice.address, balance=10, needed=11):
        token.burn(11, sender=alice)


def test_burn_from__needs_and_spends_allowance(
    token: Any, minter: Any, alice: Any, bob: Any
) -> None:
    token.mint(alice, 10, sender=minter)
    token.approve(bob, 5, sender=alice)
    token.burnFrom(alice, 5, sender=bob)
    assert token.totalSupply() == 5
    assert token.allowance(alice, bob) == 0


def test_burn__does_not_free_room_under_the_cap_after_finish(
    token: Any, minter: Any, alice: Any
) -> None:
    token.mint(alice, NTK_CAP, sender=minter)
    token.burn(NTK_CAP // 2, sender=alice)
    token.finishMinting(sender=minter)
    with ape.reverts(token.NeuroTokenMintingFinished):
        token.mint(alice, 1, sender=minter)


# --- EIP-2612 permit -----------------------------------------------------------------------


@pytest.fixture
def deadline(chain: Any) -> int:
    return int(chain.pending_timestamp) + 3600


def test_permit__sets_allowance_and_bumps_nonce(
    token: Any, alice: Any, bob: Any, make_permit: Any, deadline: int
) -> None:
    sig = make_permit(token, alice, bob, 500, deadline)
    tx = token.permit(alice, bob, 500, deadline, sig.v, sig.r, sig.s, sender=bob)
    assert token.allowance(alice, bob) == 500
    assert token.nonces(alice) == 1
    event = tx.decode_logs(token.Approval)[0]
    assert (event.owner, event.spender, event.value) == (alice.address, bob.address, 500)


def test_permit__replayed__reverts(
    token: Any, alice: Any, bob: Any, make_permit: Any, deadline: int
) -> None:
    sig = make_permit(token, alice, bob, 500, deadline)
    token.permit(alice, bob, 500, deadline, sig.v, sig.r, sig.s, sender=bob)
    with ape.reverts(token.ERC2612InvalidSigner):
        token.permit(alice, bob, 500, deadline, sig.v, sig.r, sig.s, sender=bob)


def test_permit__after_deadline__reverts(
    token: Any, chain: Any, alice: Any, bob: Any, make_permit: Any
) -> None:
    deadline = int(chain.pending_timestamp) + 60
    sig = make_permit(token, alice, bob, 1, deadline)
    chain.mine(deltatime=120)
    with ape.reverts(token.ERC2612ExpiredSignature, deadline=deadline):
        token.permit(alice, bob, 1, deadline, sig.v, sig.r, sig.s, sender=bob)


def test_permit__at_exactly_the_deadline__succeeds(
    token: Any, chain: Any, alice: Any, bob: Any, make_permit: Any
) -> None:
    deadline = int(chain.pending_timestamp) + 100
    sig = make_permit(token, alice, bob, 1, deadline)
    chain.pending_timestamp = deadline
    token.permit(alice, bob, 1, deadline, sig.v, sig.r, sig.s, sender=bob)
    assert token.allowance(alice, bob) == 1


@pytest.mark.parametrize("field", ["value", "spender", "deadline", "owner"])
def test_permit__with_a_changed_field__reverts_with_recovered_signer(
    token: Any, alice: Any, bob: Any, carol: Any, make_permit: Any, deadline: int, field: str
) -> None:
    sig = make_permit(token, alice, bob, 500, deadline)
    args = {"owner": alice, "spender": bob, "value": 500, "deadline": deadline}
    args[field] = {"value": 501, "spender": carol, "deadline": deadline + 1, "owner": carol}[field]
    with ape.reverts(token.ERC2612InvalidSigner):
        token.permit(
            args["owner"],
            args["spender"],
            args["value"],
            args["deadline"],
            sig.v,
            sig.r,
            sig.s,
            sender=bob,
        )
    assert token.allowance(alice, bob) == 0


def test_permit__signed_for_another_chain__reverts(
    token: Any, alice: Any, bob: Any, make_permit: Any, deadline: int
) -> None:
    sig = make_permit(token, alice, bob, 1, deadline, chain_id=11155111)
    with ape.reverts(token.ERC2612InvalidSigner):
        token.permit(alice, bob, 1, deadline, sig.v, sig.r, sig.s, sender=bob)


def test_permit__signed_for_another_contract__reverts(
    token: Any, project: Any, owner: Any, alice: Any, bob: Any, make_permit: Any, deadline: int
) -> None:
    other = project.NeuroToken.deploy(owner, sender=owner)
    sig = make_permit(token, alice, bob, 1, deadline, verifying_contract=other.address)
    with ape.reverts(token.ERC2612InvalidSigner):
        token.permit(alice, bob, 1, deadline, sig.v, sig.r, sig.s, sender=bob)
    other.permit(alice, bob, 1, deadline, sig.v, sig.r, sig.s, sender=bob)  # valid where signed
    assert other.allowance(alice, bob) == 1


def test_permit__signed_by_someone_else__reverts(
    token: Any, alice: Any, bob: Any, make_permit: Any, deadline: int
) -> None:
    sig = make_permit(token, bob, bob, 1, deadline, nonce=0)
    with ape.reverts(token.ERC2612InvalidSigner):
        token.permit(alice, bob, 1, deadline, sig.v, sig.r, sig.s, sender=bob)


def test_permit__with_future_nonce__reverts(
    token: Any, alice: Any, bob: Any, make_permit: Any, deadline: int
) -> None:
    sig = make_permit(token, alice, bob, 1, deadline, nonce=1)
    with ape.reverts(token.ERC2612InvalidSigner):
        token.permit(alice, bob, 1, deadline, sig.v, sig.r, sig.s, sender=bob)


def test_permit__malleable_high_s__reverts(
    token: Any, alice: Any, bob: Any, make_permit: Any, deadline: int
) -> None:
    secp256k1_n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    sig = make_permit(token, alice, bob, 1, deadline)
    high_s = (secp256k1_n - int.from_bytes(sig.s, "big")).to_bytes(32, "big")
    flipped_v = 27 if sig.v == 28 else 28
    with ape.reverts(token.ECDSAInvalidSignatureS):
        token.permit(alice, bob, 1, deadline, flipped_v, sig.r, high_s, sender=bob)


def test_domain_separator__binds_name_version_chain_and_contract(token: Any, chain: Any) -> None:
    fields = token.eip712Domain()
    assert fields.name == "Neurotoken"
    assert fields.version == "1"
    assert fields.chainId == chain.chain_id
    assert fields.verifyingContract == token.address
