// SPDX-License-Identifier: MIT
// solhint-disable-next-line compiler-version
pragma solidity 0.8.19;

import {Chainlink} from "@chainlink/contracts/src/v0.8/Chainlink.sol";
import {ChainlinkClient} from "@chainlink/contracts/src/v0.8/ChainlinkClient.sol";

/// @title ChainlinkConsumerReference
/// @notice Benchmark reference only (issue 14): Chainlink's "Get > Uint256" example consumer on
/// `ChainlinkClient`: it asks its Operator for one uint256 (an HTTP GET, a JSON path, a multiplier),
/// pays the fee in LINK, and records the answer when the Operator calls back. Never deployed outside
/// `make bench` and its test.
contract ChainlinkConsumerReference is ChainlinkClient {
    using Chainlink for Chainlink.Request;

    /// @notice The last value the Operator delivered.
    uint256 public volume;
    bytes32 private jobId;
    uint256 private fee;

    /// @notice The Operator delivered `volume` for `requestId`.
    event RequestVolume(bytes32 indexed requestId, uint256 volume);

    /// @param link The LINK token.
    /// @param operator The Operator requests go to.
    /// @param jobId_ The node's job for this request.
    /// @param fee_ The LINK paid per request.
    constructor(address link, address operator, bytes32 jobId_, uint256 fee_) {
        _setChainlinkToken(link);
        _setChainlinkOracle(operator);
        jobId = jobId_;
        fee = fee_;
    }

    /// @notice Asks the Operator for the 24-hour ETH/USD volume, as the example does.
    /// @return requestId The request's id.
    function requestVolumeData() external returns (bytes32 requestId) {
        Chainlink.Request memory req = _buildChainlinkRequest(jobId, address(this), this.fulfill.selector);
        // The example's request, as sent: part of what the reference measures.
        // solhint-disable-next-line gas-small-strings
        req._add("get", "https://min-api.cryptocompare.com/data/pricemultifull?fsyms=ETH&tsyms=USD");
        req._add("path", "RAW,ETH,USD,VOLUME24HOUR");
        req._addInt("times", 10 ** 18);
        return _sendChainlinkRequest(req, fee);
    }

    /// @notice The Operator's callback with the answer to `requestId`.
    /// @param requestId The request answered.
    /// @param volume_ The value delivered.
    function fulfill(bytes32 requestId, uint256 volume_) external recordChainlinkFulfillment(requestId) {
        emit RequestVolume(requestId, volume_);
        volume = volume_;
    }
}
