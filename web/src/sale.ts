// The token sale: stage and bonus now, time to the next stage, progress to the caps, the
// visitor's contribution, and buy / claim / refund through the wallet.
import type { Address, Hex } from "viem";
import { App, el } from "./app";
import { date, duration, eth, ntk, parseEth, percent } from "./format";
import { proofFor } from "./merkle";
import { quote } from "./quote";

export const STAGE_NAMES = [
  "Not started",
  "Presale",
  "ICO week 1",
  "ICO week 2",
  "ICO week 3",
  "Final ICO week",
  "Ended",
];
const PRESALE = 1;
const ENDED = 6;
const STATE_NAMES = ["Open", "Succeeded", "Failed"];

interface Terms {
  ntkPerEth: bigint;
  hardCapTokens: bigint;
  softCapWei: bigint;
  minContributionWei: bigint;
  maxContributionWei: bigint;
  stageStarts: readonly bigint[];
  endsAt: bigint;
  bonusBps: readonly number[];
}

interface Snapshot {
  terms: Terms;
  stage: number;
  state: number;
  paused: boolean;
  weiRaised: bigint;
  tokensSold: bigint;
  tokensLeft: bigint;
  chainTime: number;
  readAt: number;
  paidWei: bigint;
  tokens: bigint;
}

const TEMPLATE = `
  <h2 id="sale-title">Token sale</h2>
  <div class="cards">
    <div class="card">
      <h3>Now</h3>
      <p class="big" id="sale-stage">…</p>
      <p>Bonus today: <strong id="sale-bonus">…</strong></p>
      <p id="sale-next"></p>
    </div>
    <div class="card">
      <h3>Progress</h3>
      <p>ETH raised: <strong id="sale-raised">…</strong> of the <span id="sale-softcap">…</span> soft cap</p>
      <div class="bar" role="progressbar" aria-label="ETH raised against the soft cap"
           aria-valuemin="0" aria-valuemax="100" id="sale-raised-bar"><span></span></div>
      <p>Tokens sold: <strong id="sale-sold">…</strong> of <span id="sale-hardcap">…</span></p>
      <div class="bar" role="progressbar" aria-label="Tokens sold against the hard cap"
           aria-valuemin="0" aria-valuemax="100" id="sale-sold-bar"><span></span></div>
      <p>Sale: <strong id="sale-state">…</strong></p>
    </div>
    <div class="card">
      <h3>You</h3>
      <p>Paid: <strong id="sale-paid">–</strong></p>
      <p>Tokens due: <strong id="sale-due">–</strong></p>
      <p id="sale-allowlisted"></p>
    </div>
  </div>
  <form id="buy-form" class="card" novalidate>
    <h3>Buy NTK</h3>
    <label for="buy-amount">ETH to send</label>
    <input id="buy-amount" name="amount" inputmode="decimal" autocomplete="off" placeholder="0.5" />
    <p id="buy-quote" aria-live="polite"></p>
    <p class="hint" id="buy-limits"></p>
    <button id="buy" type="submit">Buy</button>
  </form>
  <div class="card actions">
    <button id="claim" type="button" hidden>Claim my NTK</button>
    <button id="refund" type="button" hidden>Refund my ETH</button>
  </div>
`;

export class SaleView {
  private snap: Snapshot | null = null;
  private readonly address: Address;

  constructor(
    private readonly root: HTMLElement,
    private readonly app: App,
  ) {
    const entry = app.config.contracts.TokenSale;
    if (!entry) throw new Error("No token sale is recorded for this network.");
    this.address = entry.address;
    root.innerHTML = TEMPLATE;
    el<HTMLFormElement>(root, "buy-form").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.buy();
    });
    el<HTMLInputElement>(root, "buy-amount").addEventListener("input", () => this.showQuote());
    el(root, "claim").addEventListener("click", () => void this.settle("claim"));
    el(root, "refund").addEventListener("click", () => void this.settle("refund"));
  }

  private read<T>(functionName: string, args: readonly unknown[] = []): Promise<T> {
    return this.app.read<T>(this.address, this.app.config.contracts.TokenSale!.abi, functionName, args);
  }

  async refresh(): Promise<void> {
    const wallet = this.app.wallet;
    if (!wallet || !wallet.onRightChain) return;
    const account = wallet.account;
    const [terms, stage, state, paused, weiRaised, tokensSold, tokensLeft, block, mine] = await Promise.all([
      this.read<Terms>("terms"),
      this.read<number>("stage"),
      this.read<number>("state"),
      this.read<boolean>("paused"),
      this.read<bigint>("weiRaised"),
      this.read<bigint>("tokensSold"),
      this.read<bigint>("tokensLeft"),
      wallet.reader.getBlock(),
      account
        ? this.read<{ paidWei: bigint; tokens: bigint }>("contributionOf", [account])
        : Promise.resolve({ paidWei: 0n, tokens: 0n }),
    ]);
    this.snap = {
      terms,
      stage,
      state,
      paused,
      weiRaised,
      tokensSold,
      tokensLeft,
      chainTime: Number(block.timestamp),
      readAt: Date.now(),
      paidWei: mine.paidWei,
      tokens: mine.tokens,
    };
    this.render();
  }

  private now(): number {
    const s = this.snap!;
    return s.chainTime + Math.floor((Date.now() - s.readAt) / 1000);
  }

  /** The next stage boundary after the chain's time, with the stage it opens. */
  private next(): { at: number; name: string } | null {
    const t = this.snap!.terms;
    const bounds = [...t.stageStarts.map(Number), Number(t.endsAt)];
    const now = this.snap!.chainTime;
    for (let i = 0; i < bounds.length; i++) {
      if (bounds[i]! > now) return { at: bounds[i]!, name: STAGE_NAMES[i + 1]! };
    }
    return null;
  }

  private bonus(): bigint {
    const s = this.snap!;
    return s.stage >= PRESALE && s.stage < ENDED ? BigInt(s.terms.bonusBps[s.stage - 1]!) : 0n;
  }

  private render(): void {
    const s = this.snap!;
    const r = this.root;
    el(r, "sale-stage").textContent = s.paused ? `${STAGE_NAMES[s.stage]} (paused)` : STAGE_NAMES[s.stage]!;
    el(r, "sale-bonus").textContent = `${Number(this.bonus()) / 100}%`;
    this.tick();
    el(r, "sale-raised").textContent = eth(s.weiRaised);
    el(r, "sale-softcap").textContent = eth(s.terms.softCapWei);
    bar(el(r, "sale-raised-bar"), percent(s.weiRaised, s.terms.softCapWei));
    el(r, "sale-sold").textContent = ntk(s.tokensSold);
    el(r, "sale-hardcap").textContent = ntk(s.terms.hardCapTokens);
    bar(el(r, "sale-sold-bar"), percent(s.tokensSold, s.terms.hardCapTokens));
    el(r, "sale-state").textContent = STATE_NAMES[s.state]!;
    el(r, "sale-paid").textContent = eth(s.paidWei);
    el(r, "sale-due").textContent = ntk(s.tokens);
    el(r, "buy-limits").textContent =
      `From ${eth(s.terms.minContributionWei)} to ${eth(s.terms.maxContributionWei)} in all per buyer.`;
    const account = this.app.wallet?.account;
    const tree = this.app.config.allowlist;
    el(r, "sale-allowlisted").textContent =
      account && tree
        ? proofFor(tree, account)
          ? "On the presale allow-list."
          : "Not on the presale allow-list."
        : "";
    const open = s.state === 0 && s.stage >= PRESALE && s.stage < ENDED && !s.paused;
    el<HTMLButtonElement>(r, "buy").disabled = !open;
    el(r, "claim").hidden = !(s.state === 1 && s.tokens > 0n);
    el(r, "refund").hidden = !(s.state === 2 && s.paidWei > 0n);
    this.showQuote();
  }

  /** The countdown line, redrawn every second between reads. */
  tick(): void {
    if (!this.snap) return;
    const next = this.next();
    el(this.root, "sale-next").textContent = next
      ? `${next.name} ${next.name === "Ended" ? "at" : "starts"} ${date(next.at)}: in ${duration(next.at - this.now())}`
      : `Ended on ${date(this.snap.terms.endsAt)}`;
  }

  private showQuote(): void {
    const out = el(this.root, "buy-quote");
    const s = this.snap;
    const sent = parseEth(el<HTMLInputElement>(this.root, "buy-amount").value);
    if (!s || sent === null || sent === 0n) {
      out.textContent = "";
      return;
    }
    const q = quote(sent, s.terms.ntkPerEth, this.bonus(), s.tokensLeft);
    const back = sent - q.acceptedWei;
    out.textContent =
      `You get ${ntk(q.tokens)}` +
      (back > 0n ? `, and ${eth(back)} comes back (the sale is nearly sold out).` : ".");
  }

  private async buy(): Promise<void> {
    if (!this.app.ready() || !this.snap) return;
    const sent = parseEth(el<HTMLInputElement>(this.root, "buy-amount").value);
    if (sent === null || sent === 0n) {
      this.app.say("Type an amount of ETH, e.g. 0.5.", "error");
      return;
    }
    const account = this.app.wallet!.account!;
    let proof: Hex[] = [];
    if (this.snap.stage === PRESALE) {
      const tree = this.app.config.allowlist;
      const found = tree ? proofFor(tree, account) : null;
      if (!found) {
        this.app.say(
          "Your address is not on the presale allow-list. Buy from the first ICO week, when anyone may.",
          "error",
        );
        return;
      }
      proof = found;
    }
    await this.send(
      "buy",
      [proof],
      sent,
      (q) => `Bought: ${ntk(q)} are yours to claim if the sale succeeds.`,
    );
  }

  private async settle(action: "claim" | "refund"): Promise<void> {
    if (!this.app.ready()) return;
    const account = this.app.wallet!.account!;
    await this.send(action, [account], 0n, () =>
      action === "claim"
        ? "Claimed: the NTK are in your wallet."
        : "Refunded: the ETH is back in your wallet.",
    );
  }

  private async send(
    functionName: string,
    args: readonly unknown[],
    value: bigint,
    done: (result: bigint) => string,
  ): Promise<void> {
    const abi = this.app.config.contracts.TokenSale!.abi;
    try {
      const result = await this.app.transact(this.address, abi, functionName, args, value);
      this.app.say(done(result as bigint), "ok");
    } catch (error) {
      this.app.fail(error);
    }
    await this.refresh().catch((error) => this.app.fail(error));
  }
}

function bar(element: HTMLElement, pct: number): void {
  element.setAttribute("aria-valuenow", pct.toFixed(0));
  (element.firstElementChild as HTMLElement).style.width = `${pct}%`;
}
