"""BERT WordPiece tokenizers (Hugging Face `tokenizers`): train on documents, save, load, encode.

A trained tokenizer puts the special tokens first, at ids 0..4 in BERT's relative order:
[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 (BERT's own vocab.txt has [PAD]=0, the [unused*] slots,
then [UNK]=100 [CLS]=101 [SEP]=102 [MASK]=103). Code never assumes either layout: it reads the ids
from the tokenizer with `special_ids`.

A saved directory holds `tokenizer.json` (the full pipeline) and `vocab.txt` (one token per line,
line number = id, as BERT checkpoints ship it). `load` reads either, so a Hugging Face BERT
checkpoint directory works as it is.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Iterable, NamedTuple, Sequence

import numpy as np
from tokenizers import (Tokenizer, decoders, models, normalizers, pre_tokenizers, processors,
                        trainers)

from dlx.errors import DlxError
from dlx.train.outputs import write_atomic

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
TOKENIZER_FILE = "tokenizer.json"
VOCAB_FILE = "vocab.txt"
HF_CONFIG_FILE = "tokenizer_config.json"


class SpecialIds(NamedTuple):
    """The ids of BERT's special tokens in one vocabulary."""
    pad: int
    unk: int
    cls: int
    sep: int
    mask: int


def _bert_pipeline(tokenizer: Tokenizer, lowercase: bool) -> Tokenizer:
    """Adds BERT's normalizer, pre-tokenizer and WordPiece decoder to a WordPiece `tokenizer`."""
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer


def _with_template(tokenizer: Tokenizer) -> Tokenizer:
    """`encode(a)` -> [CLS] a [SEP]; `encode(a, b)` -> [CLS] a [SEP] b [SEP] with type ids 0/1."""
    ids = special_ids(tokenizer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids.cls), ("[SEP]", ids.sep)])
    return tokenizer


def train(documents: Iterable[str], vocab_size: int, min_frequency: int = 2,
          lowercase: bool = True) -> Tokenizer:
    """A WordPiece tokenizer with `vocab_size` tokens (fewer if the corpus is small) learnt from
    `documents`; the special tokens take ids 0..4."""
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise DlxError(f"vocab size {vocab_size} is too small; expected at least "
                       f"{len(SPECIAL_TOKENS) + 1} (the special tokens and one more)")
    tokenizer = _bert_pipeline(Tokenizer(models.WordPiece(unk_token="[UNK]")), lowercase)
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tokenizer.train_from_iterator(documents, trainer=trainer)
    if tokenizer.get_vocab_size() <= len(SPECIAL_TOKENS):
        raise DlxError("the tokenizer learnt no tokens; the training documents are empty")
    return _with_template(tokenizer)


def save(tokenizer: Tokenizer, directory: str | os.PathLike) -> pathlib.Path:
    """Writes `tokenizer.json` and `vocab.txt` into `directory` (created if needed)."""
    out = pathlib.Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DlxError(f"cannot create the tokenizer directory {out} ({e.strerror})") from None
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    if [i for _, i in vocab] != list(range(len(vocab))):
        raise DlxError("the tokenizer's ids are not 0..V-1, so it has no vocab.txt form")
    write_atomic(out / VOCAB_FILE, "".join(f"{token}\n" for token, _ in vocab))
    write_atomic(out / TOKENIZER_FILE, tokenizer.to_str(pretty=True))
    return out


def _lowercase(directory: pathlib.Path) -> bool:
    """`do_lower_case` from a checkpoint's tokenizer_config.json; True (BERT-uncased) if none."""
    config = directory / HF_CONFIG_FILE
    if config.is_file():
        return bool(json.loads(config.read_text()).get("do_lower_case", True))
    return True


def load(directory: str | os.PathLike) -> Tokenizer:
    """The tokenizer in `directory`: its `tokenizer.json`, else a BERT pipeline over `vocab.txt`."""
    root = pathlib.Path(directory)
    if (root / TOKENIZER_FILE).is_file():
        try:
            tokenizer = Tokenizer.from_file(str(root / TOKENIZER_FILE))
        except Exception as e:  # The Rust side raises plain Exception for a malformed file.
            raise DlxError(f"{root / TOKENIZER_FILE} is not a tokenizers file "
                           f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
        special_ids(tokenizer)
    elif (root / VOCAB_FILE).is_file():
        wordpiece = models.WordPiece.from_file(str(root / VOCAB_FILE), unk_token="[UNK]")
        tokenizer = _bert_pipeline(Tokenizer(wordpiece), _lowercase(root))
        special_ids(tokenizer)  # Before marking them special, which would append missing ones.
        tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
        tokenizer = _with_template(tokenizer)
    else:
        raise DlxError(f"no tokenizer in {root}; expected a directory holding {TOKENIZER_FILE} "
                       f"or a BERT {VOCAB_FILE}")
    return tokenizer


def special_ids(tokenizer: Tokenizer) -> SpecialIds:
    """The ids of [PAD] [UNK] [CLS] [SEP] [MASK]; a DlxError names any the vocabulary lacks."""
    ids = [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS]
    missing = [token for token, i in zip(SPECIAL_TOKENS, ids) if i is None]
    if missing:
        raise DlxError(f"the tokenizer's vocabulary lacks {', '.join(missing)}; expected BERT's "
                       f"special tokens {' '.join(SPECIAL_TOKENS)}")
    return SpecialIds(*ids)


def encode(tokenizer: Tokenizer, documents: Sequence[str]) -> list[np.ndarray]:
    """Token ids (int32, shape (L_d,)) of each document, without special tokens or truncation."""
    tokenizer.no_truncation()  # Hugging Face checkpoints often ship max_length 128/512 enabled.
    tokenizer.no_padding()
    encodings = tokenizer.encode_batch(list(documents), add_special_tokens=False)
    return [np.asarray(encoding.ids, np.int32) for encoding in encodings]
