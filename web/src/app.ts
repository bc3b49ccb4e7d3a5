// What every view shares: the configuration, the wallet, and the page's status line.
import type { Abi, Address } from "viem";
import type { AppConfig } from "./config";
import { explain } from "./errors";
import type { Wallet } from "./wallet";

export class App {
  constructor(
    readonly config: AppConfig,
    readonly wallet: Wallet | null,
    private readonly messageBox: HTMLElement,
  ) {}

  get abis(): Abi[] {
    return Object.values(this.config.contracts).map((c) => c!.abi);
  }

  /** Whether the wallet is connected, on the right chain: else says what to do. */
  ready(): boolean {
    if (!this.wallet) {
      this.say(
        "No wallet found in this browser: install one (e.g. a browser extension) and reload.",
        "error",
      );
      return false;
    }
    if (!this.wallet.account) {
      this.say("Connect your wallet first (the button at the top).", "error");
      return false;
    }
    if (!this.wallet.onRightChain) {
      this.say(`Your wallet is on another network: switch to ${this.config.chainName} first.`, "error");
      return false;
    }
    return true;
  }

  /** A view function's result, read through the wallet. */
  read<T>(address: Address, abi: Abi, functionName: string, args: readonly unknown[] = []): Promise<T> {
    return this.wallet!.reader.readContract({ address, abi, functionName, args }) as Promise<T>;
  }

  /** Sends a contract call from the connected account: simulated first (a refusal is known,
   * as a sentence, before the wallet opens), then signed in the wallet and followed until
   * mined; returns the call's return value. Throws what `fail` explains. */
  async transact(
    address: Address,
    abi: Abi,
    functionName: string,
    args: readonly unknown[] = [],
    value = 0n,
  ): Promise<unknown> {
    const wallet = this.wallet!;
    this.say("Checking the transaction…");
    const { request, result } = await wallet.reader.simulateContract({
      address,
      abi,
      functionName,
      args,
      value,
      account: wallet.account!,
    });
    this.say("Confirm in your wallet…");
    const hash = await wallet.writer().writeContract(request);
    this.say("Waiting for the transaction to be mined…");
    const receipt = await wallet.reader.waitForTransactionReceipt({ hash });
    if (receipt.status !== "success") throw new Error("The transaction failed on chain; nothing changed.");
    return result;
  }

  say(text: string, kind: "info" | "ok" | "error" = "info"): void {
    this.messageBox.textContent = text;
    this.messageBox.dataset.kind = kind;
    this.messageBox.hidden = false;
  }

  fail(error: unknown): void {
    this.say(explain(error, this.abis), "error");
  }
}

/** An element of the view by id, typed. */
export function el<T extends HTMLElement = HTMLElement>(root: ParentNode, id: string): T {
  const found = root.querySelector<T>(`#${id}`);
  if (!found) throw new Error(`missing #${id}`);
  return found;
}
