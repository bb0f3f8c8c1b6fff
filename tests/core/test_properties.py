"""Properties that must hold for any input: merge precedence, determinism, idempotence."""

from __future__ import annotations

import json

from hypothesis import given, strategies as st

from eascomfy.core.merge import canonical, deep_merge

keys = st.sampled_from(["a", "b", "c", "metadata", "containers"])
leaves = st.one_of(st.integers(0, 9), st.sampled_from(["x", "y", ""]), st.booleans(), st.lists(st.integers(0, 3), max_size=2))
trees = st.recursive(leaves, lambda inner: st.dictionaries(keys, inner, max_size=3), max_leaves=6)
docs = st.dictionaries(keys, trees, max_size=4)


@given(docs)
def test_merge_with_self_is_identity(doc) -> None:
    assert deep_merge(doc, doc) == doc


@given(docs, docs)
def test_top_layer_wins_on_every_leaf(base, top) -> None:
    merged = deep_merge(base, top)

    def check(t, m):
        for k, v in t.items():
            if isinstance(v, dict) and isinstance(m.get(k), dict):
                check(v, m[k])
            else:
                assert m[k] == v

    check(top, merged)


@given(docs)
def test_empty_layer_is_neutral(doc) -> None:
    assert deep_merge(doc, {}) == doc
    assert deep_merge({}, doc) == doc


@given(docs)
def test_canonical_is_stable(doc) -> None:
    assert json.dumps(canonical(doc)) == json.dumps(canonical(json.loads(json.dumps(canonical(doc)))))


def test_none_deletes() -> None:
    assert deep_merge({"a": 1, "b": {"c": 2}}, {"b": {"c": None}, "a": None}) == {"b": {}}
