// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {INeuroToken} from "./INeuroToken.sol";

/// @title Neurotoken presale and ICO
/// @notice Sells NTK for ETH: an allow-listed presale (Merkle proof), then public ICO weeks with
/// a falling bonus, then a final stage without bonus. Tokens are delivered after the sale
/// (post-delivery): if the soft cap is reached they become claimable once the sale is
/// finalized, otherwise every buyer reclaims exactly the ETH they paid and no token is ever
/// minted. Anyone may finalize once the sale has ended or sold out; the owner can only pause
/// buying. Every term is fixed at deployment.
///
/// @dev Token math (rounding down for the buyer, in the sale's favour):
/// - `tokens = floor(paidWei * ntkPerEth * (10_000 + bonusBps) / 10_000)` (NTK and ETH both have
///   18 decimals, so `ntkPerEth` is also token units per wei).
/// - The purchase that crosses the hard cap receives exactly the tokens left and pays
///   `acceptedWei = ceil(tokensLeft * 10_000 / (ntkPerEth * (10_000 + bonusBps)))`; the rest of
///   the ETH is returned in the same transaction. Rounding the price up means the buyer never
///   receives more than `floor(acceptedWei * price)` tokens.
/// - Allocations at a successful finalization: `floor(tokensSold * shareBps / buyersBps)` each,
///   where `buyersBps = 10_000 - (liquidity + team + partners + researchers)`, so buyers hold at
///   least their share of the supply.
interface ITokenSale {
    /// @notice Where the sale is in its schedule (derived from the block time).
    enum Stage {
        NotStarted,
        Presale,
        IcoWeek1,
        IcoWeek2,
        IcoWeek3,
        IcoFinal,
        Ended
    }

    /// @notice The lifecycle: Open until finalized, then Succeeded or Failed for ever.
    enum SaleState {
        Open,
        Succeeded,
        Failed
    }

    /// @notice The allocations minted beside the buyers' tokens after success.
    enum Allocation {
        Liquidity,
        Team,
        Partners,
        Researchers
    }

    /// @notice The deploy-time terms; none can change afterwards.
    /// @param token The NeuroToken; the sale must hold its minter role before finalization.
    /// @param treasury Receives the raised ETH, once, at a successful finalization.
    /// @param ntkPerEth Base rate: NTK per ETH before bonus (1,000 by default).
    /// @param hardCapTokens Tokens offered, bonus included (60,000,000 NTK by default).
    /// @param softCapWei ETH that must be raised for the sale to succeed.
    /// @param minContributionWei The least ETH one purchase may send.
    /// @param maxContributionWei The most ETH one buyer may contribute in total.
    /// @param allowlistRoot Root of the presale allow-list (an @openzeppelin/merkle-tree
    /// standard tree of `address` leaves).
    /// @param stageStarts Start times of Presale, IcoWeek1, IcoWeek2, IcoWeek3 and IcoFinal,
    /// non-decreasing (an equal pair skips a stage).
    /// @param endsAt When buying stops; after `stageStarts[4]`.
    /// @param bonusBps The bonus of each stage in `stageStarts` order, in basis points.
    /// @param liquidityWallet Receives the liquidity reserve.
    /// @param partnersWallet Receives the partners' allocation.
    /// @param researchersWallet Receives the researchers' allocation.
    /// @param liquidityBps Share of the final supply for the liquidity reserve (1,000 = 10%).
    /// @param teamBps Share of the final supply for the team, through a vesting wallet.
    /// @param partnersBps Share of the final supply for partners.
    /// @param researchersBps Share of the final supply for researchers.
    /// @param teamBeneficiary Owner of the team vesting wallet.
    /// @param teamVestingStart When team vesting starts.
    /// @param teamCliffSeconds Nothing vests before `teamVestingStart + teamCliffSeconds`.
    /// @param teamVestingSeconds Length of the linear vesting, cliff included.
    struct Terms {
        INeuroToken token;
        address payable treasury;
        uint256 ntkPerEth;
        uint256 hardCapTokens;
        uint256 softCapWei;
        uint256 minContributionWei;
        uint256 maxContributionWei;
        bytes32 allowlistRoot;
        uint64[5] stageStarts;
        uint64 endsAt;
        uint16[5] bonusBps;
        address liquidityWallet;
        address partnersWallet;
        address researchersWallet;
        uint16 liquidityBps;
        uint16 teamBps;
        uint16 partnersBps;
        uint16 researchersBps;
        address teamBeneficiary;
        uint64 teamVestingStart;
        uint64 teamCliffSeconds;
        uint64 teamVestingSeconds;
    }

    /// @notice One buyer's record, one storage slot, cleared when the buyer is settled (its
    /// tokens claimed after a success, its ETH refunded after a failure): the clearing earns the
    /// EIP-3529 refund, and the purchases and the settlement stay in the events
    /// (TokensPurchased, TokensClaimed, Refunded).
    /// @param paidWei ETH kept by the sale for this buyer (excess returned is not counted).
    /// @param tokens Tokens bought, bonus included.
    struct Contribution {
        uint128 paidWei;
        uint120 tokens;
    }

    /// @notice A purchase was made.
    /// @param buyer The buyer (the caller).
    /// @param stage The stage it was made in; its bonus applied.
    /// @param paidWei ETH kept for the tokens.
    /// @param tokens Tokens bought, bonus included.
    /// @param returnedWei ETH sent back because the purchase crossed the hard cap.
    event TokensPurchased(address indexed buyer, Stage stage, uint256 paidWei, uint256 tokens, uint256 returnedWei);

    /// @notice The owner paused buying.
    event BuyingPaused(address indexed account);

    /// @notice The owner resumed buying.
    event BuyingUnpaused(address indexed account);

    /// @notice The sale was finalized.
    /// @param outcome Succeeded or Failed.
    /// @param weiRaised ETH raised in total.
    /// @param tokensSold Tokens sold in total.
    event SaleFinalized(SaleState indexed outcome, uint256 weiRaised, uint256 tokensSold);

    /// @notice The raised ETH was sent to the treasury (success only).
    event FundsForwarded(address indexed treasury, uint256 amountWei);

    /// @notice The treasury rejected the raised ETH at finalization; it waits in the sale until
    /// `forwardFunds` sends it (only ever to the treasury).
    event FundsForwardFailed(address indexed treasury, uint256 amountWei);

    /// @notice An allocation was minted (success only).
    event AllocationMinted(Allocation indexed allocation, address indexed wallet, uint256 amount);

    /// @notice A buyer's tokens were delivered.
    /// @param caller Who triggered the delivery (anyone may).
    event TokensClaimed(address indexed buyer, address indexed caller, uint256 amount);

    /// @notice A buyer's ETH was returned after a failed sale.
    /// @param caller Who triggered the refund (anyone may).
    event Refunded(address indexed buyer, address indexed caller, uint256 amountWei);

    /// @notice A term address (token, treasury, a wallet or the team beneficiary) is zero.
    error SaleZeroAddress();

    /// @notice The base rate is zero or too large for the token math.
    /// @param ntkPerEth The base rate given.
    error SaleInvalidRate(uint256 ntkPerEth);

    /// @notice The hard cap is zero or does not fit 120 bits, or the soft cap is zero or above
    /// what selling out at the base price would raise (so it could never be reached).
    /// @param hardCapTokens The hard cap given, in token units.
    /// @param softCapWei The soft cap given, in wei.
    error SaleInvalidCaps(uint256 hardCapTokens, uint256 softCapWei);

    /// @notice The minimum is zero or above the maximum, or the maximum does not fit 128 bits.
    /// @param minContributionWei The minimum contribution given, in wei.
    /// @param maxContributionWei The maximum contribution given, in wei.
    error SaleInvalidContributionLimits(uint256 minContributionWei, uint256 maxContributionWei);

    /// @notice The stage starts decrease, or the sale ends before its last stage starts.
    error SaleInvalidSchedule();

    /// @notice A stage bonus is 100% or more.
    /// @param stage The stage whose bonus is invalid.
    /// @param bonusBps The bonus given, in basis points.
    error SaleInvalidBonus(Stage stage, uint16 bonusBps);

    /// @notice The allocation shares leave nothing (or nothing sensible) to buyers.
    /// @param allocatedBps The sum of the allocation shares, in basis points.
    error SaleInvalidAllocation(uint256 allocatedBps);

    /// @notice Selling out would mint more than the token's cap.
    /// @param maxSupply The supply a sell-out would reach: the hard cap plus its allocations.
    /// @param cap The token's cap.
    error SaleSupplyExceedsCap(uint256 maxSupply, uint256 cap);

    /// @notice A purchase before the presale opened.
    /// @param startsAt The time the presale opens.
    error SaleNotStarted(uint64 startsAt);

    /// @notice A purchase after the sale ended.
    /// @param endedAt The time the sale ended.
    error SaleEnded(uint64 endedAt);

    /// @notice A purchase, pause or unpause after the sale was finalized.
    /// @param state The sale's current state.
    error SaleClosed(SaleState state);

    /// @notice A purchase while the owner has paused buying.
    error SaleBuyingPaused();

    /// @notice A presale purchase by an address the proof does not place on the allow-list.
    /// @param buyer The buyer that is not on the allow-list.
    error SaleNotAllowlisted(address buyer);

    /// @notice A purchase sent less than the minimum contribution.
    /// @param sentWei The ETH sent, in wei.
    /// @param minContributionWei The minimum contribution, in wei.
    error SaleContributionBelowMin(uint256 sentWei, uint256 minContributionWei);

    /// @notice A purchase would take the buyer's total contribution above the maximum.
    /// @param buyer The buyer.
    /// @param totalWei The buyer's total contribution the purchase would reach, in wei.
    /// @param maxContributionWei The maximum contribution, in wei.
    error SaleContributionAboveMax(address buyer, uint256 totalWei, uint256 maxContributionWei);

    /// @notice A purchase after every offered token was sold.
    error SaleSoldOut();

    /// @notice Finalization before the sale ended or sold out.
    /// @param endsAt The time the sale ends.
    /// @param tokensLeft The tokens still for sale.
    error SaleNotFinalizable(uint64 endsAt, uint256 tokensLeft);

    /// @notice A second finalization.
    /// @param state The sale's current state.
    error SaleAlreadyFinalized(SaleState state);

    /// @notice A claim, or forwarding the raised ETH, before a successful finalization.
    /// @param state The sale's current state.
    error SaleNotSucceeded(SaleState state);

    /// @notice A refund when the sale has not been finalized as failed.
    /// @param state The sale's current state.
    error SaleNotFailed(SaleState state);

    /// @notice A claim by someone who bought nothing or has already claimed.
    /// @param buyer The buyer with nothing to claim.
    error SaleNothingToClaim(address buyer);

    /// @notice A refund for someone who paid nothing or has already been refunded.
    /// @param buyer The buyer with nothing to refund.
    error SaleNothingToRefund(address buyer);

    /// @notice `forwardFunds` with no ETH left to forward.
    error SaleNothingToForward();

    /// @notice Pausing when paused, or unpausing when not paused.
    /// @param paused The pause state asked for, which is already the current one.
    error SalePauseUnchanged(bool paused);

    /// @notice Sending ETH failed (the receiver rejected it).
    /// @param to The receiver that rejected the ETH.
    /// @param amountWei The amount sent, in wei.
    error SaleTransferFailed(address to, uint256 amountWei);

    /// @notice Buys tokens with the ETH sent, at the current stage's bonus.
    /// @dev In the presale the caller must be on the allow-list; in the ICO stages the proof is
    /// ignored (pass an empty array). A purchase that crosses the hard cap is filled partly and
    /// the excess ETH returned in the same transaction.
    /// @param allowlistProof The caller's Merkle proof (presale only).
    /// @return tokens Tokens bought, claimable after a successful finalization.
    function buy(bytes32[] calldata allowlistProof) external payable returns (uint256 tokens);

    /// @notice Ends the sale once it has ended or sold out; anyone may call it, once.
    /// @dev Succeeds when the soft cap is reached and the token can still mint for the sale:
    /// mints the sold tokens (held here for claims) and the allocations, closes minting and
    /// forwards the ETH to the treasury (if the treasury rejects it, it waits for
    /// `forwardFunds`, and claims are not held up). Otherwise the sale fails, minting is closed
    /// (when the sale may still close it) and every buyer can be refunded.
    function finalize() external;

    /// @notice Sends the ETH held after a successful sale to the treasury; anyone may call it.
    /// @dev Only needed when the treasury rejected the transfer at finalization (or when ETH
    /// was forced into the sale afterwards); the ETH can go nowhere but the treasury.
    function forwardFunds() external;

    /// @notice Delivers `buyer`'s tokens after a successful sale; anyone may call it.
    /// @return amount The tokens sent to `buyer`.
    function claim(address buyer) external returns (uint256 amount);

    /// @notice Returns `buyer`'s ETH after a failed sale; anyone may call it.
    /// @return amountWei The ETH sent to `buyer`.
    function refund(address buyer) external returns (uint256 amountWei);

    /// @notice Stops purchases (owner only). Finalization, claims and refunds are unaffected.
    function pause() external;

    /// @notice Resumes purchases (owner only).
    function unpause() external;

    /// @notice The deploy-time terms.
    function terms() external view returns (Terms memory);

    /// @notice The NeuroToken sold.
    function token() external view returns (INeuroToken);

    /// @notice The team's vesting wallet (an OpenZeppelin VestingWalletCliff), made at deployment.
    function teamVesting() external view returns (address);

    /// @notice The stage at the current block time.
    function stage() external view returns (Stage);

    /// @notice The bonus of `stage_` in basis points (zero outside the buying stages).
    function bonusBps(Stage stage_) external view returns (uint16);

    /// @notice What sending `sentWei` in `stage_` would buy now, given the tokens left.
    /// @return tokens Tokens that would be bought.
    /// @return acceptedWei ETH that would be kept (the rest returned).
    function quote(Stage stage_, uint256 sentWei) external view returns (uint256 tokens, uint256 acceptedWei);

    /// @notice Whether `proof` places `account` on the presale allow-list.
    function isAllowlisted(address account, bytes32[] calldata proof) external view returns (bool);

    /// @notice `buyer`'s record while it awaits settlement (all zero before a purchase and
    /// after the claim or refund).
    function contributionOf(address buyer) external view returns (Contribution memory);

    /// @notice ETH raised (kept) so far.
    function weiRaised() external view returns (uint256);

    /// @notice Tokens sold so far, bonus included.
    function tokensSold() external view returns (uint256);

    /// @notice Tokens still offered.
    function tokensLeft() external view returns (uint256);

    /// @notice Open, Succeeded or Failed.
    function state() external view returns (SaleState);

    /// @notice Whether buying is paused.
    function paused() external view returns (bool);

    /// @notice Whether the ETH raised has reached the soft cap.
    function softCapReached() external view returns (bool);

    /// @notice The allocations a sale of `tokensSold_` would mint, in `Allocation` order.
    function allocationsFor(uint256 tokensSold_) external view returns (uint256[4] memory amounts);
}
