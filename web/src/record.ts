// A job's record, as the market keeps it: five words whose keccak256 is the one slot the market
// stores per open job (IComputeMarket.Job). Rebuilt from the job's events as
// neurotoken/market/job.py's `fold` does, and checked against `jobDigest(jobId)`.
import { encodeAbiParameters, getAddress, keccak256, type Address, type Hex } from "viem";

export const STATES = [
  "None",
  "Posted",
  "Accepted",
  "Submitted",
  "Paid",
  "Rejected",
  "Cancelled",
  "Expired",
  "Defaulted",
  "Lapsed",
];
const ENDINGS: Record<string, number> = {
  JobPaid: 4,
  JobRejected: 5,
  JobCancelled: 6,
  JobExpired: 7,
  JobDefaulted: 8,
  JobLapsed: 9,
};
export const RECORD_EVENTS = ["JobPosted", "JobAccepted", "ResultSubmitted", ...Object.keys(ENDINGS)];

const ADDRESS = (1n << 160n) - 1n;
const field = (word: bigint, shift: number, bits: number): bigint =>
  (word >> BigInt(shift)) & ((1n << BigInt(bits)) - 1n);
const setField = (word: bigint, shift: number, bits: number, value: bigint): bigint =>
  (word & ~(((1n << BigInt(bits)) - 1n) << BigInt(shift))) | (value << BigInt(shift));

export interface Words {
  clientAndPayment: bigint;
  providerAndCollateral: bigint;
  terms: bigint;
  specHash: Hex;
  resultRoot: Hex;
}

export class JobRecord {
  constructor(
    readonly id: bigint,
    readonly words: Words,
    readonly specURI: string,
    readonly ending: { name: string; args: Record<string, unknown> } | null = null,
    /** Where the provider serves the result (from ResultSubmitted). */
    readonly bundleURI = "",
  ) {}

  get client(): Address {
    return getAddress(`0x${(this.words.clientAndPayment & ADDRESS).toString(16).padStart(40, "0")}`);
  }
  get provider(): Address {
    return getAddress(`0x${(this.words.providerAndCollateral & ADDRESS).toString(16).padStart(40, "0")}`);
  }
  get paymentNtk(): bigint {
    return this.words.clientAndPayment >> 160n;
  }
  get collateralNtk(): bigint {
    return this.words.providerAndCollateral >> 160n;
  }
  get state(): number {
    return Number(field(this.words.terms, 0, 8));
  }
  get acceptBy(): bigint {
    return field(this.words.terms, 8, 40);
  }
  get deliverBy(): bigint {
    return field(this.words.terms, 48, 40);
  }
  get verdictBy(): bigint {
    return field(this.words.terms, 88, 40);
  }
  get seedBlock(): bigint {
    return field(this.words.terms, 128, 40);
  }
  get shardCount(): number {
    return Number(field(this.words.terms, 168, 24));
  }
  get challengeCount(): number {
    return Number(field(this.words.terms, 192, 16));
  }

  get isOpen(): boolean {
    return this.state >= 1 && this.state <= 3;
  }

  digest(): Hex {
    const w = this.words;
    return keccak256(
      encodeAbiParameters(
        [
          { type: "uint256" },
          { type: "uint256" },
          { type: "uint256" },
          { type: "bytes32" },
          { type: "bytes32" },
        ],
        [w.clientAndPayment, w.providerAndCollateral, w.terms, w.specHash, w.resultRoot],
      ),
    );
  }

  /** The record after one of its events (decoded args). */
  apply(name: string, args: Record<string, unknown>): JobRecord {
    const w = { ...this.words };
    if (name === "JobAccepted") {
      const provider = BigInt(args.provider as string);
      w.providerAndCollateral = (w.providerAndCollateral & ~ADDRESS) | provider;
      w.terms = setField(w.terms, 0, 8, 2n);
    } else if (name === "ResultSubmitted") {
      w.resultRoot = args.resultRoot as Hex;
      w.terms = setField(setField(w.terms, 128, 40, BigInt(args.seedBlock as bigint)), 0, 8, 3n);
    } else if (name in ENDINGS) {
      w.terms = setField(w.terms, 0, 8, BigInt(ENDINGS[name]!));
      return new JobRecord(this.id, w, this.specURI, { name, args }, this.bundleURI);
    }
    const bundleURI = name === "ResultSubmitted" ? String(args.bundleURI ?? "") : this.bundleURI;
    return new JobRecord(this.id, w, this.specURI, this.ending, bundleURI);
  }

  /** The five words as the market's calls take them. */
  tuple(): Words {
    return this.words;
  }
}

/** A job's record from its events in chain order; null if it was never posted. */
export function fold(
  id: bigint,
  events: { eventName: string; args: Record<string, unknown> }[],
): JobRecord | null {
  let job: JobRecord | null = null;
  for (const { eventName, args } of events) {
    if (args.jobId === undefined || BigInt(args.jobId as bigint) !== id) continue; // another job's, or none
    if (eventName === "JobPosted") job = new JobRecord(id, args.job as Words, args.specURI as string);
    else if (job && RECORD_EVENTS.includes(eventName)) job = job.apply(eventName, args);
  }
  return job;
}
