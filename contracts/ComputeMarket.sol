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

/// @title ComputeMarket
/// @notice Provider stake, job escrow, m-of-n EIP-712 oracle verdicts, timeouts and slashing
/// for NTK-paid compute jobs. See IComputeMarket for the lifecycle, the challenge derivation,
/// the verdict types and the accounting identity.
/// @dev Storage is packed: a job is five slots, a provider two (plus its metadata string), and
/// the job counter, fee pot, fee rate and threshold share one slot; the oracle set is an
/// OpenZeppelin EnumerableSet, so off-chain oracles can read all of it (`oracles()`). Every entry
/// point that moves NTK is `nonReentrant` and follows checks, effects, interactions; the one
/// token is fixed at deployment and must be an ERC20Burnable with EIP-2612 permit (NTK).
contract ComputeMarket is IComputeMarket, EIP712, Ownable2Step, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using EnumerableSet for EnumerableSet.AddressSet;

    /// @dev Settlement credit of one provider, summed over consecutive jobs of a batch.
    struct Credit {
        address provider;
        uint256 stakeNtk;
        uint256 earnedNtk;
    }

    // EIP-712 type strings are what they are; both hash at compile time.
    // solhint-disable gas-small-strings
    /// @notice EIP-712 type of a single-job verdict.
    bytes32 public constant VERDICT_TYPEHASH = keccak256("Verdict(uint256 jobId,bytes32 resultRoot,bool accepted)");

    /// @notice EIP-712 type of a batch of verdicts (an array of Verdict structs).
    bytes32 public constant VERDICT_BATCH_TYPEHASH =
        keccak256("VerdictBatch(Verdict[] verdicts)Verdict(uint256 jobId,bytes32 resultRoot,bool accepted)");
    // solhint-enable gas-small-strings

    /// @notice Hard cap on the protocol fee: 10%.
    uint256 public constant MAX_FEE_BPS = 1_000;

    /// @notice Share of slashed collateral paid to the client as compensation (50%); the rest
    /// is burned, so neither party profits from a fault it could stage.
    uint256 public constant SLASH_TO_CLIENT_BPS = 5_000;

    /// @notice Longest time from posting to the verdict deadline: one year.
    uint256 public constant MAX_JOB_DURATION = 365 days;

    /// @notice Most shards one job may challenge.
    uint256 public constant MAX_CHALLENGE_COUNT = 256;

    /// @notice Longest unbonding delay the deployer may choose.
    uint256 public constant MAX_UNBONDING_DELAY = 90 days;

    uint256 private constant _BPS = 10_000;

    IERC20 private immutable _token;
    uint256 private immutable _unbondingDelay;

    mapping(uint256 jobId => Job) private _jobs;
    mapping(address provider => Provider) private _providers;
    mapping(address provider => string) private _metadataURIs;
    mapping(uint256 jobId => bytes32) private _fixedSeeds;
    EnumerableSet.AddressSet private _oracles;

    // One slot: written by every post and every settlement, read by every settlement.
    uint64 private _nextJobId;
    uint96 private _feesNtk;
    uint16 private _feeBps;
    uint16 private _threshold;

    /// @param token_ The NTK token (ERC-20 with permit and burn).
    /// @param owner_ Governs the oracle set, threshold and fee (two-step ownership transfer).
    /// @param unbondingDelay_ Seconds between an unbond request and the withdrawal.
    /// @param feeBps_ Initial protocol fee, at most MAX_FEE_BPS.
    /// @param oracles_ Initial oracle set (distinct, non-zero).
    /// @param threshold_ Initial threshold, 1 <= threshold_ <= oracles_.length.
    constructor(
        IERC20 token_,
        address owner_,
        uint256 unbondingDelay_,
        uint256 feeBps_,
        address[] memory oracles_,
        uint256 threshold_
    ) EIP712("Neurotoken Compute Market", "1") Ownable(owner_) {
        if (address(token_) == address(0)) revert MarketZeroAddress();
        if (unbondingDelay_ > MAX_UNBONDING_DELAY) {
            revert MarketUnbondingDelayTooLong(unbondingDelay_, MAX_UNBONDING_DELAY);
        }
        _token = token_;
        _unbondingDelay = unbondingDelay_;
        _nextJobId = 1;
        _setFeeBps(feeBps_);
        for (uint256 i; i < oracles_.length; ++i) {
            _addOracle(oracles_[i]);
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
        jobId = _postJob(request);
        _token.safeTransferFrom(msg.sender, address(this), request.paymentNtk);
    }

    /// @inheritdoc IComputeMarket
    function postJobWithPermit(JobRequest calldata request, uint256 permitDeadline, uint8 v, bytes32 r, bytes32 s)
        external
        nonReentrant
        returns (uint256 jobId)
    {
        jobId = _postJob(request);
        // A front-runner may have spent the permit already; the allowance it set still serves,
        // and transferFrom below fails with the token's own error if it does not.
        // solhint-disable no-empty-blocks
        try IERC20Permit(address(_token)).permit(
            msg.sender, address(this), request.paymentNtk, permitDeadline, v, r, s
        ) {} catch {}
        // solhint-enable no-empty-blocks
        _token.safeTransferFrom(msg.sender, address(this), request.paymentNtk);
    }

    /// @inheritdoc IComputeMarket
    function acceptJob(uint256 jobId) external {
        Job storage job = _existingJob(jobId);
        if (job.state != JobState.Posted) revert MarketJobWrongState(jobId, job.state);
        if (block.timestamp > job.acceptBy) revert MarketDeadlinePassed(jobId, job.acceptBy, block.timestamp);
        address chosen = job.provider;
        if (chosen != address(0) && chosen != msg.sender) revert MarketNotChosenProvider(jobId, chosen, msg.sender);
        Provider storage provider = _registered(msg.sender);
        uint96 collateralNtk = job.collateralNtk;
        uint96 stakeNtk = provider.stakeNtk;
        if (stakeNtk < collateralNtk) revert MarketInsufficientStake(msg.sender, stakeNtk, collateralNtk);
        // Cannot underflow: checked just above.
        unchecked {
            provider.stakeNtk = stakeNtk - collateralNtk;
        }
        job.provider = msg.sender;
        job.state = JobState.Accepted;
        emit JobAccepted(jobId, msg.sender, collateralNtk);
    }

    /// @inheritdoc IComputeMarket
    function submitResult(uint256 jobId, bytes32 resultRoot, uint256 shardCount, string calldata bundleURI)
        external
    {
        Job storage job = _existingJob(jobId);
        if (job.state != JobState.Accepted) revert MarketJobWrongState(jobId, job.state);
        address provider = job.provider;
        if (msg.sender != provider) revert MarketNotJobProvider(jobId, provider, msg.sender);
        if (block.timestamp > job.deliverBy) revert MarketDeadlinePassed(jobId, job.deliverBy, block.timestamp);
        if (resultRoot == bytes32(0)) revert MarketZeroResultRoot(jobId);
        if (shardCount != job.shardCount) revert MarketShardCountMismatch(jobId, job.shardCount, shardCount);
        uint256 seedBlock = block.number + 1;
        job.resultRoot = resultRoot;
        job.seedBlock = SafeCast.toUint40(seedBlock);
        job.state = JobState.Submitted;
        emit ResultSubmitted(jobId, provider, resultRoot, shardCount, seedBlock, bundleURI);
    }

    /// @inheritdoc IComputeMarket
    function settle(uint256 jobId, bool accepted, bytes[] calldata signatures) external nonReentrant {
        Credit memory credit = Credit(address(0), 0, 0);
        (bytes32 structHash, uint256 feeNtk, uint256 burnNtk) = _settleEffects(jobId, accepted, credit);
        _flushCredit(credit);
        _requireQuorum(_hashTypedDataV4(structHash), signatures);
        if (feeNtk != 0) _feesNtk += SafeCast.toUint96(feeNtk);
        // Interactions: only a rejection moves tokens now (earnings are withdrawn by the provider).
        if (!accepted) _refundRejected(jobId, burnNtk);
    }

    /// @inheritdoc IComputeMarket
    function settleBatch(BatchEntry[] calldata entries, bytes[] calldata signatures) external nonReentrant {
        uint256 count = entries.length;
        if (count == 0) revert MarketEmptyBatch();
        bytes32[] memory structHashes = new bytes32[](count);
        Credit memory credit = Credit(address(0), 0, 0);
        uint256 feeNtk = 0;
        uint256 burnNtk = 0;
        bool anyRejected = false;
        for (uint256 i; i < count; ++i) {
            BatchEntry calldata entry = entries[i];
            (bytes32 structHash, uint256 jobFeeNtk, uint256 jobBurnNtk) =
                _settleEffects(entry.jobId, entry.accepted, credit);
            structHashes[i] = structHash;
            // Cannot overflow: each term is part of an NTK amount held by this contract.
            unchecked {
                feeNtk += jobFeeNtk;
                burnNtk += jobBurnNtk;
            }
            anyRejected = anyRejected || !entry.accepted;
        }
        _flushCredit(credit);
        _requireQuorum(_hashTypedDataV4(_batchStructHash(structHashes)), signatures);
        if (feeNtk != 0) _feesNtk += SafeCast.toUint96(feeNtk);
        if (anyRejected) {
            for (uint256 i; i < count; ++i) {
                uint256 jobId = entries[i].jobId;
                if (!entries[i].accepted) _token.safeTransfer(_jobs[jobId].client, _rejectRefund(jobId));
            }
            if (burnNtk != 0) ERC20Burnable(address(_token)).burn(burnNtk);
        }
    }

    /// @inheritdoc IComputeMarket
    function cancelJob(uint256 jobId) external nonReentrant {
        Job storage job = _existingJob(jobId);
        if (job.state != JobState.Posted) revert MarketJobWrongState(jobId, job.state);
        address client = job.client;
        if (msg.sender != client) revert MarketNotJobClient(jobId, client, msg.sender);
        uint256 refundNtk = job.paymentNtk;
        job.state = JobState.Cancelled;
        emit JobCancelled(jobId, client, refundNtk);
        _token.safeTransfer(client, refundNtk);
    }

    /// @inheritdoc IComputeMarket
    function expireJob(uint256 jobId) external nonReentrant {
        Job storage job = _existingJob(jobId);
        JobState state = job.state;
        address client = job.client;
        uint256 paymentNtk = job.paymentNtk;
        if (state == JobState.Posted) {
            _requireDue(jobId, job.acceptBy);
            job.state = JobState.Expired;
            emit JobExpired(jobId, client, paymentNtk);
            _token.safeTransfer(client, paymentNtk);
        } else if (state == JobState.Accepted) {
            _requireDue(jobId, job.deliverBy);
            job.state = JobState.Defaulted;
            (uint256 compensationNtk, uint256 burnNtk) = _slashSplit(job.collateralNtk);
            emit JobDefaulted(jobId, job.provider, paymentNtk + compensationNtk, compensationNtk, burnNtk);
            _token.safeTransfer(client, paymentNtk + compensationNtk);
            if (burnNtk != 0) ERC20Burnable(address(_token)).burn(burnNtk);
        } else if (state == JobState.Submitted) {
            _requireDue(jobId, job.verdictBy);
            job.state = JobState.Lapsed;
            address provider = job.provider;
            uint96 collateralNtk = job.collateralNtk;
            _providers[provider].stakeNtk += collateralNtk;
            emit JobLapsed(jobId, provider, paymentNtk, collateralNtk);
            _token.safeTransfer(client, paymentNtk);
        } else {
            revert MarketJobWrongState(jobId, state);
        }
    }

    /// @inheritdoc IComputeMarket
    function fixChallengeSeed(uint256 jobId) external {
        Job storage job = _existingJob(jobId);
        if (job.state != JobState.Submitted) revert MarketJobWrongState(jobId, job.state);
        bytes32 fixedSeed = _fixedSeeds[jobId];
        if (fixedSeed != bytes32(0)) revert MarketChallengeSeedAlreadyFixed(jobId, fixedSeed);
        uint256 seedBlock = job.seedBlock;
        if (block.number <= seedBlock) revert MarketChallengeSeedPending(jobId, seedBlock);
        bytes32 seed = Blockhash.blockHash(seedBlock);
        if (seed != bytes32(0)) {
            _fixedSeeds[jobId] = seed;
            emit ChallengeSeedFixed(jobId, seedBlock, seed);
        } else {
            // Out of reach (older than the EIP-2935 window): nobody can know the next block's
            // hash now, so it serves as well as the first one did.
            uint256 newSeedBlock = block.number + 1;
            job.seedBlock = SafeCast.toUint40(newSeedBlock);
            emit ChallengeSeedReanchored(jobId, seedBlock, newSeedBlock);
        }
    }

    // ================================================================ governance

    /// @inheritdoc IComputeMarket
    function addOracle(address oracle) external onlyOwner {
        _addOracle(oracle);
    }

    /// @inheritdoc IComputeMarket
    function removeOracle(address oracle) external onlyOwner {
        if (!_oracles.remove(oracle)) revert MarketOracleNotFound(oracle);
        uint256 remaining = _oracles.length();
        if (_threshold > remaining) revert MarketInvalidThreshold(_threshold, remaining);
        emit OracleRemoved(oracle, remaining);
    }

    /// @inheritdoc IComputeMarket
    function setThreshold(uint256 newThreshold) external onlyOwner {
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
    function getJob(uint256 jobId) external view returns (Job memory) {
        return _existingJob(jobId);
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
    function oracleCount() external view returns (uint256) {
        return _oracles.length();
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
    function challengeSeed(uint256 jobId) public view returns (bytes32) {
        Job storage job = _existingJob(jobId);
        if (job.resultRoot == bytes32(0)) revert MarketJobWrongState(jobId, job.state);
        bytes32 fixedSeed = _fixedSeeds[jobId];
        if (fixedSeed != bytes32(0)) return fixedSeed;
        uint256 seedBlock = job.seedBlock;
        if (block.number <= seedBlock) revert MarketChallengeSeedPending(jobId, seedBlock);
        bytes32 seed = Blockhash.blockHash(seedBlock);
        if (seed == bytes32(0)) revert MarketChallengeSeedUnavailable(jobId, seedBlock);
        return seed;
    }

    /// @inheritdoc IComputeMarket
    function challengedShards(uint256 jobId) external view returns (uint256[] memory) {
        Job storage job = _jobs[jobId];
        return _deriveChallenge(challengeSeed(jobId), jobId, job.shardCount, job.challengeCount);
    }

    /// @inheritdoc IComputeMarket
    function deriveChallengedShards(bytes32 seed, uint256 jobId, uint256 shardCount, uint256 challengeCount)
        external
        pure
        returns (uint256[] memory)
    {
        if (shardCount == 0 || challengeCount == 0 || challengeCount > shardCount) {
            revert MarketInvalidShardCounts(shardCount, challengeCount);
        }
        return _deriveChallenge(seed, jobId, shardCount, challengeCount);
    }

    /// @inheritdoc IComputeMarket
    function verdictDigest(uint256 jobId, bytes32 resultRoot, bool accepted) external view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(VERDICT_TYPEHASH, jobId, resultRoot, accepted)));
    }

    /// @inheritdoc IComputeMarket
    function batchDigest(BatchEntry[] calldata entries) external view returns (bytes32) {
        bytes32[] memory structHashes = new bytes32[](entries.length);
        for (uint256 i; i < entries.length; ++i) {
            uint256 jobId = entries[i].jobId;
            structHashes[i] = keccak256(
                abi.encode(VERDICT_TYPEHASH, jobId, _existingJob(jobId).resultRoot, entries[i].accepted)
            );
        }
        return _hashTypedDataV4(_batchStructHash(structHashes));
    }

    // ================================================================ internal

    /// @dev Validates a request, stores the job and emits JobPosted. The caller pulls payment.
    function _postJob(JobRequest calldata request) private returns (uint256 jobId) {
        _validateRequest(request);
        jobId = _nextJobId;
        // Cannot overflow: one id per transaction would take longer than the chain will live.
        unchecked {
            _nextJobId = uint64(jobId + 1);
        }
        Job storage job = _jobs[jobId];
        job.client = msg.sender;
        job.paymentNtk = request.paymentNtk;
        if (request.provider != address(0) || request.collateralNtk != 0) {
            job.provider = request.provider;
            job.collateralNtk = request.collateralNtk;
        }
        job.specHash = request.specHash;
        job.state = JobState.Posted;
        // The casts are safe: verdictBy (the largest deadline) is at most a year from now.
        job.acceptBy = uint40(request.acceptBy);
        job.deliverBy = uint40(request.deliverBy);
        job.verdictBy = uint40(request.verdictBy);
        job.shardCount = request.shardCount;
        job.challengeCount = request.challengeCount;
        job.feeBps = _feeBps;
        emit JobPosted(
            jobId,
            msg.sender,
            request.provider,
            request.specHash,
            request.specURI,
            request.paymentNtk,
            request.collateralNtk,
            request.shardCount,
            request.challengeCount,
            request.acceptBy,
            request.deliverBy,
            request.verdictBy
        );
    }

    /// @dev The checks `postJob` makes before storing anything.
    function _validateRequest(JobRequest calldata request) private view {
        if (request.paymentNtk == 0) revert MarketZeroAmount();
        if (request.specHash == bytes32(0)) revert MarketZeroSpecHash();
        {
            uint256 shardCount = request.shardCount;
            uint256 challengeCount = request.challengeCount;
            if (challengeCount == 0 || challengeCount > shardCount || challengeCount > MAX_CHALLENGE_COUNT) {
                revert MarketInvalidShardCounts(shardCount, challengeCount);
            }
        }
        {
            uint256 acceptBy = request.acceptBy;
            uint256 deliverBy = request.deliverBy;
            uint256 verdictBy = request.verdictBy;
            if (
                acceptBy < block.timestamp || deliverBy <= acceptBy || verdictBy <= deliverBy
                    || verdictBy > block.timestamp + MAX_JOB_DURATION
            ) revert MarketInvalidDeadlines(block.timestamp, acceptBy, deliverBy, verdictBy);
        }
    }

    /// @dev Checks that `jobId` awaits a verdict that may be given now, applies the verdict to
    /// the job and emits its event. A paid job's credit (collateral back to free stake, net
    /// payment to earnings) accumulates in `credit` and is written by `_flushCredit` once per
    /// run of consecutive jobs of one provider. Tokens move later, after the quorum check.
    /// @return structHash The EIP-712 struct hash of Verdict(jobId, stored root, accepted).
    /// @return feeNtk The protocol fee to add to the pot.
    /// @return burnNtk Collateral to burn (rejections only).
    function _settleEffects(uint256 jobId, bool accepted, Credit memory credit)
        private
        returns (bytes32 structHash, uint256 feeNtk, uint256 burnNtk)
    {
        Job storage job = _jobs[jobId];
        // All reads first, in one straight line, so that each slot is loaded once.
        JobState state = job.state;
        uint256 verdictBy = job.verdictBy;
        uint256 seedBlock = job.seedBlock;
        uint256 jobFeeBps = job.feeBps;
        if (state != JobState.Submitted) {
            if (state == JobState.None) revert MarketJobNotFound(jobId);
            revert MarketJobWrongState(jobId, state);
        }
        if (block.timestamp > verdictBy) revert MarketDeadlinePassed(jobId, verdictBy, block.timestamp);
        if (block.number <= seedBlock) revert MarketChallengeSeedPending(jobId, seedBlock);
        structHash = keccak256(abi.encode(VERDICT_TYPEHASH, jobId, job.resultRoot, accepted));

        address provider = job.provider;
        uint256 collateralNtk = job.collateralNtk;
        uint256 paymentNtk = job.paymentNtk;
        if (accepted) {
            job.state = JobState.Paid;
            feeNtk = Math.mulDiv(paymentNtk, jobFeeBps, _BPS, Math.Rounding.Ceil);
            uint256 earnedNtk;
            // Cannot underflow: feeBps <= MAX_FEE_BPS < _BPS, so the fee is below the payment.
            // Cannot overflow: the sums are NTK held by this contract.
            unchecked {
                earnedNtk = paymentNtk - feeNtk;
                if (provider != credit.provider) {
                    _flushCredit(credit);
                    credit.provider = provider;
                }
                credit.stakeNtk += collateralNtk;
                credit.earnedNtk += earnedNtk;
            }
            emit JobPaid(jobId, provider, earnedNtk, feeNtk, collateralNtk);
        } else {
            job.state = JobState.Rejected;
            uint256 compensationNtk;
            (compensationNtk, burnNtk) = _slashSplit(collateralNtk);
            emit JobRejected(jobId, provider, paymentNtk + compensationNtk, compensationNtk, burnNtk);
        }
    }

    /// @dev Writes a provider's accumulated settlement credit and clears it.
    function _flushCredit(Credit memory credit) private {
        if (credit.provider == address(0)) return;
        Provider storage account = _providers[credit.provider];
        account.stakeNtk += SafeCast.toUint96(credit.stakeNtk);
        account.earnedNtk += SafeCast.toUint96(credit.earnedNtk);
        credit.stakeNtk = 0;
        credit.earnedNtk = 0;
    }

    /// @dev Pays a rejected job's refund to its client and burns `burnNtk`.
    function _refundRejected(uint256 jobId, uint256 burnNtk) private {
        _token.safeTransfer(_jobs[jobId].client, _rejectRefund(jobId));
        if (burnNtk != 0) ERC20Burnable(address(_token)).burn(burnNtk);
    }

    /// @dev What a rejected job's client gets: the payment plus the compensation share.
    function _rejectRefund(uint256 jobId) private view returns (uint256) {
        Job storage job = _jobs[jobId];
        (uint256 compensationNtk,) = _slashSplit(job.collateralNtk);
        return job.paymentNtk + compensationNtk;
    }

    /// @dev Reverts unless `signatures` are at least `_threshold` signatures of `digest` by
    /// distinct current oracles in ascending address order. ECDSA.recoverCalldata rejects
    /// malformed and malleable (high-s) signatures with OpenZeppelin's ECDSA errors.
    function _requireQuorum(bytes32 digest, bytes[] calldata signatures) private view {
        uint256 count = signatures.length;
        uint256 required = _threshold;
        if (count < required) revert MarketQuorumNotReached(count, required);
        address previous = address(0);
        for (uint256 i; i < count; ++i) {
            address signer = ECDSA.recoverCalldata(digest, signatures[i]);
            if (signer == previous) revert MarketDuplicateSigner(signer);
            if (signer < previous) revert MarketSignersNotAscending(previous, signer);
            if (!_oracles.contains(signer)) revert MarketSignerNotOracle(signer);
            previous = signer;
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

    /// @dev The k challenged indices; see IComputeMarket for the derivation.
    function _deriveChallenge(bytes32 seed, uint256 jobId, uint256 shardCount, uint256 challengeCount)
        private
        pure
        returns (uint256[] memory indices)
    {
        indices = new uint256[](challengeCount);
        uint256 found = 0;
        for (uint256 counter; found < challengeCount; ++counter) {
            uint256 index = uint256(keccak256(abi.encode(seed, jobId, counter))) % shardCount;
            bool seen = false;
            for (uint256 j; j < found; ++j) {
                if (indices[j] == index) {
                    seen = true;
                    break;
                }
            }
            if (!seen) {
                indices[found] = index;
                ++found;
            }
        }
    }

    /// @dev Collateral split on a fault: compensation to the client (rounded down), the rest burned.
    function _slashSplit(uint256 collateralNtk) private pure returns (uint256 compensationNtk, uint256 burnNtk) {
        compensationNtk = Math.mulDiv(collateralNtk, SLASH_TO_CLIENT_BPS, _BPS);
        burnNtk = collateralNtk - compensationNtk;
    }

    function _requireDue(uint256 jobId, uint256 deadline) private view {
        if (block.timestamp <= deadline) revert MarketDeadlineNotReached(jobId, deadline, block.timestamp);
    }

    function _existingJob(uint256 jobId) private view returns (Job storage job) {
        job = _jobs[jobId];
        if (job.state == JobState.None) revert MarketJobNotFound(jobId);
    }

    function _registered(address account) private view returns (Provider storage provider) {
        provider = _providers[account];
        if (!provider.registered) revert MarketProviderNotRegistered(account);
    }

    function _addOracle(address oracle) private {
        if (oracle == address(0)) revert MarketZeroAddress();
        if (!_oracles.add(oracle)) revert MarketOracleAlreadyAdded(oracle);
        emit OracleAdded(oracle, _oracles.length());
    }

    function _setThreshold(uint256 threshold_) private {
        uint256 count = _oracles.length();
        if (threshold_ == 0 || threshold_ > count) revert MarketInvalidThreshold(threshold_, count);
        emit ThresholdSet(_threshold, threshold_);
        _threshold = SafeCast.toUint16(threshold_);
    }

    function _setFeeBps(uint256 feeBps_) private {
        if (feeBps_ > MAX_FEE_BPS) revert MarketFeeTooHigh(feeBps_, MAX_FEE_BPS);
        emit FeeSet(_feeBps, feeBps_);
        _feeBps = uint16(feeBps_);
    }
}
