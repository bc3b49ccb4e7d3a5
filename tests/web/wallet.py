"""An injected EIP-1193 wallet for the browser tests, backed by a real key: the page's
`window.ethereum` (also announced by EIP-6963) forwards every request to `BrowserWallet`,
which signs transactions and typed data with the account's key and sends them to anvil, and
passes every other request (reads, eth_call, receipts) to the node unchanged, errors included.
Nothing about the chain is mocked; `chain_id` is what the wallet says it is on, so a test can
start it on the wrong network and let the page ask it to switch."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3

INJECTED = """
(() => {
  const listeners = {};
  const provider = {
    isNeurotokenTestWallet: true,
    async request({ method, params }) {
      const reply = JSON.parse(await window.__walletRequest(method, JSON.stringify(params ?? [])));
      if (reply.error) {
        const error = new Error(reply.error.message);
        error.code = reply.error.code;
        if (reply.error.data !== undefined) error.data = reply.error.data;
        throw error;
      }
      if (method === "wallet_switchEthereumChain" || method === "wallet_addEthereumChain") {
        for (const fn of listeners.chainChanged ?? []) fn(reply.chainId);
      }
      return reply.result;
    },
    on(event, fn) { (listeners[event] ??= []).push(fn); },
    removeListener(event, fn) {
      listeners[event] = (listeners[event] ?? []).filter((f) => f !== fn);
    },
  };
  window.ethereum = provider;
  const info = { uuid: "00000000-0000-4000-8000-000000000001", name: "Test wallet",
                 icon: "data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg'/>",
                 rdns: "org.neurotoken.testwallet" };
  const announce = () => window.dispatchEvent(
    new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider }) }));
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
})();
"""


class WalletRefusalError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


@dataclass
class BrowserWallet:
    rpc_url: str
    key: str
    chain_id: int
    connected: bool = False
    refuse_next: bool = False
    """Decline the next signing request (code 4001), as a person pressing Reject."""
    sent: list[str] = field(default_factory=list)
    """Hashes of the transactions this wallet sent."""

    def __post_init__(self) -> None:
        self.account: LocalAccount = Account.from_key(self.key)
        self.w3 = Web3(HTTPProvider(self.rpc_url))

    def install(self, page: Any) -> None:
        page.expose_function("__walletRequest", self.handle)
        page.add_init_script(INJECTED)

    def handle(self, method: str, params_json: str) -> str:
        try:
            result = self.request(method, json.loads(params_json))
        except WalletRefusalError as refusal:
            error = {"code": refusal.code, "message": refusal.message}
            if refusal.data is not None:
                error["data"] = refusal.data
            return json.dumps({"error": error})
        reply: dict[str, Any] = {"result": result}
        if method.startswith("wallet_"):
            reply["chainId"] = hex(self.chain_id)
        return json.dumps(reply)

    def request(self, method: str, params: list[Any]) -> Any:
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "eth_accounts":
            return [self.account.address] if self.connected else []
        if method == "eth_requestAccounts":
            self.connected = True
            return [self.account.address]
        if method == "wallet_switchEthereumChain":
            self.chain_id = int(params[0]["chainId"], 16)
            return None
        if method == "eth_sendTransaction":
            return self._send(params[0])
        if method == "personal_sign":
            self._consent()
            data = str(params[0])
            message = bytes.fromhex(data[2:]) if data.startswith("0x") else data.encode()
            signed = self.account.sign_message(encode_defunct(primitive=message))
            return "0x" + bytes(signed.signature).hex()
        if method == "eth_signTypedData_v4":
            self._consent()
            signed = self.account.sign_typed_data(full_message=json.loads(params[1]))
            return "0x" + bytes(signed.signature).hex()
        reply = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in reply:
            error = reply["error"]
            raise WalletRefusalError(
                error.get("code", -32000), error.get("message", ""), error.get("data")
            )
        return reply["result"]

    def _consent(self) -> None:
        if self.refuse_next:
            self.refuse_next = False
            raise WalletRefusalError(4001, "User rejected the request.")

    def _send(self, tx: dict[str, Any]) -> str:
        self._consent()
        if Web3.to_checksum_address(tx["from"]) != self.account.address:
            raise WalletRefusalError(4100, "The requested account has not been authorized.")
        fields: dict[str, Any] = {
            "from": self.account.address,
            "to": Web3.to_checksum_address(tx["to"]),
            "data": tx.get("data") or tx.get("input") or "0x",
            "value": int(tx.get("value") or "0x0", 16),
            "chainId": self.chain_id,
            "nonce": self.w3.eth.get_transaction_count(self.account.address, "pending"),
        }
        fields["gas"] = int(tx["gas"], 16) if tx.get("gas") else self.w3.eth.estimate_gas(fields)  # type: ignore[arg-type]
        base = self.w3.eth.get_block("latest")["baseFeePerGas"]
        fields["maxPriorityFeePerGas"] = 10**9
        fields["maxFeePerGas"] = 2 * base + 10**9
        signed = self.account.sign_transaction(fields)
        tx_hash = "0x" + bytes(self.w3.eth.send_raw_transaction(signed.raw_transaction)).hex()
        self.sent.append(tx_hash)
        return tx_hash
