"""The verifier is total: structured hostile manifests, proofs, specs and shard bytes.

Byte flips (tests/compute/test_hostile.py) rarely reach the corners a hostile provider aims
at, so the generators here build documents token by token: integers of thousands of digits
(over Python's int-conversion limit), negative and out-of-range numbers, floats, NaN and
Infinity, deep nesting (up to 100,000 brackets), duplicate keys, a wrong type in every field,
lone surrogates, NUL and non-UTF-8 bytes, truncated and oversized documents; for shard
outputs, containers with hostile headers, shapes, dtypes, lengths and trailing bytes.

Every case must end in a rejecting verdict (unless the document is equivalent to the honest
one), with findings whose text is printable ASCII; nothing may raise.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from neurotoken.jobs import CanonicalJsonError, SpecError, keccak256, parse_json, parse_spec
from neurotoken.jobs.spec import spec_json
from neurotoken.proofs import (
    BundleError,
    Commitment,
    FetchError,
    FetchFailure,
    LocalStore,
    Reason,
    VerificationResult,
    parse_manifest,
    parse_proof,
    verify_job,
)
from neurotoken.proofs.bundle import MAX_MANIFEST_BYTES, MAX_PROOF_BYTES
from neurotoken.proofs.store import manifest_path, object_path, proof_path, spec_path
from neurotoken.workloads.container import MAGIC
from oracle.verify import Kind, VerifyTask, run_task
from tests.constants import shelf_spec_dict, training_spec_dict

from .conftest import BuiltJob, build_job
from .test_verifier import recommit

SEED = b"\x42" * 32
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


# --- jobs and a source that serves hostile bytes in place of some files ----------------------


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuiltJob]:
    """Small honest jobs (4 shards): shelf images, fixed-point and float32 training."""
    dicts = {
        "shelf": shelf_spec_dict(shard_count=4),
        "fixed": training_spec_dict(shard_count=4),
        "float": training_spec_dict(shard_count=4, arithmetic="float32"),
    }
    return {
        name: build_job(parse_spec(spec), tmp_path_factory.mktemp(f"fuzz-{name}"))
        for name, spec in dicts.items()
    }


class Overlay:
    """A store whose files at the given relative paths are replaced by other bytes."""

    def __init__(self, store: LocalStore, files: dict[str, bytes]) -> None:
        self.store = store
        self.files = files

    def _get(self, relative: str, max_bytes: int, honest: Callable[[], bytes]) -> bytes:
        if relative not in self.files:
            return honest()
        data = self.files[relative]
        if len(data) > max_bytes:
            raise FetchError(FetchFailure.TOO_LARGE, relative, f"over {max_bytes} bytes")
        return data

    def manifest(self, root: bytes, max_bytes: int) -> bytes:
        return self._get(
            manifest_path(root), max_bytes, lambda: self.store.manifest(root, max_bytes)
        )

    def proof(self, root: bytes, index: int, max_bytes: int) -> bytes:
        return self._get(
            proof_path(root, index), max_bytes, lambda: self.store.proof(root, index, max_bytes)
        )

    def object(self, digest: bytes, max_bytes: int) -> bytes:
        return self._get(
            object_path(digest), max_bytes, lambda: self.store.object(digest, max_bytes)
        )

    def spec(self, root: bytes, max_bytes: int) -> bytes:
        return self._get(spec_path(root), max_bytes, lambda: self.store.spec(root, max_bytes))


def judged(
    job: BuiltJob, source: Any, k: int = 4, commitment: Commitment | None = None
) -> VerificationResult:
    verdict = verify_job(job.spec, commitment or job.commitment, SEED, k, source)
    for finding in verdict.findings:
        text = str(finding)
        assert text.isascii() and text.isprintable() and len(text) < 1000, text
    return verdict


# --- hostile JSON, token by token ---------------------------------------------------------------

HUGE_DIGITS = st.integers(79, 6000)
INT_TOKENS = st.one_of(
    st.integers(-(2**300), 2**300).map(str),
    HUGE_DIGITS.map(lambda n: "9" * n),  # 5,000 digits and more: over Python's own limit
    HUGE_DIGITS.map(lambda n: "-" + "1" * n),
    st.sampled_from(
        ["0", "-0", "-1", str(2**256), str(2**256 - 1), str(-(2**255)), str(2**64), "65537"]
    ),
)
BAD_NUMBERS = st.sampled_from(
    ["NaN", "-NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1E400", "0.5", "4.0", "1.",
     ".5", "01", "0x10", "+1", "--1", "1_000", "-"]
)  # fmt: skip
STRINGS = st.one_of(
    st.text(max_size=30).map(json.dumps),
    st.text(max_size=30).map(lambda t: '"' + t + '"'),  # unescaped quotes, controls, non-ASCII
    st.sampled_from(
        [
            '"\\ud800"',  # a lone high surrogate
            '"\\udfff"',
            '"\\ud83dx"',
            '"\\u0000"',
            '"\\uZZZZ"',
            '"\\"',
            '"' + "a" * 70_000 + '"',
            '"0x' + "ab" * 32 + '"',  # right shape, wrong hash
            '"0X' + "AB" * 32 + '"',
            '"0x' + "ab" * 31 + '"',
            '"0x' + "ab" * 32 + '\\u0000"',
            '"neurotoken-bundle/1 "',
            '"neurotoken-proof/2"',
        ]
    ),
)
LITERALS = st.sampled_from(["true", "false", "null", "[]", "{}", '""', "[[]]", "{{}}"])
SCALARS = st.one_of(INT_TOKENS, BAD_NUMBERS, STRINGS, LITERALS)
KEYS = st.one_of(
    st.sampled_from(
        ["format", "job_id", "spec_hash", "shard_count", "leaves", "root", "index", "leaf",
         "proof", "kind", "arrays", "meta", "shape", "dtype", "name", ""]
    ).map(json.dumps),
    st.sampled_from(['"\\ud800"', '"job_id\\u0000"', '"\\u006aob_id"']),  # "\u006a" is "j"
    st.text(max_size=8).map(json.dumps),
)  # fmt: skip


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"


def _containers(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.lists(children, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(st.tuples(KEYS, children), max_size=4).map(_object),
    )


NESTED = st.integers(100, 100_000).flatmap(
    lambda n: st.sampled_from(
        ["[" * n, "[" * n + "]" * n, '{"a":' * n, '{"a":' * n + "1" + "}" * n]
    )
)
VALUES = st.one_of(st.recursive(SCALARS, _containers, max_leaves=8), NESTED)
BAD_BYTES = st.sampled_from(
    [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"\xc0\xaf", b"\xe2\x82"]
)


def field_texts(honest: bytes) -> list[tuple[str, str]]:
    """The honest document as (key token, value token) pairs, in order."""
    return [
        (json.dumps(k), json.dumps(v, separators=(",", ":"))) for k, v in json.loads(honest).items()
    ]


@st.composite
def hostile_documents(draw: st.DrawFn, honest: bytes, max_bytes: int) -> bytes:
    """A hostile variant of the JSON document `honest`."""
    fields = field_texts(honest)
    keys = [k for k, _ in fields]
    how = draw(
        st.sampled_from(
            ["replace", "add", "remove", "duplicate", "list-item", "truncate", "oversize",
             "bad-bytes", "whole", "binary"]
        )
    )  # fmt: skip
    if how == "replace":  # a wrong type or value in one field
        key = draw(st.sampled_from(keys))
        value = draw(VALUES)
        text = _object([(k, value if k == key else v) for k, v in fields])
    elif how == "add":
        text = _object([*fields, (draw(KEYS), draw(VALUES))])
    elif how == "remove":
        drop = draw(st.sampled_from(keys))
        text = _object([(k, v) for k, v in fields if k != drop])
    elif how == "duplicate":  # the same key twice: first or last wins in lax parsers
        key = draw(st.sampled_from(keys))
        extra = draw(st.one_of(st.just(dict(fields)[key]), VALUES))
        at = draw(st.integers(0, len(fields)))
        text = _object([*fields[:at], (key, extra), *fields[at:]])
    elif how == "list-item":  # one hostile element in a list field (leaves, proof)
        lists = [k for k, v in fields if v.startswith("[")] or keys
        key = draw(st.sampled_from(lists))
        items = json.loads(dict(fields)[key]) if dict(fields)[key].startswith("[") else []
        item_texts = [json.dumps(x) for x in items]
        at = draw(st.integers(0, len(item_texts)))
        item_texts[at:at] = [draw(VALUES)]
        text = _object(
            [(k, "[" + ",".join(item_texts) + "]" if k == key else v) for k, v in fields]
        )
    elif how == "truncate":
        return honest[: draw(st.integers(0, len(honest) - 1))]
    elif how == "oversize":
        return honest[:-1] + b" " * (max_bytes + 1 - len(honest)) + b"}"
    elif how == "bad-bytes":
        at = draw(st.integers(0, len(honest)))
        return honest[:at] + draw(BAD_BYTES) + honest[at:]
    elif how == "whole":
        text = draw(VALUES)
    else:
        return draw(st.binary(max_size=300))
    return text.encode("utf-8", "surrogatepass")


# --- the parsers are total --------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_parse_json__raises_only_its_own_error(data: st.DataObject) -> None:
    doc = data.draw(st.one_of(VALUES.map(str.encode), st.binary(max_size=200)))
    with contextlib.suppress(CanonicalJsonError):  # anything else fails the test
        parse_json(doc, max_bytes=1 << 20)


@pytest.mark.parametrize(
    "doc",
    [
        b'{"a":' + b"9" * 5000 + b"}",
        b"[" * 100_000,
        b'{"a":' * 100_000,
        b'{"a":1,"a":1}',
        b'{"a":NaN}',
        b"[Infinity]",
        b"[-Infinity]",
        b'"\\ud800"',
        b'{"\\udc00":1}',
        b"\xed\xa0\x80",
        b"\xff",
        b"[1.5]",
        b"",
    ],
)
def test_parse_json__every_hostile_shape__is_its_own_error(doc: bytes) -> None:
    with pytest.raises(CanonicalJsonError):
        parse_json(doc, max_bytes=1 << 20)


# --- manifests ----------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_hostile_manifest__is_rejected_never_raises(
    jobs: dict[str, BuiltJob], data: st.DataObject
) -> None:
    job = jobs[data.draw(st.sampled_from(sorted(jobs)))]
    honest = job.store.manifest(job.root, MAX_MANIFEST_BYTES)
    doc = data.draw(hostile_documents(honest, MAX_MANIFEST_BYTES))
    try:
        equivalent = parse_manifest(doc) == parse_manifest(honest)
    except BundleError:
        equivalent = False
    verdict = judged(job, Overlay(job.store, {manifest_path(job.root): doc}))
    assert verdict.accepted is equivalent, verdict.summary()
    if not equivalent:
        assert verdict.findings and not verdict.retryable


WRONG_TYPES = [
    "null", "true", "-1", "0", '"x"', "[]", "{}", "1.5", "NaN", "Infinity", "9" * 5000,
    "-" + "9" * 5000, str(2**256), "[" * 5000 + "]" * 5000, '"\\ud800"', '["\\ud800"]',
]  # fmt: skip


@pytest.mark.parametrize("what", ["manifest", "proof"])
def test_a_wrong_type_in_every_field__is_rejected(jobs: dict[str, BuiltJob], what: str) -> None:
    job = jobs["shelf"]
    path = manifest_path(job.root) if what == "manifest" else proof_path(job.root, 1)
    honest = (job.store.root_dir / path).read_bytes()
    for key, _ in field_texts(honest):
        for wrong in WRONG_TYPES:
            doc = _object([(k, wrong if k == key else v) for k, v in field_texts(honest)])
            verdict = judged(job, Overlay(job.store, {path: doc.encode()}))
            assert not verdict.accepted, (key, wrong[:20])
            expected = {
                "manifest": {Reason.MANIFEST_MALFORMED, Reason.MANIFEST_MISMATCH},
                "proof": {Reason.PROOF_MALFORMED, Reason.PROOF_INVALID},
            }[what]
            assert verdict.reasons <= expected, (key, wrong[:20], verdict.summary())


# --- inclusion proofs --------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_hostile_proof__is_rejected_never_raises(
    jobs: dict[str, BuiltJob], data: st.DataObject
) -> None:
    job = jobs[data.draw(st.sampled_from(sorted(jobs)))]
    index = data.draw(st.integers(0, 3))
    honest = job.store.proof(job.root, index, MAX_PROOF_BYTES)
    doc = data.draw(hostile_documents(honest, MAX_PROOF_BYTES))
    try:
        equivalent = parse_proof(doc) == parse_proof(honest)
    except BundleError:
        equivalent = False
    verdict = judged(job, Overlay(job.store, {proof_path(job.root, index): doc}))
    assert verdict.accepted is equivalent, verdict.summary()
    if not equivalent:
        assert {f.shard for f in verdict.findings} == {index}


# --- the spec -----------------------------------------------------------------------------------


def spec_task(job: BuiltJob, spec_uri: str, spec_hash: bytes) -> VerifyTask:
    return VerifyTask(
        job_id=job.commitment.job_id,
        result_root=job.root,
        spec_hash=spec_hash,
        spec_uri=spec_uri,
        shard_count=job.spec.shard_count,
        challenge_count=job.spec.shard_count,
        seed=SEED,
        bundle_uri=job.store.root_dir.as_uri(),
        fetch_budget_s=20.0,
    )


@FUZZ
@given(data=st.data())
def test_hostile_spec__is_rejected_never_raises(
    jobs: dict[str, BuiltJob], data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A hostile spec either posted by the client (it hashes to the posted spec hash: the
    provider accepted an invalid job) or served by the provider's bundle in place of the
    committed one (it does not hash right, and the client serves nothing)."""
    job = jobs[data.draw(st.sampled_from(sorted(jobs)))]
    honest = spec_json(job.spec)
    doc = data.draw(hostile_documents(honest, 1 << 16))
    assume(doc != honest)
    with contextlib.suppress(SpecError):  # anything else fails the test
        parse_spec(doc)
    if data.draw(st.booleans(), label="posted by the client"):
        uri = "data:application/json;base64," + base64.b64encode(doc).decode()
        outcome = run_task(spec_task(job, uri, keccak256(doc)))
        assert outcome.kind == Kind.VERDICT and not outcome.accepted, outcome.reasons
    else:
        bundle_spec = job.store.root_dir / spec_path(job.root)
        gone = (tmp_path_factory.getbasetemp() / "no-such-spec.json").as_uri()
        try:
            bundle_spec.write_bytes(doc)
            outcome = run_task(spec_task(job, gone, job.commitment.spec_hash))
        finally:
            bundle_spec.write_bytes(honest)
        assert outcome.kind == Kind.VERDICT and not outcome.accepted
        assert outcome.reasons[0].startswith("SPEC_NOT_SERVED"), outcome.reasons
    assert all(r.isascii() and r.isprintable() for r in outcome.reasons)


# --- shard outputs ------------------------------------------------------------------------------


def _header_and_body(container: bytes) -> tuple[dict[str, Any], bytes]:
    size = int.from_bytes(container[8:12], "big")
    return json.loads(container[12 : 12 + size]), container[12 + size :]


@st.composite
def hostile_containers(draw: st.DrawFn, honest: bytes) -> bytes:
    """A shard output with a hostile container: header fields, shapes, dtypes, lengths."""
    header, body = _header_and_body(honest)
    arrays = [
        [(json.dumps(k), json.dumps(v, separators=(",", ":"))) for k, v in spec.items()]
        for spec in header["arrays"]
    ]
    meta = [
        (json.dumps(k), json.dumps(v, separators=(",", ":"))) for k, v in header["meta"].items()
    ]
    how = draw(
        st.sampled_from(["array-field", "meta-field", "meta-add", "header", "length", "magic",
                         "body-cut", "body-extend", "binary"])
    )  # fmt: skip
    if how == "array-field":
        j = draw(st.integers(0, len(arrays) - 1))
        key = draw(st.sampled_from(['"name"', '"dtype"', '"shape"']))
        value = draw(
            st.one_of(
                VALUES,
                st.lists(INT_TOKENS, max_size=7).map(lambda xs: "[" + ",".join(xs) + "]"),
                st.sampled_from(['"u1"', '"i8"', '"f4"', '"f8"', '"<i8"', '"O"']),
            )
        )
        arrays[j] = [(k, value if k == key else v) for k, v in arrays[j]]
    elif how == "meta-field":
        key = draw(st.sampled_from([k for k, _ in meta]))
        value = draw(VALUES)
        meta = [(k, value if k == key else v) for k, v in meta]
    elif how == "meta-add":
        meta = [*meta, (draw(KEYS), draw(VALUES))]
    if how in ("array-field", "meta-field", "meta-add"):
        text = _object(
            [
                ('"arrays"', "[" + ",".join(_object(a) for a in arrays) + "]"),
                ('"meta"', _object(meta)),
            ]
        )
    elif how == "header":
        text = draw(VALUES)
    else:
        text = ""
    head = text.encode("utf-8", "surrogatepass") if text else honest[12 : len(honest) - len(body)]
    length = len(head)
    if how == "length":
        length = draw(st.sampled_from([0, 1, length - 1, length + 1, 2**22 + 1, 2**32 - 1]))
    size = length.to_bytes(4, "big")
    magic = MAGIC
    if how == "magic":
        magic = draw(st.sampled_from([b"NTKSHARX", b"", b"NTKSHAR", MAGIC[::-1]]))
    if how == "body-cut":
        body = body[: draw(st.integers(0, max(0, len(body) - 1)))]
    elif how == "body-extend":
        body = body + draw(st.binary(min_size=1, max_size=64))
    if how == "binary":
        return draw(st.binary(max_size=400))
    return magic + size + head + body


@settings(FUZZ, max_examples=FUZZ.max_examples * 4 // 3)
@given(data=st.data())
def test_hostile_shard_output__committed__is_rejected_never_raises(
    jobs: dict[str, BuiltJob], data: st.DataObject
) -> None:
    """The provider commits a hostile output (so it passes its hash and inclusion checks) and
    the verifier has to re-execute against it, decode it, or start from it."""
    name = data.draw(st.sampled_from(sorted(jobs)))
    job = jobs[name]
    index = data.draw(st.integers(0, 3))
    hostile = data.draw(hostile_containers(job.outputs[index]))
    assume(hostile != job.outputs[index])
    commitment = recommit(job, {index: hostile})
    verdict = judged(job, job.store, commitment=commitment)
    assert not verdict.accepted and verdict.findings and not verdict.retryable
    assert index in {f.shard for f in verdict.findings}


def test_float32_shard_with_an_extra_header_field__is_rejected(jobs: dict[str, BuiltJob]) -> None:
    job = jobs["float"]
    header, body = _header_and_body(job.outputs[1])
    header["meta"]["extra"] = 1
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    padded = MAGIC + len(text).to_bytes(4, "big") + text + body
    verdict = judged(job, job.store, commitment=recommit(job, {1: padded}))
    assert not verdict.accepted


@FUZZ
@given(data=st.data())
def test_hostile_shard_output__served_for_a_committed_one__is_rejected(
    jobs: dict[str, BuiltJob], data: st.DataObject
) -> None:
    """Hostile bytes served in place of any committed output, challenged or not."""
    job = jobs[data.draw(st.sampled_from(sorted(jobs)))]
    index = data.draw(st.integers(0, 3))
    hostile = data.draw(hostile_containers(job.outputs[index]))
    assume(hostile != job.outputs[index])
    k = data.draw(st.integers(1, 4))
    path = object_path(keccak256(job.outputs[index]))
    verdict = judged(job, Overlay(job.store, {path: hostile}), k=k)
    assert not verdict.accepted and not verdict.retryable
    found = {(f.reason, f.shard) for f in verdict.findings}
    assert found in (
        {(Reason.SHARD_HASH_MISMATCH, index)},
        {(Reason.SHARD_TOO_LARGE, index)},
    ), verdict.summary()


@pytest.mark.parametrize("name", ["shelf", "fixed", "float"])
def test_shard_whose_header_breaks_the_decoder__is_malformed_not_a_crash(
    jobs: dict[str, BuiltJob], name: str
) -> None:
    """A list where a dtype belongs: the container decoder refuses it with its own error (it
    raised TypeError once, which only the verifier's guard caught), so the shard is
    SHARD_MALFORMED."""
    job = jobs[name]
    header, body = _header_and_body(job.outputs[2])
    header["arrays"][0]["dtype"] = []
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    broken = MAGIC + len(text).to_bytes(4, "big") + text + body
    verdict = judged(job, job.store, commitment=recommit(job, {2: broken}))
    assert not verdict.accepted and not verdict.retryable
    found = {(f.reason, f.shard) for f in verdict.findings}
    if name == "float":  # the claimed bytes are decoded, not compared
        assert (Reason.SHARD_MALFORMED, 2) in found
        assert "dtype [] is not one of" in verdict.summary()
    else:  # re-executed and compared bit for bit; shard 3 (training) starts from shard 2
        assert (Reason.RECOMPUTE_MISMATCH, 2) in found


def test_fuzz_module_builds_honest_jobs_that_pass(jobs: dict[str, BuiltJob]) -> None:
    """The baseline every case above departs from."""
    for job in jobs.values():
        assert judged(job, job.store).accepted
        assert judged(job, Overlay(job.store, {}), k=1).accepted
