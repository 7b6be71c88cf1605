"""Text augmentation (EDA): seeded determinism, deletion rate, swaps keep the words, synonyms and
insertions come from the neighbours, and nothing comes back empty."""

import collections

import numpy as np
import pytest

from dlx.data import text_augment
from dlx.embeddings.vectors import KeyedVectors
from dlx.errors import DlxError

SENTENCE = "the big cat sat on the small mat near a big dog".split()
STOPWORDS = {"the", "on", "a", "near"}


@pytest.fixture(scope="module")
def neighbours():
    """Hand-made 3-d vectors: {big, large, huge}, {small, tiny}, {cat, kitten}, {dog, puppy}
    form tight groups; sat, mat and the stopwords point elsewhere."""
    vectors = {
        "big": [1.0, 0.1, 0.0], "large": [0.97, 0.12, 0.0], "huge": [0.95, 0.08, 0.03],
        "small": [-1.0, 0.1, 0.0], "tiny": [-0.98, 0.12, 0.0],
        "cat": [0.0, 1.0, 0.1], "kitten": [0.02, 0.97, 0.12],
        "dog": [0.0, 0.1, 1.0], "puppy": [0.03, 0.12, 0.97],
        "sat": [0.6, -0.6, -0.5], "the": [-0.5, -0.5, 0.7], "on": [0.5, 0.5, -0.7]}
    return KeyedVectors(list(vectors), np.array(list(vectors.values())))


def rng(seed=0):
    return np.random.default_rng(seed)


def test_each_operation_is_deterministic_per_seed(neighbours):
    long = SENTENCE * 5
    calls = {
        "replace": lambda r: text_augment.synonym_replace(long, 6, neighbours, r, topk=2),
        "insert": lambda r: text_augment.random_insert(long, 6, neighbours, r, topk=2),
        "swap": lambda r: text_augment.random_swap(long, 6, r),
        "delete": lambda r: text_augment.random_delete(long, 0.3, r),
        "augment": lambda r: text_augment.augment(long, r, neighbours=neighbours, num_aug=8)}
    for name, call in calls.items():
        assert call(rng(1)) == call(rng(1)), name
        assert call(rng(1)) != call(rng(2)), name
        assert call(rng(1)) != long, name


def test_deletion_rate_is_close_to_p():
    tokens = [f"w{i}" for i in range(20000)]
    for p in (0.1, 0.5):
        kept = text_augment.random_delete(tokens, p, rng())
        sigma = np.sqrt(p * (1 - p) / len(tokens))
        assert abs(1 - len(kept) / len(tokens) - p) < 5 * sigma
        survivors = set(kept)
        assert kept == [t for t in tokens if t in survivors]  # Order kept.
    assert text_augment.random_delete(tokens, 0.0, rng()) == tokens


def test_swap_keeps_the_multiset_and_moves_n_pairs_at_most():
    out = text_augment.random_swap(SENTENCE, 3, rng())
    assert collections.Counter(out) == collections.Counter(SENTENCE)
    assert 2 <= sum(a != b for a, b in zip(out, SENTENCE)) <= 6
    assert text_augment.random_swap(["one"], 5, rng()) == ["one"]


def test_synonym_replacement_uses_the_top_k_neighbours_and_skips_stopwords_and_oov(neighbours):
    tokens = SENTENCE + ["zebra"]  # zebra, mat, near and a are out of the vocabulary.
    top = {w: {o for o, _ in neighbours.most_similar(w, topn=2)} for w in neighbours.words}
    for seed in range(30):
        out = text_augment.synonym_replace(tokens, 3, neighbours, rng(seed), topk=2,
                                           stopwords=STOPWORDS)
        changed = [(a, b) for a, b in zip(tokens, out) if a != b]
        assert len(out) == len(tokens) and 1 <= len(changed) <= 3
        for before, after in changed:
            assert before not in STOPWORDS and before in neighbours and after in top[before]
    # With topk=1 each word has one replacement: big -> large, cat -> kitten, ...
    everything = text_augment.synonym_replace(tokens, 100, neighbours, rng(), topk=1,
                                              stopwords=STOPWORDS)
    expected = {"big": "large", "small": "tiny", "cat": "kitten", "dog": "puppy"}
    assert everything[1] == "large" and everything[2] == "kitten" and everything[6] == "tiny"
    assert everything[-2] == "puppy" and everything[-1] == "zebra" and everything[0] == "the"
    assert all(expected.get(a, a) == b or a == "sat" for a, b in zip(tokens, everything))


def test_insertion_adds_neighbours_and_keeps_the_sentence_in_order(neighbours):
    out = text_augment.random_insert(SENTENCE, 4, neighbours, rng(), topk=2, stopwords=STOPWORDS)
    assert len(out) == len(SENTENCE) + 4
    rest = iter(out)
    assert all(word in rest for word in SENTENCE)  # SENTENCE is a subsequence of out.
    added = collections.Counter(out) - collections.Counter(SENTENCE)
    qualifying = [w for w in SENTENCE if w in neighbours and w not in STOPWORDS]
    allowed = {o for w in qualifying for o, _ in neighbours.most_similar(w, topn=2)}
    assert sum(added.values()) == 4 and set(added) <= allowed
    assert text_augment.random_insert(["zebra", "the"], 3, neighbours, rng(),
                                      stopwords=STOPWORDS) == ["zebra", "the"]


def test_never_empty_and_the_input_is_not_modified(neighbours):
    tokens = list(SENTENCE)
    for seed in range(50):
        for variant in text_augment.augment(tokens[:2], rng(seed), neighbours=neighbours,
                                            p_rd=0.9, num_aug=8):
            assert variant
    assert len(text_augment.random_delete(["only"], 1.0, rng())) == 1
    assert set(text_augment.random_delete(tokens, 1.0, rng())) <= set(tokens)
    assert tokens == SENTENCE
    assert text_augment.random_delete([], 0.5, rng()) == []
    assert text_augment.augment([], rng(), num_aug=2) == [[], []]


def test_augment_cycles_the_enabled_operations(neighbours):
    variants = text_augment.augment(SENTENCE, rng(), num_aug=4, neighbours=neighbours,
                                    stopwords=STOPWORDS)
    assert [len(v) for v in variants][:2] == [len(SENTENCE), len(SENTENCE) + 1]
    assert collections.Counter(variants[2]) == collections.Counter(SENTENCE)
    assert len(variants[3]) <= len(SENTENCE)
    no_vectors = text_augment.augment(SENTENCE, rng(), num_aug=4, p_rd=0.0)
    assert all(collections.Counter(v) == collections.Counter(SENTENCE) for v in no_vectors)
    assert all(v != SENTENCE for v in no_vectors)  # Swaps only; 1 swap of distinct words.


@pytest.mark.parametrize("call, message", [
    (lambda: text_augment.random_delete(SENTENCE, 1.5, rng()), r"p=1.5 must be a probability"),
    (lambda: text_augment.random_swap(SENTENCE, -1, rng()), r"n=-1 must be an int >= 0"),
    (lambda: text_augment.random_swap(SENTENCE, 1, np.random.RandomState(0)),
     "numpy.random.Generator"),
    (lambda: text_augment.random_swap("a sentence", 1, rng()), "got a string"),
    (lambda: text_augment.augment(SENTENCE, rng(), alpha_rs=0.0, p_rd=0.0),
     "no operation enabled"),
    (lambda: text_augment.augment(SENTENCE, rng(), alpha_sr=2.0), r"alpha_sr=2.0 must be"),
])
def test_bad_arguments_are_one_line(call, message):
    with pytest.raises(DlxError, match=message) as info:
        call()
    assert "\n" not in str(info.value)
