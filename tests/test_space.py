"""Spaces: declared once, sampled and replayed through the same code; records are canonical."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rlnas.errors import SpaceError
from rlnas.space import Architecture, Sample, Space
from rlnas.strategies import RandomSearch, SeenTrie, SpaceExhausted


class Toy(Space):
    """Width, activation, a dropout only for wide nets, and a stride masked by depth."""

    name = "toy"

    def declare(self, d):
        width = d.choice("width", [8, 16, 64])
        act = d.choice("act", ["relu", "gelu"])
        drop = d.choice("dropout", [0.0, 0.5], active=width > 8)
        stride = d.choice("stride", [1, 2, 4], mask=[True, True, width != 64])
        return {"width": width, "act": act, "dropout": drop or 0.0, "stride": stride}


def all_architectures(space: Space) -> set[Architecture]:
    """Every architecture of a small space, by exhaustive sampling without replacement."""
    strategy = RandomSearch(space, seed=0)
    found = set()
    with pytest.raises(SpaceExhausted):
        for _ in range(10_000):
            found.add(strategy.ask().architecture)
    return found


def test_signature_lists_every_decision_in_order():
    sig = Toy().signature
    assert [d.name for d in sig] == ["width", "act", "dropout", "stride"]
    assert sig[2].choices == (0.0, 0.5)
    assert Toy().describe()["decisions"][0] == {"name": "width", "choices": [8, 16, 64]}


def test_replay_rebuilds_the_sampled_blueprint():
    space = Toy()
    rng = np.random.default_rng(0)
    for _ in range(30):
        sample, blueprint = space.sample(
            lambda dec, allowed: int(rng.choice(np.flatnonzero(allowed)))
        )
        replayed, again = space.replay(dict(sample.architecture))
        assert again == blueprint
        assert replayed.actions == sample.actions


def test_inactive_decisions_are_absent_from_the_record():
    _, blueprint = Toy().replay({"width": 8, "act": "relu", "stride": 2})
    assert blueprint["dropout"] == 0.0
    with pytest.raises(SpaceError, match="inactive"):
        Toy().replay({"width": 8, "act": "relu", "dropout": 0.5, "stride": 2})


def test_masked_value_is_rejected_on_replay():
    with pytest.raises(SpaceError, match=r"decision `stride`: value 4 is not allowed"):
        Toy().replay({"width": 64, "act": "relu", "dropout": 0.0, "stride": 4})


def test_replay_errors_name_the_decision():
    with pytest.raises(SpaceError, match="lacks decision `act`"):
        Toy().replay({"width": 16, "dropout": 0.0, "stride": 1})
    with pytest.raises(SpaceError, match=r"`widht`.*Did you mean `width`"):
        Toy().replay({"widht": 16, "act": "relu", "dropout": 0.0, "stride": 1})
    with pytest.raises(SpaceError, match="not one of its choices"):
        Toy().replay({"width": 32, "act": "relu", "dropout": 0.0, "stride": 1})


def test_bool_never_matches_an_integer_choice():
    class Flags(Space):
        def declare(self, d):
            return d.choice("n", [0, 1])

    with pytest.raises(SpaceError):
        Flags().replay({"n": True})


def test_architecture_hash_is_canonical_and_stable():
    a = Architecture({"b": 1, "a": "x"})
    b = Architecture({"a": "x", "b": 1})
    assert a == b and hash(a) == hash(b) and a.hash == b.hash
    assert a.canonical_json() == '{"a":"x","b":1}'
    # pinned: the same record hashes the same on every machine and every release
    assert a.hash == "cdab067e9f3beb32"  # sha256 of the canonical JSON
    assert Architecture.from_json(a.canonical_json()) == a
    with pytest.raises(TypeError):
        a["a"] = "y"  # immutable


def test_a_space_whose_sequence_depends_on_values_is_refused():
    class Bad(Space):
        name = "bad"

        def declare(self, d):
            if d.choice("a", [0, 1]):
                d.choice("b", [0, 1])
            return None

    with pytest.raises(SpaceError, match="must not depend on earlier values"):
        Bad().sample(lambda decision, allowed: 1)


def test_empty_choices_and_closed_masks_are_errors():
    class Empty(Space):
        name = "empty"

        def declare(self, d):
            return d.choice("a", [])

    class Closed(Space):
        name = "closed"

        def declare(self, d):
            return d.choice("a", [1, 2], mask=[False, False])

    with pytest.raises(SpaceError, match="has no choices"):
        _ = Empty().signature
    with pytest.raises(SpaceError, match="leaves no choice open"):
        _ = Closed().signature


def test_sample_round_trips_through_a_dict():
    sample, _ = Toy().replay({"width": 16, "act": "gelu", "dropout": 0.5, "stride": 4})
    assert Sample.from_dict(sample.to_dict()) == sample


def test_sampling_without_replacement_covers_the_space_exactly_once():
    space = Toy()
    # enumerate by brute force through replay, keeping only valid records
    valid = set()
    for width, act, drop, stride in itertools.product(
        [8, 16, 64], ["relu", "gelu"], [None, 0.0, 0.5], [1, 2, 4]
    ):
        values = {"width": width, "act": act, "stride": stride}
        if drop is not None:
            values["dropout"] = drop
        try:
            space.replay(values)
        except SpaceError:
            continue
        valid.add(Architecture(values))
    assert len(valid) == 2 * 3 + 2 * 2 * 3 + 2 * 2 * 2  # width 8, 16, 64
    assert all_architectures(space) == valid


def test_seen_trie_masks_only_exhausted_branches():
    space = Toy()
    trie = SeenTrie()
    first = trie.draw(space, lambda dec, allowed: allowed.index(True))
    assert first.architecture in trie
    second = trie.draw(space, lambda dec, allowed: allowed.index(True))
    assert second.architecture != first.architecture
    # the narrowed mask recorded for the last step excludes the exhausted first choice
    assert second.masks[-1][0] is False
    # a sample added from elsewhere is skipped too
    other, _ = space.replay({"width": 8, "act": "relu", "stride": 4})
    trie.add(other)
    drawn = {trie.draw(space, lambda d, a: a.index(True)).architecture for _ in range(20)}
    assert other.architecture not in drawn and first.architecture not in drawn


def test_random_search_state_round_trip_continues_identically():
    a = RandomSearch(Toy(), seed=3)
    for _ in range(4):
        a.ask()
    state = a.state_dict()
    b = RandomSearch(Toy(), seed=99, unique=False)
    b.load_state_dict(state)
    a2 = RandomSearch(Toy(), seed=3, unique=False)
    for _ in range(4):
        a2.ask()
    assert [b.ask() for _ in range(5)] == [a2.ask() for _ in range(5)]
