// The sale's price rule, as TokenSale._quote computes it (same integer steps, same rounding),
// so the page shows what the contract will give before the wallet opens.
export const BPS = 10_000n;

export interface Quote {
  tokens: bigint;
  /** What the sale keeps; the rest of what was sent comes back in the same transaction. */
  acceptedWei: bigint;
}

/** tokens = floor(sentWei * ntkPerEth * (10000 + bonusBps) / 10000), capped at `left`; when
 * capped, the ETH kept is the price of `left` tokens rounded up. */
export function quote(sentWei: bigint, ntkPerEth: bigint, bonusBps: bigint, left: bigint): Quote {
  const tokensPerWeiBps = ntkPerEth * (BPS + bonusBps);
  const tokens = (sentWei * tokensPerWeiBps) / BPS;
  if (tokens <= left) return { tokens, acceptedWei: sentWei };
  const acceptedWei = (left * BPS + tokensPerWeiBps - 1n) / tokensPerWeiBps;
  return { tokens: left, acceptedWei };
}
