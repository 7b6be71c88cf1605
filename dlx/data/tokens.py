"""Token data sources: `text` (a corpus packed into rows of token ids for language models) and
`labelled_text` (labelled texts as `[CLS] text [SEP]` ids for classification, truncated or cut
into windows by `data.long_text`: `load_labelled`).

Documents come from `data.corpus` (see `dlx.data.text`), split by document with `data.held_out`
into train and test. The tokenizer is `data.tokenizer` (a directory with `tokenizer.json` or a
BERT `vocab.txt`, e.g. a Hugging Face checkpoint), or else one with `data.vocab_size` tokens is
trained on the training documents only and cached under the data cache directory, keyed by those
documents and settings, so a later `dlx generate` or `dlx eval` decodes with the same vocabulary.

`data.packing`:
- `bert`: `dlx.data.mlm.pack` rows `[CLS] A [SEP] B [SEP] [PAD]...` of `data.seq_len` tokens,
  fields `input_ids`, `segment_ids`, `attention_mask` and `row` (the row's index in its split,
  which keys its MLM mask);
- `stream`: every document followed by [SEP] (its end-of-text token), concatenated and cut into
  rows of `data.seq_len` tokens, the last one right-padded; fields `input_ids`,
  `attention_mask`, `row`. This is GPT-2's packing: a row may span two documents.

`Splits.metadata` carries `vocab_size`, `special_ids`, `tokenizer` (its directory) and
`baseline`: the held-out loss, perplexity and accuracy of the unigram model (training-token
frequencies, add-one smoothed) on the tokens the task predicts, the floor a model must beat.
"""

from __future__ import annotations

import hashlib
import json
import pathlib

import ml_collections
import numpy as np

from dlx.data import Splits, cache_dir, mlm, text, tokenizer as tokenizer_lib
from dlx.errors import DlxError

PACKINGS = ("bert", "stream")


def _tokenizer(data_config: ml_collections.ConfigDict, train_docs: list[str]):
    """`data.tokenizer` loaded, or trained on `train_docs` and cached; (tokenizer, its directory)."""
    if data_config.tokenizer:
        return tokenizer_lib.load(data_config.tokenizer), str(data_config.tokenizer)
    digest = hashlib.sha256()
    digest.update(json.dumps([data_config.vocab_size, data_config.min_frequency]).encode())
    for document in train_docs:
        digest.update(document.encode("utf-8") + b"\0")
    directory = cache_dir(data_config) / "tokenizers" / digest.hexdigest()[:16]
    if (directory / tokenizer_lib.TOKENIZER_FILE).is_file():
        return tokenizer_lib.load(directory), str(directory)
    tokenizer = tokenizer_lib.train(train_docs, data_config.vocab_size, data_config.min_frequency)
    tokenizer_lib.save(tokenizer, directory)
    return tokenizer, str(directory)


def stream_rows(token_ids_per_doc: list[np.ndarray], seq_len: int, eot_id: int,
                pad_id: int) -> dict[str, np.ndarray]:
    """Documents joined with `eot_id` after each, cut into (N, seq_len) rows, the last padded."""
    if seq_len < 2:
        raise DlxError(f"data.seq_len={seq_len} is too short; expected at least 2")
    eot = np.array([eot_id], np.int32)
    stream = np.concatenate([part for ids in token_ids_per_doc for part in (ids, eot)])
    rows = -(-len(stream) // seq_len)
    input_ids = np.full(rows * seq_len, pad_id, np.int32)
    input_ids[:len(stream)] = stream
    attention_mask = np.arange(rows * seq_len) < len(stream)
    return {"input_ids": input_ids.reshape(rows, seq_len),
            "attention_mask": attention_mask.reshape(rows, seq_len)}


def _predicted(rows: dict[str, np.ndarray], packing: str, specials: list[int]) -> np.ndarray:
    """The token ids the task predicts: real non-special tokens (MLM) or targets t >= 1 (LM)."""
    real = rows["attention_mask"]
    if packing == "bert":
        return rows["input_ids"][real & ~np.isin(rows["input_ids"], specials)]
    return rows["input_ids"][:, 1:][real[:, 1:]]


def unigram_baseline(train_ids: np.ndarray, test_ids: np.ndarray, vocab_size: int,
                     excluded: list[int]) -> dict[str, float]:
    """Held-out loss/perplexity/accuracy of add-one-smoothed unigram frequencies of `train_ids`
    over the `vocab_size` ids that are not `excluded` (ids the task never predicts)."""
    counts = np.bincount(train_ids, minlength=vocab_size).astype(np.float64) + 1.0
    counts[excluded] = 0.0
    log_p = np.log(np.maximum(counts, 1e-300) / counts.sum())
    loss = float(-log_p[test_ids].mean())
    return {"loss": loss, "perplexity": float(np.exp(loss)),
            "accuracy": float((test_ids == counts.argmax()).mean())}


def load(data_config: ml_collections.ConfigDict) -> Splits:
    """Train/test rows of token ids for `data.packing`, with metadata (module docstring)."""
    if data_config.packing not in PACKINGS:
        raise DlxError(f"data.packing={data_config.packing!r} is unknown; expected one of: "
                       f"{', '.join(PACKINGS)}")
    documents = text.load(data_config)
    if not documents.held_out:
        raise DlxError("data.held_out=0 leaves no held-out text to evaluate on; set a fraction "
                       "such as 0.1")
    tokenizer, directory = _tokenizer(data_config, documents.train)
    ids = tokenizer_lib.special_ids(tokenizer)
    vocab_size = tokenizer.get_vocab_size()
    splits = {}
    for name, docs in (("train", documents.train), ("test", documents.held_out)):
        encoded = tokenizer_lib.encode(tokenizer, docs)
        if data_config.packing == "bert":
            rows = mlm.pack(encoded, data_config.seq_len, ids.cls, ids.sep, ids.pad)
        else:
            rows = stream_rows(encoded, data_config.seq_len, ids.sep, ids.pad)
        rows["row"] = np.arange(len(rows["input_ids"]), dtype=np.int32)
        splits[name] = rows
    specials = sorted(set(ids))
    excluded = specials if data_config.packing == "bert" else [ids.pad, ids.cls, ids.mask]
    baseline = unigram_baseline(_predicted(splits["train"], data_config.packing, specials),
                                _predicted(splits["test"], data_config.packing, specials),
                                vocab_size, excluded)
    metadata = {"vocab_size": vocab_size, "special_ids": ids._asdict(), "tokenizer": directory,
                "baseline": {"unigram": baseline}}
    return Splits(train=splits["train"], test=splits["test"], num_classes=vocab_size,
                  metadata=metadata)


def encode_classification(tokenizer, texts: list[str], seq_len: int) -> np.ndarray:
    """`[CLS] text [SEP]` ids per text, truncated and right-padded to (N, seq_len) int32."""
    if seq_len < 3:
        raise DlxError(f"data.seq_len={seq_len} is too short; expected at least 3")
    ids = tokenizer_lib.special_ids(tokenizer)
    x = np.full((len(texts), seq_len), ids.pad, np.int32)
    for i, encoded in enumerate(tokenizer_lib.encode(tokenizer, texts)):
        row = np.concatenate([[ids.cls], encoded[:seq_len - 2], [ids.sep]])
        x[i, :len(row)] = row
    return x


LONG_TEXT = ("truncate", "windows")


def long_text_settings(data_config: ml_collections.ConfigDict) -> tuple[str, int]:
    """(`data.long_text`, the window stride in tokens) of a `labelled_text` config: the stride is
    `data.window_stride`, or (`data.seq_len` - 2) // 2 when it is 0 or unset (half a window)."""
    mode = data_config.get("long_text", "truncate")
    if mode not in LONG_TEXT:
        raise DlxError(f"data.long_text={mode!r} is unknown; expected one of: "
                       f"{', '.join(LONG_TEXT)}")
    stride = data_config.get("window_stride", 0)
    if mode == "truncate":
        return mode, 0
    seq_len, piece = data_config.seq_len, data_config.seq_len - 2
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 3:
        raise DlxError(f"data.seq_len={seq_len!r} is too short; expected an int >= 3")
    if isinstance(stride, bool) or not isinstance(stride, int) or not 0 <= stride <= piece:
        raise DlxError(f"data.window_stride={stride!r} must be an int in [1, data.seq_len - 2 = "
                       f"{piece}] (tokens between window starts), or 0 for half a window")
    if data_config.get("validation_size", 0):
        raise DlxError("data.validation_size > 0 would carve windows, not documents, out of the "
                       "training split; use data.long_text='truncate' or validation_size=0")
    return mode, stride or max(1, piece // 2)


def encode_windows(tokenizer, texts: list[str], labels_N: np.ndarray, seq_len: int,
                   stride: int) -> dict[str, np.ndarray]:
    """Every text as `[CLS] piece [SEP]` windows (`dlx.data.chunking.sliding_windows`): fields
    `x` (W, seq_len) int32, `y` (W,) its text's label and `doc` (W,) int32 its text's index."""
    from dlx.data import chunking
    ids = tokenizer_lib.special_ids(tokenizer)
    x_WT, _, doc_W = chunking.sliding_windows(tokenizer_lib.encode(tokenizer, texts), seq_len,
                                              stride, ids.cls, ids.sep, ids.pad)
    return {"x": x_WT, "y": np.asarray(labels_N, np.int32)[doc_W], "doc": doc_W}


def _windowed(tokenizer, sets, seq_len: int, stride: int) -> tuple[dict, dict, dict]:
    """Train and test windows of `sets` (`dlx.data.labelled_text.LabelledSplits`) and their
    `documents` metadata: per split, texts, windows and texts longer than one window."""
    splits, documents = {}, {"window": seq_len, "stride": stride}
    for name, texts, labels_N in (("train", sets.train_texts, sets.train_labels),
                                  ("test", sets.test_texts, sets.test_labels)):
        splits[name] = encode_windows(tokenizer, texts, labels_N, seq_len, stride)
        windows_D = np.bincount(splits[name]["doc"], minlength=len(texts))
        documents[name] = {"documents": len(texts), "windows": int(windows_D.sum()),
                           "longer_than_a_window": int((windows_D > 1).sum())}
    return splits["train"], splits["test"], documents


def load_labelled(data_config: ml_collections.ConfigDict) -> Splits:
    """The `labelled_text` source: a set of `dlx.data.labelled_text` (`data.corpus`) as `x`
    (N, `data.seq_len`) token ids of `data.tokenizer` and labels `y`; text split by class with
    `data.held_out`.

    `data.long_text` (default `truncate`) says what becomes of a text longer than `seq_len - 2`
    tokens: `truncate` keeps its first tokens, one row per text; `windows` cuts every text into
    `[CLS] piece [SEP]` rows of `seq_len` tokens whose starts are `data.window_stride` tokens
    apart (0: half a window), each carrying its text's label `y` and `doc`, the text's index in
    its split; `metadata["documents"]` counts texts, windows and texts longer than one window.
    """
    from dlx.data import labelled_text
    mode, stride = long_text_settings(data_config)
    if not data_config.tokenizer:
        raise DlxError("data.tokenizer is empty; expected the directory of the tokenizer the "
                       "model was pre-trained with (e.g. the output of dlx export)")
    if not pathlib.Path(data_config.tokenizer).is_dir():
        raise DlxError(f"data.tokenizer={data_config.tokenizer} does not exist; expected the "
                       f"tokenizer directory of the pre-trained model (a bert_mlm run's is "
                       f"written by dlx export --out DIR)")
    tokenizer = tokenizer_lib.load(data_config.tokenizer)
    sets = labelled_text.load(data_config)
    if not len(sets.test_labels):
        raise DlxError("data.held_out=0 leaves no held-out texts to evaluate on; set a fraction "
                       "such as 0.25")
    metadata = {"labels": sets.label_names, "tokenizer": str(data_config.tokenizer)}
    if mode == "windows":
        train, test, metadata["documents"] = _windowed(tokenizer, sets, data_config.seq_len,
                                                       stride)
    else:
        train = {"x": encode_classification(tokenizer, sets.train_texts, data_config.seq_len),
                 "y": sets.train_labels}
        test = {"x": encode_classification(tokenizer, sets.test_texts, data_config.seq_len),
                "y": sets.test_labels}
    majority = np.bincount(sets.train_labels).argmax()
    metadata["baseline"] = {
        "majority_class": {"accuracy": float((sets.test_labels == majority).mean())}}
    return Splits(train=train, test=test, num_classes=len(sets.label_names), metadata=metadata)
