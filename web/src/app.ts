// What every view shares: the configuration, the wallet, and the page's status line.
import type { Abi } from "viem";
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
