// The presale proof, looked up in the published allow-list: @openzeppelin/merkle-tree's
// StandardMerkleTree layout (root at index 0; node i has children 2i+1 and 2i+2; a leaf's
// sibling is i+1 when i is odd, i-1 when even), checked against the root before use.
import { concat, encodeAbiParameters, getAddress, keccak256, type Address, type Hex } from "viem";
import type { AllowlistDump } from "./config";

export function leafHash(account: Address): Hex {
  return keccak256(keccak256(encodeAbiParameters([{ type: "address" }], [account])));
}

function hashPair(a: Hex, b: Hex): Hex {
  return BigInt(a) < BigInt(b) ? keccak256(concat([a, b])) : keccak256(concat([b, a]));
}

/** The proof of `account` in the tree, or null when it is not on the list. */
export function proofFor(tree: AllowlistDump, account: Address): Hex[] | null {
  const wanted = getAddress(account);
  const entry = tree.values.find((v) => getAddress(v.value[0]) === wanted);
  if (entry === undefined) return null;
  const proof: Hex[] = [];
  let index = entry.treeIndex;
  if (tree.tree[index] !== leafHash(wanted)) return null; // a damaged file: no proof
  let node = tree.tree[index]!;
  while (index > 0) {
    const sibling = index % 2 === 1 ? index + 1 : index - 1;
    const other = tree.tree[sibling];
    if (other === undefined) return null;
    proof.push(other);
    node = hashPair(node, other);
    index = Math.floor((index - 1) / 2);
  }
  return node === tree.tree[0] ? proof : null;
}
