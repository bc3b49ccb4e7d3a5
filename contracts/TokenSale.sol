// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {ERC20Capped} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Capped.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {INeuroToken} from "./interfaces/INeuroToken.sol";
import {ITokenSale} from "./interfaces/ITokenSale.sol";
import {TeamVestingWallet} from "./TeamVestingWallet.sol";

/// @title TokenSale
/// @notice The Neurotoken presale and ICO with post-delivery, soft-cap refunds and a hard cap.
/// See ITokenSale for the terms and the rounding rules.
/// @dev Gas: every term is an immutable; the running totals, the lifecycle state and the pause
/// flag share one storage slot, and each buyer has one slot, so a purchase touches two slots.
/// The sale must hold NeuroToken's MINTER_ROLE before finalization (deploy flow: deploy the
/// token, deploy the sale, grant the role to the sale, renounce the token's admin role). If it
/// cannot mint at finalization the sale fails and buyers are refunded, so no mistake in the
/// token's roles can trap the buyers' ETH.
contract TokenSale is ITokenSale, Ownable2Step, ReentrancyGuardTransient {
    using SafeERC20 for INeuroToken;

    /// @dev The running totals, the lifecycle state and the pause flag: one slot. `primed` is set
    /// at deployment so that the slot is never zero and the first buyer does not pay for creating it.
    struct Totals {
        uint112 weiRaised;
        uint120 tokensSold;
        SaleState state;
        bool paused;
        bool primed;
    }

    uint256 private constant _BPS = 10_000;

    INeuroToken private immutable _TOKEN;
    address payable private immutable _TREASURY;
    address private immutable _TEAM_VESTING;
    uint256 private immutable _NTK_PER_ETH;
    uint256 private immutable _HARD_CAP_TOKENS;
    uint256 private immutable _SOFT_CAP_WEI;
    uint256 private immutable _MIN_CONTRIBUTION_WEI;
    uint256 private immutable _MAX_CONTRIBUTION_WEI;
    bytes32 private immutable _ALLOWLIST_ROOT;
    uint64 private immutable _PRESALE_START;
    uint64 private immutable _WEEK1_START;
    uint64 private immutable _WEEK2_START;
    uint64 private immutable _WEEK3_START;
    uint64 private immutable _FINAL_START;
    uint64 private immutable _ENDS_AT;
    uint16 private immutable _PRESALE_BONUS_BPS;
    uint16 private immutable _WEEK1_BONUS_BPS;
    uint16 private immutable _WEEK2_BONUS_BPS;
    uint16 private immutable _WEEK3_BONUS_BPS;
    uint16 private immutable _FINAL_BONUS_BPS;
    address private immutable _LIQUIDITY_WALLET;
    address private immutable _PARTNERS_WALLET;
    address private immutable _RESEARCHERS_WALLET;
    uint16 private immutable _LIQUIDITY_BPS;
    uint16 private immutable _TEAM_BPS;
    uint16 private immutable _PARTNERS_BPS;
    uint16 private immutable _RESEARCHERS_BPS;
    uint16 private immutable _BUYERS_BPS;
    address private immutable _TEAM_BENEFICIARY;
    uint64 private immutable _TEAM_VESTING_START;
    uint64 private immutable _TEAM_CLIFF_SECONDS;
    uint64 private immutable _TEAM_VESTING_SECONDS;

    Totals private _totals;
    mapping(address buyer => Contribution) private _contributions;

    /// @param terms_ The sale's terms (see ITokenSale.Terms); checked here, fixed for ever.
    /// @param initialOwner May pause and unpause buying, nothing else.
    constructor(Terms memory terms_, address initialOwner) Ownable(initialOwner) {
        _checkTerms(terms_);
        _TOKEN = terms_.token;
        _TREASURY = terms_.treasury;
        _NTK_PER_ETH = terms_.ntkPerEth;
        _HARD_CAP_TOKENS = terms_.hardCapTokens;
        _SOFT_CAP_WEI = terms_.softCapWei;
        _MIN_CONTRIBUTION_WEI = terms_.minContributionWei;
        _MAX_CONTRIBUTION_WEI = terms_.maxContributionWei;
        _ALLOWLIST_ROOT = terms_.allowlistRoot;
        _PRESALE_START = terms_.stageStarts[0];
        _WEEK1_START = terms_.stageStarts[1];
        _WEEK2_START = terms_.stageStarts[2];
        _WEEK3_START = terms_.stageStarts[3];
        _FINAL_START = terms_.stageStarts[4];
        _ENDS_AT = terms_.endsAt;
        _PRESALE_BONUS_BPS = terms_.bonusBps[0];
        _WEEK1_BONUS_BPS = terms_.bonusBps[1];
        _WEEK2_BONUS_BPS = terms_.bonusBps[2];
        _WEEK3_BONUS_BPS = terms_.bonusBps[3];
        _FINAL_BONUS_BPS = terms_.bonusBps[4];
        _LIQUIDITY_WALLET = terms_.liquidityWallet;
        _PARTNERS_WALLET = terms_.partnersWallet;
        _RESEARCHERS_WALLET = terms_.researchersWallet;
        _LIQUIDITY_BPS = terms_.liquidityBps;
        _TEAM_BPS = terms_.teamBps;
        _PARTNERS_BPS = terms_.partnersBps;
        _RESEARCHERS_BPS = terms_.researchersBps;
        _BUYERS_BPS = uint16(_BPS - terms_.liquidityBps - terms_.teamBps - terms_.partnersBps - terms_.researchersBps);
        _TEAM_BENEFICIARY = terms_.teamBeneficiary;
        _TEAM_VESTING_START = terms_.teamVestingStart;
        _TEAM_CLIFF_SECONDS = terms_.teamCliffSeconds;
        _TEAM_VESTING_SECONDS = terms_.teamVestingSeconds;
        _TEAM_VESTING = address(
            new TeamVestingWallet(
                terms_.teamBeneficiary,
                terms_.teamVestingStart,
                terms_.teamVestingSeconds,
                terms_.teamCliffSeconds
            )
        );
        // The largest sale must fit under the token's cap, or finalization could never mint.
        uint256 maxSupply = terms_.hardCapTokens + _sum(allocationsFor(terms_.hardCapTokens));
        uint256 cap = ERC20Capped(address(terms_.token)).cap();
        if (maxSupply > cap) revert SaleSupplyExceedsCap(maxSupply, cap);
        _totals.primed = true;
    }

    /// @inheritdoc ITokenSale
    function buy(bytes32[] calldata allowlistProof) external payable nonReentrant returns (uint256 tokens) {
        // Storage pointers, not memory copies: only the fields that change are written back.
        Totals storage totals = _totals;
        SaleState state_ = totals.state;
        if (state_ != SaleState.Open) revert SaleClosed(state_);
        if (totals.paused) revert SaleBuyingPaused();
        uint256 sold = totals.tokensSold;
        Stage current = stage();
        if (current == Stage.NotStarted) revert SaleNotStarted(_PRESALE_START);
        if (current == Stage.Ended) revert SaleEnded(_ENDS_AT);
        if (current == Stage.Presale) {
            if (!MerkleProof.verifyCalldata(allowlistProof, _ALLOWLIST_ROOT, _leaf(msg.sender))) {
                revert SaleNotAllowlisted(msg.sender);
            }
        }
        if (msg.value < _MIN_CONTRIBUTION_WEI) revert SaleContributionBelowMin(msg.value, _MIN_CONTRIBUTION_WEI);
        // tokensSold never exceeds the hard cap (the partial fill below caps it).
        uint256 left = _HARD_CAP_TOKENS - sold;
        if (left == 0) revert SaleSoldOut();

        uint256 acceptedWei;
        (tokens, acceptedWei) = _quote(current, msg.value, left);

        Contribution storage contribution = _contributions[msg.sender];
        uint256 paidWei = contribution.paidWei + acceptedWei;
        if (paidWei > _MAX_CONTRIBUTION_WEI) {
            revert SaleContributionAboveMax(msg.sender, paidWei, _MAX_CONTRIBUTION_WEI);
        }

        // Effects. paidWei <= max contribution, which the constructor keeps within 128 bits;
        // a buyer's tokens are part of tokensSold <= hard cap, kept within 120 bits.
        contribution.paidWei = uint128(paidWei);
        contribution.tokens = uint120(contribution.tokens + tokens);
        totals.weiRaised = SafeCast.toUint112(totals.weiRaised + acceptedWei);
        totals.tokensSold = uint120(sold + tokens);

        // acceptedWei <= msg.value (see _quote), so the difference cannot underflow.
        uint256 returnedWei;
        unchecked {
            returnedWei = msg.value - acceptedWei;
        }
        emit TokensPurchased(msg.sender, current, acceptedWei, tokens, returnedWei);

        // Interaction: return the ETH beyond the hard cap.
        if (returnedWei != 0) _sendEth(payable(msg.sender), returnedWei);
    }

    /// @inheritdoc ITokenSale
    function finalize() external nonReentrant {
        Totals memory totals = _totals;
        if (totals.state != SaleState.Open) revert SaleAlreadyFinalized(totals.state);
        if (block.timestamp < _ENDS_AT && totals.tokensSold < _HARD_CAP_TOKENS) {
            revert SaleNotFinalizable(_ENDS_AT, _HARD_CAP_TOKENS - totals.tokensSold);
        }
        uint256 sold = totals.tokensSold;
        uint256[4] memory allocations = allocationsFor(sold);
        bool succeeded = totals.weiRaised >= _SOFT_CAP_WEI && _canMint(sold + _sum(allocations));

        // Effects.
        totals.state = succeeded ? SaleState.Succeeded : SaleState.Failed;
        _totals = totals;
        emit SaleFinalized(totals.state, totals.weiRaised, sold);

        // Interactions with the token (trusted: minting) and then the treasury.
        if (succeeded) {
            // The buyers' tokens are minted to the sale and delivered by `claim`, so minting can
            // close now rather than wait for the last claim.
            _TOKEN.mint(address(this), sold);
            _mintAllocation(Allocation.Liquidity, _LIQUIDITY_WALLET, allocations[0]);
            _mintAllocation(Allocation.Team, _TEAM_VESTING, allocations[1]);
            _mintAllocation(Allocation.Partners, _PARTNERS_WALLET, allocations[2]);
            _mintAllocation(Allocation.Researchers, _RESEARCHERS_WALLET, allocations[3]);
            _TOKEN.finishMinting();
            // A treasury that rejects ETH must not block the buyers' claims: the ETH then waits
            // here for `forwardFunds`, which only ever sends it to the treasury.
            uint256 amountWei = address(this).balance;
            (bool sent, ) = _TREASURY.call{value: amountWei}("");
            if (sent) emit FundsForwarded(_TREASURY, amountWei);
            else emit FundsForwardFailed(_TREASURY, amountWei);
        } else if (_isMinter() && !_TOKEN.mintingFinished()) {
            // No token is ever delivered after a failure: close minting for good.
            _TOKEN.finishMinting();
        }
    }

    /// @inheritdoc ITokenSale
    function forwardFunds() external nonReentrant {
        SaleState current = _totals.state;
        if (current != SaleState.Succeeded) revert SaleNotSucceeded(current);
        uint256 amountWei = address(this).balance;
        if (amountWei == 0) revert SaleNothingToForward();
        emit FundsForwarded(_TREASURY, amountWei);
        _sendEth(_TREASURY, amountWei);
    }

    /// @inheritdoc ITokenSale
    function claim(address buyer) external nonReentrant returns (uint256 amount) {
        SaleState current = _totals.state;
        if (current != SaleState.Succeeded) revert SaleNotSucceeded(current);
        Contribution storage contribution = _contributions[buyer];
        amount = contribution.tokens;
        if (amount == 0) revert SaleNothingToClaim(buyer);
        delete _contributions[buyer];
        emit TokensClaimed(buyer, msg.sender, amount);
        _TOKEN.safeTransfer(buyer, amount);
    }

    /// @inheritdoc ITokenSale
    function refund(address buyer) external nonReentrant returns (uint256 amountWei) {
        SaleState current = _totals.state;
        if (current != SaleState.Failed) revert SaleNotFailed(current);
        Contribution storage contribution = _contributions[buyer];
        amountWei = contribution.paidWei;
        if (amountWei == 0) revert SaleNothingToRefund(buyer);
        delete _contributions[buyer];
        emit Refunded(buyer, msg.sender, amountWei);
        _sendEth(payable(buyer), amountWei);
    }

    /// @inheritdoc ITokenSale
    function pause() external onlyOwner {
        _setPaused(true);
        emit BuyingPaused(msg.sender);
    }

    /// @inheritdoc ITokenSale
    function unpause() external onlyOwner {
        _setPaused(false);
        emit BuyingUnpaused(msg.sender);
    }

    /// @inheritdoc ITokenSale
    function terms() external view returns (Terms memory t) {
        t.token = _TOKEN;
        t.treasury = _TREASURY;
        t.ntkPerEth = _NTK_PER_ETH;
        t.hardCapTokens = _HARD_CAP_TOKENS;
        t.softCapWei = _SOFT_CAP_WEI;
        t.minContributionWei = _MIN_CONTRIBUTION_WEI;
        t.maxContributionWei = _MAX_CONTRIBUTION_WEI;
        t.allowlistRoot = _ALLOWLIST_ROOT;
        t.stageStarts = [_PRESALE_START, _WEEK1_START, _WEEK2_START, _WEEK3_START, _FINAL_START];
        t.endsAt = _ENDS_AT;
        t.bonusBps = [_PRESALE_BONUS_BPS, _WEEK1_BONUS_BPS, _WEEK2_BONUS_BPS, _WEEK3_BONUS_BPS, _FINAL_BONUS_BPS];
        t.liquidityWallet = _LIQUIDITY_WALLET;
        t.partnersWallet = _PARTNERS_WALLET;
        t.researchersWallet = _RESEARCHERS_WALLET;
        t.liquidityBps = _LIQUIDITY_BPS;
        t.teamBps = _TEAM_BPS;
        t.partnersBps = _PARTNERS_BPS;
        t.researchersBps = _RESEARCHERS_BPS;
        t.teamBeneficiary = _TEAM_BENEFICIARY;
        t.teamVestingStart = _TEAM_VESTING_START;
        t.teamCliffSeconds = _TEAM_CLIFF_SECONDS;
        t.teamVestingSeconds = _TEAM_VESTING_SECONDS;
    }

    /// @inheritdoc ITokenSale
    function token() external view returns (INeuroToken) {
        return _TOKEN;
    }

    /// @inheritdoc ITokenSale
    function teamVesting() external view returns (address) {
        return _TEAM_VESTING;
    }

    /// @inheritdoc ITokenSale
    function quote(Stage stage_, uint256 sentWei) external view returns (uint256 tokens, uint256 acceptedWei) {
        if (stage_ == Stage.NotStarted || stage_ == Stage.Ended) return (0, 0);
        return _quote(stage_, sentWei, _HARD_CAP_TOKENS - _totals.tokensSold);
    }

    /// @inheritdoc ITokenSale
    function isAllowlisted(address account, bytes32[] calldata proof) external view returns (bool) {
        return MerkleProof.verifyCalldata(proof, _ALLOWLIST_ROOT, _leaf(account));
    }

    /// @inheritdoc ITokenSale
    function contributionOf(address buyer) external view returns (Contribution memory) {
        return _contributions[buyer];
    }

    /// @inheritdoc ITokenSale
    function weiRaised() external view returns (uint256) {
        return _totals.weiRaised;
    }

    /// @inheritdoc ITokenSale
    function tokensSold() external view returns (uint256) {
        return _totals.tokensSold;
    }

    /// @inheritdoc ITokenSale
    function tokensLeft() external view returns (uint256) {
        return _HARD_CAP_TOKENS - _totals.tokensSold;
    }

    /// @inheritdoc ITokenSale
    function state() external view returns (SaleState) {
        return _totals.state;
    }

    /// @inheritdoc ITokenSale
    function paused() external view returns (bool) {
        return _totals.paused;
    }

    /// @inheritdoc ITokenSale
    function softCapReached() external view returns (bool) {
        return _totals.weiRaised >= _SOFT_CAP_WEI;
    }

    /// @inheritdoc ITokenSale
    function stage() public view returns (Stage) {
        uint256 nowTs = block.timestamp;
        if (nowTs >= _ENDS_AT) return Stage.Ended;
        if (nowTs >= _FINAL_START) return Stage.IcoFinal;
        if (nowTs >= _WEEK3_START) return Stage.IcoWeek3;
        if (nowTs >= _WEEK2_START) return Stage.IcoWeek2;
        if (nowTs >= _WEEK1_START) return Stage.IcoWeek1;
        if (nowTs >= _PRESALE_START) return Stage.Presale;
        return Stage.NotStarted;
    }

    /// @inheritdoc ITokenSale
    function bonusBps(Stage stage_) public view returns (uint16) {
        if (stage_ == Stage.Presale) return _PRESALE_BONUS_BPS;
        if (stage_ == Stage.IcoWeek1) return _WEEK1_BONUS_BPS;
        if (stage_ == Stage.IcoWeek2) return _WEEK2_BONUS_BPS;
        if (stage_ == Stage.IcoWeek3) return _WEEK3_BONUS_BPS;
        if (stage_ == Stage.IcoFinal) return _FINAL_BONUS_BPS;
        return 0;
    }

    /// @inheritdoc ITokenSale
    function allocationsFor(uint256 tokensSold_) public view returns (uint256[4] memory amounts) {
        amounts[0] = Math.mulDiv(tokensSold_, _LIQUIDITY_BPS, _BUYERS_BPS);
        amounts[1] = Math.mulDiv(tokensSold_, _TEAM_BPS, _BUYERS_BPS);
        amounts[2] = Math.mulDiv(tokensSold_, _PARTNERS_BPS, _BUYERS_BPS);
        amounts[3] = Math.mulDiv(tokensSold_, _RESEARCHERS_BPS, _BUYERS_BPS);
    }

    /// @dev Tokens for `sentWei` at `stage_`'s bonus, rounded down; capped at `left`, in which
    /// case the ETH kept is the price of `left` tokens rounded up. Always `acceptedWei <= sentWei`:
    /// the cap applies only when `floor(sentWei * price) > left`, so `left * 10_000 / price < sentWei`
    /// and its ceiling is at most `sentWei`.
    function _quote(
        Stage stage_,
        uint256 sentWei,
        uint256 left
    ) private view returns (uint256 tokens, uint256 acceptedWei) {
        uint256 tokensPerWeiBps = _NTK_PER_ETH * (_BPS + bonusBps(stage_));
        tokens = Math.mulDiv(sentWei, tokensPerWeiBps, _BPS);
        acceptedWei = sentWei;
        if (tokens > left) {
            tokens = left;
            acceptedWei = Math.mulDiv(left, _BPS, tokensPerWeiBps, Math.Rounding.Ceil);
        }
    }

    /// @dev Pauses or unpauses buying while the sale is open.
    function _setPaused(bool paused_) private {
        Totals memory totals = _totals;
        if (totals.state != SaleState.Open) revert SaleClosed(totals.state);
        if (totals.paused == paused_) revert SalePauseUnchanged(paused_);
        totals.paused = paused_;
        _totals = totals;
    }

    function _mintAllocation(Allocation allocation, address wallet, uint256 amount) private {
        if (amount == 0) return;
        emit AllocationMinted(allocation, wallet, amount);
        _TOKEN.mint(wallet, amount);
    }

    function _sendEth(address payable to, uint256 amountWei) private {
        (bool ok, ) = to.call{value: amountWei}("");
        if (!ok) revert SaleTransferFailed(to, amountWei);
    }

    /// @dev Whether the token will mint `amount` for the sale now: the sale holds the minter
    /// role, minting is open and the cap leaves room.
    function _canMint(uint256 amount) private view returns (bool) {
        return
            _isMinter() &&
            !_TOKEN.mintingFinished() &&
            _TOKEN.totalSupply() + amount <= ERC20Capped(address(_TOKEN)).cap();
    }

    function _isMinter() private view returns (bool) {
        return IAccessControl(address(_TOKEN)).hasRole(_TOKEN.MINTER_ROLE(), address(this));
    }

    /// @dev Checks the terms; every rule here keeps a later step from failing for ever.
    function _checkTerms(Terms memory t) private pure {
        if (
            address(t.token) == address(0) ||
            t.treasury == address(0) ||
            t.liquidityWallet == address(0) ||
            t.partnersWallet == address(0) ||
            t.researchersWallet == address(0) ||
            t.teamBeneficiary == address(0)
        ) revert SaleZeroAddress();
        if (t.ntkPerEth == 0 || t.ntkPerEth > type(uint128).max) revert SaleInvalidRate(t.ntkPerEth);
        if (
            t.hardCapTokens == 0 ||
            t.hardCapTokens > type(uint120).max ||
            t.softCapWei == 0 ||
            t.softCapWei > t.hardCapTokens / t.ntkPerEth
        ) revert SaleInvalidCaps(t.hardCapTokens, t.softCapWei);
        if (
            t.minContributionWei == 0 ||
            t.minContributionWei > t.maxContributionWei ||
            t.maxContributionWei > type(uint128).max
        ) revert SaleInvalidContributionLimits(t.minContributionWei, t.maxContributionWei);
        for (uint256 i = 1; i < 5; ++i) {
            if (t.stageStarts[i] < t.stageStarts[i - 1]) revert SaleInvalidSchedule();
        }
        if (t.endsAt <= t.stageStarts[4]) revert SaleInvalidSchedule();
        for (uint256 i = 0; i < 5; ++i) {
            if (t.bonusBps[i] >= _BPS) revert SaleInvalidBonus(Stage(i + 1), t.bonusBps[i]);
        }
        uint256 allocatedBps = uint256(t.liquidityBps) + t.teamBps + t.partnersBps + t.researchersBps;
        if (allocatedBps >= _BPS) revert SaleInvalidAllocation(allocatedBps);
    }

    /// @dev The standard-tree leaf of @openzeppelin/merkle-tree for an `address` value.
    function _leaf(address account) private pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(account))));
    }

    function _sum(uint256[4] memory amounts) private pure returns (uint256) {
        return amounts[0] + amounts[1] + amounts[2] + amounts[3];
    }
}
