"""m-of-n: fetching peers' signed verdicts, checking them, and assembling a quorum.

Wire protocol (served by `oracle.api`):

* ``GET /signatures/<jobId>`` -> ``{"jobId": n, "signatures": [<SignedVerdict>, ...]}``,
  each entry in `neurotoken.market.verdicts.SignedVerdict`'s JSON form (kind ``verdict``);
* ``POST /batch-signatures`` with
  ``{"verdicts": [{"jobId", "resultRoot", "seed", "accepted"}, ...]}``
  -> one ``SignedVerdict`` of kind ``batch`` over exactly those verdicts, which the peer
  gives only if it already signed each of them on its own (so batching never makes an
  oracle sign anything it did not verify).

Everything a peer sends is untrusted: a response is size-bounded, each signature must
parse, be for this chain, market and job, and recover to the signer it names; anything else
is garbage, logged and counted, never fatal. Whether the signer is a current oracle is
checked against the chain when the quorum is assembled.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from neurotoken.market.verdicts import MarketDomain, SignedVerdict, Verdict, VerdictError
from oracle.logs import event, get_logger

log = get_logger("peers")
MAX_RESPONSE_BYTES = 256 * 1024


@dataclass
class PeerReport:
    peer: str
    signed: list[SignedVerdict] = field(default_factory=list)
    garbage: list[str] = field(default_factory=list)
    error: str | None = None


def _get_bounded(
    session: requests.Session, method: str, url: str, timeout: float, body: object = None
) -> tuple[int, bytes]:
    with session.request(method, url, json=body, timeout=timeout, stream=True) as resp:
        data = bytearray()
        for chunk in resp.iter_content(1 << 14):
            data += chunk
            if len(data) > MAX_RESPONSE_BYTES:
                raise ValueError(f"response over {MAX_RESPONSE_BYTES} bytes")
        return resp.status_code, bytes(data)


def check_verdict_signature(
    item: object, domain: MarketDomain, job_id: int | None = None
) -> SignedVerdict:
    """A peer's single-verdict signature, or VerdictError saying what is wrong with it."""
    signed = SignedVerdict.from_json(json.dumps(item))
    if signed.kind != "verdict" or len(signed.verdicts) != 1:
        raise VerdictError("not a single-verdict signature")
    if signed.domain != domain:
        raise VerdictError(f"signed for another market or chain: {signed.domain}")
    if job_id is not None and signed.verdicts[0].job_id != job_id:
        raise VerdictError(f"signed for job {signed.verdicts[0].job_id}, not {job_id}")
    signed.verify()
    return signed


def fetch_signatures(
    session: requests.Session, peer: str, job_id: int, domain: MarketDomain, timeout: float
) -> PeerReport:
    report = PeerReport(peer)
    try:
        status, body = _get_bounded(session, "GET", f"{peer}/signatures/{job_id}", timeout)
    except (requests.RequestException, OSError) as exc:
        report.error = type(exc).__name__
        return report
    except ValueError as exc:
        report.garbage.append(str(exc))
        return report
    if status == 404:
        return report
    if status != 200:
        report.error = f"HTTP {status}"
        return report
    try:
        doc = json.loads(body)
        items = doc["signatures"]
        if not isinstance(items, list):
            raise TypeError("signatures is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        report.garbage.append(f"unreadable response: {str(exc)[:120]}")
        return report
    for item in items[:64]:
        try:
            report.signed.append(check_verdict_signature(item, domain, job_id))
        except (VerdictError, ValueError, TypeError) as exc:
            report.garbage.append(str(exc)[:200])
    return report


def collect(
    session: requests.Session,
    peers: Sequence[str],
    job_id: int,
    domain: MarketDomain,
    timeout: float,
    pool: ThreadPoolExecutor | None = None,
) -> list[PeerReport]:
    """Every peer's signatures for `job_id`, asked in parallel."""
    if not peers:
        return []
    if pool is None:
        with ThreadPoolExecutor(max_workers=min(8, len(peers))) as own:
            return list(
                own.map(lambda p: fetch_signatures(session, p, job_id, domain, timeout), peers)
            )
    return list(pool.map(lambda p: fetch_signatures(session, p, job_id, domain, timeout), peers))


def request_batch(
    session: requests.Session,
    peer: str,
    domain: MarketDomain,
    verdicts: Sequence[Verdict],
    timeout: float,
) -> SignedVerdict | None:
    """The peer's signature over the batch of `verdicts`, checked, or None."""
    body = {
        "verdicts": [
            {
                "jobId": v.job_id,
                "resultRoot": "0x" + v.result_root.hex(),
                "seed": "0x" + v.seed.hex(),
                "accepted": v.accepted,
            }
            for v in verdicts
        ]
    }
    try:
        status, raw = _get_bounded(session, "POST", f"{peer}/batch-signatures", timeout, body)
    except (requests.RequestException, OSError, ValueError) as exc:
        event(log, "peer_batch_failed", level=30, peer=peer, error=str(exc)[:120])
        return None
    if status != 200:
        return None
    try:
        signed = SignedVerdict.from_json(raw.decode("utf-8", "replace"))
        if signed.kind != "batch" or signed.domain != domain:
            raise VerdictError("not a batch signature for this market")
        if tuple(signed.verdicts) != tuple(verdicts):
            raise VerdictError("signed a different batch")
        signed.verify()
    except (VerdictError, ValueError) as exc:
        event(log, "peer_garbage", level=30, peer=peer, what="batch", error=str(exc)[:200])
        return None
    return signed


@dataclass(frozen=True)
class Quorum:
    """Enough matching signatures to settle one job (or one batch)."""

    verdicts: tuple[Verdict, ...]
    signers: tuple[str, ...]
    signatures: tuple[bytes, ...]
    """Ascending by signer address, as the contract requires."""

    @property
    def accepted(self) -> bool:
        return self.verdicts[0].accepted


def assemble(
    signed: Iterable[SignedVerdict],
    threshold: int,
    is_oracle: Callable[[str], bool],
    prefer: bool | None = None,
) -> Quorum | None:
    """A quorum among `signed` (all over the same job and root, or the same batch): per
    verdict value, `threshold` signatures of distinct current oracles, ascending by signer;
    the value `prefer`red if both reach the threshold; None if neither does."""
    by_message: dict[bytes, dict[str, SignedVerdict]] = {}
    for item in signed:
        by_message.setdefault(item.digest(), {}).setdefault(item.signer, item)
    candidates: list[Quorum] = []
    for items in by_message.values():
        good = {s: v for s, v in items.items() if is_oracle(s)}
        if len(good) < threshold:
            continue
        ordered = sorted(good.items(), key=lambda kv: int(kv[0], 16))[:threshold]
        first = ordered[0][1]
        candidates.append(
            Quorum(
                verdicts=first.verdicts,
                signers=tuple(s for s, _ in ordered),
                signatures=tuple(v.signature for _, v in ordered),
            )
        )
    if not candidates:
        return None
    candidates.sort(key=lambda q: (q.accepted != prefer, -len(q.signers)))
    return candidates[0]
