// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Blockhash} from "@openzeppelin/contracts/utils/Blockhash.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {IComputeMarket} from "./interfaces/IComputeMarket.sol";
import {IRandaoRecorder} from "./interfaces/IRandaoRecorder.sol";
import {RandaoRecorder} from "./RandaoRecorder.sol";
import {ChallengeDerivation} from "./libraries/ChallengeDerivation.sol";

/// @title ComputeMarket
/// @notice Provider stake, job escrow, m-of-n EIP-712 oracle verdicts, timeouts and slashing
/// for NTK-paid compute jobs. See IComputeMarket for the lifecycle, the challenge derivation,
/// the verdict types and the accounting identity.
/// @dev A job is one slot: the keccak256 of its record, which every call passes in calldata
/// and every change emits (cleared when the job ends, so terminal paths earn the EIP-3529
/// refund). A provider is two slots (plus its metadata string), and
/// the job counter, fee pot, fee rate, threshold and oracle epoch share one slot; the current
/// oracle set is an OpenZeppelin EnumerableSet, so off-chain oracles can read all of it
/// (`oracles()`), and each oracle's term (the epochs it served) decides which jobs it may settle. Every entry
/// point that moves NTK is `nonReentrant` and follows checks, effects, interactions; the one
/// token is fixed at deployment and must be an ERC20Burnable with EIP-2612 permit (NTK).
contract ComputeMarket is IComputeMarket, EIP712, Ownable2Step, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using EnumerableSet for EnumerableSet.AddressSet;

    /// @dev The oracle epochs an oracle serves: jobs posted in epochs [addedEpoch, removedEpoch)
    /// (removedEpoch zero: still serving).
    struct OracleTerm {
        uint24 addedEpoch;
        uint24 removedEpoch;
    }

    /// @dev Who must sign a settlement: oracles of `epoch`, at least `required` of them (the
    /// highest threshold among the settled jobs, which all share one oracle epoch).
    struct Quorum {
        uint256 epoch;
        uint256 required;
    }

    /// @dev Settlement credit of one provider, summed over consecutive jobs of a batch.
    struct Credit {
        address provider;
        uint256 stakeNtk;
        uint256 earnedNtk;
    }

    // EIP-712 type strings are what they are; all three hash at compile time.
    // solhint-disable gas-small-strings
    /// @notice EIP-712 type of a single-job verdict.
    bytes32 public constant VERDICT_TYPEHASH = keccak256(
        "Verdict(uint256 jobId,bytes32 resultRoot,bytes32 seed,bool accepted)"
    );

    /// @notice EIP-712 type of a batch of verdicts (an array of Verdict structs).
    bytes32 public constant VERDICT_BATCH_TYPEHASH = keccak256(
        "VerdictBatch(Verdict[] verdicts)Verdict(uint256 jobId,bytes32 resultRoot,bytes32 seed,bool accepted)"
    );

    /// @notice EIP-712 type of a provider's acceptance of a job it quoted: the job's record as
    /// it will be stored once accepted (state Accepted, no result root).
    bytes32 public constant ACCEPTANCE_TYPEHASH = keccak256(
        "Acceptance(uint256 clientAndPayment,uint256 providerAndCollateral,uint256 terms,bytes32 specHash)"
    );
    // solhint-enable gas-small-strings

    /// @notice Hard cap on the protocol fee: 10%.
    uint256 public constant MAX_FEE_BPS = 1_000;

    /// @notice Share of slashed collateral paid to the client as compensation (50%); the rest
    /// is burned, so neither party profits from a fault it could stage.
    uint256 public constant SLASH_TO_CLIENT_BPS = 5_000;

    /// @notice Longest time from posting to the verdict deadline: one year.
    uint256 public constant MAX_JOB_DURATION = 365 days;

    /// @notice Most shards one job may challenge (bounds every oracle's re-execution work).
    uint256 public constant MAX_CHALLENGE_COUNT = 64;

    /// @notice Most shards one job may have (the job spec's own limit).
    uint256 public constant MAX_SHARD_COUNT = 65_536;

    /// @notice Most oracles the set may hold.
    uint256 public constant MAX_ORACLES = 255;

    /// @notice Shortest minimum verdict window a deployer may choose.
    uint256 public constant MIN_VERDICT_WINDOW_FLOOR = 1 minutes;

    /// @notice Longest RANDAO delay (blocks from a commit to its seed block) a deployer may choose.
    uint256 public constant MAX_RANDAO_DELAY = 64;

    /// @notice Seconds a delayed block is taken to add to the verdict window (a beacon-chain slot).
    uint256 public constant SLOT_SECONDS = 12;

    /// @notice Longest unbonding delay the deployer may choose.
    uint256 public constant MAX_UNBONDING_DELAY = 90 days;

    uint256 private constant _BPS = 10_000;

    // Bit offsets in a record's words (IComputeMarket.Job): an address is bits 0-159 and an
    // amount bits 160-255; `terms` packs the state and the fields below.
    uint256 private constant _HIGH = 160;
    uint256 private constant _ACCEPT_BY = 8;
    uint256 private constant _DELIVER_BY = 48;
    uint256 private constant _VERDICT_BY = 88;
    uint256 private constant _SEED_BLOCK = 128;
    uint256 private constant _SHARD_COUNT = 168;
    uint256 private constant _CHALLENGE_COUNT = 192;
    uint256 private constant _FEE_BPS = 208;
    uint256 private constant _ORACLE_EPOCH = 224;
    uint256 private constant _THRESHOLD = 248;

    IERC20 private immutable _token;
    uint256 private immutable _unbondingDelay;
    uint256 private immutable _minVerdictWindow;
    uint256 private immutable _randaoDelay;
    IRandaoRecorder private immutable _randaoRecorder;

    /// @dev keccak256(abi.encode(record)) of each open job; cleared when the job ends.
    mapping(uint256 jobId => bytes32) private _jobDigests;
    mapping(address provider => Provider) private _providers;
    mapping(address provider => string) private _metadataURIs;
    mapping(uint256 jobId => bytes32) private _fixedSeeds;
    EnumerableSet.AddressSet private _oracles;
    mapping(address oracle => OracleTerm) private _oracleTerms;
    // One slot: written by every post and every settlement, read by every settlement.
    uint64 private _nextJobId;
    uint96 private _feesNtk;
    uint16 private _feeBps;
    uint16 private _threshold;
    uint24 private _oracleEpoch;
    /// @param token_ The NTK token (ERC-20 with permit and burn).
    /// @param owner_ Governs the oracle set, threshold and fee (two-step ownership transfer).
    /// @param unbondingDelay_ Seconds between an unbond request and the withdrawal.
    /// @param feeBps_ Initial protocol fee, at most MAX_FEE_BPS.
    /// @param oracles_ Initial oracle set (distinct, non-zero, at most MAX_ORACLES): epoch 1.
    /// @param threshold_ Initial threshold: oracles_.length < 2 * threshold_ <= 2 * oracles_.length.
    /// @param minVerdictWindow_ Shortest verdict window (verdictBy - deliverBy) of any job, in
    /// seconds: room for the seed block, confirmations and verification.
    /// @param randaoDelay_ 0: challenge seeds are block hashes; D in [1, MAX_RANDAO_DELAY]: they
    /// are the RANDAO mixes of the blocks D after each commit, as recorded in a RandaoRecorder
    /// the market creates (`randaoRecorder()`); minVerdictWindow_ must then be at least
    /// MIN_VERDICT_WINDOW_FLOOR + D * SLOT_SECONDS.
    constructor(
        IERC20 token_,
        address owner_,
        uint256 unbondingDelay_,
        uint256 feeBps_,
        address[] memory oracles_,
        uint256 threshold_,
        uint256 minVerdictWindow_,
        uint256 randaoDelay_
    ) EIP712("Neurotoken Compute Market", "1") Ownable(owner_) {
        if (address(token_) == address(0)) revert MarketZeroAddress();
        if (unbondingDelay_ > MAX_UNBONDING_DELAY) {
            revert MarketUnbondingDelayTooLong(unbondingDelay_, MAX_UNBONDING_DELAY);
        }
        if (minVerdictWindow_ < MIN_VERDICT_WINDOW_FLOOR || minVerdictWindow_ > MAX_JOB_DURATION) {
            revert MarketInvalidVerdictWindow(minVerdictWindow_);
        }
        if (
            randaoDelay_ > MAX_RANDAO_DELAY ||
            minVerdictWindow_ < MIN_VERDICT_WINDOW_FLOOR + randaoDelay_ * SLOT_SECONDS
        ) {
            revert MarketInvalidRandaoDelay(randaoDelay_, minVerdictWindow_);
        }
        _token = token_;
        _unbondingDelay = unbondingDelay_;
        _minVerdictWindow = minVerdictWindow_;
        _randaoDelay = randaoDelay_;
        // The market makes its own recorder: one named by the deployer could serve whatever
        // mix steers a challenge. Its code is in the creation code only, not the runtime's.
        if (randaoDelay_ != 0) {
            RandaoRecorder recorder = new RandaoRecorder();
            _randaoRecorder = recorder;
            emit RandaoSeeds(randaoDelay_, address(recorder));
        }
        _nextJobId = 1;
        _oracleEpoch = 1;
        _setFeeBps(feeBps_);
        for (uint256 i; i < oracles_.length; ++i) {
            _addOracle(oracles_[i], 1);
        }
        _setThreshold(threshold_);
    }

    // ================================================================ providers

    /// @inheritdoc IComputeMarket
    function registerProvider(uint256 stakeNtk, string calldata metadataURI) external nonReentrant {
        Provider storage provider = _providers[msg.sender];
        if (provider.registered) revert MarketProviderAlreadyRegistered(msg.sender);
        provider.registered = true;
        provider.stakeNtk = SafeCast.toUint96(stakeNtk);
        _metadataURIs[msg.sender] = metadataURI;
        emit ProviderRegistered(msg.sender, stakeNtk, metadataURI);
        if (stakeNtk != 0) _token.safeTransferFrom(msg.sender, address(this), stakeNtk);
    }

    /// @inheritdoc IComputeMarket
    function updateProviderMetadata(string calldata metadataURI) external {
        _registered(msg.sender);
        _metadataURIs[msg.sender] = metadataURI;
        emit ProviderMetadataUpdated(msg.sender, metadataURI);
    }

    /// @inheritdoc IComputeMarket
    function addStake(uint256 amountNtk) external nonReentrant {
        if (amountNtk == 0) revert MarketZeroAmount();
        Provider storage provider = _registered(msg.sender);
        uint96 stakeNtk = provider.stakeNtk + SafeCast.toUint96(amountNtk);
        provider.stakeNtk = stakeNtk;
        emit StakeAdded(msg.sender, amountNtk, stakeNtk);
        _token.safeTransferFrom(msg.sender, address(this), amountNtk);
    }

    /// @inheritdoc IComputeMarket
    function requestUnbond(uint256 amountNtk) external {
        if (amountNtk == 0) revert MarketZeroAmount();
        Provider storage provider = _registered(msg.sender);
        uint96 stakeNtk = provider.stakeNtk;
        if (amountNtk > stakeNtk) revert MarketInsufficientStake(msg.sender, stakeNtk, amountNtk);
        uint256 readyAt = block.timestamp + _unbondingDelay;
        uint96 unbondingNtk;
        // Cannot underflow: checked just above. The sum is NTK held by this contract.
        unchecked {
            provider.stakeNtk = stakeNtk - uint96(amountNtk);
            unbondingNtk = provider.unbondingNtk + uint96(amountNtk);
        }
        provider.unbondingNtk = unbondingNtk;
        provider.unbondReadyAt = SafeCast.toUint40(readyAt);
        emit UnbondRequested(msg.sender, amountNtk, unbondingNtk, readyAt);
    }

    /// @inheritdoc IComputeMarket
    function withdrawUnbonded() external nonReentrant {
        Provider storage provider = _providers[msg.sender];
        uint256 amountNtk = provider.unbondingNtk;
        if (amountNtk == 0) revert MarketNothingToWithdraw(msg.sender);
        uint256 readyAt = provider.unbondReadyAt;
        if (block.timestamp < readyAt) revert MarketUnbondNotReady(msg.sender, readyAt, block.timestamp);
        provider.unbondingNtk = 0;
        emit UnbondWithdrawn(msg.sender, amountNtk);
        _token.safeTransfer(msg.sender, amountNtk);
    }

    /// @inheritdoc IComputeMarket
    function withdrawEarnings() external nonReentrant {
        Provider storage provider = _providers[msg.sender];
        uint256 amountNtk = provider.earnedNtk;
        if (amountNtk == 0) revert MarketNothingToWithdraw(msg.sender);
        provider.earnedNtk = 0;
        emit EarningsWithdrawn(msg.sender, amountNtk);
        _token.safeTransfer(msg.sender, amountNtk);
    }

    // ================================================================ jobs

    /// @inheritdoc IComputeMarket
    function postJob(JobRequest calldata request) external nonReentrant returns (uint256 jobId) {
        jobId = _postJob(request, msg.data[0:0]);
        _token.safeTransferFrom(msg.sender, address(this), request.paymentNtk);
    }

    /// @inheritdoc IComputeMarket
    function postJobWithPermit(
        JobRequest calldata request,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant returns (uint256 jobId) {
        jobId = _postJob(request, msg.data[0:0]);
        _pullPayment(request.paymentNtk, permitDeadline, v, r, s);
    }

    /// @inheritdoc IComputeMarket
    function postAcceptedJob(
        JobRequest calldata request,
        bytes calldata acceptance,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant returns (uint256 jobId) {
        if (acceptance.length == 0 || request.provider == address(0)) {
            revert MarketAcceptanceNotByProvider(request.provider, address(0));
        }
        jobId = _postJob(request, acceptance);
        _pullPayment(request.paymentNtk, permitDeadline, v, r, s);
    }

    /// @inheritdoc IComputeMarket
    function acceptJob(uint256 jobId, Job calldata job) external {
        _checkRecord(jobId, job);
        uint256 terms = job.terms;
        _requireState(jobId, terms, JobState.Posted);
        uint256 acceptBy = uint40(terms >> _ACCEPT_BY);
        if (block.timestamp > acceptBy) revert MarketDeadlinePassed(jobId, acceptBy, block.timestamp);
        uint256 providerAndCollateral = job.providerAndCollateral;
        address chosen = address(uint160(providerAndCollateral));
        if (chosen != address(0) && chosen != msg.sender) revert MarketNotChosenProvider(jobId, chosen, msg.sender);
        uint96 collateralNtk = uint96(providerAndCollateral >> _HIGH);
        _lockCollateral(msg.sender, collateralNtk);
        _storeRecord(
            jobId,
            job.clientAndPayment,
            (uint256(collateralNtk) << _HIGH) | uint160(msg.sender),
            _withState(terms, JobState.Accepted),
            job.specHash,
            job.resultRoot
        );
        emit JobAccepted(jobId, msg.sender, collateralNtk);
    }

    /// @inheritdoc IComputeMarket
    function submitResult(
        uint256 jobId,
        Job calldata job,
        bytes32 resultRoot,
        uint256 shardCount,
        string calldata bundleURI
    ) external {
        _checkRecord(jobId, job);
        uint256 terms = job.terms;
        _requireState(jobId, terms, JobState.Accepted);
        address provider = address(uint160(job.providerAndCollateral));
        if (msg.sender != provider) revert MarketNotJobProvider(jobId, provider, msg.sender);
        uint256 deliverBy = uint40(terms >> _DELIVER_BY);
        if (block.timestamp > deliverBy) revert MarketDeadlinePassed(jobId, deliverBy, block.timestamp);
        if (resultRoot == bytes32(0)) revert MarketZeroResultRoot(jobId);
        uint256 jobShardCount = uint24(terms >> _SHARD_COUNT);
        if (shardCount != jobShardCount) revert MarketShardCountMismatch(jobId, jobShardCount, shardCount);
        uint256 randaoDelay_ = _randaoDelay;
        uint256 seedBlock = block.number + (randaoDelay_ == 0 ? 1 : randaoDelay_);
        // The seed block field is zero until now; the cast is safe for any real block number.
        _storeRecord(
            jobId,
            job.clientAndPayment,
            job.providerAndCollateral,
            _withState(terms, JobState.Submitted) | (uint256(uint40(seedBlock)) << _SEED_BLOCK),
            job.specHash,
            resultRoot
        );
        emit ResultSubmitted(jobId, provider, resultRoot, shardCount, seedBlock, bundleURI);
    }

    /// @inheritdoc IComputeMarket
    function settle(uint256 jobId, Job calldata job, bool accepted, bytes[] calldata signatures) external nonReentrant {
        Credit memory credit = Credit(address(0), 0, 0);
        Quorum memory quorum = Quorum(0, 0);
        (bytes32 structHash, uint256 feeNtk, uint256 burnNtk) = _settleEffects(jobId, job, accepted, credit, quorum);
        _flushCredit(credit);
        _requireQuorum(_hashTypedDataV4(structHash), signatures, quorum);
        if (feeNtk != 0) _feesNtk += SafeCast.toUint96(feeNtk);
        // Interactions: only a rejection moves tokens now (earnings are withdrawn by the provider).
        if (!accepted) {
            _token.safeTransfer(_client(job), _rejectRefund(job));
            if (burnNtk != 0) ERC20Burnable(address(_token)).burn(burnNtk);
        }
    }

    /// @inheritdoc IComputeMarket
    function settleBatch(BatchEntry[] calldata entries, bytes[] calldata signatures) external nonReentrant {
        uint256 count = entries.length;
        if (count == 0) revert MarketEmptyBatch();
        bytes32[] memory structHashes = new bytes32[](count);
        Credit memory credit = Credit(address(0), 0, 0);
        Quorum memory quorum = Quorum(0, 0);
        uint256 feeNtk = 0;
        uint256 burnNtk = 0;
        bool anyRejected = false;
        for (uint256 i; i < count; ++i) {
            BatchEntry calldata entry = entries[i];
            (bytes32 structHash, uint256 jobFeeNtk, uint256 jobBurnNtk) = _settleEffects(
                entry.jobId,
                entry.job,
                entry.accepted,
                credit,
                quorum
            );
            structHashes[i] = structHash;
            // Cannot overflow: each term is part of an NTK amount held by this contract.
            unchecked {
                feeNtk += jobFeeNtk;
                burnNtk += jobBurnNtk;
            }
            anyRejected = anyRejected || !entry.accepted;
        }
        _flushCredit(credit);
        _requireQuorum(_hashTypedDataV4(_batchStructHash(structHashes)), signatures, quorum);
        if (feeNtk != 0) _feesNtk += SafeCast.toUint96(feeNtk);
        if (anyRejected) {
            for (uint256 i; i < count; ++i) {
                BatchEntry calldata entry = entries[i];
                if (!entry.accepted) _token.safeTransfer(_client(entry.job), _rejectRefund(entry.job));
            }
            if (burnNtk != 0) ERC20Burnable(address(_token)).burn(burnNtk);
        }
    }

    /// @inheritdoc IComputeMarket
    function cancelJob(uint256 jobId, Job calldata job) external nonReentrant {
        _checkRecord(jobId, job);
        _requireState(jobId, job.terms, JobState.Posted);
        address client = _client(job);
        if (msg.sender != client) revert MarketNotJobClient(jobId, client, msg.sender);
        uint256 refundNtk = _payment(job);
        delete _jobDigests[jobId];
        emit JobCancelled(jobId, client, refundNtk);
        _token.safeTransfer(client, refundNtk);
    }

    /// @inheritdoc IComputeMarket
    function expireJob(uint256 jobId, Job calldata job) external nonReentrant {
        _checkRecord(jobId, job);
        uint256 terms = job.terms;
        JobState state = JobState(uint8(terms));
        address client = _client(job);
        uint256 paymentNtk = _payment(job);
        uint256 providerAndCollateral = job.providerAndCollateral;
        address provider = address(uint160(providerAndCollateral));
        uint96 collateralNtk = uint96(providerAndCollateral >> _HIGH);
        if (state == JobState.Posted) {
            _requireDue(jobId, uint40(terms >> _ACCEPT_BY));
            delete _jobDigests[jobId];
            emit JobExpired(jobId, client, paymentNtk);
            _token.safeTransfer(client, paymentNtk);
        } else if (state == JobState.Accepted) {
            _requireDue(jobId, uint40(terms >> _DELIVER_BY));
            delete _jobDigests[jobId];
            (uint256 compensationNtk, uint256 burnNtk) = _slashSplit(collateralNtk);
            emit JobDefaulted(jobId, provider, paymentNtk + compensationNtk, compensationNtk, burnNtk);
            _token.safeTransfer(client, paymentNtk + compensationNtk);
            if (burnNtk != 0) ERC20Burnable(address(_token)).burn(burnNtk);
        } else {
            // A current record is Posted, Accepted or Submitted: ended jobs have no digest.
            _requireDue(jobId, uint40(terms >> _VERDICT_BY));
            delete _jobDigests[jobId];
            _providers[provider].stakeNtk += collateralNtk;
            emit JobLapsed(jobId, provider, paymentNtk, collateralNtk);
            _token.safeTransfer(client, paymentNtk);
        }
    }

    /// @inheritdoc IComputeMarket
    function fixChallengeSeed(uint256 jobId, Job calldata job) external {
        if (_randaoDelay != 0) revert MarketRandaoSeedsOn();
        _checkRecord(jobId, job);
        uint256 terms = job.terms;
        _requireState(jobId, terms, JobState.Submitted);
        bytes32 fixedSeed = _fixedSeeds[jobId];
        if (fixedSeed != bytes32(0)) revert MarketChallengeSeedAlreadyFixed(jobId, fixedSeed);
        uint256 seedBlock = uint40(terms >> _SEED_BLOCK);
        if (block.number <= seedBlock) revert MarketChallengeSeedPending(jobId, seedBlock);
        bytes32 seed = Blockhash.blockHash(seedBlock);
        // Never a second draw: a seed out of reach (older than the EIP-2935 window) is lost for
        // good, and the job can only lapse. Oracles fix seeds long before that.
        if (seed == bytes32(0)) revert MarketChallengeSeedUnavailable(jobId, seedBlock);
        _fixedSeeds[jobId] = seed;
        emit ChallengeSeedFixed(jobId, seedBlock, seed);
    }

    // ================================================================ governance

    /// @inheritdoc IComputeMarket
    function addOracle(address oracle) external onlyOwner {
        _addOracle(oracle, _nextOracleEpoch());
        _checkThreshold(_threshold);
    }

    /// @inheritdoc IComputeMarket
    function removeOracle(address oracle) external onlyOwner {
        _removeOracle(oracle, _nextOracleEpoch());
        _checkThreshold(_threshold);
    }

    /// @inheritdoc IComputeMarket
    function setThreshold(uint256 newThreshold) external onlyOwner {
        _setThreshold(newThreshold);
    }

    /// @inheritdoc IComputeMarket
    function updateOracles(
        address[] calldata added,
        address[] calldata removed,
        uint256 newThreshold
    ) external onlyOwner {
        uint256 epoch = _nextOracleEpoch();
        for (uint256 i; i < removed.length; ++i) {
            _removeOracle(removed[i], epoch);
        }
        for (uint256 i; i < added.length; ++i) {
            _addOracle(added[i], epoch);
        }
        _setThreshold(newThreshold);
    }

    /// @inheritdoc IComputeMarket
    function setFeeBps(uint256 newFeeBps) external onlyOwner {
        _setFeeBps(newFeeBps);
    }

    /// @inheritdoc IComputeMarket
    function withdrawFees(address treasury) external onlyOwner nonReentrant {
        if (treasury == address(0)) revert MarketZeroAddress();
        uint256 amountNtk = _feesNtk;
        if (amountNtk == 0) revert MarketNothingToWithdraw(treasury);
        _feesNtk = 0;
        emit FeesWithdrawn(treasury, amountNtk);
        _token.safeTransfer(treasury, amountNtk);
    }

    // ================================================================ views

    /// @inheritdoc IComputeMarket
    function token() external view returns (address) {
        return address(_token);
    }

    /// @inheritdoc IComputeMarket
    function unbondingDelay() external view returns (uint256) {
        return _unbondingDelay;
    }

    /// @inheritdoc IComputeMarket
    function jobDigest(uint256 jobId) external view returns (bytes32) {
        return _jobDigests[jobId];
    }

    /// @inheritdoc IComputeMarket
    function hashJob(Job calldata job) external pure returns (bytes32) {
        return _digest(job);
    }

    /// @inheritdoc IComputeMarket
    function nextJobId() external view returns (uint256) {
        return _nextJobId;
    }

    /// @inheritdoc IComputeMarket
    function getProvider(address provider) external view returns (Provider memory) {
        return _providers[provider];
    }

    /// @inheritdoc IComputeMarket
    function providerMetadataURI(address provider) external view returns (string memory) {
        return _metadataURIs[provider];
    }

    /// @inheritdoc IComputeMarket
    function isOracle(address account) external view returns (bool) {
        return _oracles.contains(account);
    }

    /// @inheritdoc IComputeMarket
    function isEpochOracle(uint256 epoch, address account) external view returns (bool) {
        return _servesEpoch(account, epoch);
    }

    /// @inheritdoc IComputeMarket
    function oracleEpoch() external view returns (uint256) {
        return _oracleEpoch;
    }

    /// @inheritdoc IComputeMarket
    function minVerdictWindow() external view returns (uint256) {
        return _minVerdictWindow;
    }

    /// @inheritdoc IComputeMarket
    function minimumCollateral(
        uint256 paymentNtk,
        uint256 shardCount,
        uint256 challengeCount
    ) public pure returns (uint256) {
        if (challengeCount == 0 || challengeCount > shardCount) {
            revert MarketInvalidShardCounts(shardCount, challengeCount);
        }
        // Faking one shard of N is caught with probability d = k/N. With outside value V = P and
        // compute cost C <= P the fake gains (1/N)C + (1 - d)V - d(P + S) <= 0 only if
        // S >= P(N + 1 - 2k)/k; strictly negative needs one more wei (docs/proofs.md). Never
        // zero: faking every shard is always caught, but at S = 0 and C = P it breaks even.
        if (shardCount + 1 < 2 * challengeCount) return 1;
        return Math.mulDiv(paymentNtk, shardCount + 1 - 2 * challengeCount, challengeCount) + 1;
    }

    /// @inheritdoc IComputeMarket
    function oracles() external view returns (address[] memory) {
        return _oracles.values();
    }

    /// @inheritdoc IComputeMarket
    function threshold() external view returns (uint256) {
        return _threshold;
    }

    /// @inheritdoc IComputeMarket
    function feeBps() external view returns (uint256) {
        return _feeBps;
    }

    /// @inheritdoc IComputeMarket
    function feesNtk() external view returns (uint256) {
        return _feesNtk;
    }

    /// @inheritdoc IComputeMarket
    function randaoDelay() external view returns (uint256) {
        return _randaoDelay;
    }

    /// @inheritdoc IComputeMarket
    function randaoRecorder() external view returns (IRandaoRecorder) {
        return _randaoRecorder;
    }

    /// @inheritdoc IComputeMarket
    function challengeSeed(uint256 jobId, uint256 seedBlock) public view returns (bytes32) {
        if (block.number <= seedBlock) revert MarketChallengeSeedPending(jobId, seedBlock);
        return _seedOf(jobId, seedBlock);
    }

    /// @inheritdoc IComputeMarket
    function challengedShards(uint256 jobId, Job calldata job) external view returns (uint256[] memory) {
        uint256 terms = job.terms;
        uint256 seedBlock = uint40(terms >> _SEED_BLOCK);
        if (job.resultRoot == bytes32(0) || seedBlock == 0) {
            revert MarketJobWrongState(jobId, JobState(uint8(terms)));
        }
        return
            ChallengeDerivation.derive(
                challengeSeed(jobId, seedBlock),
                jobId,
                uint24(terms >> _SHARD_COUNT),
                uint16(terms >> _CHALLENGE_COUNT)
            );
    }

    // ================================================================ internal

    /// @dev Pulls `amountNtk` from the caller, first trying its EIP-2612 permit when
    /// `permitDeadline` is not zero.
    function _pullPayment(uint256 amountNtk, uint256 permitDeadline, uint8 v, bytes32 r, bytes32 s) private {
        if (permitDeadline != 0) {
            // A front-runner may have spent the permit already; the allowance it set still
            // serves, and transferFrom below fails with the token's own error if it does not.
            // solhint-disable no-empty-blocks
            try
                IERC20Permit(address(_token)).permit(msg.sender, address(this), amountNtk, permitDeadline, v, r, s)
            {} catch {}
            // solhint-enable no-empty-blocks
        }
        _token.safeTransferFrom(msg.sender, address(this), amountNtk);
    }

    /// @dev Locks `collateralNtk` of a registered provider's free stake.
    function _lockCollateral(address account, uint96 collateralNtk) private {
        Provider storage provider = _registered(account);
        uint96 stakeNtk = provider.stakeNtk;
        if (stakeNtk < collateralNtk) revert MarketInsufficientStake(account, stakeNtk, collateralNtk);
        // Cannot underflow: checked just above.
        unchecked {
            provider.stakeNtk = stakeNtk - collateralNtk;
        }
    }

    /// @dev Validates a request, stores the job's digest and emits JobPosted. With an
    /// `acceptance` (the provider's EIP-712 signature over the accepted record) the job starts
    /// Accepted: the provider's collateral is locked and JobAccepted follows. The caller pulls
    /// payment.
    function _postJob(JobRequest calldata request, bytes calldata acceptance) private returns (uint256 jobId) {
        _validateRequest(request);
        jobId = _nextJobId;
        // Cannot overflow: one id per transaction would take longer than the chain will live.
        unchecked {
            _nextJobId = uint64(jobId + 1);
        }
        // The casts are safe: `_validateRequest` bounds the deadlines (verdictBy, the largest,
        // is at most a year from now) and both counts; the threshold is at most MAX_ORACLES.
        uint256 terms =
            uint256(JobState.Posted) |
                (uint256(uint40(request.acceptBy)) << _ACCEPT_BY) |
                (uint256(uint40(request.deliverBy)) << _DELIVER_BY) |
                (uint256(uint40(request.verdictBy)) << _VERDICT_BY) |
                (uint256(uint24(request.shardCount)) << _SHARD_COUNT) |
                (uint256(uint16(request.challengeCount)) << _CHALLENGE_COUNT) |
                (uint256(_feeBps) << _FEE_BPS) |
                (uint256(_oracleEpoch) << _ORACLE_EPOCH) |
                (uint256(uint8(_threshold)) << _THRESHOLD);
        bool accepted = acceptance.length != 0;
        if (accepted) terms = _withState(terms, JobState.Accepted);
        Job memory job = Job(
            (uint256(request.paymentNtk) << _HIGH) | uint160(msg.sender),
            (uint256(request.collateralNtk) << _HIGH) | uint160(request.provider),
            terms,
            request.specHash,
            bytes32(0)
        );
        if (accepted) {
            bytes32 structHash = keccak256(
                abi.encode(ACCEPTANCE_TYPEHASH, job.clientAndPayment, job.providerAndCollateral, terms, job.specHash)
            );
            address signer = ECDSA.recoverCalldata(_hashTypedDataV4(structHash), acceptance);
            if (signer != request.provider) revert MarketAcceptanceNotByProvider(request.provider, signer);
            _lockCollateral(request.provider, request.collateralNtk);
        }
        _storeRecord(jobId, job.clientAndPayment, job.providerAndCollateral, terms, request.specHash, bytes32(0));
        emit JobPosted(jobId, msg.sender, request.provider, job, request.specURI);
        if (accepted) emit JobAccepted(jobId, request.provider, request.collateralNtk);
    }

    /// @dev The checks `postJob` makes before storing anything.
    function _validateRequest(JobRequest calldata request) private view {
        if (request.paymentNtk == 0) revert MarketZeroAmount();
        if (request.specHash == bytes32(0)) revert MarketZeroSpecHash();
        {
            uint256 shardCount = request.shardCount;
            uint256 challengeCount = request.challengeCount;
            if (
                challengeCount == 0 ||
                challengeCount > shardCount ||
                challengeCount > MAX_CHALLENGE_COUNT ||
                shardCount > MAX_SHARD_COUNT
            ) revert MarketInvalidShardCounts(shardCount, challengeCount);
            uint256 requiredNtk = minimumCollateral(request.paymentNtk, shardCount, challengeCount);
            if (request.collateralNtk < requiredNtk) revert MarketCollateralTooLow(requiredNtk, request.collateralNtk);
        }
        {
            uint256 acceptBy = request.acceptBy;
            uint256 deliverBy = request.deliverBy;
            uint256 verdictBy = request.verdictBy;
            if (
                acceptBy < block.timestamp ||
                deliverBy <= acceptBy ||
                verdictBy <= deliverBy ||
                verdictBy > block.timestamp + MAX_JOB_DURATION
            ) revert MarketInvalidDeadlines(block.timestamp, acceptBy, deliverBy, verdictBy);
            // Cannot underflow: verdictBy > deliverBy was checked just above.
            unchecked {
                if (verdictBy - deliverBy < _minVerdictWindow) {
                    revert MarketVerdictWindowTooShort(verdictBy - deliverBy, _minVerdictWindow);
                }
            }
        }
    }

    /// @dev Checks that `job` is the current record of a job that awaits a verdict that may be
    /// given now, ends the job (its digest is cleared) and emits its event. A paid job's credit
    /// (collateral back to free stake, net payment to earnings) accumulates in `credit` and is
    /// written by `_flushCredit` once per run of consecutive jobs of one provider. Tokens move
    /// later, after the quorum check.
    /// @return structHash The EIP-712 struct hash of Verdict(jobId, record's root, seed, accepted).
    /// @return feeNtk The protocol fee to add to the pot.
    /// @return burnNtk Collateral to burn (rejections only).
    function _settleEffects(
        uint256 jobId,
        Job calldata job,
        bool accepted,
        Credit memory credit,
        Quorum memory quorum
    ) private returns (bytes32 structHash, uint256 feeNtk, uint256 burnNtk) {
        _checkRecord(jobId, job);
        uint256 terms = job.terms;
        _requireState(jobId, terms, JobState.Submitted);
        {
            uint256 verdictBy = uint40(terms >> _VERDICT_BY);
            if (block.timestamp > verdictBy) revert MarketDeadlinePassed(jobId, verdictBy, block.timestamp);
        }
        uint256 seedBlock = uint40(terms >> _SEED_BLOCK);
        if (block.number <= seedBlock) revert MarketChallengeSeedPending(jobId, seedBlock);
        {
            uint256 epoch = uint24(terms >> _ORACLE_EPOCH);
            if (quorum.epoch == 0) {
                quorum.epoch = epoch;
            } else if (epoch != quorum.epoch) {
                revert MarketBatchEpochMismatch(jobId, epoch, quorum.epoch);
            }
            uint256 required = terms >> _THRESHOLD;
            if (required > quorum.required) quorum.required = required;
        }
        delete _jobDigests[jobId];
        // The verdict is bound to the one challenge draw it judged.
        structHash = _verdictStructHash(jobId, job.resultRoot, _seedOf(jobId, seedBlock), accepted);
        (feeNtk, burnNtk) = _applyVerdict(jobId, job, uint16(terms >> _FEE_BPS), accepted, credit);
    }

    /// @dev Emits a settled job's event; a paid job's credit goes to `credit`.
    /// @return feeNtk The protocol fee to add to the pot.
    /// @return burnNtk Collateral to burn (rejections only).
    function _applyVerdict(
        uint256 jobId,
        Job calldata job,
        uint256 jobFeeBps,
        bool accepted,
        Credit memory credit
    ) private returns (uint256 feeNtk, uint256 burnNtk) {
        uint256 providerAndCollateral = job.providerAndCollateral;
        address provider = address(uint160(providerAndCollateral));
        uint256 collateralNtk = providerAndCollateral >> _HIGH;
        uint256 paymentNtk = _payment(job);
        if (accepted) {
            uint256 earnedNtk;
            // Cannot overflow: payment < 2^96 and feeBps < 2^16 (the record's field widths).
            // Cannot underflow: feeBps <= MAX_FEE_BPS < _BPS, so the fee is below the payment.
            // Cannot overflow: the sums are NTK held by this contract.
            unchecked {
                feeNtk = (paymentNtk * jobFeeBps + _BPS - 1) / _BPS; // rounded up
                earnedNtk = paymentNtk - feeNtk;
                if (provider != credit.provider) {
                    _flushCredit(credit);
                    credit.provider = provider;
                }
                credit.stakeNtk += collateralNtk;
                credit.earnedNtk += earnedNtk;
            }
            emit JobPaid(jobId, provider, earnedNtk, feeNtk);
        } else {
            uint256 compensationNtk;
            (compensationNtk, burnNtk) = _slashSplit(collateralNtk);
            emit JobRejected(jobId, provider, paymentNtk + compensationNtk, compensationNtk, burnNtk);
        }
    }

    /// @dev hashStruct(Verdict) = keccak256(abi.encode(VERDICT_TYPEHASH, jobId, resultRoot,
    /// seed, accepted)), hashed in scratch memory past the free pointer (nothing allocated, so
    /// a batch's memory does not grow with each job).
    function _verdictStructHash(
        uint256 jobId,
        bytes32 resultRoot,
        bytes32 seed,
        bool accepted
    ) private pure returns (bytes32 structHash) {
        bytes32 typeHash = VERDICT_TYPEHASH;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, typeHash)
            mstore(add(ptr, 0x20), jobId)
            mstore(add(ptr, 0x40), resultRoot)
            mstore(add(ptr, 0x60), seed)
            mstore(add(ptr, 0x80), accepted)
            structHash := keccak256(ptr, 0xa0)
        }
    }

    /// @dev Writes a provider's accumulated settlement credit and clears it: one read and one
    /// write of the account's first slot (stakeNtk is bits 0-95, earnedNtk bits 96-191).
    function _flushCredit(Credit memory credit) private {
        if (credit.provider == address(0)) return;
        Provider storage account = _providers[credit.provider];
        uint256 word;
        assembly ("memory-safe") {
            word := sload(account.slot)
        }
        uint256 stakeNtk = uint96(word) + credit.stakeNtk;
        uint256 earnedNtk = uint96(word >> 96) + credit.earnedNtk;
        if (stakeNtk > type(uint96).max) revert SafeCast.SafeCastOverflowedUintDowncast(96, stakeNtk);
        if (earnedNtk > type(uint96).max) revert SafeCast.SafeCastOverflowedUintDowncast(96, earnedNtk);
        word = (word & ~uint256(type(uint192).max)) | stakeNtk | (earnedNtk << 96);
        assembly ("memory-safe") {
            sstore(account.slot, word)
        }
        credit.stakeNtk = 0;
        credit.earnedNtk = 0;
    }

    /// @dev What a rejected job's client gets: the payment plus the compensation share.
    function _rejectRefund(Job calldata job) private pure returns (uint256) {
        (uint256 compensationNtk, ) = _slashSplit(job.providerAndCollateral >> _HIGH);
        return _payment(job) + compensationNtk;
    }

    /// @dev Reverts unless `signatures` are at least `quorum.required` signatures of `digest`
    /// by distinct oracles of oracle epoch `quorum.epoch`, in ascending address order.
    /// ECDSA.recoverCalldata rejects malformed and malleable (high-s) signatures with
    /// OpenZeppelin's ECDSA errors.
    function _requireQuorum(bytes32 digest, bytes[] calldata signatures, Quorum memory quorum) private view {
        uint256 epoch = quorum.epoch;
        uint256 required = quorum.required;
        uint256 count = signatures.length;
        if (count < required) revert MarketQuorumNotReached(count, required);
        address previous = address(0);
        for (uint256 i; i < count; ++i) {
            address signer = ECDSA.recoverCalldata(digest, signatures[i]);
            if (signer == previous) revert MarketDuplicateSigner(signer);
            if (signer < previous) revert MarketSignersNotAscending(previous, signer);
            if (!_servesEpoch(signer, epoch)) revert MarketSignerNotOracle(signer);
            previous = signer;
        }
    }

    /// @dev Whether `account` served as an oracle in oracle epoch `epoch`.
    function _servesEpoch(address account, uint256 epoch) private view returns (bool) {
        OracleTerm memory term = _oracleTerms[account];
        uint256 added = term.addedEpoch;
        uint256 removed = term.removedEpoch;
        return added != 0 && added <= epoch && (removed == 0 || epoch < removed);
    }

    /// @dev The challenge seed of a submitted job whose seed block is mined: with RANDAO seeds,
    /// the seed block's recorded mix; else the block hash while it is in reach, else the
    /// stored one; reverts if there is none.
    function _seedOf(uint256 jobId, uint256 seedBlock) private view returns (bytes32 seed) {
        if (_randaoDelay != 0) {
            seed = _randaoRecorder.mixOf(seedBlock);
            if (seed == bytes32(0)) revert MarketRandaoNotRecorded(jobId, seedBlock);
            return seed;
        }
        seed = Blockhash.blockHash(seedBlock);
        if (seed == bytes32(0)) {
            seed = _fixedSeeds[jobId];
            if (seed == bytes32(0)) revert MarketChallengeSeedUnavailable(jobId, seedBlock);
        }
    }

    /// @dev EIP-712 hashStruct of VerdictBatch: an array of structs is encoded as the keccak256
    /// of its members' struct hashes, concatenated.
    function _batchStructHash(bytes32[] memory structHashes) private pure returns (bytes32) {
        bytes32 verdictsHash;
        assembly ("memory-safe") {
            verdictsHash := keccak256(add(structHashes, 0x20), mul(mload(structHashes), 0x20))
        }
        return keccak256(abi.encode(VERDICT_BATCH_TYPEHASH, verdictsHash));
    }

    /// @dev Collateral split on a fault: compensation to the client (rounded down), the rest burned.
    function _slashSplit(uint256 collateralNtk) private pure returns (uint256 compensationNtk, uint256 burnNtk) {
        // Cannot overflow or underflow: collateral < 2^96 (a record field) and the share < 1.
        unchecked {
            compensationNtk = (collateralNtk * SLASH_TO_CLIENT_BPS) / _BPS;
            burnNtk = collateralNtk - compensationNtk;
        }
    }

    function _requireDue(uint256 jobId, uint256 deadline) private view {
        if (block.timestamp <= deadline) revert MarketDeadlineNotReached(jobId, deadline, block.timestamp);
    }

    /// @dev Reverts unless `job` is the current record of open job `jobId`.
    function _checkRecord(uint256 jobId, Job calldata job) private view {
        bytes32 stored = _jobDigests[jobId];
        if (stored == bytes32(0)) revert MarketJobNotFound(jobId);
        if (stored != _digest(job)) revert MarketJobRecordMismatch(jobId);
    }

    /// @dev Stores the digest of the record (a, b, c, d, e): keccak256(abi.encode(Job(a, b, c,
    /// d, e))), hashed in scratch memory past the free pointer.
    function _storeRecord(uint256 jobId, uint256 a, uint256 b, uint256 c, bytes32 d, bytes32 e) private {
        bytes32 digest;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, a)
            mstore(add(ptr, 0x20), b)
            mstore(add(ptr, 0x40), c)
            mstore(add(ptr, 0x60), d)
            mstore(add(ptr, 0x80), e)
            digest := keccak256(ptr, 0xa0)
        }
        _jobDigests[jobId] = digest;
    }

    /// @dev keccak256(abi.encode(job)) of a record in calldata (five static words).
    function _digest(Job calldata job) private pure returns (bytes32 digest) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, job, 0xa0)
            digest := keccak256(ptr, 0xa0)
        }
    }

    /// @dev Reverts unless the record's state is `expected`.
    function _requireState(uint256 jobId, uint256 terms, JobState expected) private pure {
        if (uint8(terms) != uint8(expected)) revert MarketJobWrongState(jobId, JobState(uint8(terms)));
    }

    /// @dev `terms` with its state field replaced.
    function _withState(uint256 terms, JobState state) private pure returns (uint256) {
        return (terms & ~uint256(0xff)) | uint256(state);
    }

    function _client(Job calldata job) private pure returns (address) {
        return address(uint160(job.clientAndPayment));
    }

    function _payment(Job calldata job) private pure returns (uint256) {
        return job.clientAndPayment >> _HIGH;
    }

    function _registered(address account) private view returns (Provider storage provider) {
        provider = _providers[account];
        if (!provider.registered) revert MarketProviderNotRegistered(account);
    }

    /// @dev Starts a new oracle epoch and returns it: membership changes apply to jobs posted
    /// from it on.
    function _nextOracleEpoch() private returns (uint256 epoch) {
        epoch = uint256(_oracleEpoch) + 1;
        _oracleEpoch = SafeCast.toUint24(epoch);
    }

    function _addOracle(address oracle, uint256 epoch) private {
        if (oracle == address(0)) revert MarketZeroAddress();
        OracleTerm storage term = _oracleTerms[oracle];
        if (term.removedEpoch != 0) revert MarketOracleRetired(oracle);
        if (!_oracles.add(oracle)) revert MarketOracleAlreadyAdded(oracle);
        uint256 count = _oracles.length();
        if (count > MAX_ORACLES) revert MarketTooManyOracles(count);
        // The cast is safe: `_nextOracleEpoch` produced the epoch through SafeCast.
        term.addedEpoch = uint24(epoch);
        emit OracleAdded(oracle, count, epoch);
    }

    function _removeOracle(address oracle, uint256 epoch) private {
        if (!_oracles.remove(oracle)) revert MarketOracleNotFound(oracle);
        // The cast is safe: `_nextOracleEpoch` produced the epoch through SafeCast.
        _oracleTerms[oracle].removedEpoch = uint24(epoch);
        emit OracleRemoved(oracle, _oracles.length(), epoch);
    }

    function _setThreshold(uint256 threshold_) private {
        _checkThreshold(threshold_);
        emit ThresholdSet(_threshold, threshold_);
        // The cast is safe: the threshold is at most the oracle count, at most MAX_ORACLES.
        _threshold = uint16(threshold_);
    }

    /// @dev More than half of the oracles and at most all of them: two quorums always share an
    /// oracle, so two conflicting verdicts can never both reach one.
    function _checkThreshold(uint256 threshold_) private view {
        uint256 count = _oracles.length();
        if (threshold_ > count || 2 * threshold_ <= count) revert MarketInvalidThreshold(threshold_, count);
    }

    function _setFeeBps(uint256 feeBps_) private {
        if (feeBps_ > MAX_FEE_BPS) revert MarketFeeTooHigh(feeBps_, MAX_FEE_BPS);
        emit FeeSet(_feeBps, feeBps_);
        _feeBps = uint16(feeBps_);
    }
}
