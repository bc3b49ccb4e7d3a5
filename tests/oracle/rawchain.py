"""A contract over raw JSON-RPC, for tests that run thousands of calls on anvil.

Through ape, a market transaction cost ~0.1 s here (nonce, fee history, gas estimate, the
receipt, the trace, each its own request and model) and a reverting `eth_call` ~10 ms; a
state machine that runs a whole job per step spent most of its time there. This module
speaks JSON-RPC itself, over one kept-alive HTTP connection:

* `RawContract.transact` is one `eth_sendTransactionSync` from an unlocked anvil account,
  without gas (anvil estimates it, and answers the estimate's revert with the revert data),
  which answers with the receipt once mined; its logs are decoded from the ABI
  (`Receipt.events`);
* `RawContract.try_calls` runs any number of calls as one batch of `eth_call`s, each from
  its own sender at the same state, and hands back each one's return data or revert data:
  a transaction that must revert is the same call as an `eth_call` from the same sender at
  the same state, so a batch of them checks dozens of hostile tries in one round trip;
* `Rpc.batch` reads many values (views, blocks, logs) in one round trip.

Nothing here is mocked: every answer is anvil's. The decoding is eth-abi's over the ABI the
contract was built with; custom errors are decoded by `neurotoken.chain.reverts`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from neurotoken.chain.reverts import DecodedError, ErrorDecoder, abi_type
from tests import rpc
from tests.rpc import RpcError


class Rpc(rpc.Rpc):
    """`tests.rpc.Rpc` with the node's reads and anvil's controls the machine uses."""

    # ------------------------------------------------------------ the node

    def head(self) -> dict[str, Any]:
        block = self.call("eth_getBlockByNumber", "latest", False)
        assert isinstance(block, dict)
        return block

    def head_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def head_timestamp(self) -> int:
        return int(self.head()["timestamp"], 16)

    def mine(self, blocks: int = 1) -> None:
        self.call("anvil_mine", hex(blocks))

    def warp(self, timestamp: int) -> bool:
        """Mines one block at `timestamp` if the chain is not past it already; whether it did."""
        if timestamp <= self.head_timestamp():
            return False
        self.call("evm_setNextBlockTimestamp", hex(timestamp))
        self.call("evm_mine")
        return True


@functools.lru_cache(maxsize=4096)
def checksum(address: str) -> str:
    """`to_checksum_address`, remembered (a keccak each time otherwise)."""
    return to_checksum_address(address)


def _address(value: Any) -> str:
    return checksum(str(getattr(value, "address", value)))


def _plain_arg(value: Any, item: Mapping[str, Any]) -> Any:
    """A Python value as eth-abi encodes it for ABI input `item` (accounts stand for their
    address, dicts for tuples by component name)."""
    kind = str(item["type"])
    if kind.endswith("]"):
        inner = {**item, "type": kind[: kind.rindex("[")]}
        return [_plain_arg(v, inner) for v in value]
    if kind == "tuple":
        components = item["components"]
        if isinstance(value, Mapping):
            value = [value[c["name"]] for c in components]
        return tuple(_plain_arg(v, c) for v, c in zip(value, components, strict=True))
    if kind == "address":
        return _address(value)
    return value


def _plain_out(value: Any, item: Mapping[str, Any]) -> Any:
    """A decoded value with checksummed addresses; a named tuple becomes a dict."""
    kind = str(item["type"])
    if kind.endswith("]"):
        inner = {**item, "type": kind[: kind.rindex("[")]}
        return [_plain_out(v, inner) for v in value]
    if kind == "tuple":
        components = item["components"]
        values = [_plain_out(v, c) for v, c in zip(value, components, strict=True)]
        if all(c.get("name") for c in components):
            return {c["name"]: v for c, v in zip(components, values, strict=True)}
        return tuple(values)
    if kind == "address":
        return checksum(value)
    return value


@dataclass(frozen=True)
class Function:
    name: str
    inputs: tuple[dict[str, Any], ...]
    outputs: tuple[dict[str, Any], ...]
    selector: bytes
    types: tuple[str, ...] = ()
    output_types: tuple[str, ...] = ()

    @classmethod
    def from_abi(cls, item: Mapping[str, Any]) -> Function:
        inputs = tuple(dict(i) for i in item["inputs"])
        outputs = tuple(dict(o) for o in item.get("outputs", ()))
        types = tuple(abi_type(i) for i in inputs)
        return cls(
            str(item["name"]),
            inputs,
            outputs,
            keccak(text=f"{item['name']}({','.join(types)})")[:4],
            types,
            tuple(abi_type(o) for o in outputs),
        )

    def encode(self, args: Sequence[Any]) -> bytes:
        if len(args) != len(self.inputs):
            raise TypeError(f"{self.name} takes {len(self.inputs)} arguments, got {len(args)}")
        values = [_plain_arg(a, i) for a, i in zip(args, self.inputs, strict=True)]
        return self.selector + encode(self.types, values)

    def decode(self, data: bytes) -> Any:
        """The return value: one output's value, several outputs' tuple, or None."""
        values = decode(self.output_types, data)
        plain = [_plain_out(v, o) for v, o in zip(values, self.outputs, strict=True)]
        if not plain:
            return None
        return plain[0] if len(plain) == 1 else tuple(plain)


@dataclass(frozen=True)
class Event:
    name: str
    inputs: tuple[dict[str, Any], ...]
    topic: bytes

    @classmethod
    def from_abi(cls, item: Mapping[str, Any]) -> Event:
        types = ",".join(abi_type(i) for i in item["inputs"])
        for i in item["inputs"]:
            if i.get("indexed") and (i["type"] in ("string", "bytes") or "[" in i["type"]):
                raise ValueError(f"{item['name']}: indexed {i['type']} is not decodable")
        inputs = tuple(dict(i) for i in item["inputs"])
        return cls(str(item["name"]), inputs, keccak(text=f"{item['name']}({types})"))

    def decode(self, topics: Sequence[bytes], data: bytes) -> dict[str, Any]:
        indexed = [i for i in self.inputs if i.get("indexed")]
        rest = [i for i in self.inputs if not i.get("indexed")]
        if len(topics) != len(indexed) + 1:
            raise ValueError(f"{self.name}: {len(topics)} topics for {len(indexed)} indexed")
        args: dict[str, Any] = {}
        for item, topic in zip(indexed, topics[1:], strict=True):
            (value,) = decode([abi_type(item)], topic)
            args[item["name"]] = _plain_out(value, item)
        values = decode([abi_type(i) for i in rest], data)
        for item, value in zip(rest, values, strict=True):
            args[item["name"]] = _plain_out(value, item)
        return {i["name"]: args[i["name"]] for i in self.inputs}  # in the ABI's order


@dataclass
class Receipt:
    """A mined transaction: its hash, block, and the decoded logs of the contract."""

    tx_hash: str
    block_number: int
    logs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def events(self) -> dict[str, dict[str, Any]]:
        """The contract's events by name (each event name at most once per transaction)."""
        names = [name for name, _ in self.logs]
        assert len(names) == len(set(names)), f"an event repeats in one transaction: {names}"
        return dict(self.logs)


@dataclass(frozen=True)
class Try:
    """One call tried as `sender`: its return data, or its revert data if it reverted."""

    method: str
    args: tuple[Any, ...]
    sender: str
    reverted: bool
    data: bytes
    error: DecodedError | None = None
    """The decoded custom error of a revert (None: not one the ABI names, or no data)."""


class RawContract:
    """One deployed contract (address, JSON ABI) driven over raw JSON-RPC."""

    def __init__(self, rpc: Rpc, address: str, abi: Sequence[Mapping[str, Any]]) -> None:
        self.rpc = rpc
        self.address = to_checksum_address(address)
        self.functions: dict[tuple[str, int], Function] = {}
        self.events_by_topic: dict[bytes, Event] = {}
        for item in abi:
            if item.get("type") == "function":
                fn = Function.from_abi(item)
                key = (fn.name, len(fn.inputs))
                assert key not in self.functions, f"overloads of the same arity: {key}"
                self.functions[key] = fn
            elif item.get("type") == "event" and not item.get("anonymous"):
                event = Event.from_abi(item)
                self.events_by_topic[event.topic] = event
        self.errors = ErrorDecoder([dict(i) for i in abi])

    def fn(self, name: str, arity: int) -> Function:
        try:
            return self.functions[(name, arity)]
        except KeyError:
            raise KeyError(f"no function {name} with {arity} arguments") from None

    def topics(self, names: Sequence[str]) -> dict[bytes, str]:
        """topic0 -> name for the events named."""
        found = {e.topic: e.name for e in self.events_by_topic.values() if e.name in names}
        assert sorted(found.values()) == sorted(names), (names, found)
        return found

    def _tx(self, name: str, args: Sequence[Any], sender: Any) -> dict[str, str]:
        data = self.fn(name, len(args)).encode(args)
        frm = _address(sender)
        return {"from": frm, "to": self.address, "data": "0x" + data.hex()}

    # ------------------------------------------------------------ reads

    def call_request(
        self, name: str, *args: Any, sender: Any = None, block: str = "latest"
    ) -> tuple[str, list[Any]]:
        """The `eth_call` request for a view (for `Rpc.batch`)."""
        call = self._tx(name, args, sender) if sender is not None else None
        if call is None:
            data = self.fn(name, len(args)).encode(args)
            call = {"to": self.address, "data": "0x" + data.hex()}
        return ("eth_call", [call, block])

    def decode_result(self, name: str, arity: int, result: Any) -> Any:
        if isinstance(result, RpcError):
            raise result
        return self.fn(name, arity).decode(bytes.fromhex(str(result).removeprefix("0x")))

    def read(self, *calls: tuple[Any, ...]) -> list[Any]:
        """Several views, `(name, *args)` each, in one round trip."""
        answers = self.rpc.batch([self.call_request(name, *args) for name, *args in calls])
        return [
            self.decode_result(name, len(args), answer)
            for (name, *args), answer in zip(calls, answers, strict=True)
        ]

    def view(self, name: str, *args: Any) -> Any:
        return self.read((name, *args))[0]

    # ------------------------------------------------------------ tries that must revert

    def try_calls(
        self, tries: Sequence[tuple[Any, str, tuple[Any, ...]]], block: str = "latest"
    ) -> list[Try]:
        """`(sender, method, args)` each as an `eth_call` from `sender` at `block`, in one
        batch; what each one did."""
        requests_ = [("eth_call", [self._tx(m, a, s), block]) for s, m, a in tries]
        answers = self.rpc.batch(requests_)
        out = []
        for (sender, method, args), answer in zip(tries, answers, strict=True):
            frm = _address(sender)
            if isinstance(answer, RpcError):
                data = answer.revert_data()
                if data is None and answer.code != 3 and "revert" not in answer.message:
                    raise answer  # not a revert: the node's own trouble
                raw = data or b""
                out.append(Try(method, args, frm, True, raw, self.errors.decode(raw)))
            else:
                out.append(Try(method, args, frm, False, bytes.fromhex(answer[2:])))
        return out

    # ------------------------------------------------------------ transactions

    def decode_logs(self, logs: Sequence[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        """This contract's logs among `logs`, decoded, in order (other contracts' skipped)."""
        out = []
        for log in logs:
            if checksum(log["address"]) != self.address or log.get("removed"):
                continue
            topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
            event = self.events_by_topic.get(topics[0]) if topics else None
            if event is None:
                raise ValueError(f"a log of {self.address} no event of the ABI has: {log}")
            out.append((event.name, event.decode(topics, bytes.fromhex(log["data"][2:]))))
        return out

    def transact(self, name: str, *args: Any, sender: Any, gas: int | None = None) -> Receipt:
        """Sends the call from `sender` (an unlocked anvil account) with anvil's
        `eth_sendTransactionSync` (sent and mined, its receipt in the answer: one round trip;
        automine only) and returns the receipt, which must show success. Without `gas` anvil
        estimates it (a binary search: several executions) and refuses a call that reverts
        (RpcError with the revert data); with `gas` it runs once, and a revert is mined as a
        failed transaction (AssertionError naming the error the same call reverts with)."""
        tx = self._tx(name, args, sender)
        if gas is not None:
            tx["gas"] = hex(gas)
        receipt = self.rpc.call("eth_sendTransactionSync", tx)
        tx_hash = receipt["transactionHash"]
        if int(receipt["status"], 16) != 1:
            why = self.try_calls([(sender, name, args)])[0]  # the same call, for its error
            raise AssertionError(f"{name}{args} from {sender} mined but failed ({why}): {tx_hash}")
        return Receipt(tx_hash, int(receipt["blockNumber"], 16), self.decode_logs(receipt["logs"]))
