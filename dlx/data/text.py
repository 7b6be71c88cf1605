"""English text corpora as lists of documents, and a deterministic train/held-out split by document.

Sources (`data.corpus`):
- `gensim_lee`: `lee_background.cor` from gensim's `test_data/`, 300 news stories, one per line.
- `gensim_enwiki`: the shortened English Wikipedia dump in gensim's `test_data/`, cleaned of wiki
  markup with `gensim.corpora.wikicorpus.filter_wiki`; one document per article (106 articles,
  474,407 words).
- `gensim_enwiki,gensim_lee`: named corpora joined with commas are concatenated.
- `files`: `data.files`, comma-separated paths or globs of UTF-8 text files, one document per
  non-empty line (the layout of `lee_background.cor`).
- `hub`: `data.path`, a Hugging Face dataset id (with `data.subset`, its config name) or a local
  directory `datasets.load_dataset` reads or `save_to_disk` wrote; its `train` split's
  `data.text_column` holds one document per row.

gensim is an extra (`pip install 'dlx[text]'`); only the two gensim sources need it.
"""

from __future__ import annotations

import bz2
import dataclasses
import glob
import pathlib
import re
from typing import Iterator, Sequence

import ml_collections
import numpy as np

from dlx import config as config_lib
from dlx.errors import DlxError

# Held-out documents are drawn with this fixed seed, so changing `config.seed` never moves them.
SPLIT_SEED = 0
LEE_FILE = "lee_background.cor"
ENWIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
ARTICLE_MIN_WORDS = 50  # gensim's WikiCorpus threshold: shorter pages are stubs or lists.
_WIKI_EMPHASIS = re.compile(r"'{2,}")
_WIKI_HEADING = re.compile(r"^[ \t]*=+[^\n]*=+[ \t]*$", re.MULTILINE)
_BLANK_LINES = re.compile(r"\s*\n\s*")
_SPACES = re.compile(r"[ \t\u00a0]+")


@dataclasses.dataclass(frozen=True)
class TextSplits:
    """Documents for training and for held-out evaluation; no document is in both."""
    train: list[str]
    held_out: list[str]


def gensim_file(name: str, without_gensim: str = "the gensim corpora need gensim; install it "
                "with pip install 'dlx[text]'") -> pathlib.Path:
    """Path of the file `name` in gensim's `test_data/`; `without_gensim` is the error when gensim
    is not installed."""
    try:
        from gensim.test.utils import datapath
    except ImportError:
        raise DlxError(without_gensim) from None
    path = pathlib.Path(datapath(name))
    if not path.is_file():
        raise DlxError(f"gensim's test data lacks {name} (looked in {path.parent}); "
                       f"expected a gensim>=4.3 wheel")
    return path


def _lines(text: str) -> list[str]:
    return [line for line in (raw.strip() for raw in text.splitlines()) if line]


def gensim_lee() -> list[str]:
    """The Lee background corpus: 300 Australian news stories (7 repeated), 59,890 words."""
    return _lines(gensim_file(LEE_FILE).read_text(encoding="utf-8"))


def _clean_wiki(markup: str) -> str:
    """Article text without markup, headings or emphasis quotes; paragraphs joined by newlines."""
    from gensim.corpora.wikicorpus import filter_wiki
    text = _WIKI_HEADING.sub("", _WIKI_EMPHASIS.sub("", filter_wiki(markup)))
    return _SPACES.sub(" ", _BLANK_LINES.sub("\n", text)).strip()


def gensim_enwiki() -> list[str]:
    """Articles (main namespace, no redirects, >= 50 words) of the shortened enwiki dump."""
    path = gensim_file(ENWIKI_FILE)
    from gensim.corpora.wikicorpus import extract_pages
    with bz2.open(path) as stream:
        pages = [text for _, text, _ in extract_pages(stream, filter_namespaces=("0",))]
    articles = (_clean_wiki(text) for text in pages
                if not text.lstrip().lower().startswith("#redirect"))
    return [text for text in articles if len(text.split()) >= ARTICLE_MIN_WORDS]


def text_files(patterns: Sequence[str], key: str, layout: str) -> Iterator[tuple[str, str]]:
    """(path, UTF-8 content) of each file matched by `patterns` (paths or globs), in order;
    errors name `key`, where the patterns came from, and the expected `layout` of a line."""
    for pattern in patterns:
        paths = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not paths or not all(pathlib.Path(path).is_file() for path in paths):
            raise DlxError(f"{key}: no text file at {pattern!r}; expected paths or globs of "
                           f"UTF-8 text files, {layout}")
        for path in paths:
            try:
                content = pathlib.Path(path).read_text(encoding="utf-8")
            except UnicodeDecodeError as e:
                raise DlxError(f"{key}: {path} is not UTF-8 text ({e.reason} at byte "
                               f"{e.start})") from None
            yield path, content


def read_files(patterns: Sequence[str], key: str = "data.files") -> list[str]:
    """One document per non-empty line of each file matched by `patterns` (paths or globs);
    errors name `key`, where the patterns came from."""
    return [line for _, content in text_files(patterns, key, "one document per line")
            for line in _lines(content)]


def hub(path: str, subset: str = "", text_column: str = "text", cache_dir: str = "") -> list[str]:
    """The `text_column` of the `train` split of a hub dataset or a local copy `datasets` reads."""
    import datasets
    from dlx.data.hub import _first_line, _saved_to_disk
    try:
        if _saved_to_disk(pathlib.Path(path)):
            dataset = datasets.load_from_disk(path)
        else:
            dataset = datasets.load_dataset(path, subset or None, cache_dir=cache_dir or None)
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as e:
        raise DlxError(f"data.path={path!r}: cannot load a text dataset from it "
                       f"({_first_line(e)}); expected a hub dataset id or a local copy") from None
    if isinstance(dataset, datasets.DatasetDict):
        if "train" not in dataset:
            raise DlxError(f"data.path={path!r} has no train split (it has: "
                           f"{', '.join(dataset)})")
        dataset = dataset["train"]
    if text_column not in dataset.column_names:
        raise DlxError(f"data.text_column={text_column!r} is not a column of {path!r}; expected "
                       f"one of: {', '.join(dataset.column_names)}")
    return [text.strip() for text in dataset[text_column] if text and text.strip()]


NAMED_CORPORA = {"gensim_lee": gensim_lee, "gensim_enwiki": gensim_enwiki}
CORPORA = (*NAMED_CORPORA, "files", "hub")


def _nonempty(found: list[str], what: str) -> list[str]:
    if not found:
        raise DlxError(f"{what} has no documents (every line or row is empty)")
    return found


def named_or_files(specs: Sequence[str], key: str = "--corpus") -> list[str]:
    """The documents of one named corpus (`gensim_lee`, `gensim_enwiki`) or of text files/globs."""
    if len(specs) == 1 and specs[0] in NAMED_CORPORA:
        return NAMED_CORPORA[specs[0]]()
    return _nonempty(read_files(specs, key), f"{key} {' '.join(specs)}")


def documents(data_config: ml_collections.ConfigDict) -> list[str]:
    """The documents of the corpus named by `data.corpus` (see the module docstring); named
    corpora may be joined with commas, e.g. `gensim_enwiki,gensim_lee`."""
    corpus = data_config.corpus
    names = config_lib.names(corpus)
    if len(names) > 1 and all(name in NAMED_CORPORA for name in names):
        return [doc for name in names for doc in NAMED_CORPORA[name]()]
    if corpus in NAMED_CORPORA:
        return NAMED_CORPORA[corpus]()
    if corpus == "files":
        patterns = config_lib.names(str(data_config.files))
        if not patterns:
            raise DlxError("data.corpus='files' needs data.files, comma-separated paths or globs")
        return _nonempty(read_files(patterns), f"data.files={data_config.files!r}")
    if corpus == "hub":
        if not data_config.path:
            raise DlxError("data.corpus='hub' needs data.path, a dataset id or a local copy")
        from dlx.data import cache_dir
        return _nonempty(hub(data_config.path, data_config.subset, data_config.text_column,
                             str(cache_dir(data_config) / "hf")), f"data.path={data_config.path!r}")
    raise DlxError(f"data.corpus={corpus!r} is not a known corpus; expected one of: "
                   f"{', '.join(CORPORA)}")


def split(docs: Sequence[str], held_out: float, seed: int = SPLIT_SEED) -> TextSplits:
    """Holds out round(held_out * distinct docs) random distinct documents (at least one when
    held_out > 0); duplicates are dropped first, so no held-out text is ever trained on."""
    if not 0.0 <= held_out < 1.0:
        raise DlxError(f"data.held_out={held_out} must be a fraction in [0, 1)")
    distinct = list(dict.fromkeys(docs))
    count = max(1, round(held_out * len(distinct))) if held_out > 0 else 0
    if count >= len(distinct):
        raise DlxError(f"data.held_out={held_out} leaves no training documents out of "
                       f"{len(distinct)}; lower it or add documents")
    order = np.random.default_rng(seed).permutation(len(distinct))
    held = set(order[:count].tolist())
    return TextSplits(train=[d for i, d in enumerate(distinct) if i not in held],
                      held_out=[d for i, d in enumerate(distinct) if i in held])


def load(data_config: ml_collections.ConfigDict) -> TextSplits:
    """The corpus of `data.corpus`, split by document with `data.held_out`."""
    return split(documents(data_config), data_config.held_out)
