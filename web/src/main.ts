// Starts the page: the network's configuration, the visitor's wallet, the views.
import "./style.css";
import { App, el } from "./app";
import { loadConfig } from "./config";
import { MarketView } from "./market";
import { SaleView } from "./sale";
import { discover, Wallet } from "./wallet";

const REFRESH_MS = 4000;

function short(address: string): string {
  return `${address.slice(0, 6)}…${address.slice(-4)}`;
}

async function main(): Promise<void> {
  const messageBox = el(document, "message");
  let config;
  try {
    config = await loadConfig();
  } catch (error) {
    messageBox.textContent = error instanceof Error ? error.message : String(error);
    messageBox.dataset.kind = "error";
    messageBox.hidden = false;
    return;
  }
  const found = await discover();
  const wallet = found ? new Wallet(found.provider, found.name, config) : null;
  const app = new App(config, wallet, messageBox);
  const sale = config.contracts.TokenSale ? new SaleView(el(document, "sale-view"), app) : null;
  if (!sale) el(document, "sale-view").textContent = `No token sale is recorded for ${config.network}.`;
  const market = config.contracts.ComputeMarket ? new MarketView(el(document, "market-view"), app) : null;
  if (!market)
    el(document, "market-view").textContent = `No compute market is recorded for ${config.network}.`;

  // one view at a time, chosen by the address's #sale or #market
  const show = (): void => {
    const onMarket = location.hash === "#market";
    el(document, "sale-view").hidden = onMarket;
    el(document, "market-view").hidden = !onMarket;
    for (const [id, active] of [
      ["nav-sale", !onMarket],
      ["nav-market", onMarket],
    ] as const) {
      if (active) el(document, id).setAttribute("aria-current", "page");
      else el(document, id).removeAttribute("aria-current");
    }
  };
  window.addEventListener("hashchange", show);
  show();

  const connectButton = el<HTMLButtonElement>(document, "connect");
  const banner = el(document, "network-banner");

  async function refresh(): Promise<void> {
    if (!wallet) {
      el(document, "account").textContent = "No wallet found";
      connectButton.hidden = true;
      app.say("No wallet found in this browser: install one (e.g. a browser extension) and reload.", "error");
      return;
    }
    await wallet.refresh();
    el(document, "account").textContent = wallet.account
      ? `${short(wallet.account)} on ${wallet.onRightChain ? config!.chainName : `chain ${wallet.chainId}`}`
      : "Not connected";
    connectButton.hidden = wallet.account !== null;
    banner.hidden = wallet.onRightChain;
    el(document, "network-text").textContent =
      `Your wallet is on chain ${wallet.chainId}; this app works on ${config!.chainName} (chain ${config!.chainId}).`;
    if (wallet.onRightChain) await Promise.all([sale?.refresh(), market?.refresh()]);
  }

  const refreshQuietly = (): void => void refresh().catch((error) => app.fail(error));
  connectButton.addEventListener("click", () => {
    void wallet
      ?.connect()
      .then(refresh)
      .catch((error) => app.fail(error));
  });
  el(document, "switch-network").addEventListener("click", () => {
    void wallet
      ?.switchChain()
      .then(refresh)
      .catch((error) => app.fail(error));
  });
  // enabled only now that they do something (a click before this would be lost)
  connectButton.disabled = false;
  el<HTMLButtonElement>(document, "switch-network").disabled = false;
  wallet?.provider.on?.("accountsChanged", refreshQuietly);
  wallet?.provider.on?.("chainChanged", refreshQuietly);
  refreshQuietly();
  setInterval(refreshQuietly, REFRESH_MS);
  setInterval(() => sale?.tick(), 1000);
}

void main();
