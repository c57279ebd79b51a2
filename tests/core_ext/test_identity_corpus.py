"""The committed fuzz corpus, replayed: what the fuzzer checks, kept as a regression test.

Every input in ``fuzz/corpus/identity`` (seeds and what fuzzing found; see
docs/core_ext.md, "Identity") gives an identity or a known refusal, the same on both
implementations, and the same through ``IdentityCache``.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType

import pytest

import core_ext.compiled
import core_ext.reference

CORPUS = Path(__file__).resolve().parents[2] / "fuzz" / "corpus" / "identity"
FIELDS = ("device_id", "fleet", "serial", "fingerprint", "not_before", "not_after", "key_algorithm")
PER_INPUT_BUDGET = 0.1


def outcome(module: ModuleType, data: bytes) -> tuple[object, ...]:
    try:
        identity = module.extract_identity(data)
    except module.IdentityError as refusal:
        return ("refused", str(refusal).split(":", 1)[0])
    return tuple(getattr(identity, name) for name in FIELDS)


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, bytes]]:
    inputs = sorted((p.name, p.read_bytes()) for p in CORPUS.iterdir() if p.is_file())
    assert len(inputs) > 100, "the committed corpus is missing"
    return inputs


def test_corpus_inputs_give_the_same_answer_everywhere(corpus: list[tuple[str, bytes]]) -> None:
    cache = core_ext.compiled.IdentityCache(64)
    disagreements = []
    for name, data in corpus:
        start = time.perf_counter()
        compiled = outcome(core_ext.compiled, data)
        elapsed = time.perf_counter() - start
        if elapsed > PER_INPUT_BUDGET:  # once more: a scheduler hiccup is not a finding
            start = time.perf_counter()
            outcome(core_ext.compiled, data)
            assert time.perf_counter() - start <= PER_INPUT_BUDGET, name
        try:
            identity = cache.get(data)
            cached: tuple[object, ...] = tuple(getattr(identity, f) for f in FIELDS)
        except core_ext.compiled.IdentityError as refusal:
            cached = ("refused", str(refusal).split(":", 1)[0])
        assert cached == compiled, name
        reference = outcome(core_ext.reference, data)
        if reference != compiled:
            disagreements.append((name, compiled, reference))
    assert disagreements == []
