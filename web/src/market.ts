// The compute market: post a job from a form (its spec in the job itself, funded with a permit
// signature in the same transaction), the visitor's jobs as a client with their state,
// deadlines, challenged shards and verdicts, and the visitor's provider account (stake,
// earnings, withdraw).
import { getAddress, parseSignature, parseUnits, type Abi, type Address, type Hex } from "viem";
import { App, el } from "./app";
import { sentenceFor } from "./errors";
import { date, ntk } from "./format";
import { fold, STATES, type JobRecord } from "./record";
import { drawImage, fetchShelfImages } from "./results";
import { shelfSpec, specKind, specHashAndUri, trainingSpec } from "./spec";

const ZERO_ADDRESS = "0x0000000000000000000000000000000000000000";
type Folded = { eventName: string; args: Record<string, unknown> }[];
const HOUR = 3600n;

const TEMPLATE = `
  <h2 id="market-title">Compute market</h2>
  <form id="post-form" class="card" novalidate>
    <h3>Post a job</h3>
    <div class="fields">
      <div><label for="post-workload">Workload</label>
        <select id="post-workload"><option value="shelf-images">Synthetic shelf images (160x120, labelled)</option>
        <option value="classifier-training">Classifier training (fixed-point, one segment per shard)</option></select></div>
      <div><label for="post-shards">Shards</label><input id="post-shards" inputmode="numeric" value="16" /></div>
      <div><label for="post-images">Images per shard (segment)</label><input id="post-images" inputmode="numeric" value="2" /></div>
      <div><label for="post-k">Shards the oracles check (k)</label><input id="post-k" inputmode="numeric" value="4" /></div>
      <div><label for="post-payment">Payment (NTK)</label><input id="post-payment" inputmode="decimal" value="80" /></div>
      <div><label for="post-collateral">Provider's collateral (NTK)</label><input id="post-collateral" inputmode="decimal" /></div>
      <div><label for="post-hours">Hours for the work</label><input id="post-hours" inputmode="numeric" value="2" /></div>
    </div>
    <p class="hint" id="post-minimum" aria-live="polite"></p>
    <button id="post" type="submit">Sign the payment and post</button>
  </form>
  <div class="card">
    <h3>Your jobs</h3>
    <div class="scroll"><table id="jobs-table" hidden>
      <thead><tr><th scope="col">Job</th><th scope="col">State</th><th scope="col">Payment</th>
      <th scope="col">Shards (k)</th><th scope="col">Deadlines</th><th scope="col">Checked shards</th>
      <th scope="col">Verdict</th><th scope="col">Result</th></tr></thead>
      <tbody></tbody>
    </table></div>
    <p id="jobs-empty">No jobs posted from this address.</p>
    <div id="result-view" aria-live="polite" hidden>
      <h4 id="result-title"></h4>
      <div id="result-images" class="images"></div>
      <p class="hint" id="result-labels"></p>
    </div>
  </div>
  <div class="card" id="provider-card">
    <h3>Your provider account</h3>
    <p id="provider-status">Not registered as a provider.</p>
    <p>Stake: <strong id="provider-stake">–</strong>; unbonding: <span id="provider-unbonding">–</span></p>
    <p>Earnings to withdraw: <strong id="provider-earned">–</strong></p>
    <p>Open jobs: <span id="provider-jobs">none</span></p>
    <button id="withdraw" type="button" hidden>Withdraw earnings</button>
  </div>
`;

interface ProviderAccount {
  stakeNtk: bigint;
  earnedNtk: bigint;
  unbondReadyAt: number;
  registered: boolean;
  unbondingNtk: bigint;
}

function whole(text: string): number | null {
  return /^\d+$/.test(text.trim()) ? Number(text.trim()) : null;
}

function ntkAmount(text: string): bigint | null {
  const cleaned = text.trim().replace(",", ".");
  if (!/^\d+(\.\d{0,18})?$/.test(cleaned)) return null;
  return parseUnits(cleaned, 18);
}

export class MarketView {
  private readonly address: Address;
  private readonly abi: Abi;
  private collateralTouched = false;

  constructor(
    private readonly root: HTMLElement,
    private readonly app: App,
  ) {
    const entry = app.config.contracts.ComputeMarket;
    if (!entry) throw new Error("No compute market is recorded for this network.");
    this.address = entry.address;
    this.abi = entry.abi;
    root.innerHTML = TEMPLATE;
    el<HTMLFormElement>(root, "post-form").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.post();
    });
    for (const id of ["post-shards", "post-k", "post-payment"]) {
      el(root, id).addEventListener("input", () => void this.showMinimum());
    }
    el(root, "post-collateral").addEventListener("input", () => (this.collateralTouched = true));
    el(root, "withdraw").addEventListener("click", () => void this.withdraw());
  }

  private read<T>(
    functionName: string,
    args: readonly unknown[] = [],
    address?: Address,
    abi?: Abi,
  ): Promise<T> {
    return this.app.read<T>(address ?? this.address, abi ?? this.abi, functionName, args);
  }

  async refresh(): Promise<void> {
    const wallet = this.app.wallet;
    if (!wallet || !wallet.onRightChain) return;
    await this.showMinimum();
    if (!wallet.account) return;
    const events = await wallet.reader.getContractEvents({
      address: this.address,
      abi: this.abi,
      fromBlock: BigInt(this.app.config.fromBlock ?? 0),
    });
    const folded = events.map((e) => ({
      eventName: e.eventName as string,
      args: e.args as Record<string, unknown>,
    }));
    await Promise.all([this.showJobs(wallet.account, folded), this.showProvider(wallet.account, folded)]);
  }

  /** The least collateral that makes cheating lose money (the contract's own rule). */
  private async showMinimum(): Promise<bigint | null> {
    const out = el(this.root, "post-minimum");
    const shards = whole(el<HTMLInputElement>(this.root, "post-shards").value);
    const k = whole(el<HTMLInputElement>(this.root, "post-k").value);
    const payment = ntkAmount(el<HTMLInputElement>(this.root, "post-payment").value);
    if (shards === null || k === null || payment === null || k < 1 || k > shards) {
      out.textContent = "Give whole numbers of shards and checked shards (1 to the number of shards).";
      return null;
    }
    const minimum = await this.read<bigint>("minimumCollateral", [payment, BigInt(shards), BigInt(k)]);
    out.textContent =
      `A provider must lock at least ${ntk(minimum)} so that faking shards loses it money ` +
      `(oracles check ${k} of ${shards}).`;
    const collateral = el<HTMLInputElement>(this.root, "post-collateral");
    if (!this.collateralTouched) collateral.value = ((minimum + 10n ** 18n - 1n) / 10n ** 18n).toString();
    return minimum;
  }

  private async post(): Promise<void> {
    if (!this.app.ready()) return;
    const wallet = this.app.wallet!;
    const account = wallet.account!;
    const value = (id: string) => el<HTMLInputElement>(this.root, id).value;
    const shards = whole(value("post-shards"));
    const images = whole(value("post-images"));
    const k = whole(value("post-k"));
    const hours = whole(value("post-hours"));
    const payment = ntkAmount(value("post-payment"));
    const collateral = ntkAmount(value("post-collateral"));
    if ([shards, images, k, hours].includes(null) || payment === null || collateral === null || !hours) {
      this.app.say("Fill every field with a number (shards, images, k and hours whole).", "error");
      return;
    }
    const minimum = await this.showMinimum().catch(() => null);
    if (minimum !== null && collateral < minimum) {
      // before any signature: the contract would refuse it (MarketCollateralTooLow)
      this.app.say(sentenceFor("MarketCollateralTooLow", [minimum, collateral]), "error");
      return;
    }
    const seed = 1 + (crypto.getRandomValues(new Uint32Array(1))[0]! % 2_000_000_000);
    const workload = el<HTMLSelectElement>(this.root, "post-workload").value;
    const spec = specHashAndUri(
      workload === "classifier-training"
        ? trainingSpec(seed, shards!, images!)
        : shelfSpec(seed, shards!, images!),
    );
    try {
      const token = (await this.read<Address>("token")) as Address;
      const tokenAbi = this.app.config.contracts.NeuroToken?.abi;
      if (!tokenAbi) throw new Error("No NeuroToken is recorded for this network.");
      const block = await wallet.reader.getBlock();
      const now = block.timestamp;
      const verdictWindow = await this.read<bigint>("minVerdictWindow");
      const request = {
        specHash: spec.hash,
        specURI: spec.uri,
        paymentNtk: payment,
        provider: ZERO_ADDRESS as Address,
        collateralNtk: collateral,
        shardCount: shards!,
        challengeCount: k!,
        acceptBy: now + HOUR,
        deliverBy: now + HOUR + BigInt(hours!) * HOUR,
        verdictBy: now + HOUR + BigInt(hours!) * HOUR + verdictWindow + HOUR,
      };
      // the payment is authorised by a signature (EIP-2612), spent in the same transaction
      const [, name, version, chainId, verifyingContract] = await this.read<
        readonly [Hex, string, string, bigint, Address]
      >("eip712Domain", [], token, tokenAbi);
      const nonce = await this.read<bigint>("nonces", [account], token, tokenAbi);
      const deadline = now + HOUR;
      this.app.say("Sign the payment in your wallet…");
      const signature = await wallet.writer().signTypedData({
        account,
        domain: { name, version, chainId, verifyingContract },
        types: {
          Permit: [
            { name: "owner", type: "address" },
            { name: "spender", type: "address" },
            { name: "value", type: "uint256" },
            { name: "nonce", type: "uint256" },
            { name: "deadline", type: "uint256" },
          ],
        },
        primaryType: "Permit",
        message: { owner: account, spender: this.address, value: payment, nonce, deadline },
      });
      const { r, s, yParity } = parseSignature(signature);
      const args = [request, deadline, 27 + (yParity ?? 0), r, s] as const;
      const result = await this.app.transact(this.address, this.abi, "postJobWithPermit", args);
      this.app.say(
        `Job ${result as bigint} posted: ${ntk(payment)} held in escrow until it is settled.`,
        "ok",
      );
    } catch (error) {
      this.app.fail(error);
    }
    await this.refresh().catch((error) => this.app.fail(error));
  }

  private async showJobs(account: Address, events: Folded): Promise<void> {
    const ids = events
      .filter((e) => e.eventName === "JobPosted" && getAddress(e.args.client as string) === account)
      .map((e) => e.args.jobId as bigint);
    const body = el(this.root, "jobs-table").querySelector("tbody")!;
    el(this.root, "jobs-empty").hidden = ids.length > 0;
    el(this.root, "jobs-table").hidden = ids.length === 0;
    const rows: HTMLTableRowElement[] = [];
    for (const id of ids.slice().reverse()) {
      const job = fold(id, events);
      if (job) rows.push(await this.jobRow(job));
    }
    body.replaceChildren(...rows);
  }

  private async jobRow(job: JobRecord): Promise<HTMLTableRowElement> {
    const row = document.createElement("tr");
    row.id = `job-${job.id}`;
    let checked = "–";
    if (job.seedBlock > 0n) {
      // an open job's record must be the stored one (else the node's logs lag its state)
      const digest = job.isOpen ? await this.read<Hex>("jobDigest", [job.id]) : job.digest();
      if (digest !== job.digest()) {
        checked = "(reading… the node is catching up)";
      } else {
        try {
          const shards = await this.read<readonly bigint[]>("challengedShards", [job.id, job.tuple()]);
          checked = shards.map(String).join(", ");
        } catch {
          checked = `not drawn yet (seeded by block ${job.seedBlock})`;
        }
      }
    }
    const verdict = job.ending ? this.verdict(job) : job.state === 3 ? "awaiting the oracles" : "–";
    const cells = [
      `#${job.id}`,
      STATES[job.state] ?? "?",
      ntk(job.paymentNtk),
      `${job.shardCount} (${job.challengeCount})`,
      `accept by ${date(job.acceptBy)}; deliver by ${date(job.deliverBy)}; verdict by ${date(job.verdictBy)}`,
      checked,
      verdict,
    ];
    for (const text of cells) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    const result = document.createElement("td");
    if (job.bundleURI && job.state !== 2 && specKind(job.specURI) !== "classifier-training") {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "See images";
      button.setAttribute("aria-label", `See images of job ${job.id}`);
      button.addEventListener("click", () => void this.showResult(job));
      result.append(button);
    } else {
      result.textContent = "–";
    }
    row.append(result);
    return row;
  }

  /** A few delivered images of the job, drawn with their labels (the wallet signs a read). */
  private async showResult(job: JobRecord): Promise<void> {
    if (!this.app.ready()) return;
    const view = el(this.root, "result-view");
    try {
      this.app.say("Sign the read request in your wallet (it proves you are the job's client)…");
      const images = await fetchShelfImages(
        this.app.wallet!,
        this.address,
        job.bundleURI,
        job.words.resultRoot,
      );
      const shown = images.slice(0, 3);
      el(this.root, "result-title").textContent =
        `Job #${job.id}: ${shown.length} of the ${images.length} images of its first shard, labelled`;
      el(this.root, "result-images").replaceChildren(...shown.map((image) => drawImage(image)));
      const names = shown.flatMap((image) => image.labels.filter((l) => l.bbox).map((l) => l.name));
      el(this.root, "result-labels").textContent = `Products: ${names.join(", ")}`;
      view.hidden = false;
      this.app.say(`Job ${job.id}'s result, fetched from its provider and checked against its root.`, "ok");
    } catch (error) {
      this.app.fail(error);
    }
  }

  private verdict(job: JobRecord): string {
    const { name, args } = job.ending!;
    const a = args as Record<string, bigint>;
    switch (name) {
      case "JobPaid":
        return `accepted: the provider was paid ${ntk(a.providerNtk!)} (fee ${ntk(a.feeNtk!)})`;
      case "JobRejected":
        return `rejected: you got ${ntk(a.refundNtk!)} back, the provider lost ${ntk(a.burnedNtk!)}`;
      case "JobDefaulted":
        return `not delivered: you got ${ntk(a.refundNtk!)} back`;
      case "JobLapsed":
        return `no verdict in time: you got ${ntk(a.refundNtk!)} back`;
      case "JobCancelled":
      case "JobExpired":
        return `you got ${ntk(a.refundNtk!)} back`;
      default:
        return name;
    }
  }

  private async showProvider(account: Address, events: Folded): Promise<void> {
    const p = await this.read<ProviderAccount>("getProvider", [account]);
    el(this.root, "provider-status").textContent = p.registered
      ? "Registered as a provider."
      : "Not registered as a provider (farms register with `python -m neurotoken.provider agent register`).";
    el(this.root, "provider-stake").textContent = ntk(p.stakeNtk);
    el(this.root, "provider-unbonding").textContent =
      p.unbondingNtk > 0n ? `${ntk(p.unbondingNtk)} (ready ${date(p.unbondReadyAt)})` : "none";
    el(this.root, "provider-earned").textContent = ntk(p.earnedNtk);
    el(this.root, "withdraw").hidden = p.earnedNtk === 0n;
    const held = events
      .filter((e) => e.eventName === "JobAccepted" && getAddress(e.args.provider as string) === account)
      .map((e) => fold(e.args.jobId as bigint, events))
      .filter((job): job is JobRecord => job !== null && job.isOpen && job.provider === account);
    el(this.root, "provider-jobs").textContent = held.length
      ? held
          .map(
            (j) =>
              `#${j.id} (${STATES[j.state]}, ${ntk(j.collateralNtk)} locked, deliver by ${date(j.deliverBy)})`,
          )
          .join("; ")
      : "none";
  }

  private async withdraw(): Promise<void> {
    if (!this.app.ready()) return;
    try {
      await this.app.transact(this.address, this.abi, "withdrawEarnings");
      this.app.say("Withdrawn: your earnings are in your wallet.", "ok");
    } catch (error) {
      this.app.fail(error);
    }
    await this.refresh().catch((error) => this.app.fail(error));
  }
}
