// The visitor's wallet, the app's only way to the chain: EIP-6963 discovery (every injected
// wallet announces itself), else the legacy `window.ethereum` (EIP-1193). No key is ever held.
import {
  createPublicClient,
  createWalletClient,
  custom,
  defineChain,
  getAddress,
  type Address,
  type Chain,
  type EIP1193Provider,
  type PublicClient,
  type WalletClient,
} from "viem";
import type { AppConfig } from "./config";

interface Announced {
  info: { uuid: string; name: string; rdns: string };
  provider: EIP1193Provider;
}

declare global {
  interface Window {
    ethereum?: EIP1193Provider;
  }
  interface WindowEventMap {
    "eip6963:announceProvider": CustomEvent<Announced>;
  }
}

/** Wallets that announce themselves within `waitMs`, else the injected one, else none. */
export async function discover(waitMs = 200): Promise<{ name: string; provider: EIP1193Provider } | null> {
  const found: Announced[] = [];
  const listener = (event: CustomEvent<Announced>) => found.push(event.detail);
  window.addEventListener("eip6963:announceProvider", listener);
  window.dispatchEvent(new Event("eip6963:requestProvider"));
  await new Promise((resolve) => setTimeout(resolve, waitMs));
  window.removeEventListener("eip6963:announceProvider", listener);
  if (found.length > 0) return { name: found[0]!.info.name, provider: found[0]!.provider };
  if (window.ethereum) return { name: "browser wallet", provider: window.ethereum };
  return null;
}

export class Wallet {
  readonly chain: Chain;
  readonly reader: PublicClient;
  account: Address | null = null;
  chainId: number | null = null;

  constructor(
    readonly provider: EIP1193Provider,
    readonly name: string,
    readonly config: AppConfig,
  ) {
    this.chain = defineChain({
      id: config.chainId,
      name: config.chainName,
      nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
      rpcUrls: { default: { http: config.rpcUrl ? [config.rpcUrl] : [] } },
    });
    this.reader = createPublicClient({ chain: this.chain, transport: custom(provider) });
  }

  /** Reads what the wallet already allows (no prompt). */
  async refresh(): Promise<void> {
    this.chainId = Number(await this.provider.request({ method: "eth_chainId" }));
    const accounts = await this.provider.request({ method: "eth_accounts" });
    this.account = accounts[0] ? getAddress(accounts[0]) : null;
  }

  async connect(): Promise<void> {
    const accounts = await this.provider.request({ method: "eth_requestAccounts" });
    this.account = accounts[0] ? getAddress(accounts[0]) : null;
    this.chainId = Number(await this.provider.request({ method: "eth_chainId" }));
  }

  get onRightChain(): boolean {
    return this.chainId === this.config.chainId;
  }

  /** Asks the wallet to switch to the app's chain, adding it first if the wallet lacks it. */
  async switchChain(): Promise<void> {
    const chainId = `0x${this.config.chainId.toString(16)}` as const;
    try {
      await this.provider.request({ method: "wallet_switchEthereumChain", params: [{ chainId }] });
    } catch (error) {
      if ((error as { code?: number }).code !== 4902 || !this.config.rpcUrl) throw error;
      await this.provider.request({
        method: "wallet_addEthereumChain",
        params: [
          {
            chainId,
            chainName: this.config.chainName,
            nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
            rpcUrls: [this.config.rpcUrl],
          },
        ],
      });
    }
    await this.refresh();
  }

  writer(): WalletClient {
    if (!this.account) throw new Error("Connect your wallet first.");
    return createWalletClient({ account: this.account, chain: this.chain, transport: custom(this.provider) });
  }
}
