// Amounts, dates and durations as a buyer reads them.
import { formatUnits } from "viem";

/** 18-decimal amounts with at most `digits` decimals, rounded down, with thousands separators. */
export function amount(value: bigint, digits = 4): string {
  const text = formatUnits(value, 18);
  const [whole, fraction = ""] = text.split(".");
  const grouped = BigInt(whole!).toLocaleString("en-US");
  const kept = fraction.slice(0, digits).replace(/0+$/, "");
  return kept ? `${grouped}.${kept}` : grouped;
}

export function eth(value: bigint): string {
  return `${amount(value)} ETH`;
}

export function ntk(value: bigint): string {
  return `${amount(value, 2)} NTK`;
}

export function percent(part: bigint, whole: bigint): number {
  if (whole === 0n) return 0;
  const scaled = Number((part * 10_000n) / whole) / 100;
  return Math.min(100, scaled);
}

export function date(seconds: bigint | number): string {
  return new Date(Number(seconds) * 1000).toLocaleString("en-GB", {
    dateStyle: "medium",
    timeStyle: "short",
  });
}

export function duration(seconds: number): string {
  if (seconds <= 0) return "now";
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  if (d > 0) return `${d} d ${h} h ${m} min`;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${s} s`;
  return `${s} s`;
}

/** Parses what a person types as an ETH amount ("1", "0.5", "1,5"); null when it is not one. */
export function parseEth(text: string): bigint | null {
  const cleaned = text.trim().replace(",", ".");
  if (!/^\d+(\.\d{0,18})?$/.test(cleaned) && !/^\.\d{1,18}$/.test(cleaned)) return null;
  const [whole = "0", fraction = ""] = cleaned.split(".");
  return BigInt(whole || "0") * 10n ** 18n + BigInt((fraction + "0".repeat(18)).slice(0, 18));
}
