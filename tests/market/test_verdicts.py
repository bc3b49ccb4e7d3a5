"""neurotoken.market.verdicts: the one definition of the verdict types, checked against the
contract, and its signer, verifier, quorum assembly and wire format."""

from __future__ import annotations

import dataclasses

import ape
import pytest
from eth_account import Account

from neurotoken.market.verdicts import (
    BATCH_TYPEHASH,
    VERDICT_TYPEHASH,
    InvalidSignatureError,
    MarketDomain,
    QuorumNotReachedError,
    SignedVerdict,
    Verdict,
    VerdictError,
    assemble_quorum,
    batch_typed_data,
    malleate,
    recover_signer,
    recover_typed_data_signer,
    sign_batch,
    sign_verdict,
    verdict_digest,
    verdict_typed_data,
)
from tests.constants import PAID, SUBMITTED
from tests.market.conftest import event_args

DOMAIN = MarketDomain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
SEED = b"\x5d" * 32
KEYS = [Account.from_key(bytes([i]) * 32) for i in range(1, 5)]


def test_typehashes__equal_the_contracts(market):
    assert bytes(market.VERDICT_TYPEHASH()) == VERDICT_TYPEHASH
    assert bytes(market.VERDICT_BATCH_TYPEHASH()) == BATCH_TYPEHASH


def test_domain__equals_the_contracts(market, chain):
    fields = market.eip712Domain()
    assert (fields.name, fields.version, fields.chainId, fields.verifyingContract) == (
        "Neurotoken Compute Market",
        "1",
        chain.chain_id,
        market.address,
    )


def test_verdict_digest__is_what_the_contract_recovers(m, market, oracles):
    """A signature over the Python digest, made without eth-account's encoder, settles."""
    job_id = m.submitted()
    verdict = Verdict(job_id, m.job(job_id).result_root, m.seed(job_id), True)
    digest = verdict_digest(m.domain, verdict)
    signed = sorted(
        (Account.unsafe_sign_hash(digest, o.private_key) for o in oracles[:2]),
        key=lambda sig: int(recover_signer(digest, sig.signature), 16),
    )
    tx = market.settle(
        job_id, m.rec(job_id), True, [bytes(s.signature) for s in signed], sender=oracles[0]
    )
    assert event_args(tx, market.JobPaid)["jobId"] == job_id
    assert bytes(market.jobDigest(job_id)) == bytes(32)
    assert m.job(job_id).state == PAID


def test_verdict__over_another_seed__recovers_to_a_stranger(m, market, oracles):
    """A verdict names the challenge draw it judged: signed over any other seed (say, one made
    before a re-draw that can no longer happen), it settles nothing."""
    job_id = m.submitted()
    with ape.reverts(market.MarketSignerNotOracle):
        market.settle(
            job_id,
            m.rec(job_id),
            False,
            m.sign(job_id, False, oracles[:2], seed=b"\x01" * 32),
            sender=oracles[0],
        )
    assert m.job(job_id).state == SUBMITTED


def test_sign_verdict__recovers_through_eth_account_encoder_too():
    verdict = Verdict(1, b"\x22" * 32, SEED, True)
    signed = sign_verdict(KEYS[0].key, DOMAIN, verdict)
    assert signed.verify() == KEYS[0].address
    assert (
        recover_typed_data_signer(verdict_typed_data(DOMAIN, verdict), signed.signature)
        == KEYS[0].address
    )


def test_sign_batch__recovers_through_eth_account_encoder_too():
    verdicts = [Verdict(1, b"\x22" * 32, SEED, True), Verdict(2, b"\x33" * 32, SEED, False)]
    signed = sign_batch(KEYS[1].key, DOMAIN, verdicts)
    assert signed.verify() == KEYS[1].address
    assert (
        recover_typed_data_signer(batch_typed_data(DOMAIN, verdicts), signed.signature)
        == KEYS[1].address
    )


def test_batch__empty__raises():
    with pytest.raises(VerdictError):
        batch_typed_data(DOMAIN, [])


def test_verdict__root_of_wrong_length__raises():
    with pytest.raises(VerdictError):
        Verdict(1, b"\x01" * 31, SEED, True)


def test_verdict__root_as_hex_string__accepted():
    assert Verdict(1, "0x" + "ab" * 32, SEED, True).result_root == b"\xab" * 32  # type: ignore[arg-type]


def test_recover__malleable_twin__raises():
    signed = sign_verdict(KEYS[0].key, DOMAIN, Verdict(1, b"\x01" * 32, SEED, True))
    with pytest.raises(InvalidSignatureError, match="malleable"):
        recover_signer(signed.digest(), malleate(signed.signature))


@pytest.mark.parametrize("bad", [b"\x00" * 64, b"\x00" * 66])
def test_recover__wrong_length__raises(bad):
    with pytest.raises(InvalidSignatureError, match="65 bytes"):
        recover_signer(b"\x00" * 32, bad)


def test_recover__bad_v__raises():
    signed = sign_verdict(KEYS[0].key, DOMAIN, Verdict(1, b"\x01" * 32, SEED, True))
    with pytest.raises(InvalidSignatureError, match="v must be"):
        recover_signer(signed.digest(), signed.signature[:64] + b"\x01")


def test_verify__claimed_signer_mismatch__raises():
    signed = sign_verdict(KEYS[0].key, DOMAIN, Verdict(1, b"\x01" * 32, SEED, True))
    forged = dataclasses.replace(signed, signer=KEYS[1].address)
    with pytest.raises(InvalidSignatureError, match="not the claimed signer"):
        forged.verify()


def test_json__round_trips():
    signed = sign_batch(KEYS[2].key, DOMAIN, [Verdict(5, b"\x09" * 32, SEED, False)])
    assert SignedVerdict.from_json(signed.to_json()) == signed


@pytest.mark.parametrize("text", ["{}", "[]", '{"kind": "other"}', "not json"])
def test_json__malformed__raises(text):
    with pytest.raises(VerdictError):
        SignedVerdict.from_json(text)


def test_assemble_quorum__drops_non_oracles_dedupes_and_sorts():
    verdict = Verdict(3, b"\x05" * 32, SEED, True)
    signed = [sign_verdict(k.key, DOMAIN, verdict) for k in KEYS]
    oracles = [k.address for k in KEYS[:3]]
    out = assemble_quorum(signed + signed[:1], oracles=oracles, threshold=3)
    signers = [recover_signer(signed[0].digest(), s) for s in out]
    assert signers == sorted(oracles, key=lambda a: int(a, 16))


def test_assemble_quorum__too_few__raises():
    verdict = Verdict(3, b"\x05" * 32, SEED, True)
    signed = [sign_verdict(k.key, DOMAIN, verdict) for k in KEYS[:2]]
    with pytest.raises(QuorumNotReachedError) as info:
        assemble_quorum(signed, oracles=[k.address for k in KEYS], threshold=3)
    assert (info.value.have, info.value.need) == (2, 3)


def test_assemble_quorum__mixed_messages__raises():
    a = sign_verdict(KEYS[0].key, DOMAIN, Verdict(3, b"\x05" * 32, SEED, True))
    b = sign_verdict(KEYS[1].key, DOMAIN, Verdict(3, b"\x05" * 32, SEED, False))
    with pytest.raises(VerdictError, match="different message"):
        assemble_quorum([a, b], oracles=[KEYS[0].address, KEYS[1].address], threshold=2)


def test_assembled_quorum__settles_on_chain(m, market, oracles, outsider_key):
    """The path the settle command and the oracle service take, end to end."""
    job_id = m.submitted()
    job = m.job(job_id)
    verdict = Verdict(job_id, job.result_root, m.seed(job_id), True)
    signed = [sign_verdict(k.private_key, m.domain, verdict) for k in [*oracles, outsider_key]]
    current = [o.address for o in oracles if market.isEpochOracle(job.oracle_epoch, o)]
    signatures = assemble_quorum(signed, oracles=current, threshold=job.threshold)
    assert len(signatures) == 3
    tx = market.settle(job_id, job.record(), True, signatures, sender=outsider_key)
    assert event_args(tx, market.JobPaid)["jobId"] == job_id
    assert bytes(market.jobDigest(job_id)) == bytes(32)
    assert m.job(job_id).state == PAID
    with ape.reverts(market.MarketJobNotFound, jobId=job_id):
        market.settle(job_id, job.record(), True, signatures, sender=outsider_key)
