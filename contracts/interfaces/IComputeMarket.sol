// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IRandaoRecorder} from "./IRandaoRecorder.sol";

/// @title Neurotoken compute market
/// @notice Escrow for compute jobs paid in NTK. Providers stake NTK; a client posts a job and
/// locks its payment; a provider accepts it (its stake backs the job as collateral), runs it
/// and commits the Merkle root of the shard outputs; independent oracles re-execute randomly
/// challenged shards and `threshold` of them sign an EIP-712 verdict that pays the provider or
/// refunds the client and slashes the collateral. Every job ends in exactly one payout, and
/// every wait has a deadline after which anyone can end the job, so no funds stay locked for
/// ever and no path needs a trusted party to return the client's money.
///
/// Storage: one slot per open job, the keccak256 of its record (`Job`, five words; see
/// `jobDigest`). Every call about a job passes the record and the market checks it against
/// the slot; every change is in the events (JobPosted carries the first record; JobAccepted,
/// ResultSubmitted and the event that ends the job carry the rest), so anyone can rebuild a
/// job's record, and the slot is cleared when the job ends (an ended job is known by its
/// events only; calls about it revert MarketJobNotFound). The views that take a record
/// (`challengedShards`) or a seed block (`challengeSeed`) answer for what they are given: read
/// the record from the events, never from a counterparty.
///
/// Lifecycle (the enum only moves forward, each terminal state is final):
///   Posted --acceptJob--> Accepted --submitResult--> Submitted --settle(m of n)--> Paid | Rejected
///   postAcceptedJob (the provider's signed acceptance, a quote) --> Accepted
///   Posted --cancelJob (client)--> Cancelled; Posted --expireJob (after acceptBy)--> Expired
///   Accepted --expireJob (after deliverBy)--> Defaulted: refund, collateral slashed
///   Submitted --expireJob (after verdictBy)--> Lapsed: refund, collateral unlocked, no fault
///
/// Challenge derivation (`libraries/ChallengeDerivation.sol`, mirrored by
/// `neurotoken.verdicts.challenged_indices`):
///   The seed comes from a block after the one that recorded the result root (so the provider
///   could not know it when committing), in one of two ways fixed at deployment:
///   - `randaoDelay` 0: seed = blockhash(seedBlock), seedBlock = the commit block + 1. Read
///     through EIP-2935 history, the hash stays readable for 8,191 blocks; `fixChallengeSeed`
///     stores it for good. The producer of the seed block chooses its hash (it can grind it).
///   - `randaoDelay` D > 0: seed = the RANDAO mix (prevRandao) of seedBlock = the commit block
///     + D, which the beacon chain fixes, not the block's producer: anyone records it in the
///     `randaoRecorder` the market created (`record(header)`: the block's RLP header,
///     checked against its hash) while the block is in reach, and it is kept for good.
///     Knowing it at commit time takes all D slots from the commit on; each slot held at the
///     end of that run is one bit of choice (by withholding a block).
///   A commitment gets exactly one draw: the seed block never moves. A seed that nobody fixed
///   or recorded before it aged out cannot be judged, and the job lapses at `verdictBy`
///   (oracles fix or record every seed long before that; see docs/proofs.md for the residual
///   trust in block producers).
///   For counter c = 0, 1, 2, ...: index = uint256(keccak256(abi.encode(seed, jobId, c))) %
///   shardCount; an index already drawn is skipped; the first k distinct indices, in the order
///   drawn, are the challenged shards (k = challengeCount <= shardCount).
///
/// Verdicts (EIP-712, domain name "Neurotoken Compute Market", version "1", this chain id and
/// this contract):
///   Verdict(uint256 jobId,bytes32 resultRoot,bytes32 seed,bool accepted)       - one job
///   VerdictBatch(Verdict[] verdicts)Verdict(uint256 jobId,bytes32 resultRoot,bytes32 seed,
///   bool accepted)                                                     - many jobs, one signature
/// A settlement carries the signatures of at least the job's threshold of distinct oracles of
/// the job's oracle epoch, in strictly ascending signer address order; the result root comes
/// from the job's record (checked against its digest) and the challenge seed from the chain,
/// so a signature over any other root, seed, job,
/// contract or chain recovers to a stranger.
///
/// Governance never reaches into a live job: a job records the oracle epoch and the threshold
/// in force when it was posted, and only those oracles, at that threshold, can settle it. The
/// threshold is always more than half of the oracle set, so two conflicting quorums cannot
/// both exist. A removed oracle is retired for good (it cannot be added back).
///
/// Deterrence: a job's collateral must be at least `minimumCollateral(payment, shards, k)`, the
/// least stake for which faking even one shard (f = 1/N, caught with probability k/N) has a
/// negative expected value for the provider when the outside value of a corrupted result is
/// taken equal to the payment and the provider's compute cost is at most the payment (see
/// docs/proofs.md). Every verdict window is at least `minVerdictWindow` seconds long.
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

    /// @notice A job's record. Storage keeps only its keccak256 (`jobDigest(jobId)`, one slot per
    /// job, cleared when the job ends); every call about a job passes the record, which must
    /// hash to the stored digest, and the events carry every change, so anyone can rebuild it
    /// (`neurotoken.market.records`). Five words, packed so that the calldata stays small:
    /// @param clientAndPayment client (bits 0-159) | paymentNtk (bits 160-255). The client
    /// posted and paid and receives every refund.
    /// @param providerAndCollateral provider (bits 0-159) | collateralNtk (bits 160-255). While
    /// Posted the provider is the only one allowed to accept (zero: any registered provider);
    /// from acceptance on, the provider that accepted. The collateral is the stake it locks on
    /// acceptance and loses on a fault.
    /// @param terms state (bits 0-7) | acceptBy (8-47) | deliverBy (48-87) | verdictBy (88-127) |
    /// seedBlock (128-167, zero until submitted) | shardCount (168-191) | challengeCount
    /// (192-207) | feeBps (208-223) | oracleEpoch (224-247) | threshold (248-255). Deadlines are
    /// the last second the step may happen; fee, oracle epoch and threshold are those in force
    /// when the job was posted (only that epoch's oracles, at that threshold, settle it).
    /// @param specHash keccak256 of the canonical job spec.
    /// @param resultRoot Merkle root of the shard outputs (zero until submitted).
    struct Job {
        uint256 clientAndPayment;
        uint256 providerAndCollateral;
        uint256 terms;
        bytes32 specHash;
        bytes32 resultRoot;
    }

    /// @notice What a client asks for when posting a job.
    /// @param specHash keccak256 of the canonical job spec (non-zero).
    /// @param specURI Where the spec can be fetched; published in `JobPosted`, not stored.
    /// @param paymentNtk Payment pulled from the client into escrow (non-zero).
    /// @param provider The only provider allowed to accept, or zero for any registered provider.
    /// @param collateralNtk Stake the accepting provider must lock, at least
    /// `minimumCollateral(paymentNtk, shardCount, challengeCount)`.
    /// @param shardCount Number of shards, 1 <= shardCount <= MAX_SHARD_COUNT.
    /// @param challengeCount Challenged shards k, 1 <= k <= min(shardCount, MAX_CHALLENGE_COUNT).
    /// @param acceptBy Acceptance deadline, at or after now.
    /// @param deliverBy Delivery deadline, after acceptBy.
    /// @param verdictBy Verdict deadline, at least `minVerdictWindow` after deliverBy and at most
    /// MAX_JOB_DURATION from now.
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

    /// @notice One entry of a batch settlement: the job, its current record and the verdict.
    struct BatchEntry {
        uint256 jobId;
        Job job;
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

    /// @notice A client posted a job and escrowed its payment; `job` is its first record.
    event JobPosted(uint256 indexed jobId, address indexed client, address indexed provider, Job job, string specURI);
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
    /// @notice At deployment: challenges are seeded by the RANDAO mix of the block
    /// `randaoDelay` after each commit, recorded in `recorder`, which the market created.
    event RandaoSeeds(uint256 randaoDelay, address recorder);
    /// @notice Oracles accepted the result: the provider earned `providerNtk` and the protocol
    /// `feeNtk`, and the job's collateral (its record's, as in JobAccepted) returned to the
    /// provider's free stake.
    event JobPaid(uint256 indexed jobId, address indexed provider, uint256 providerNtk, uint256 feeNtk);
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

    /// @notice An oracle joined the set, which now has `oracleCount` members; it can settle
    /// jobs posted from oracle epoch `epoch` on.
    event OracleAdded(address indexed oracle, uint256 oracleCount, uint256 epoch);

    /// @notice An oracle left the set for good; its signatures count only for jobs posted
    /// before oracle epoch `epoch`.
    event OracleRemoved(address indexed oracle, uint256 oracleCount, uint256 epoch);
    /// @notice The number of oracle signatures a settlement of a job posted from now on needs
    /// changed.
    event ThresholdSet(uint256 oldThreshold, uint256 newThreshold);
    /// @notice The protocol fee for jobs posted from now on changed.
    event FeeSet(uint256 oldFeeBps, uint256 newFeeBps);
    /// @notice Accumulated protocol fees went to `treasury`.
    event FeesWithdrawn(address indexed treasury, uint256 amountNtk);

    // ---------------------------------------------------------------- errors

    /// @notice No open job has this id: it was never posted, or it has ended (its events tell how).
    /// @param jobId The job id that was asked for.
    error MarketJobNotFound(uint256 jobId);
    /// @notice The record passed for an open job is not its current one (keccak256 differs from
    /// `jobDigest(jobId)`): rebuild it from the job's events.
    /// @param jobId The job the call was about.
    error MarketJobRecordMismatch(uint256 jobId);
    /// @notice The job is not in a state that allows the call.
    /// @param jobId The job the call was about.
    /// @param state The job's current state.
    error MarketJobWrongState(uint256 jobId, JobState state);
    /// @notice The call came after the job's `deadline`.
    /// @param jobId The job the call was about.
    /// @param deadline The deadline that passed (the job's `acceptBy`, `deliverBy` or `verdictBy`).
    /// @param timestamp The current block timestamp.
    error MarketDeadlinePassed(uint256 jobId, uint256 deadline, uint256 timestamp);
    /// @notice The timeout is not due yet: `deadline` has not passed.
    /// @param jobId The job asked to expire.
    /// @param deadline The deadline that must pass first (the job's `acceptBy`, `deliverBy` or `verdictBy`).
    /// @param timestamp The current block timestamp.
    error MarketDeadlineNotReached(uint256 jobId, uint256 deadline, uint256 timestamp);
    /// @notice Only the job's client may do this.
    /// @param jobId The job the call was about.
    /// @param client The job's client.
    /// @param caller The account that called.
    error MarketNotJobClient(uint256 jobId, address client, address caller);
    /// @notice Only the provider the client chose may accept this job.
    /// @param jobId The job the call was about.
    /// @param chosen The provider the client chose.
    /// @param caller The account that called.
    error MarketNotChosenProvider(uint256 jobId, address chosen, address caller);
    /// @notice Only the provider that accepted the job may do this.
    /// @param jobId The job the call was about.
    /// @param provider The provider that accepted the job.
    /// @param caller The account that called.
    error MarketNotJobProvider(uint256 jobId, address provider, address caller);
    /// @notice The account has not registered as a provider.
    /// @param provider The account that is not registered.
    error MarketProviderNotRegistered(address provider);
    /// @notice The account has already registered as a provider.
    /// @param provider The account that is already registered.
    error MarketProviderAlreadyRegistered(address provider);
    /// @notice The provider's free stake (`available`) is below what is asked (`required`).
    /// @param provider The provider whose stake is short.
    /// @param available The provider's free stake.
    /// @param required The stake asked for (the amount to unbond or the job's collateral).
    error MarketInsufficientStake(address provider, uint256 available, uint256 required);
    /// @notice Unbonded stake is withdrawable only from `readyAt`.
    /// @param provider The provider withdrawing.
    /// @param readyAt The time from which the unbonded stake can be withdrawn.
    /// @param timestamp The current block timestamp.
    error MarketUnbondNotReady(address provider, uint256 readyAt, uint256 timestamp);
    /// @notice There is nothing for `account` to withdraw.
    /// @param account The account with nothing to withdraw (a provider, or the treasury for fees).
    error MarketNothingToWithdraw(address account);
    /// @notice An amount that must be positive was zero.
    error MarketZeroAmount();
    /// @notice An address that must be set was zero.
    error MarketZeroAddress();
    /// @notice The spec hash was zero.
    error MarketZeroSpecHash();
    /// @notice The submitted result root was zero.
    /// @param jobId The job the result was submitted for.
    error MarketZeroResultRoot(uint256 jobId);
    /// @notice Shard counts must satisfy 1 <= challengeCount <= min(shardCount, MAX_CHALLENGE_COUNT)
    /// and shardCount <= MAX_SHARD_COUNT.
    /// @param shardCount The shard count asked for.
    /// @param challengeCount The challenge count asked for.
    error MarketInvalidShardCounts(uint256 shardCount, uint256 challengeCount);

    /// @notice Deadlines must satisfy now <= acceptBy < deliverBy < verdictBy <= now + MAX_JOB_DURATION.
    /// @param timestamp The current block timestamp.
    /// @param acceptBy The acceptance deadline asked for.
    /// @param deliverBy The delivery deadline asked for.
    /// @param verdictBy The verdict deadline asked for.
    error MarketInvalidDeadlines(uint256 timestamp, uint256 acceptBy, uint256 deliverBy, uint256 verdictBy);

    /// @notice The verdict window (verdictBy - deliverBy) is shorter than the market's minimum,
    /// which leaves room for the seed block, confirmations and verification.
    /// @param window The window asked for, in seconds.
    /// @param minimum The market's `minVerdictWindow`.
    error MarketVerdictWindowTooShort(uint256 window, uint256 minimum);

    /// @notice The collateral is below the deterrent minimum for the job's payment and counts.
    /// @param required `minimumCollateral(paymentNtk, shardCount, challengeCount)`.
    /// @param offered The collateral asked for.
    error MarketCollateralTooLow(uint256 required, uint256 offered);

    /// @notice The deployer's minimum verdict window is outside [MIN_VERDICT_WINDOW_FLOOR, MAX_JOB_DURATION].
    /// @param window The window given, in seconds.
    error MarketInvalidVerdictWindow(uint256 window);
    /// @notice The submitted shard count differs from the job's.
    /// @param jobId The job the result was submitted for.
    /// @param expected The job's shard count.
    /// @param submitted The shard count submitted.
    error MarketShardCountMismatch(uint256 jobId, uint256 expected, uint256 submitted);
    /// @notice The seed block has not been mined yet; no challenge (and no verdict) before it is.
    /// @param jobId The job the call was about.
    /// @param seedBlock The block whose hash will seed the challenges.
    error MarketChallengeSeedPending(uint256 jobId, uint256 seedBlock);
    /// @notice The seed block's hash is out of reach and was never fixed; call `fixChallengeSeed`.
    /// @param jobId The job the call was about.
    /// @param seedBlock The block whose hash can no longer be read.
    error MarketChallengeSeedUnavailable(uint256 jobId, uint256 seedBlock);
    /// @notice The challenge seed is already stored.
    /// @param jobId The job the call was about.
    /// @param seed The seed already stored.
    error MarketChallengeSeedAlreadyFixed(uint256 jobId, bytes32 seed);
    /// @notice The deployer's RANDAO delay is above MAX_RANDAO_DELAY, or the minimum verdict
    /// window leaves less than MIN_VERDICT_WINDOW_FLOOR plus SLOT_SECONDS per delayed block.
    /// @param delay The delay given, in blocks.
    /// @param minVerdictWindow The minimum verdict window given, in seconds.
    error MarketInvalidRandaoDelay(uint256 delay, uint256 minVerdictWindow);
    /// @notice The job's seed is the RANDAO mix of its seed block, not recorded yet: post that
    /// block's header to the market's `randaoRecorder` (within 8,191 blocks of it).
    /// @param jobId The job the call was about.
    /// @param seedBlock The block whose RANDAO mix seeds the challenges.
    error MarketRandaoNotRecorded(uint256 jobId, uint256 seedBlock);
    /// @notice This market seeds challenges with recorded RANDAO mixes, which never age out:
    /// record the seed block's mix in the market's `randaoRecorder`; there is no hash to fix.
    error MarketRandaoSeedsOn();
    /// @notice Fewer signatures than the threshold.
    /// @param signatures The number of signatures given.
    /// @param threshold The number of signatures required (the highest threshold among the settled jobs).
    error MarketQuorumNotReached(uint256 signatures, uint256 threshold);
    /// @notice A signature recovered to an address that was not an oracle in the job's oracle epoch.
    /// @param signer The address the signature recovered to.
    error MarketSignerNotOracle(address signer);
    /// @notice The same oracle signed twice.
    /// @param signer The oracle that signed twice.
    error MarketDuplicateSigner(address signer);
    /// @notice Signatures must be ordered by strictly ascending signer address.
    /// @param previous The signer of the signature before.
    /// @param signer The signer that is not above `previous`.
    error MarketSignersNotAscending(address previous, address signer);
    /// @notice A quoted job's acceptance was not signed by the provider it names.
    /// @param provider The provider the request names (zero: a quote must name one).
    /// @param signer The address the acceptance recovered to.
    error MarketAcceptanceNotByProvider(address provider, address signer);
    /// @notice A batch settlement had no entries.
    error MarketEmptyBatch();

    /// @notice A batch mixes jobs of different oracle epochs; settle them in separate batches.
    /// @param jobId The first job whose epoch differs.
    /// @param epoch That job's oracle epoch.
    /// @param expected The oracle epoch of the batch's first job.
    error MarketBatchEpochMismatch(uint256 jobId, uint256 epoch, uint256 expected);
    /// @notice The threshold must be more than half of the oracles and at most all of them:
    /// oracleCount < 2 * threshold and threshold <= oracleCount.
    /// @param threshold The threshold the change would leave.
    /// @param oracleCount The number of oracles the change would leave.
    error MarketInvalidThreshold(uint256 threshold, uint256 oracleCount);

    /// @notice The address was an oracle once and was removed; it cannot come back (its old
    /// term still counts for the jobs posted during it). Use a new key.
    /// @param oracle The retired oracle.
    error MarketOracleRetired(address oracle);

    /// @notice The oracle set would exceed MAX_ORACLES members.
    /// @param oracleCount The size the change would leave.
    error MarketTooManyOracles(uint256 oracleCount);
    /// @notice The address is already an oracle.
    /// @param oracle The address that is already an oracle.
    error MarketOracleAlreadyAdded(address oracle);
    /// @notice The address is not an oracle.
    /// @param oracle The address that is not an oracle.
    error MarketOracleNotFound(address oracle);
    /// @notice The fee exceeds the hard cap.
    /// @param feeBps The fee asked for, in basis points.
    /// @param maxFeeBps The hard cap, MAX_FEE_BPS.
    error MarketFeeTooHigh(uint256 feeBps, uint256 maxFeeBps);
    /// @notice The unbonding delay exceeds the hard cap.
    /// @param delay The delay asked for, in seconds.
    /// @param maxDelay The hard cap, MAX_UNBONDING_DELAY.
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

    /// @notice Posts a job that its provider has already accepted (a quote): the job starts
    /// Accepted, with `request.collateralNtk` of the provider's free stake locked, and the
    /// payment is pulled from the caller (with an EIP-2612 permit first when `permitDeadline`
    /// is not zero, as `postJobWithPermit`). The provider signed, off chain, an EIP-712
    /// `Acceptance(clientAndPayment, providerAndCollateral, terms, specHash)`: the record the
    /// job gets (state Accepted, the fee, oracle epoch and threshold in force), so the quote
    /// fails if governance changed any of them since. A quote is good until its `acceptBy`; a
    /// client that posts one twice gets (and pays for) two identical jobs, which one result
    /// serves.
    /// @param request The job; `provider` is the quoting provider (non-zero).
    /// @param acceptance The provider's 65-byte signature.
    function postAcceptedJob(
        JobRequest calldata request,
        bytes calldata acceptance,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (uint256 jobId);

    /// @notice Accepts a posted job, locking `collateralNtk` of the caller's free stake.
    /// @param job The job's current record (see `Job`).
    function acceptJob(uint256 jobId, Job calldata job) external;

    /// @notice Commits the result of an accepted job; only its provider, by `deliverBy`.
    /// @param job The job's current record.
    /// @param resultRoot Merkle root of the shard outputs (OpenZeppelin MerkleProof layout).
    /// @param shardCount Must equal the job's shard count.
    /// @param bundleURI Where the proof bundle can be fetched; published in the event only.
    function submitResult(
        uint256 jobId,
        Job calldata job,
        bytes32 resultRoot,
        uint256 shardCount,
        string calldata bundleURI
    ) external;

    /// @notice Settles one submitted job with oracle signatures over
    /// `Verdict(jobId, resultRoot, challenge seed, accepted)`. Anyone may call, by `verdictBy`,
    /// once the seed block exists.
    /// @param job The job's current record (its result root is the one the verdict judged).
    /// @param signatures 65-byte (r, s, v) signatures of distinct oracles of the job's oracle
    /// epoch, ascending by signer address, at least the job's threshold of them.
    function settle(uint256 jobId, Job calldata job, bool accepted, bytes[] calldata signatures) external;

    /// @notice Settles many jobs with signatures over one `VerdictBatch` of all `entries` (in
    /// order). Every per-job check of `settle` applies to each entry; any failure reverts all.
    function settleBatch(BatchEntry[] calldata entries, bytes[] calldata signatures) external;

    /// @notice The client withdraws a job that no provider has accepted; full refund.
    /// @param job The job's current record.
    function cancelJob(uint256 jobId, Job calldata job) external;

    /// @notice Ends a job whose deadline passed; anyone may call. Posted after acceptBy:
    /// refund (Expired). Accepted after deliverBy: refund and slash (Defaulted). Submitted after
    /// verdictBy: refund and unlock the collateral (Lapsed).
    /// @param job The job's current record.
    function expireJob(uint256 jobId, Job calldata job) external;

    /// @notice Stores the challenge seed of a submitted job for good, so that it outlives the
    /// 8,191 blocks of EIP-2935 history. Anyone may call; the seed never changes (reverts with
    /// MarketChallengeSeedUnavailable once the seed block's hash is out of reach). Only on a
    /// market seeding with block hashes (`randaoDelay` 0; else MarketRandaoSeedsOn).
    /// @param job The job's current record.
    function fixChallengeSeed(uint256 jobId, Job calldata job) external;

    // ---------------------------------------------------------------- governance (owner)

    /// @notice Adds an oracle for jobs posted from now on (a new oracle epoch). The threshold
    /// must stay above half of the set; to grow the set and the threshold together use
    /// `updateOracles`.
    function addOracle(address oracle) external;

    /// @notice Retires an oracle for jobs posted from now on (a new oracle epoch); its
    /// signatures still count for jobs posted before. The threshold must stay at or below the
    /// remaining number of oracles.
    function removeOracle(address oracle) external;

    /// @notice Sets how many oracle signatures a settlement of a job posted from now on needs:
    /// more than half of the oracles, at most all of them.
    function setThreshold(uint256 newThreshold) external;

    /// @notice Adds and retires oracles and sets the threshold in one step (one new oracle
    /// epoch); only the final set and threshold are checked.
    /// @param added Oracles to add (never oracles before).
    /// @param removed Current oracles to retire.
    /// @param newThreshold The threshold for jobs posted from now on.
    function updateOracles(address[] calldata added, address[] calldata removed, uint256 newThreshold) external;

    /// @notice Sets the protocol fee (basis points, at most MAX_FEE_BPS) for jobs posted from now.
    function setFeeBps(uint256 newFeeBps) external;

    /// @notice Sends all accumulated protocol fees to `treasury`.
    function withdrawFees(address treasury) external;

    // ---------------------------------------------------------------- views

    /// @notice The NTK token.
    function token() external view returns (address);

    /// @notice Seconds between requesting an unbond and being able to withdraw it.
    function unbondingDelay() external view returns (uint256);

    /// @notice keccak256(abi.encode(record)) of open job `jobId`; zero for an id never posted
    /// and for a job that has ended.
    function jobDigest(uint256 jobId) external view returns (bytes32);

    /// @notice The digest a record has (what `jobDigest` holds while it is current).
    function hashJob(Job calldata job) external pure returns (bytes32);

    /// @notice The id the next posted job will get.
    function nextJobId() external view returns (uint256);

    /// @notice The account of `provider` (all zero if unregistered).
    function getProvider(address provider) external view returns (Provider memory);

    /// @notice The metadata URI of `provider`.
    function providerMetadataURI(address provider) external view returns (string memory);

    /// @notice Whether `account` is a current oracle.
    function isOracle(address account) external view returns (bool);

    /// @notice Whether `account` was an oracle in oracle epoch `epoch`: its signature counts
    /// for the jobs posted in that epoch (a record's `oracleEpoch`).
    function isEpochOracle(uint256 epoch, address account) external view returns (bool);

    /// @notice The current oracle epoch: it grows by one with every change of the oracle set.
    function oracleEpoch() external view returns (uint256);

    /// @notice Shortest verdict window (verdictBy - deliverBy) a job may be posted with.
    function minVerdictWindow() external view returns (uint256);

    /// @notice Blocks from a result's commit block to its seed block when seeds are RANDAO
    /// mixes; 0 when seeds are block hashes (the seed block is then the next block).
    function randaoDelay() external view returns (uint256);

    /// @notice Where the RANDAO mixes that seed challenges are recorded: a RandaoRecorder the
    /// market created when it was deployed (no deployer can name its own); zero when seeds
    /// are block hashes (`randaoDelay` 0).
    function randaoRecorder() external view returns (IRandaoRecorder);

    /// @notice The least collateral a job with this payment and these counts may ask for:
    /// floor(paymentNtk * (shardCount + 1 - 2 * challengeCount) / challengeCount) + 1 when
    /// shardCount + 1 >= 2 * challengeCount, else 1 (never zero: a provider that fakes every
    /// shard is always caught, and must lose something when it is).
    function minimumCollateral(
        uint256 paymentNtk,
        uint256 shardCount,
        uint256 challengeCount
    ) external pure returns (uint256);

    /// @notice Every current oracle, in no particular order (oracles sort it to agree on
    /// which of them transmits a settlement first).
    function oracles() external view returns (address[] memory);

    /// @notice Signatures a settlement needs.
    function threshold() external view returns (uint256);

    /// @notice Protocol fee in basis points for jobs posted now.
    function feeBps() external view returns (uint256);

    /// @notice Protocol fees not yet withdrawn.
    function feesNtk() external view returns (uint256);

    /// @notice The challenge seed of a job whose result was committed with seed block
    /// `seedBlock` (see the derivation above): with block-hash seeds, the block's hash while it
    /// is in reach, else the seed `fixChallengeSeed` stored; with RANDAO seeds, the block's
    /// recorded mix (MarketRandaoNotRecorded until the market's `randaoRecorder` has it).
    function challengeSeed(uint256 jobId, uint256 seedBlock) external view returns (bytes32);

    /// @notice The k challenged shard indices of a job that has a result, in the order drawn,
    /// from its record (any record with a result: the job may have ended).
    function challengedShards(uint256 jobId, Job calldata job) external view returns (uint256[] memory);
}
