// A job's spec as the market's workers read it: canonical JSON (keys sorted, no spaces, ASCII),
// as neurotoken.jobs.canonical writes it, so its keccak256 is the spec hash the job commits to.
// It travels in the job itself, as a data: URI (no server needed).
import { keccak256, stringToBytes, toHex, type Hex } from "viem";

type Json = number | string | boolean | null | Json[] | { [key: string]: Json };

export function canonicalJson(value: Json): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k]!)}`).join(",")}}`;
  }
  if (typeof value === "number" && !Number.isSafeInteger(value)) throw new Error("specs hold integers only");
  return JSON.stringify(value).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

const SCENE: Json = {
  width: 160,
  height: 120,
  shelves: 2,
  max_products_per_shelf: 8,
  occlusion_pct: 30,
  lighting_pct: 20,
  noise_level: 6,
};

/** A synthetic shelf-images spec: `images` 160x120 images per shard (the benchmarks' scene). */
export function shelfSpec(seed: number, shards: number, images: number): Json {
  return {
    kind: "shelf-images",
    version: 1,
    seed,
    scene: SCENE,
    images_per_shard: images,
    shard_count: shards,
  };
}

/** A fixed-point classifier-training spec (the benchmarks' model): one segment per shard. */
export function trainingSpec(seed: number, shards: number, images: number): Json {
  return {
    kind: "classifier-training",
    version: 1,
    seed,
    scene: SCENE,
    images_per_segment: images,
    crop_size: 8,
    hidden_units: 32,
    batch_size: 32,
    steps_per_segment: 20,
    learning_rate_ppm: 200_000,
    arithmetic: "fixed-point",
    shard_count: shards,
  };
}

/** The kind of a spec carried in a data: URI, or null when it is elsewhere or unreadable. */
export function specKind(uri: string): string | null {
  const match = /^data:[^,]*;base64,(.*)$/.exec(uri);
  if (!match) return null;
  try {
    return String((JSON.parse(atob(match[1]!)) as { kind?: unknown }).kind ?? "") || null;
  } catch {
    return null;
  }
}

export function specHashAndUri(spec: Json): { hash: Hex; uri: string } {
  const text = canonicalJson(spec);
  const bytes = stringToBytes(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return { hash: keccak256(toHex(bytes)), uri: `data:application/json;base64,${btoa(binary)}` };
}
