// Every refusal as a sentence: the contracts' custom errors decoded with their ABIs, a wallet's
// refusal, a wrong network. Never hex.
import {
  BaseError,
  ContractFunctionRevertedError,
  decodeErrorResult,
  UserRejectedRequestError,
  type Abi,
  type Hex,
} from "viem";
import { date, eth, ntk } from "./format";

type Args = readonly unknown[];
const STATES = ["open", "a success", "a failure"];

const big = (v: unknown): bigint => BigInt(v as bigint);

const SENTENCES: Record<string, (a: Args) => string> = {
  // TokenSale
  SaleNotStarted: (a) => `The sale has not started yet: it opens on ${date(big(a[0]))}.`,
  SaleEnded: (a) => `The sale ended on ${date(big(a[0]))}; nothing can be bought any more.`,
  SaleClosed: (a) => `The sale is closed: it was ${STATES[Number(a[0])] ?? "finalized"}.`,
  SaleBuyingPaused: () => "Buying is paused by the sale's owner for now. Try again later.",
  SaleNotAllowlisted: () =>
    "Your address is not on the presale allow-list. Buy from the first ICO week, when anyone may.",
  SaleContributionBelowMin: (a) =>
    `That is below the smallest contribution: send at least ${eth(big(a[1]))}.`,
  SaleContributionAboveMax: (a) =>
    `That would bring your contributions to ${eth(big(a[1]))}, above the most one buyer may pay ` +
    `(${eth(big(a[2]))}). Send less.`,
  SaleSoldOut: () => "Every token of the sale is sold.",
  SaleNotFinalizable: (a) =>
    `The sale cannot be closed yet: it runs until ${date(big(a[0]))} or until its last ` +
    `${ntk(big(a[1]))} are sold.`,
  SaleAlreadyFinalized: () => "The sale is already closed.",
  SaleNotSucceeded: () => "Tokens can be claimed only once the sale has succeeded.",
  SaleNotFailed: () => "Refunds are paid only if the sale fails to reach its soft cap.",
  SaleNothingToClaim: () => "There is nothing to claim for this address (already claimed, or never bought).",
  SaleNothingToRefund: () => "There is nothing to refund to this address (already refunded, or never paid).",
  SaleTransferFailed: (a) => `Sending ${eth(big(a[1]))} to ${String(a[0])} failed; that address refuses ETH.`,
  // ComputeMarket: what a client or a provider can meet from this page
  MarketJobNotFound: (a) => `Job ${String(a[0])} has ended; nothing more can be done with it.`,
  MarketJobRecordMismatch: (a) =>
    `Job ${String(a[0])} changed on chain while you were deciding (another transaction came first). Reload.`,
  MarketJobWrongState: (a) => `Job ${String(a[0])} is not in a state that allows this.`,
  MarketDeadlinePassed: (a) => `Job ${String(a[0])}'s deadline passed on ${date(big(a[1]))}.`,
  MarketDeadlineNotReached: (a) => `Job ${String(a[0])}'s deadline is ${date(big(a[1]))}: wait until then.`,
  MarketNotJobClient: (a) => `Only job ${String(a[0])}'s client (${String(a[1])}) may do this.`,
  MarketProviderNotRegistered: () =>
    "This address is not a registered provider (farms register with the provider agent).",
  MarketInsufficientStake: (a) =>
    `The provider's free stake is ${ntk(big(a[1]))}; ${ntk(big(a[2]))} are needed.`,
  MarketNothingToWithdraw: () => "There is nothing to withdraw for this address.",
  MarketZeroAmount: () => "The amount must be more than zero.",
  MarketZeroAddress: () => "An address is missing.",
  MarketZeroSpecHash: () => "The job has no spec.",
  MarketInvalidShardCounts: (a) =>
    `The oracles can check between 1 and all ${String(a[0])} shards, not ${String(a[1])}.`,
  MarketInvalidDeadlines: () =>
    "The deadlines must come in order: accepting, then delivering, then the verdict, all in the future.",
  MarketVerdictWindowTooShort: (a) =>
    `The oracles need at least ${Number(big(a[1])) / 3600} hours for their verdict after delivery.`,
  MarketCollateralTooLow: (a) =>
    `The collateral must be at least ${ntk(big(a[0]))} for cheating to cost the provider money ` +
    `(${ntk(big(a[1]))} offered).`,
  // NeuroToken (OpenZeppelin ERC-20 and permit)
  ERC20InsufficientBalance: (a) =>
    `Not enough NTK: you hold ${ntk(big(a[1]))} and ${ntk(big(a[2]))} are needed.`,
  ERC20InsufficientAllowance: (a) =>
    `The market may spend only ${ntk(big(a[1]))} of your NTK and ${ntk(big(a[2]))} are needed.`,
  ERC2612ExpiredSignature: () => "The signature expired before the transaction was mined. Try again.",
  ERC2612InvalidSigner: () => "The permit was signed by another account than the one paying.",
};

/** The sentence for a decoded custom error, or a plain description when it has none. */
export function sentenceFor(name: string, args: Args): string {
  const make = SENTENCES[name];
  if (make) return make(args);
  const words = name.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
  return `The contract refused the transaction (${words}).`;
}

function revertData(error: unknown): Hex | undefined {
  let found: Hex | undefined;
  if (error instanceof BaseError) {
    error.walk((e) => {
      const data = (e as { data?: unknown }).data;
      if (typeof data === "string" && data.startsWith("0x") && data.length >= 10) found = data as Hex;
      if (data && typeof data === "object" && typeof (data as { data?: unknown }).data === "string") {
        found = (data as { data: Hex }).data;
      }
      return false;
    });
  }
  const raw = (error as { data?: unknown })?.data;
  if (!found && typeof raw === "string" && raw.startsWith("0x")) found = raw as Hex;
  return found;
}

/** What went wrong, in words, for anything a wallet or a contract call can throw. */
export function explain(error: unknown, abis: Abi[]): string {
  if (error instanceof BaseError) {
    const rejected = error.walk((e) => e instanceof UserRejectedRequestError);
    if (rejected || (error as { code?: number }).code === 4001) {
      return "You declined the request in your wallet; nothing was sent.";
    }
    const reverted = error.walk((e) => e instanceof ContractFunctionRevertedError);
    if (reverted instanceof ContractFunctionRevertedError && reverted.data?.errorName) {
      return sentenceFor(reverted.data.errorName, reverted.data.args ?? []);
    }
  }
  if ((error as { code?: number })?.code === 4001) {
    return "You declined the request in your wallet; nothing was sent.";
  }
  const data = revertData(error);
  if (data) {
    for (const abi of abis) {
      try {
        const decoded = decodeErrorResult({ abi, data });
        return sentenceFor(decoded.errorName, decoded.args ?? []);
      } catch {
        // not this contract's error: try the next ABI
      }
    }
    return "The contract refused the transaction for a reason this page does not know.";
  }
  if (error instanceof BaseError) {
    if (/insufficient funds/i.test(error.message)) {
      return "Your account does not hold enough ETH for this amount and the network fee.";
    }
    return error.shortMessage;
  }
  return error instanceof Error ? error.message : String(error);
}
