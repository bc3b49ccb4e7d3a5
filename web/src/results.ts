// A delivered shelf-images result, seen in the browser: the job's bundle fetched from its
// provider's server with an access token the wallet signs (EIP-191, as
// neurotoken/proofs/access.py defines it), every object checked against the manifest's hash,
// a shard decoded (the NTKSHARD container of neurotoken/workloads/container.py) and a few of
// its images drawn with their labels' boxes.
import { getAddress, keccak256, toHex, type Address, type Hex } from "viem";
import type { Wallet } from "./wallet";

const TOKEN_LIFETIME_S = 900;
const MAGIC = "NTKSHARD";
const ITEM_BYTES: Record<string, number> = { u1: 1, i8: 8, f4: 4 };

export interface Label {
  name: string;
  class: number;
  bbox: [number, number, number, number] | null;
}

export interface ShelfImage {
  width: number;
  height: number;
  rgb: Uint8Array;
  labels: Label[];
}

export async function accessHeader(wallet: Wallet, market: Address, root: Hex): Promise<string> {
  const account = wallet.account!;
  const expires = Math.floor(Date.now() / 1000) + TOKEN_LIFETIME_S;
  const message =
    `neurotoken bundle access\nchain ${wallet.config.chainId}\nmarket ${market.toLowerCase()}\n` +
    `root ${root.toLowerCase()}\nexpires ${expires}`;
  const signature = await wallet.writer().signMessage({ account, message });
  return `NTK-Bundle ${getAddress(account)} ${expires} ${signature}`;
}

async function fetchBytes(url: string, header: string): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(url, { headers: { Authorization: header } });
  } catch {
    throw new Error("The provider's result server did not answer (it may be offline; try later).");
  }
  if (response.status === 401 || response.status === 403) {
    throw new Error("The provider's server refused: only the job's client and its oracles may read it.");
  }
  if (!response.ok) throw new Error(`The provider's server answered ${response.status}; try later.`);
  return new Uint8Array(await response.arrayBuffer());
}

/** The shard's images and labels, from container bytes (anything malformed throws). */
export function decodeShelfShard(data: Uint8Array): ShelfImage[] {
  const magic = new TextDecoder().decode(data.subarray(0, MAGIC.length));
  if (magic !== MAGIC || data.length < MAGIC.length + 4) throw new Error("not a shard container");
  const headerLength = new DataView(data.buffer, data.byteOffset).getUint32(MAGIC.length, false);
  const start = MAGIC.length + 4;
  const header = JSON.parse(new TextDecoder().decode(data.subarray(start, start + headerLength))) as {
    arrays: { name: string; dtype: string; shape: number[] }[];
    meta: { labels: Label[][] };
  };
  let offset = start + headerLength;
  const arrays: Record<string, { bytes: Uint8Array; shape: number[] }> = {};
  for (const a of header.arrays) {
    const size = a.shape.reduce((x, y) => x * y, 1) * (ITEM_BYTES[a.dtype] ?? NaN);
    if (!Number.isFinite(size) || offset + size > data.length) throw new Error("truncated shard");
    arrays[a.name] = { bytes: data.subarray(offset, offset + size), shape: a.shape };
    offset += size;
  }
  const rgb = arrays.rgb;
  if (!rgb || rgb.shape.length !== 4 || rgb.shape[3] !== 3) throw new Error("not a shelf-images shard");
  const [count, height, width] = rgb.shape as [number, number, number];
  const pixels = width * height * 3;
  return Array.from({ length: count }, (_, n) => ({
    width,
    height,
    rgb: rgb.bytes.subarray(n * pixels, (n + 1) * pixels),
    labels: header.meta.labels[n] ?? [],
  }));
}

/** The images of the job's first shard, fetched and checked against the manifest. */
export async function fetchShelfImages(
  wallet: Wallet,
  market: Address,
  bundleURI: string,
  root: Hex,
): Promise<ShelfImage[]> {
  if (!/^https?:\/\//.test(bundleURI)) throw new Error("This result is not served over HTTP.");
  const header = await accessHeader(wallet, market, root);
  const base = `${bundleURI.replace(/\/+$/, "")}/bundles/${root}`;
  const manifest = JSON.parse(new TextDecoder().decode(await fetchBytes(`${base}/manifest`, header))) as {
    leaves: Hex[];
    root: Hex;
  };
  if (manifest.root?.toLowerCase() !== root.toLowerCase() || !manifest.leaves?.length) {
    throw new Error("The provider served a manifest for another result.");
  }
  const leaf = manifest.leaves[0]!;
  const shard = await fetchBytes(`${base}/objects/${leaf}`, header);
  if (keccak256(toHex(shard)) !== leaf.toLowerCase()) throw new Error("The provider served damaged data.");
  return decodeShelfShard(shard);
}

/** A canvas of the image with each visible product's box and name drawn. */
export function drawImage(image: ShelfImage, scale = 3): HTMLCanvasElement {
  const canvas = document.createElement("canvas");
  canvas.width = image.width * scale;
  canvas.height = image.height * scale;
  const visible = image.labels.filter((l) => l.bbox !== null);
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `Shelf image with ${visible.length} labelled products`);
  const ctx = canvas.getContext("2d")!;
  const raw = new ImageData(image.width, image.height);
  for (let i = 0, j = 0; i < image.rgb.length; i += 3, j += 4) {
    raw.data[j] = image.rgb[i]!;
    raw.data[j + 1] = image.rgb[i + 1]!;
    raw.data[j + 2] = image.rgb[i + 2]!;
    raw.data[j + 3] = 255;
  }
  const small = document.createElement("canvas");
  small.width = image.width;
  small.height = image.height;
  small.getContext("2d")!.putImageData(raw, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
  ctx.lineWidth = 2;
  ctx.font = "12px system-ui, sans-serif";
  for (const label of visible) {
    const [x0, y0, x1, y1] = label.bbox!;
    const hue = (label.class * 67) % 360;
    ctx.strokeStyle = `hsl(${hue} 90% 50%)`;
    ctx.strokeRect(x0 * scale, y0 * scale, (x1 - x0) * scale, (y1 - y0) * scale);
    ctx.fillStyle = ctx.strokeStyle;
    ctx.fillText(label.name, x0 * scale + 2, y0 * scale + 12);
  }
  return canvas;
}
