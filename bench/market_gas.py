"""Compute-market gas, each path beside the physical floor derived for it.

The floor of a path is what no implementation of the same state change could avoid on the
EVM (Prague): the transaction base cost, the calldata actually sent, the storage the path
must touch priced by EIP-2929/EIP-2200/EIP-3529, the token's own storage for the transfer,
the ecrecover precompile per signature, and the logs the path emits (priced from the
receipt). Everything else (dispatch, ABI decoding, hashing, checks, the reentrancy guard,
memory) is overhead, and the ratio measures it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench import chainlink_reference
from bench.common import BenchContext, Table, gas_used, ratio
from neurotoken.chain.headers import header_at
from neurotoken.chain.permit import sign_permit
from neurotoken.market.acceptance import quoted_job, sign_acceptance
from neurotoken.market.records import ape_reader
from neurotoken.market.verdicts import MarketDomain, Verdict, sign_batch, sign_verdict
from neurotoken.units import NTK

# EVM prices (Prague).
TX_BASE = 21_000
CALLDATA_ZERO = 4
CALLDATA_NONZERO = 16
COLD_SLOAD = 2_100  # EIP-2929
WARM_ACCESS = 100
COLD_ACCOUNT = 2_600  # first CALL to the token in a transaction
SSTORE_SET = 20_000  # zero -> non-zero (plus COLD_SLOAD when the slot is cold)
SSTORE_RESET = 2_900  # non-zero -> non-zero (EIP-2929: 5,000 - 2,100)
REFUND_CLEAR_DIRTY = 19_900  # EIP-3529: a slot set from zero and back to zero in one tx
REFUND_CLEAR = 4_800  # EIP-3529: a slot non-zero at the start of the tx set to zero
ECRECOVER = 3_000
LOG_BASE, LOG_TOPIC, LOG_BYTE = 375, 375, 8
REFUND_CAP_DIVISOR = 5  # EIP-3529


METADATA_URI = "https://gpu.example/providers/0001.json"
SPEC_URI = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
BUNDLE_URI = "ipfs://bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
PAYMENT = 100 * NTK
COLLATERAL = 20 * NTK
SHARDS = 64
CHALLENGES = 32
ZERO_ADDRESS = "0x" + "00" * 20


@dataclass
class Floor:
    """An itemised floor: (label, gas) pairs, less the refund the path earns."""

    items: list[tuple[str, int]] = field(default_factory=list)
    refund: int = 0

    def add(self, label: str, gas: int) -> Floor:
        self.items.append((label, gas))
        return self

    @property
    def total(self) -> int:
        gross = sum(gas for _, gas in self.items)
        return gross - min(self.refund, gross // REFUND_CAP_DIVISOR)


def calldata_gas(data: bytes) -> int:
    return sum(CALLDATA_ZERO if b == 0 else CALLDATA_NONZERO for b in data)


def logs_gas(receipt: Any) -> int:
    total = 0
    for log in receipt.logs:
        data = log["data"]
        size = len(bytes.fromhex(data[2:])) if isinstance(data, str) else len(bytes(data))
        total += LOG_BASE + LOG_TOPIC * len(log["topics"]) + LOG_BYTE * size
    return total


def base_floor(receipt: Any) -> Floor:
    floor = Floor()
    floor.add("tx base", TX_BASE)
    floor.add("calldata", calldata_gas(bytes(receipt.transaction.data)))
    floor.add("logs", logs_gas(receipt))
    return floor


def slot_write(was_zero: bool) -> int:
    """A cold slot written once: SSTORE_SET or SSTORE_RESET, plus the cold access."""
    return COLD_SLOAD + (SSTORE_SET if was_zero else SSTORE_RESET)


def token_pull(receiver_was_zero: bool, spends_allowance: bool = False) -> int:
    """transferFrom with an unlimited allowance (read, not written): the token account, the
    sender's and receiver's balance slots and the allowance read."""
    gas = COLD_ACCOUNT + slot_write(False) + slot_write(receiver_was_zero) + COLD_SLOAD
    return gas + (SSTORE_RESET if spends_allowance else 0)


def string_slots(text: str) -> int:
    """Storage slots a Solidity string occupies (short strings live in one slot)."""
    size = len(text.encode())
    return 1 if size < 32 else 1 + -(-size // 32)


class MarketBench:
    """A market (one oracle at first; `_settle_paths` grows the set to three), a funded
    client and providers, and builders; `randao_delay` above 0: a market seeding challenges
    with RANDAO mixes, each seed block's recorded as `submitted` makes it."""

    def __init__(self, ctx: BenchContext, randao_delay: int = 0) -> None:
        self.ctx = ctx
        self.chain = ctx.chain
        owner = ctx.owner
        self.owner = owner
        self.token = ctx.project.NeuroToken.deploy(owner, sender=owner)
        self.token.grantRole(self.token.MINTER_ROLE(), owner, sender=owner)
        self.oracles = sorted(ctx.fresh_accounts(3), key=lambda a: int(a.address, 16))
        self.randao_delay = randao_delay
        self.market = ctx.project.ComputeMarket.deploy(
            self.token,
            owner,
            7 * 24 * 3600,
            250,
            self.oracles[:1],
            1,
            3_600,
            randao_delay,
            sender=owner,
        )
        self.recorder = (
            ctx.project.RandaoRecorder.at(self.market.randaoRecorder()) if randao_delay else None
        )
        self.recorded: list[Any] = []
        """The `record` receipts of the seed blocks' mixes (a RANDAO market)."""
        self.domain = MarketDomain(self.chain.chain_id, self.market.address)
        (self.client,) = ctx.fresh_accounts(1)
        self.fund(self.client, 1_000_000 * NTK)
        self.token.approve(self.market, 2**256 - 1, sender=self.client)
        self.jobs = ape_reader(self.market)

    def record(self, job_id: int) -> tuple[Any, ...]:
        return self.jobs.get(job_id).record()

    def settle_batch(self, jobs: list[int]) -> tuple[Any, list[Any]]:
        """settleBatch accepting `jobs`, signed by the first two oracles: (receipt, records)."""
        records = [self.jobs.get(j) for j in jobs]
        entries = [(r.job_id, r.record(), True) for r in records]
        verdicts = [
            Verdict(
                r.job_id,
                r.result_root,
                bytes(self.market.challengeSeed(r.job_id, r.seed_block)),
                True,
            )
            for r in records
        ]
        signatures = [
            sign_batch(o.private_key, self.domain, verdicts).signature for o in self.oracles[:2]
        ]
        return self.market.settleBatch(entries, signatures, sender=self.oracles[0]), records

    def fund(self, account: Any, amount: int) -> None:
        self.token.mint(account, amount, sender=self.owner)

    def new_provider(self, stake: int = 10_000 * NTK) -> Any:
        (provider,) = self.ctx.fresh_accounts(1)
        self.fund(provider, stake)
        self.token.approve(self.market, 2**256 - 1, sender=provider)
        self.market.registerProvider(stake, METADATA_URI, sender=provider)
        return provider

    def request(self, **overrides: Any) -> dict[str, Any]:
        now = self.chain.pending_timestamp
        fields: dict[str, Any] = {
            "specHash": b"\x5e" * 32,
            "specURI": SPEC_URI,
            "paymentNtk": PAYMENT,
            "provider": ZERO_ADDRESS,
            "collateralNtk": COLLATERAL,
            "shardCount": SHARDS,
            "challengeCount": CHALLENGES,
            "acceptBy": now + 3_600,
            "deliverBy": now + 86_400,
            "verdictBy": now + 2 * 86_400,
        }
        fields.update(overrides)
        return fields

    def submitted(self, provider: Any, count: int) -> list[int]:
        ids = []
        for _ in range(count):
            job_id = int(self.market.nextJobId())
            self.market.postJob(self.request(), sender=self.client)
            self.market.acceptJob(job_id, self.record(job_id), sender=provider)
            root = job_id.to_bytes(32, "big")
            self.market.submitResult(
                job_id, self.record(job_id), root, SHARDS, BUNDLE_URI, sender=provider
            )
            ids.append(job_id)
        if self.recorder is None:
            self.chain.mine(2)
            return ids
        self.chain.mine(self.randao_delay)
        web3 = self.chain.provider.web3
        for block in sorted({self.jobs.get(j).seed_block for j in ids}):
            self.recorded.append(self.recorder.record(header_at(web3, block), sender=self.client))
        self.chain.mine(1)
        return ids


def seed_reads(settled_in: int, seed_blocks: list[int]) -> tuple[int, int]:
    """(recent, old): seeds a settlement in block `settled_in` reads with BLOCKHASH (the last
    256 blocks) and from EIP-2935 history (a cold slot of the history contract each)."""
    recent = sum(1 for b in seed_blocks if settled_in - b <= 256)
    return recent, len(seed_blocks) - recent


def settle_floor(
    receipt: Any, jobs: int, providers: int, signatures: int, seed_blocks: list[int]
) -> Floor:
    floor = base_floor(receipt)
    floor.add(f"{jobs} x job digest cleared", jobs * slot_write(False))
    floor.refund = jobs * REFUND_CLEAR
    recent, old = seed_reads(int(receipt.block_number), seed_blocks)
    if recent:
        floor.add(f"{recent} x challenge seed by BLOCKHASH (bound into the verdict)", recent * 20)
    if old:
        floor.add(
            f"{old} x challenge seed from EIP-2935 history (a cold slot each, the history "
            "contract's account once)",
            old * (COLD_SLOAD + WARM_ACCESS) + COLD_ACCOUNT,
        )
    floor.add(f"{providers} x provider account updated", providers * slot_write(False))
    floor.add("fee pot and threshold slot", slot_write(False))
    floor.add(
        f"{signatures} x (ecrecover + oracle lookup)",
        signatures * (ECRECOVER + WARM_ACCESS + COLD_SLOAD),
    )
    return floor


Row = tuple[str, int, Floor]


def _first_permit(bench: MarketBench) -> tuple[Any, int, Any]:
    """A new funded client, a deadline, and its first permit of PAYMENT to the market."""
    (client,) = bench.ctx.fresh_accounts(1)
    bench.fund(client, 1_000 * NTK)
    deadline = bench.chain.pending_timestamp + 3_600
    permit = sign_permit(
        client.private_key,
        token_name=bench.token.name(),
        token_address=bench.token.address,
        chain_id=bench.chain.chain_id,
        owner=client.address,
        spender=bench.market.address,
        value=PAYMENT,
        nonce=bench.token.nonces(client),
        deadline=deadline,
    )
    return client, deadline, permit


def _permit_floor(receipt: Any) -> Floor:
    """A post paid with the client's first permit: the post, the permit and the pull."""
    floor = _post_floor(receipt)
    floor.add("permit: nonce 0 -> 1", slot_write(True))
    floor.add("permit: ecrecover", ECRECOVER + WARM_ACCESS)
    floor.add("permit: allowance set", slot_write(True))
    floor.add("transferFrom: allowance spent back to 0", WARM_ACCESS)
    floor.add("token transferFrom", token_pull(False))
    floor.refund = REFUND_CLEAR_DIRTY
    return floor


def _post_floor(receipt: Any) -> Floor:
    floor = base_floor(receipt).add("job digest slot", slot_write(True))
    return floor.add("job counter (shares the fee-rate slot)", slot_write(False))


def _provider_paths(bench: MarketBench) -> tuple[list[Row], Any, int]:
    """register (the market already holds NTK), post, post with permit, accept, submit."""
    market, token, chain = bench.market, bench.token, bench.chain
    rows: list[Row] = []
    bench.new_provider()
    (provider,) = bench.ctx.fresh_accounts(1)
    bench.fund(provider, 100_000 * NTK)
    token.approve(market, 2**256 - 1, sender=provider)
    tx = market.registerProvider(10_000 * NTK, METADATA_URI, sender=provider)
    slots = string_slots(METADATA_URI)
    floor = base_floor(tx).add("provider slot", slot_write(True))
    floor.add(f"metadata URI ({slots} slots)", slots * slot_write(True))
    rows.append(
        ("registerProvider", gas_used(tx), floor.add("token transferFrom", token_pull(False)))
    )

    tx = market.postJob(bench.request(), sender=bench.client)
    rows.append(
        ("postJob", gas_used(tx), _post_floor(tx).add("token transferFrom", token_pull(False)))
    )

    permit_client, deadline, permit = _first_permit(bench)
    tx = market.postJobWithPermit(
        bench.request(), deadline, permit.v, permit.r, permit.s, sender=permit_client
    )
    rows.append(("postJobWithPermit (the client's first permit)", gas_used(tx), _permit_floor(tx)))

    quote_client, deadline, permit = _first_permit(bench)
    request = bench.request(provider=provider.address)
    quoted = quoted_job(
        request,
        quote_client.address,
        fee_bps=int(market.feeBps()),
        oracle_epoch=int(market.oracleEpoch()),
        threshold=int(market.threshold()),
    )
    acceptance = sign_acceptance(provider.private_key, bench.domain, quoted)
    tx = market.postAcceptedJob(
        request, acceptance, deadline, permit.v, permit.r, permit.s, sender=quote_client
    )
    floor = _permit_floor(tx)
    floor.add("acceptance: ecrecover", ECRECOVER + WARM_ACCESS)
    floor.add("provider account", slot_write(False))
    rows.append(
        ("postAcceptedJob with a permit (a quote; the client's first permit)", gas_used(tx), floor)
    )

    job_id = int(market.nextJobId())
    market.postJob(bench.request(), sender=bench.client)
    tx = market.acceptJob(job_id, bench.record(job_id), sender=provider)
    floor = base_floor(tx).add("job digest slot", slot_write(False))
    floor.add("provider account", slot_write(False))
    rows.append(("acceptJob", gas_used(tx), floor))

    tx = market.submitResult(
        job_id, bench.record(job_id), b"\x7a" * 32, SHARDS, BUNDLE_URI, sender=provider
    )
    floor = base_floor(tx).add("job digest slot", slot_write(False))
    rows.append(("submitResult", gas_used(tx), floor))
    chain.mine(2)
    return rows, provider, job_id


def _settle_paths(bench: MarketBench, provider: Any, first_job: int) -> list[Row]:
    """settle one job with m = 1, 2, 3 oracle signatures (threshold m)."""
    rows: list[Row] = []
    for m in (1, 2, 3):
        if m > 1:  # m of m oracles: a threshold is always more than half of the set
            bench.market.updateOracles([bench.oracles[m - 1]], [], m, sender=bench.owner)
        (job,) = bench.submitted(provider, 1) if m > 1 else (first_job,)
        record = bench.jobs.get(job)
        seed = bytes(bench.market.challengeSeed(job, record.seed_block))
        signatures = [
            sign_verdict(
                o.private_key, bench.domain, Verdict(job, record.result_root, seed, True)
            ).signature
            for o in bench.oracles[:m]
        ]
        tx = bench.market.settle(job, record.record(), True, signatures, sender=bench.oracles[0])
        seeds = [record.seed_block]
        rows.append((f"settle, m = {m}", gas_used(tx), settle_floor(tx, 1, 1, m, seeds)))
    return rows


def _batches(bench: MarketBench, provider: Any) -> list[tuple[str, int, int, Floor]]:
    """settleBatch (m = 2) of 1, 10, 100 jobs: all of one provider, or each of its own."""
    bench.market.setThreshold(2, sender=bench.owner)
    out = []
    for n in (1, 10, 100):
        for spread in ("one provider", "a provider per job"):
            if spread == "one provider":
                providers, jobs = [provider], bench.submitted(provider, n)
            else:
                providers = [bench.new_provider() for _ in range(n)]
                jobs = [job for p in providers for job in bench.submitted(p, 1)]
            tx, records = bench.settle_batch(jobs)
            seeds = [r.seed_block for r in records]
            floor = settle_floor(tx, n, len(providers), 2, seeds)
            out.append((spread, n, gas_used(tx), floor))
    return out


def run(ctx: BenchContext) -> list[Table]:
    bench = MarketBench(ctx)
    rows, provider, job_id = _provider_paths(bench)
    rows += _settle_paths(bench, provider, job_id)
    paths = Table(
        title="Compute market: gas per path against its physical floor",
        columns=["path", "gas", "floor", "ratio", "target"],
    )
    for name, gas, floor in rows:
        paths.add(name, f"{gas:,}", f"{floor.total:,}", ratio(gas, floor.total), "<= 1.25x")
    paths.notes = [
        *_floor_notes(),
        "",
        "Floor items per path (gas):",
        *[_items_note(name, floor) for name, _, floor in rows],
    ]

    batch = Table(
        title="Compute market: batch settlement (m = 2), gas per job",
        columns=["jobs", "providers", "gas (tx)", "gas / job", "floor / job", "ratio", "target"],
    )
    batches = _batches(bench, provider)
    for spread, n, gas, floor in batches:
        batch.add(
            n,
            spread,
            f"{gas:,}",
            f"{gas // n:,}",
            f"{floor.total // n:,}",
            ratio(gas, floor.total),
            "<= 15,000 / job at 100; <= 1.25x",
        )
    batch.notes = [
        "Batch floor = tx base + calldata + logs + per job (its digest slot read and cleared "
        f"{slot_write(False):,}, refunding {REFUND_CLEAR:,} up to the cap of 1/5 of the gas; the "
        "challenge seed the verdict is bound to: 20 by BLOCKHASH within 256 blocks, else a cold "
        f"slot of the EIP-2935 history contract {COLD_SLOAD + WARM_ACCESS:,}, its account "
        f"{COLD_ACCOUNT:,} once) + per "
        f"distinct provider {slot_write(False):,} (credit and collateral unlock) + the fee and "
        f"threshold slot {slot_write(False):,} + per signature (ecrecover {ECRECOVER:,} + call "
        f"{WARM_ACCESS} + oracle lookup {COLD_SLOAD:,}). Oracles sign one EIP-712 VerdictBatch "
        "over all entries, so signatures are paid once per batch.",
    ]
    # Issue 14: a job's life beside Chainlink's request + fulfill, measured on this chain now.
    market = {name: gas for name, gas, _ in rows}
    lifecycle = chainlink_reference.lifecycle_table(market, chainlink_reference.measure(ctx))
    reference: dict[Any, int] = {(spread, n): gas for spread, n, gas, _ in batches}
    reference["settle"] = market["settle, m = 2"]
    return [paths, batch, lifecycle, _randao_table(ctx, reference)]


RANDAO_DELAY = 32


def _randao_table(ctx: BenchContext, reference: dict[Any, int]) -> Table:
    """A market seeding with RANDAO (randaoDelay 32) beside the block-hash market above: the
    `record` of a seed block's header, and settlement reading recorded mixes."""
    bench = MarketBench(ctx, RANDAO_DELAY)
    bench.market.updateOracles([bench.oracles[1]], [], 2, sender=bench.owner)
    provider = bench.new_provider(stake=100_000 * NTK)
    (job,) = bench.submitted(provider, 1)
    record_tx = bench.recorded[-1]
    header_bytes = len(header_at(ctx.chain.provider.web3, bench.jobs.get(job).seed_block))
    floor = base_floor(record_tx)
    floor.add(f"keccak256 of the {header_bytes}-byte header", 30 + 6 * -(-header_bytes // 32))
    floor.add("the block's hash (BLOCKHASH, within 256 blocks)", 20)
    floor.add("the mix's slot set", slot_write(True))
    record_gas = gas_used(record_tx)
    table = Table(
        title=f"Compute market with RANDAO seeds (randaoDelay {RANDAO_DELAY}): what it adds",
        columns=["path", "gas", "reference", "ratio"],
    )
    table.add(
        "record(header) of a seed block, against its floor",
        f"{record_gas:,}",
        f"{floor.total:,} (floor)",
        ratio(record_gas, floor.total),
    )
    record = bench.jobs.get(job)
    header = header_at(ctx.chain.provider.web3, record.seed_block)
    harness = ctx.project.HeaderFieldsHarness.deploy(sender=bench.owner)
    ours = gas_used(harness.fields.transact(header, sender=bench.owner))
    theirs = gas_used(harness.openZeppelin.transact(header, sender=bench.owner))
    table.add(
        "reading a header's number and prevRandao (a transaction to the test harness): "
        "HeaderFields against OpenZeppelin's BlockHeader",
        f"{ours:,}",
        f"{theirs:,}",
        ratio(ours, theirs),
    )
    seed = bytes(bench.market.challengeSeed(job, record.seed_block))
    signatures = [
        sign_verdict(o.private_key, bench.domain, Verdict(job, record.result_root, seed, True))
        for o in bench.oracles[:2]
    ]
    ordered = [s.signature for s in sorted(signatures, key=lambda s: int(s.signer, 16))]
    tx = bench.market.settle(job, record.record(), True, ordered, sender=bench.oracles[0])
    table.add(
        "settle, m = 2, against the block-hash market's",
        f"{gas_used(tx):,}",
        f"{reference['settle']:,}",
        ratio(gas_used(tx), reference["settle"]),
    )
    for n in (10, 100):
        jobs = bench.submitted(provider, n)
        tx, _ = bench.settle_batch(jobs)
        per_job = gas_used(tx) // n
        base = reference[("one provider", n)] // n
        table.add(
            f"settleBatch of {n} (one provider), per job, against the block-hash market's",
            f"{per_job:,}",
            f"{base:,}",
            ratio(per_job, base),
        )
        with_records = per_job + record_gas
        table.add(
            "  the same with one record per job (each in its own seed block)",
            f"{with_records:,}",
            f"{base:,}",
            ratio(with_records, base),
        )
    table.notes = [
        f"The record floor: tx base + calldata as sent + its log + keccak256 of the header + "
        f"the block hash read + one slot set from zero ({slot_write(True):,}). Settlement on a "
        "RANDAO market reads each job's seed from the recorder (its account cold once per "
        f"transaction, {COLD_ACCOUNT:,}, and a cold slot per seed block, {COLD_SLOAD:,}) "
        "instead of BLOCKHASH (20). A record serves every job whose result was committed in "
        f"the same block ({RANDAO_DELAY} blocks earlier); in this bench each job's was "
        "committed in its own block, the costliest case.",
    ]
    return table


def _floor_notes() -> list[str]:
    return [
        "Floor = 21,000 (tx) + calldata as sent (4 per zero byte, 16 per non-zero) + every log "
        "as emitted (375 + 375 per topic + 8 per byte) + the storage the path must touch, at "
        f"EIP-2929/3529 prices: a cold slot read {COLD_SLOAD:,}; a cold slot set from zero "
        f"{COLD_SLOAD + SSTORE_SET:,}; a cold slot changed {COLD_SLOAD + SSTORE_RESET:,}; the "
        f"first call to the token {COLD_ACCOUNT:,}; a token transferFrom with unlimited "
        f"allowance {token_pull(False):,} (account + both balances + allowance read); "
        f"ecrecover {ECRECOVER:,} per signature; refunds (EIP-3529, capped at 1/5 of the gas) "
        "where a path sets and clears a slot. A job is one slot, the keccak256 of its record "
        "(five words passed in every call's calldata, each change in the events), cleared when "
        "the job ends; a provider account is one slot on these paths; spec and bundle URIs are "
        "logged, not stored; the provider's metadata URI is stored. Providers and clients hold "
        "NTK already; allowances are unlimited except on the permit path.",
    ]


def _items_note(name: str, floor: Floor) -> str:
    items = "; ".join(f"{label} {gas:,}" for label, gas in floor.items)
    gross = sum(gas for _, gas in floor.items)
    refund = min(floor.refund, gross // REFUND_CAP_DIVISOR)
    return f"- {name}: {items}" + (f"; refund -{refund:,}" if refund else "")
