"""Labelled English texts for classification, and a stratified train/held-out split by text.

Sets (`data.corpus`):
- `pang_lee_polarity`: `pang_lee_polarity.cor` from gensim's `test_data/`, a sample of Pang &
  Lee's sentence polarity data (movie-review snippets, lower-cased and tokenized): 200 sentences,
  100 `neg` (label 0) and 100 `pos` (label 1), all distinct.
- `newsgroups`: `mini_newsgroup` from gensim's `test_data/`, 200 posts of the 20 Newsgroups data,
  100 from `alt.atheism` (label 0) and 100 from `sci.space` (label 1). The headers name the
  group, so each post is cleaned as scikit-learn's `remove=('headers', 'footers', 'quotes')`
  does, and of header lines left in its body (see `clean_post`): 193 posts are left (97 and 96;
  7 were empty), 36,764 words. Seven bodies still name a group in prose ("discussed on
  sci.space"), as in scikit-learn's cleaned set.
- `files`: `data.files`, comma-separated paths or globs of UTF-8 text files with one example per
  non-empty line, `label<TAB>text`; label names are mapped to ids in sorted string order.

These are tiny sets: with `data.held_out=0.25` about 50 texts are held out, and the standard
error of an accuracy measured on 50 texts, sqrt(p (1 - p) / 50), is 6 to 7 points for accuracies
between 70% and 50% (5.7 at 80%); differences of a few points between runs are noise.

gensim is an extra (`pip install 'dlx[text]'`); only the two shipped sets need it.
"""

from __future__ import annotations

import copyreg
import dataclasses
import io
import pathlib
import pickle
import re
import zlib
from typing import Sequence

import ml_collections
import numpy as np

from dlx import config as config_lib
from dlx.data.text import SPLIT_SEED, gensim_file, text_files
from dlx.errors import DlxError

POLARITY_FILE = "pang_lee_polarity.cor"
NEWSGROUPS_FILE = "mini_newsgroup"
POLARITY_LABELS = ("neg", "pos")
# scikit-learn's `_QUOTE_RE`: quoted lines and the lines that introduce a quote.
_QUOTE_LINE = re.compile(r"(writes in|writes:|wrote:|says:|said:|^In article|^Quoted from|^\||^>)")
# Header fields left in a body by a forwarded post (one field may precede, as in
# "To: Newsgroups: sci.space") and the header lines of FAQ postings ("Archive-name: space/...").
_HEADER_LINE = re.compile(r"^(?:[A-Za-z-]+:[ \t]*)?(?:Newsgroups|Path|From|Subject|Sender|"
                          r"Organization|Message-ID|Date|Reply-To|Lines|Xref|NNTP-Posting-Host|"
                          r"Archive-name|Last-modified):")
_RECONSTRUCT_ARRAY = np.zeros(0).__reduce__()[0]
# What the newsgroups pickle (protocol 0, written by Python 2) needs; anything else is refused.
_PICKLE_GLOBALS = {
    ("copy_reg", "_reconstructor"): copyreg._reconstructor,
    ("copyreg", "_reconstructor"): copyreg._reconstructor,
    ("__builtin__", "dict"): dict,
    ("builtins", "dict"): dict,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT_ARRAY,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT_ARRAY,
}


@dataclasses.dataclass(frozen=True)
class LabelledSplits:
    """Texts and integer labels for training and held-out evaluation; no text is in both."""
    train_texts: list[str]
    train_labels: np.ndarray  # int32, (len(train_texts),)
    test_texts: list[str]
    test_labels: np.ndarray  # int32, (len(test_texts),)
    label_names: tuple[str, ...]


Examples = tuple[list[str], np.ndarray, tuple[str, ...]]


def pang_lee_polarity() -> Examples:
    """200 movie-review sentences, 100 negative (0) and 100 positive (1)."""
    path = gensim_file(POLARITY_FILE)
    texts, labels = [], []
    # The file is Windows-1252 (its dashes are byte 0x97), not UTF-8.
    for number, line in enumerate(path.read_text(encoding="cp1252").split("\n"), 1):
        if not line.strip():
            continue
        tag, _, text = line.strip().partition(" ")
        name = tag.removeprefix("__label__")
        if name not in POLARITY_LABELS or not text.strip():
            raise DlxError(f"{path}:{number}: expected '__label__neg TEXT' or '__label__pos TEXT'")
        texts.append(text.strip())
        labels.append(POLARITY_LABELS.index(name))
    return texts, np.asarray(labels, np.int32), POLARITY_LABELS


class _Unpickler(pickle.Unpickler):
    """Rebuilds only dicts and numpy arrays; scikit-learn's `Bunch` (a dict) becomes a dict."""

    def find_class(self, module: str, name: str):
        if module.split(".")[0] == "sklearn" and name == "Bunch":
            return dict
        if (module, name) in _PICKLE_GLOBALS:
            return _PICKLE_GLOBALS[(module, name)]
        raise DlxError(f"refusing to unpickle {module}.{name}; expected only a scikit-learn "
                       f"Bunch of lists and numpy arrays")


def _unpickle_bunch(path: pathlib.Path) -> dict:
    try:
        bunch = _Unpickler(io.BytesIO(zlib.decompress(path.read_bytes())),
                           encoding="latin1").load()
    except (zlib.error, pickle.UnpicklingError, EOFError, TypeError, ValueError,
            AttributeError, IndexError) as e:
        raise DlxError(f"{path} is not a zlib-compressed pickle of a Bunch "
                       f"({type(e).__name__}: {e})") from None
    if not (isinstance(bunch, dict) and {"data", "target", "target_names"} <= bunch.keys()
            and len(bunch["data"]) == len(bunch["target"])
            and all(isinstance(text, str) for text in bunch["data"])):
        raise DlxError(f"{path} does not hold a Bunch with data, target and target_names of "
                       f"equal length")
    return bunch


def clean_post(post: str) -> str:
    """A post without what scikit-learn's `remove=('headers', 'footers', 'quotes')` removes,
    nor header lines left in its body; whitespace collapsed to single spaces.

    In order: the header block (everything before the first blank line); the signature, taken to
    be everything after the last blank line or line of hyphens (which drops the closing paragraph
    of a post without a signature, as scikit-learn does); lines quoting another post (starting
    with `>` or `|`) and the lines introducing them ("In article ...", "... writes:", "wrote:",
    "says:", "said:"); and lines that are header fields, as in a forwarded post or an FAQ.
    """
    body = post.partition("\n\n")[2]
    lines = body.strip().split("\n")
    cut = next((i for i in range(len(lines) - 1, -1, -1) if not lines[i].strip().strip("-")), 0)
    if cut > 0:
        lines = lines[:cut]
    kept = [line for line in lines
            if not _QUOTE_LINE.search(line) and not _HEADER_LINE.match(line)]
    return " ".join(" ".join(kept).split())


def newsgroups() -> Examples:
    """193 cleaned posts, 97 from alt.atheism (0) and 96 from sci.space (1); 7 were empty."""
    bunch = _unpickle_bunch(gensim_file(NEWSGROUPS_FILE))
    names = tuple(str(name) for name in bunch["target_names"])
    cleaned = [(clean_post(post), int(label)) for post, label in zip(bunch["data"],
                                                                      bunch["target"])]
    kept = [(text, label) for text, label in cleaned if text]
    return [text for text, _ in kept], np.asarray([label for _, label in kept], np.int32), names


def read_tsv(patterns: Sequence[str], key: str = "data.files") -> Examples:
    """The `label<TAB>text` examples of each file matched by `patterns` (paths or globs), label
    ids in sorted label order; errors name `key`, where the patterns came from."""
    texts, names = [], []
    for path, content in text_files(patterns, key, "one label<TAB>text example per line"):
        for number, line in enumerate(content.split("\n"), 1):
            if not line.strip():
                continue
            name, tab, text = line.partition("\t")
            if not tab or not name.strip() or not text.strip():
                problem = ("has no tab" if not tab else
                           "has an empty label" if not name.strip() else "has an empty text")
                raise DlxError(f"{key}: {path} line {number} {problem}; expected "
                               f"label<TAB>text")
            names.append(name.strip())
            texts.append(text.strip())
    if not texts:
        raise DlxError(f"{key}: {', '.join(patterns)} has no examples (every line is empty)")
    label_names = tuple(sorted(set(names)))
    if len(label_names) < 2:
        raise DlxError(f"{key}: every example is labelled {label_names[0]!r}; expected at least "
                       f"two labels")
    ids = {name: i for i, name in enumerate(label_names)}
    return texts, np.asarray([ids[name] for name in names], np.int32), label_names


NAMED_SETS = {"pang_lee_polarity": pang_lee_polarity, "newsgroups": newsgroups}
SETS = (*NAMED_SETS, "files")


def examples(name: str, files: str = "") -> Examples:
    """Texts, int32 labels and label names of the set `name` (`files` reads the TSV `files`)."""
    if name in NAMED_SETS:
        return NAMED_SETS[name]()
    if name == "files":
        patterns = config_lib.names(str(files))
        if not patterns:
            raise DlxError("data.corpus='files' needs data.files, comma-separated paths or globs "
                           "of label<TAB>text files")
        return read_tsv(patterns)
    raise DlxError(f"data.corpus={name!r} is not a known labelled set; expected one of: "
                   f"{', '.join(SETS)}")


def _distinct(texts: Sequence[str], labels: np.ndarray,
              label_names: Sequence[str]) -> dict[str, int]:
    """Text -> label in order of first occurrence; a text given two labels is an error."""
    found: dict[str, int] = {}
    for text, label in zip(texts, labels.tolist()):
        if found.setdefault(text, label) != label:
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise DlxError(f"the text {shown!r} is labelled both {label_names[found[text]]!r} "
                           f"and {label_names[label]!r}; expected one label per text")
    return found


def split(texts: Sequence[str], labels: np.ndarray, label_names: Sequence[str],
          held_out: float, seed: int = SPLIT_SEED) -> LabelledSplits:
    """Holds out round(held_out * n_c) random distinct texts of each class c (at least one when
    held_out > 0); duplicates are dropped first, so no held-out text is ever trained on.

    Which texts of a class are held out depends only on the seed, the class id and the set of
    that class's texts, not on their order nor on the other classes.
    """
    if not 0.0 <= held_out < 1.0:
        raise DlxError(f"data.held_out={held_out} must be a fraction in [0, 1)")
    labels = np.asarray(labels)
    if len(labels) != len(texts) or not np.all((labels >= 0) & (labels < len(label_names))):
        raise DlxError(f"expected one label in [0, {len(label_names)}) per text, got "
                       f"{len(labels)} labels for {len(texts)} texts")
    distinct = _distinct(texts, labels, label_names)
    held: set[str] = set()
    for label, name in enumerate(label_names):
        members = sorted(text for text, of in distinct.items() if of == label)
        if not members:
            raise DlxError(f"class {name!r} has no examples; expected at least one text "
                           f"per label name")
        count = max(1, round(held_out * len(members))) if held_out > 0 else 0
        if count >= len(members):
            raise DlxError(f"data.held_out={held_out} leaves class {name!r} no training examples "
                           f"out of {len(members)}; lower it or add examples")
        order = np.random.default_rng([seed, label]).permutation(len(members))
        held.update(members[i] for i in order[:count])
    train = [(text, label) for text, label in distinct.items() if text not in held]
    test = [(text, label) for text, label in distinct.items() if text in held]
    return LabelledSplits(train_texts=[text for text, _ in train],
                          train_labels=np.asarray([label for _, label in train], np.int32),
                          test_texts=[text for text, _ in test],
                          test_labels=np.asarray([label for _, label in test], np.int32),
                          label_names=tuple(label_names))


def load(data_config: ml_collections.ConfigDict) -> LabelledSplits:
    """The set of `data.corpus` (`data.files` for `files`), split by class with `data.held_out`."""
    return split(*examples(data_config.corpus, data_config.get("files", "")),
                 data_config.held_out)
