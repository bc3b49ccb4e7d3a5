"""Refusing a transaction that would revert before it is signed.

A dry run (`eth_call` on the pending block, from the sender, with the value) costs nothing;
a transaction that reverts costs its sender gas and, on a local node, prints a call trace.
Every command that sends a transaction to the project's contracts runs it through `send`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from web3.exceptions import ContractCustomError, ContractLogicError

from neurotoken.chain.explain import explain_error
from neurotoken.chain.reverts import ErrorDecoder, raw_bytes
from neurotoken.errors import ChainError


def decode_revert(data: Any, contract_types: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """(error name, inputs) of a custom-error revert, looked up in the contracts' ABIs (ape
    contract types); ("unknown error", {"data": hex}) when it is none of theirs."""
    decoded = ErrorDecoder.from_contract_types(*contract_types).decode(data)
    if decoded is None:
        raw = raw_bytes(data) or b""
        return "unknown error", {"data": "0x" + raw.hex()}
    return decoded.name, decoded.args


def preflight(
    contract: Any,
    method: str,
    *args: Any,
    sender: str,
    value: int = 0,
    extra_types: Sequence[Any] = (),
) -> None:
    """Raises ChainError, with the reason in words, if `method(*args)` sent now by `sender`
    (with `value` wei) would revert. `extra_types`: other contracts whose errors it may bubble
    up (the token's, for a market call that moves NTK)."""
    call: dict[str, Any] = {
        "from": sender,
        "to": contract.address,
        "data": getattr(contract, method).encode_input(*args),
    }
    if value:
        call["value"] = value
    try:
        contract.provider.web3.eth.call(call, "pending")
    except ContractCustomError as exc:
        name, inputs = decode_revert(str(exc.data), [contract.contract_type, *extra_types])
        raise ChainError(
            explain_error(name, inputs) or f"{method} would revert: {name} {inputs}"
        ) from None
    except ContractLogicError as exc:
        raise ChainError(f"{method} would revert: {exc}") from None


def send(
    contract: Any,
    method: str,
    *args: Any,
    sender: Any,
    value: int = 0,
    extra_types: Sequence[Any] = (),
) -> Any:
    """`method(*args)` from the ape account `sender`, after a dry run that refuses (with the
    reason, nothing signed) what would revert. Returns the receipt."""
    preflight(contract, method, *args, sender=sender.address, value=value, extra_types=extra_types)
    options: dict[str, Any] = {"sender": sender}
    if value:
        options["value"] = value
    return getattr(contract, method)(*args, **options)
