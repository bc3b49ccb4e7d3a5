"""Every custom error of the contracts (NeuroToken, TokenSale, ComputeMarket, RandaoRecorder),
and the OpenZeppelin errors they raise, in one sentence each: what went wrong, what to do.

`explain_error(name, inputs)` takes a decoded error (neurotoken.chain.reverts); `explain(exc)`
takes an ape ContractLogicError (its class is named after the error and carries `inputs`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from neurotoken.market.states import state_label
from neurotoken.sale.terms import SaleState, format_units
from neurotoken.units import format_ntk, format_when


def _amount(inputs: dict[str, Any], key: str) -> str:
    return format_ntk(int(inputs[key]))


def _hex(value: Any) -> str:
    """bytes (or 0x hex, as some decoders give them) as 0x hex."""
    return value if isinstance(value, str) else "0x" + bytes(value).hex()


_MARKET: dict[str, Callable[[dict[str, Any]], str]] = {
    "MarketJobNotFound": lambda i: (
        f"job {i['jobId']} is not open on this market: it was never posted, or it has ended "
        f"(an ended job keeps only its events; `ape run market status {i['jobId']}` shows how "
        "it ended)"
    ),
    "MarketJobRecordMismatch": lambda i: (
        f"the record of job {i['jobId']} sent with the call is not its current one: the job "
        "changed since it was read (another transaction about it came first), or the record "
        "was altered; run the command again, it reads the job afresh from its events"
    ),
    "MarketJobWrongState": lambda i: (
        f"job {i['jobId']} is {state_label(int(i['state']))}, which does not allow this"
    ),
    "MarketDeadlinePassed": lambda i: (
        f"job {i['jobId']}'s deadline {i['deadline']} has passed (now {i['timestamp']})"
    ),
    "MarketDeadlineNotReached": lambda i: (
        f"job {i['jobId']} cannot be expired before {i['deadline']} (now {i['timestamp']})"
    ),
    "MarketNotJobClient": lambda i: f"only the client {i['client']} may cancel job {i['jobId']}",
    "MarketNotChosenProvider": lambda i: f"job {i['jobId']} is reserved for {i['chosen']}",
    "MarketNotJobProvider": lambda i: (
        f"only the provider {i['provider']} may submit job {i['jobId']}"
    ),
    "MarketProviderNotRegistered": lambda i: (
        f"{i['provider']} is not a registered provider; "
        "run `ape run market provider register` first"
    ),
    "MarketProviderAlreadyRegistered": lambda i: (
        f"{i['provider']} is already registered; use `provider add-stake` to add stake"
    ),
    "MarketInsufficientStake": lambda i: (
        f"{i['provider']} has {_amount(i, 'available')} of free "
        f"stake, {_amount(i, 'required')} is needed (stake locked by accepted jobs is not free)"
    ),
    "MarketAcceptanceNotByProvider": lambda i: (
        f"the acceptance is not a signature by {i['provider']}, the provider the job names"
        + (
            ": a quoted job needs the provider's acceptance (or no provider was named); post "
            "with --request FILE --acceptance 0x<its signature>"
            if int(str(i["signer"]), 16) == 0 or int(str(i["provider"]), 16) == 0
            else f" (it recovers to {i['signer']}): it was signed by another key, or over "
            "another request, client or market, or under another fee, oracle epoch or "
            "threshold (governance changed them since the quote); post exactly the quoted "
            "request from the account it names, or ask the provider for a new quote"
        )
    ),
    "MarketUnbondNotReady": lambda i: (
        f"the unbonded stake is withdrawable from {i['readyAt']} (now {i['timestamp']})"
    ),
    "MarketNothingToWithdraw": lambda i: f"there is nothing for {i['account']} to withdraw",
    "MarketZeroAmount": lambda i: "the amount must be positive",
    "MarketZeroSpecHash": lambda i: "the spec hash must not be zero",
    "MarketZeroResultRoot": lambda i: "the result root must not be zero",
    "MarketInvalidShardCounts": lambda i: (
        f"{i['challengeCount']} challenged of "
        f"{i['shardCount']} shards is not allowed (1 <= k <= shards, k <= 64, "
        "shards <= 65,536)"
    ),
    "MarketVerdictWindowTooShort": lambda i: (
        f"the verdict window of {i['window']}s is shorter than this market's minimum of "
        f"{i['minimum']}s"
    ),
    "MarketCollateralTooLow": lambda i: (
        f"the collateral {_amount(i, 'offered')} is below the minimum {_amount(i, 'required')} "
        "for this payment, shard count and challenge count"
    ),
    "MarketInvalidThreshold": lambda i: (
        f"a threshold of {i['threshold']} with {i['oracleCount']} oracles is not allowed: more "
        "than half of the oracles and at most all of them"
    ),
    "MarketOracleRetired": lambda i: f"{i['oracle']} was an oracle and is retired; use a new key",
    "MarketBatchEpochMismatch": lambda i: (
        f"job {i['jobId']} is of oracle epoch {i['epoch']}, the batch of {i['expected']}: "
        "settle them separately"
    ),
    "MarketInvalidDeadlines": lambda i: (
        "deadlines must satisfy now <= accept-by < deliver-by < verdict-by <= now + 365 days"
    ),
    "MarketShardCountMismatch": lambda i: (
        f"job {i['jobId']} has {i['expected']} shards, not {i['submitted']}"
    ),
    "MarketChallengeSeedPending": lambda i: (
        f"job {i['jobId']}'s challenge seed (block "
        f"{i['seedBlock']}) is not readable yet; wait for the next block"
    ),
    "MarketChallengeSeedUnavailable": lambda i: (
        f"job {i['jobId']}'s seed block is out of reach and its seed was never fixed: the job "
        "can only lapse at its verdict deadline"
    ),
    "MarketChallengeSeedAlreadyFixed": lambda i: (
        f"job {i['jobId']}'s challenge seed is already fixed ({_hex(i['seed'])}): nothing to do"
    ),
    "MarketRandaoNotRecorded": lambda i: (
        f"job {i['jobId']}'s challenge seed is the RANDAO mix of block {i['seedBlock']}, not "
        f"recorded yet: `ape run market fix-seed {i['jobId']}` records it (oracles do it too)"
    ),
    "MarketRandaoSeedsOn": lambda i: (
        "this market seeds challenges with recorded RANDAO mixes, which never age out: "
        "`ape run market fix-seed JOB` records the job's seed block's mix instead"
    ),
    "MarketInvalidRandaoDelay": lambda i: (
        f"a RANDAO delay of {i['delay']} blocks with a minimum verdict window of "
        f"{i['minVerdictWindow']} s is not allowed: the delay is 0 (block-hash seeds) to 64 "
        "blocks, and the window at least 60 s plus 12 s a delayed block"
    ),
    "RandaoBlockHeaderUnknown": lambda i: (
        f"that is not the header of block {i['blockNumber']} on this chain, or the block is not "
        "mined yet or older than 8,191 blocks"
    ),
    "HeaderFieldsMalformed": lambda i: (
        "that is not an RLP-encoded block header (`neurotoken.chain.headers.header_at` builds "
        "one from the node's block)"
    ),
    "RandaoMissing": lambda i: (
        f"block {i['blockNumber']} has no RANDAO mix (zero): this chain cannot seed with RANDAO"
    ),
    "RandaoAlreadyRecorded": lambda i: (
        f"block {i['blockNumber']}'s RANDAO mix is already recorded ({_hex(i['mix'])}): "
        "nothing to do"
    ),
    "MarketQuorumNotReached": lambda i: f"{i['signatures']} signature(s), {i['threshold']} needed",
    "MarketSignerNotOracle": lambda i: (
        f"{i['signer']} is not an oracle of the job's oracle epoch (or signed another message)"
    ),
    "MarketDuplicateSigner": lambda i: f"{i['signer']} signed twice",
    "MarketSignersNotAscending": lambda i: "signatures must be sorted by signer address",
    "ERC20InsufficientAllowance": lambda i: (
        f"the market may spend {_amount(i, 'allowance')}, "
        f"{_amount(i, 'needed')} needed: approve first or use --permit"
    ),
    "ERC20InsufficientBalance": lambda i: (
        f"the balance is {_amount(i, 'balance')}, {_amount(i, 'needed')} needed"
    ),
}

_SALE: dict[str, Callable[[dict[str, Any]], str]] = {
    "SaleNotStarted": lambda i: (
        f"the sale has not started; the presale opens {format_when(int(i['startsAt']))}"
    ),
    "SaleEnded": lambda i: f"the sale ended {format_when(int(i['endedAt']))}",
    "SaleClosed": lambda i: (
        f"the sale is already finalized ({SaleState(int(i['state'])).name.lower()})"
    ),
    "SaleBuyingPaused": lambda i: "buying is paused by the sale's owner; try again later",
    "SaleNotAllowlisted": lambda i: (
        f"{i['buyer']} is not on the presale allow-list (or the proof is not for this list): "
        "ask the sale operator, or buy in the public ICO, which needs no proof"
    ),
    "SaleContributionBelowMin": lambda i: (
        f"{format_units(int(i['sentWei']))} ETH is below the "
        f"{format_units(int(i['minContributionWei']))} ETH minimum"
    ),
    "SaleContributionAboveMax": lambda i: (
        f"that would bring {i['buyer']} to {format_units(int(i['totalWei']))} ETH, above the "
        f"{format_units(int(i['maxContributionWei']))} ETH per-buyer maximum"
    ),
    "SaleSoldOut": lambda i: "the sale is sold out; finalize it: ape run sale finalize",
    "SaleNotFinalizable": lambda i: (
        f"the sale cannot be finalized before {format_when(int(i['endsAt']))} unless it sells out "
        f"({format_units(int(i['tokensLeft']))} NTK left)"
    ),
    "SaleAlreadyFinalized": lambda i: (
        f"the sale was already finalized ({SaleState(int(i['state'])).name.lower()})"
    ),
    "SaleNotSucceeded": lambda i: (
        "tokens can only be claimed after a successful finalization; "
        f"the sale is {SaleState(int(i['state'])).name.lower()}"
        + (
            " (failed sales refund ETH: ape run sale refund)"
            if int(i["state"]) == SaleState.FAILED
            else ""
        )
    ),
    "SaleNotFailed": lambda i: (
        "refunds are only possible after a failed sale; "
        f"the sale is {SaleState(int(i['state'])).name.lower()}"
        + (
            " (claim your tokens instead: ape run sale claim)"
            if int(i["state"]) == SaleState.SUCCEEDED
            else ""
        )
    ),
    "SaleNothingToClaim": lambda i: (
        f"{i['buyer']} has no tokens to claim (bought nothing, or already claimed)"
    ),
    "SaleNothingToRefund": lambda i: (
        f"{i['buyer']} has nothing to refund (paid nothing, or already refunded)"
    ),
    "SaleTransferFailed": lambda i: (
        f"{i['to']} rejected the {format_units(int(i['amountWei']))} ETH sent to it"
    ),
    "SalePauseUnchanged": lambda i: f"buying is already {'paused' if i['paused'] else 'running'}",
}

_TOKEN: dict[str, Callable[[dict[str, Any]], str]] = {
    "NeuroTokenMintingFinished": lambda i: "minting is finished for ever; no NTK can be minted",
    "ERC20ExceededCap": lambda i: (
        f"minting would take the supply to {_amount(i, 'increasedSupply')}, above the cap of "
        f"{_amount(i, 'cap')}"
    ),
    "ERC20InvalidReceiver": lambda i: f"{i['receiver']} cannot receive NTK",
    "ERC2612ExpiredSignature": lambda i: (
        f"the permit expired at {format_when(int(i['deadline']))}: sign a new one"
    ),
    "ERC2612InvalidSigner": lambda i: (
        f"the permit was signed by {i['signer']}, not by the owner {i['owner']} (wrong key, "
        "chain, token or nonce)"
    ),
    "AccessControlUnauthorizedAccount": lambda i: (
        f"{i['account']} lacks the role this needs ({i['neededRole']})"
    ),
    "OwnableUnauthorizedAccount": lambda i: f"{i['account']} is not the contract's owner",
}

EXPLAIN: dict[str, Callable[[dict[str, Any]], str]] = {**_TOKEN, **_SALE, **_MARKET}
"""Error name -> sentence, for all three contracts (their error names do not collide)."""


def explain_error(name: str, inputs: Any) -> str | None:
    """The sentence for custom error `name` with its decoded `inputs` (None if unknown)."""
    if name in EXPLAIN and isinstance(inputs, dict):
        try:
            return EXPLAIN[name](inputs)
        except (KeyError, ValueError, IndexError, TypeError):
            return None
    return None


def explain(exc: Exception) -> str:
    """A plain-language reason for a reverted call (an ape ContractLogicError)."""
    return explain_error(type(exc).__name__, getattr(exc, "inputs", None)) or (
        f"the transaction reverted: {exc}"
    )
