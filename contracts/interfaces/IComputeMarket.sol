// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Neurotoken compute market
/// @notice Escrow for compute jobs paid in NTK. Providers stake NTK; a client posts a job and
/// locks its payment; a provider accepts it (its stake backs the job as collateral), runs it
/// and commits the Merkle root of the shard outputs; independent oracles re-execute randomly
/// challenged shards and `threshold` of them sign an EIP-712 verdict that pays the provider or
/// refunds the client and slashes the collateral. Every job ends in exactly one payout, and
/// every wait has a deadline after which anyone can end the job, so no funds stay locked for
/// ever and no path needs a trusted party to return the client's money.
///
/// Lifecycle (the enum only moves forward, each terminal state is final):
///   Posted --acceptJob--> Accepted --submitResult--> Submitted --settle(m of n)--> Paid | Rejected
///   Posted --cancelJob (client)--> Cancelled; Posted --expireJob (after acceptBy)--> Expired
///   Accepted --expireJob (after deliverBy)--> Defaulted: refund, collateral slashed
///   Submitted --expireJob (after verdictBy)--> Lapsed: refund, collateral unlocked, no fault
///
/// Challenge derivation (mirrored by `neurotoken.verdicts.challenged_indices`):
///   seed = blockhash(seedBlock), where seedBlock = the block after the one that recorded the
///   result root (so the provider could not know it when committing). Read through EIP-2935
///   history, the hash stays readable for 8,191 blocks; `fixChallengeSeed` stores it for good,
///   or, once it is out of reach, moves seedBlock to the next block.
///   For counter c = 0, 1, 2, ...: index = uint256(keccak256(abi.encode(seed, jobId, c))) %
///   shardCount; an index already drawn is skipped; the first k distinct indices, in the order
///   drawn, are the challenged shards (k = challengeCount <= shardCount).
///
/// Verdicts (EIP-712, domain name "Neurotoken Compute Market", version "1", this chain id and
/// this contract):
///   Verdict(uint256 jobId,bytes32 resultRoot,bool accepted)            - one job
///   VerdictBatch(Verdict[] verdicts)Verdict(uint256 jobId,bytes32 resultRoot,bool accepted)
///                                                                      - many jobs, one signature
/// A settlement carries the signatures of at least `threshold` distinct current oracles, in
/// strictly ascending signer address order; the result root is read from storage, so a
/// signature over any other root, job, contract or chain recovers to a stranger.
///
/// Accounting: the market's NTK balance always equals the escrowed payments of open jobs plus
/// provider stake (free, locked as collateral, and unbonding) plus provider earnings not yet
/// withdrawn plus protocol fees not yet withdrawn.
interface IComputeMarket {
    /// @notice Where a job is in its lifecycle. Values only increase.
    enum JobState {
        None,
        Posted,
        Accepted,
        Submitted,
        Paid,
        Rejected,
        Cancelled,
        Expired,
        Defaulted,
        Lapsed
    }

    /// @notice A job as stored: five slots.
    /// @param client Who posted and paid; receives every refund.
    /// @param paymentNtk The escrowed payment.
    /// @param provider While Posted: the only provider allowed to accept (zero: any registered
    /// provider). From acceptance on: the provider that accepted.
    /// @param collateralNtk Stake the provider locks on acceptance and loses on a fault.
    /// @param specHash keccak256 of the canonical job spec.
    /// @param resultRoot Merkle root of the shard outputs (zero until submitted).
    /// @param state The lifecycle state.
    /// @param acceptBy Last second at which the job may be accepted.
    /// @param deliverBy Last second at which the result may be submitted.
    /// @param verdictBy Last second at which a verdict may settle the job.
    /// @param seedBlock The block whose hash seeds the challenge (zero until submitted).
    /// @param shardCount Number of shards the work is split into.
    /// @param challengeCount Number of shards the oracles re-execute (k).
    /// @param feeBps Protocol fee in basis points, fixed when the job was posted.
    struct Job {
        address client;
        uint96 paymentNtk;
        address provider;
        uint96 collateralNtk;
        bytes32 specHash;
        bytes32 resultRoot;
        JobState state;
        uint40 acceptBy;
        uint40 deliverBy;
        uint40 verdictBy;
        uint40 seedBlock;
        uint32 shardCount;
        uint32 challengeCount;
        uint16 feeBps;
    }

    /// @notice What a client asks for when posting a job.
    /// @param specHash keccak256 of the canonical job spec (non-zero).
    /// @param specURI Where the spec can be fetched; published in `JobPosted`, not stored.
    /// @param paymentNtk Payment pulled from the client into escrow (non-zero).
    /// @param provider The only provider allowed to accept, or zero for any registered provider.
    /// @param collateralNtk Stake the accepting provider must lock (may be zero).
    /// @param shardCount Number of shards (at least 1).
    /// @param challengeCount Challenged shards k, 1 <= k <= min(shardCount, MAX_CHALLENGE_COUNT).
    /// @param acceptBy Acceptance deadline, at or after now.
    /// @param deliverBy Delivery deadline, after acceptBy.
    /// @param verdictBy Verdict deadline, after deliverBy and at most MAX_JOB_DURATION from now.
    struct JobRequest {
        bytes32 specHash;
        string specURI;
        uint96 paymentNtk;
        address provider;
        uint96 collateralNtk;
        uint32 shardCount;
        uint32 challengeCount;
        uint64 acceptBy;
        uint64 deliverBy;
        uint64 verdictBy;
    }

    /// @notice A provider's account.
    /// @param stakeNtk Free stake: can back new jobs or be unbonded.
    /// @param earnedNtk Net payments of accepted jobs, withdrawable at any time.
    /// @param unbondReadyAt When the unbonding amount becomes withdrawable.
    /// @param registered Whether the provider has registered.
    /// @param unbondingNtk Stake on its way out: backs no job, withdrawable from unbondReadyAt.
    struct Provider {
        uint96 stakeNtk;
        uint96 earnedNtk;
        uint40 unbondReadyAt;
        bool registered;
        uint96 unbondingNtk;
    }

    /// @notice One entry of a batch settlement; the result root comes from storage.
    struct BatchEntry {
        uint256 jobId;
        bool accepted;
    }

    // ---------------------------------------------------------------- events: providers

    /// @notice A provider registered.
    event ProviderRegistered(address indexed provider, uint256 stakeNtk, string metadataURI);
    /// @notice A provider replaced its metadata URI.
    event ProviderMetadataUpdated(address indexed provider, string metadataURI);
    /// @notice A provider added `amountNtk` to its free stake, which is now `stakeNtk`.
    event StakeAdded(address indexed provider, uint256 amountNtk, uint256 stakeNtk);
    /// @notice A provider moved `amountNtk` of free stake to unbonding; `unbondingNtk` in all
    /// becomes withdrawable at `readyAt`.
    event UnbondRequested(address indexed provider, uint256 amountNtk, uint256 unbondingNtk, uint256 readyAt);
    /// @notice A provider withdrew its unbonded stake.
    event UnbondWithdrawn(address indexed provider, uint256 amountNtk);
    /// @notice A provider withdrew its earnings.
    event EarningsWithdrawn(address indexed provider, uint256 amountNtk);

    // ---------------------------------------------------------------- events: jobs

    /// @notice A client posted a job and escrowed its payment.
    event JobPosted(
        uint256 indexed jobId,
        address indexed client,
        address indexed provider,
        bytes32 specHash,
        string specURI,
        uint256 paymentNtk,
        uint256 collateralNtk,
        uint256 shardCount,
        uint256 challengeCount,
        uint256 acceptBy,
        uint256 deliverBy,
        uint256 verdictBy
    );
    /// @notice A provider accepted a job and locked `collateralNtk` of its stake.
    event JobAccepted(uint256 indexed jobId, address indexed provider, uint256 collateralNtk);
    /// @notice The provider committed the result; the challenge seed is the hash of `seedBlock`.
    event ResultSubmitted(
        uint256 indexed jobId,
        address indexed provider,
        bytes32 resultRoot,
        uint256 shardCount,
        uint256 seedBlock,
        string bundleURI
    );
    /// @notice The challenge seed of a job was stored for good.
    event ChallengeSeedFixed(uint256 indexed jobId, uint256 seedBlock, bytes32 seed);
    /// @notice The seed block's hash was out of reach before anyone fixed it; a later block
    /// seeds the challenge instead.
    event ChallengeSeedReanchored(uint256 indexed jobId, uint256 oldSeedBlock, uint256 newSeedBlock);
    /// @notice Oracles accepted the result: the provider earned `providerNtk`, the protocol
    /// `feeNtk`, and `collateralNtk` returned to the provider's free stake.
    event JobPaid(
        uint256 indexed jobId, address indexed provider, uint256 providerNtk, uint256 feeNtk, uint256 collateralNtk
    );
    /// @notice Oracles rejected the result: the client got `refundNtk` (payment plus
    /// compensation `compensationNtk`) and `burnedNtk` of the collateral was burned.
    event JobRejected(
        uint256 indexed jobId,
        address indexed provider,
        uint256 refundNtk,
        uint256 compensationNtk,
        uint256 burnedNtk
    );
    /// @notice The client cancelled a job nobody had accepted; its payment was refunded.
    event JobCancelled(uint256 indexed jobId, address indexed client, uint256 refundNtk);
    /// @notice Nobody accepted the job by its deadline; the payment was refunded.
    event JobExpired(uint256 indexed jobId, address indexed client, uint256 refundNtk);
    /// @notice The provider delivered no result by the deadline: the client got `refundNtk`
    /// (payment plus compensation) and `burnedNtk` of the collateral was burned.
    event JobDefaulted(
        uint256 indexed jobId,
        address indexed provider,
        uint256 refundNtk,
        uint256 compensationNtk,
        uint256 burnedNtk
    );
    /// @notice No verdict reached quorum by the deadline: the client got the payment back and
    /// the collateral returned to the provider's free stake. Nobody is at fault.
    event JobLapsed(uint256 indexed jobId, address indexed provider, uint256 refundNtk, uint256 collateralNtk);

    // ---------------------------------------------------------------- events: governance

    /// @notice An oracle joined the set, which now has `oracleCount` members.
    event OracleAdded(address indexed oracle, uint256 oracleCount);
    /// @notice An oracle left the set; its signatures no longer count.
    event OracleRemoved(address indexed oracle, uint256 oracleCount);
    /// @notice The number of oracle signatures a settlement needs changed.
    event ThresholdSet(uint256 oldThreshold, uint256 newThreshold);
    /// @notice The protocol fee for jobs posted from now on changed.
    event FeeSet(uint256 oldFeeBps, uint256 newFeeBps);
    /// @notice Accumulated protocol fees went to `treasury`.
    event FeesWithdrawn(address indexed treasury, uint256 amountNtk);

    // ---------------------------------------------------------------- errors

    /// @notice No job has this id.
    error MarketJobNotFound(uint256 jobId);
    /// @notice The job is not in a state that allows the call.
    error MarketJobWrongState(uint256 jobId, JobState state);
    /// @notice The call came after the job's `deadline`.
    error MarketDeadlinePassed(uint256 jobId, uint256 deadline, uint256 timestamp);
    /// @notice The timeout is not due yet: `deadline` has not passed.
    error MarketDeadlineNotReached(uint256 jobId, uint256 deadline, uint256 timestamp);
    /// @notice Only the job's client may do this.
    error MarketNotJobClient(uint256 jobId, address client, address caller);
    /// @notice Only the provider the client chose may accept this job.
    error MarketNotChosenProvider(uint256 jobId, address chosen, address caller);
    /// @notice Only the provider that accepted the job may do this.
    error MarketNotJobProvider(uint256 jobId, address provider, address caller);
    /// @notice The account has not registered as a provider.
    error MarketProviderNotRegistered(address provider);
    /// @notice The account has already registered as a provider.
    error MarketProviderAlreadyRegistered(address provider);
    /// @notice The provider's free stake (`available`) is below what is asked (`required`).
    error MarketInsufficientStake(address provider, uint256 available, uint256 required);
    /// @notice Unbonded stake is withdrawable only from `readyAt`.
    error MarketUnbondNotReady(address provider, uint256 readyAt, uint256 timestamp);
    /// @notice There is nothing for `account` to withdraw.
    error MarketNothingToWithdraw(address account);
    /// @notice An amount that must be positive was zero.
    error MarketZeroAmount();
    /// @notice An address that must be set was zero.
    error MarketZeroAddress();
    /// @notice The spec hash was zero.
    error MarketZeroSpecHash();
    /// @notice The submitted result root was zero.
    error MarketZeroResultRoot(uint256 jobId);
    /// @notice Shard counts must satisfy 1 <= challengeCount <= min(shardCount, MAX_CHALLENGE_COUNT).
    error MarketInvalidShardCounts(uint256 shardCount, uint256 challengeCount);
    /// @notice Deadlines must satisfy now <= acceptBy < deliverBy < verdictBy <= now + MAX_JOB_DURATION.
    error MarketInvalidDeadlines(uint256 timestamp, uint256 acceptBy, uint256 deliverBy, uint256 verdictBy);
    /// @notice The submitted shard count differs from the job's.
    error MarketShardCountMismatch(uint256 jobId, uint256 expected, uint256 submitted);
    /// @notice The seed block has not been mined yet; no challenge (and no verdict) before it is.
    error MarketChallengeSeedPending(uint256 jobId, uint256 seedBlock);
    /// @notice The seed block's hash is out of reach and was never fixed; call `fixChallengeSeed`.
    error MarketChallengeSeedUnavailable(uint256 jobId, uint256 seedBlock);
    /// @notice The challenge seed is already stored.
    error MarketChallengeSeedAlreadyFixed(uint256 jobId, bytes32 seed);
    /// @notice Fewer signatures than the threshold.
    error MarketQuorumNotReached(uint256 signatures, uint256 threshold);
    /// @notice A signature recovered to an address that is not a current oracle.
    error MarketSignerNotOracle(address signer);
    /// @notice The same oracle signed twice.
    error MarketDuplicateSigner(address signer);
    /// @notice Signatures must be ordered by strictly ascending signer address.
    error MarketSignersNotAscending(address previous, address signer);
    /// @notice A batch settlement had no entries.
    error MarketEmptyBatch();
    /// @notice The threshold must satisfy 1 <= threshold <= oracleCount.
    error MarketInvalidThreshold(uint256 threshold, uint256 oracleCount);
    /// @notice The address is already an oracle.
    error MarketOracleAlreadyAdded(address oracle);
    /// @notice The address is not an oracle.
    error MarketOracleNotFound(address oracle);
    /// @notice The fee exceeds the hard cap.
    error MarketFeeTooHigh(uint256 feeBps, uint256 maxFeeBps);
    /// @notice The unbonding delay exceeds the hard cap.
    error MarketUnbondingDelayTooLong(uint256 delay, uint256 maxDelay);

    // ---------------------------------------------------------------- providers

    /// @notice Registers the caller as a provider with `stakeNtk` (pulled with transferFrom)
    /// and a metadata URI describing its offer (GPU model, price, endpoint).
    function registerProvider(uint256 stakeNtk, string calldata metadataURI) external;

    /// @notice Replaces the caller's metadata URI.
    function updateProviderMetadata(string calldata metadataURI) external;

    /// @notice Adds `amountNtk` (pulled with transferFrom) to the caller's free stake.
    function addStake(uint256 amountNtk) external;

    /// @notice Moves `amountNtk` of free stake to unbonding and restarts the unbonding clock:
    /// everything unbonding becomes withdrawable `unbondingDelay` seconds from now. Stake
    /// locked as collateral is not free and cannot be unbonded.
    function requestUnbond(uint256 amountNtk) external;

    /// @notice Sends the caller's unbonding stake to it, once the unbonding delay has passed.
    function withdrawUnbonded() external;

    /// @notice Sends the caller's earnings to it.
    function withdrawEarnings() external;

    // ---------------------------------------------------------------- jobs

    /// @notice Posts a job, pulling `request.paymentNtk` from the caller with transferFrom.
    /// @return jobId The new job's id (ids start at 1).
    function postJob(JobRequest calldata request) external returns (uint256 jobId);

    /// @notice Posts a job, first approving the payment with an EIP-2612 permit signed by the
    /// caller for exactly `request.paymentNtk` to this contract. A permit that fails (for
    /// example because someone already used it) is ignored if the allowance suffices anyway.
    function postJobWithPermit(
        JobRequest calldata request,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (uint256 jobId);

    /// @notice Accepts a posted job, locking `collateralNtk` of the caller's free stake.
    function acceptJob(uint256 jobId) external;

    /// @notice Commits the result of an accepted job; only its provider, by `deliverBy`.
    /// @param resultRoot Merkle root of the shard outputs (OpenZeppelin MerkleProof layout).
    /// @param shardCount Must equal the job's shard count.
    /// @param bundleURI Where the proof bundle can be fetched; published in the event only.
    function submitResult(uint256 jobId, bytes32 resultRoot, uint256 shardCount, string calldata bundleURI)
        external;

    /// @notice Settles one submitted job with oracle signatures over
    /// `Verdict(jobId, stored resultRoot, accepted)`. Anyone may call, by `verdictBy`, once the
    /// seed block exists.
    /// @param signatures 65-byte (r, s, v) signatures of distinct current oracles, ascending by
    /// signer address, at least `threshold` of them.
    function settle(uint256 jobId, bool accepted, bytes[] calldata signatures) external;

    /// @notice Settles many jobs with signatures over one `VerdictBatch` of all `entries` (in
    /// order). Every per-job check of `settle` applies to each entry; any failure reverts all.
    function settleBatch(BatchEntry[] calldata entries, bytes[] calldata signatures) external;

    /// @notice The client withdraws a job that no provider has accepted; full refund.
    function cancelJob(uint256 jobId) external;

    /// @notice Ends a job whose deadline passed; anyone may call. Posted after acceptBy:
    /// refund (Expired). Accepted after deliverBy: refund and slash (Defaulted). Submitted after
    /// verdictBy: refund and unlock the collateral (Lapsed).
    function expireJob(uint256 jobId) external;

    /// @notice Stores the challenge seed of a submitted job for good, or, if the seed block's
    /// hash is already out of reach, moves the seed to the next block. Anyone may call.
    function fixChallengeSeed(uint256 jobId) external;

    // ---------------------------------------------------------------- governance (owner)

    /// @notice Adds an oracle.
    function addOracle(address oracle) external;

    /// @notice Removes an oracle; its signatures stop counting at once. The threshold must
    /// stay at or below the remaining number of oracles.
    function removeOracle(address oracle) external;

    /// @notice Sets how many oracle signatures a settlement needs.
    function setThreshold(uint256 newThreshold) external;

    /// @notice Sets the protocol fee (basis points, at most MAX_FEE_BPS) for jobs posted from now.
    function setFeeBps(uint256 newFeeBps) external;

    /// @notice Sends all accumulated protocol fees to `treasury`.
    function withdrawFees(address treasury) external;

    // ---------------------------------------------------------------- views

    /// @notice The NTK token.
    function token() external view returns (address);

    /// @notice Seconds between requesting an unbond and being able to withdraw it.
    function unbondingDelay() external view returns (uint256);

    /// @notice The job `jobId` (reverts with MarketJobNotFound for unknown ids).
    function getJob(uint256 jobId) external view returns (Job memory);

    /// @notice The id the next posted job will get.
    function nextJobId() external view returns (uint256);

    /// @notice The account of `provider` (all zero if unregistered).
    function getProvider(address provider) external view returns (Provider memory);

    /// @notice The metadata URI of `provider`.
    function providerMetadataURI(address provider) external view returns (string memory);

    /// @notice Whether `account` is a current oracle.
    function isOracle(address account) external view returns (bool);

    /// @notice The number of current oracles.
    function oracleCount() external view returns (uint256);

    /// @notice Every current oracle, in no particular order (oracles sort it to agree on
    /// which of them transmits a settlement first).
    function oracles() external view returns (address[] memory);

    /// @notice Signatures a settlement needs.
    function threshold() external view returns (uint256);

    /// @notice Protocol fee in basis points for jobs posted now.
    function feeBps() external view returns (uint256);

    /// @notice Protocol fees not yet withdrawn.
    function feesNtk() external view returns (uint256);

    /// @notice The challenge seed of a job that has a result (see the derivation above).
    function challengeSeed(uint256 jobId) external view returns (bytes32);

    /// @notice The k challenged shard indices of a job that has a result, in the order drawn.
    function challengedShards(uint256 jobId) external view returns (uint256[] memory);

    /// @notice The challenge derivation on any input (the same code `challengedShards` runs).
    function deriveChallengedShards(bytes32 seed, uint256 jobId, uint256 shardCount, uint256 challengeCount)
        external
        pure
        returns (uint256[] memory);

    /// @notice The EIP-712 digest oracles sign for one job's verdict.
    function verdictDigest(uint256 jobId, bytes32 resultRoot, bool accepted) external view returns (bytes32);

    /// @notice The EIP-712 digest oracles sign for a batch, using the stored result roots.
    function batchDigest(BatchEntry[] calldata entries) external view returns (bytes32);
}
