// What the app knows of a network: written next to index.html as config.json by
// `python -m neurotoken.web config` from deployments/<network>.json, the compiled ABIs and the
// published allow-list. Nothing here is a secret; the app never holds a key.
import type { Abi, Address, Hex } from "viem";

export interface ContractEntry {
  address: Address;
  abi: Abi;
}

/** @openzeppelin/merkle-tree's StandardMerkleTree dump (one address per leaf). */
export interface AllowlistDump {
  format: "standard-v1";
  leafEncoding: string[];
  tree: Hex[];
  values: { value: [string]; treeIndex: number }[];
}

export interface AppConfig {
  network: string;
  chainId: number;
  chainName: string;
  /** What a wallet is told to add when it does not know the chain (may be empty). */
  rpcUrl: string;
  contracts: Partial<Record<"NeuroToken" | "TokenSale" | "ComputeMarket", ContractEntry>>;
  allowlist: AllowlistDump | null;
  /** The market's deployment block: where its events are looked up from. */
  fromBlock: number;
}

export async function loadConfig(url = "./config.json"): Promise<AppConfig> {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) {
    throw new Error(
      `This page has no network configured (${url}: HTTP ${response.status}). ` +
        "Serve it with `make web NETWORK=...`.",
    );
  }
  const config = (await response.json()) as AppConfig;
  if (!Number.isInteger(config.chainId) || typeof config.contracts !== "object") {
    throw new Error(`${url} is not a Neurotoken app configuration.`);
  }
  return config;
}
