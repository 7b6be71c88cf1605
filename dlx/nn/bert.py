"""BERT (Devlin et al. 2019) in flax, with Hugging Face checkpoint import and export.

Per token: `x = LN(word[id] + position[t] + token_type[type])`, then a post-LN `Encoder` (exact
erf GELU, or the tanh form for HF's "gelu_new"). The pooler is `tanh(Dense(h[CLS]))`; the MLM
head is `LN(GELU(Dense(h))) · word_tableᵀ + output_bias`, its decoder tied to the word embedding.

Dropout matches HF's `BertModel` in place and count: HF applies it to the normalised embeddings,
and `Encoder` applies its input dropout (rate `hidden_dropout_prob`) at exactly that point, so
`BertEmbeddings` has no dropout of its own and nothing is dropped twice.

`load_hf_checkpoint` maps HF names onto flax params: `embeddings.{word,position,token_type}
_embeddings` -> `embeddings/*/embedding`, `embeddings.LayerNorm` -> `embeddings/norm`,
`encoder.layer.{k}.attention.self.{query,key,value}` -> `encoder/layer_{k}/attention/*`,
`attention.output.dense` -> `attention/out`, `attention.output.LayerNorm` -> `attention_norm`,
`intermediate.dense` -> `mlp/intermediate`, `output.dense` -> `mlp/output`, `output.LayerNorm`
-> `mlp_norm`, `pooler.dense` -> `pooler`; heads keep the body under `bert/` with
`cls.predictions.transform.{dense,LayerNorm}` -> `transform`, `transform_norm`,
`cls.predictions.bias` -> `output_bias` and `classifier` -> `classifier`. Linear weights `W`
become kernels `W.T`, LayerNorm `weight` becomes `scale`. The position-id buffer and the
next-sentence head (`cls.seq_relationship`) of pre-training checkpoints are skipped.

With `dtype=jnp.bfloat16` params stay float32 and are cast for the matmuls; embedding sums,
LayerNorm statistics, the attention softmax and the returned logits are float32.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import tempfile
from typing import Any, Iterator, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlx.errors import DlxError
from dlx.nn import activations, mixed_dot
from dlx.nn.attention import padding_mask
from dlx.nn.dropout import Dropout
from dlx.nn.tied_decoder import TokenNll, tied_logits, tied_token_nll
from dlx.nn.transformer import Encoder, computing_in

HIDDEN_ACTS = {"gelu": False, "gelu_new": True}  # Name -> approximate (tanh) GELU.
CONFIG_FILE, SAFETENSORS_FILE, TORCH_FILE = "config.json", "model.safetensors", "pytorch_model.bin"
_init = nn.initializers.normal(0.02)  # HF's initializer_range.


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """BERT hyperparameters, named as in HF's `config.json` (defaults: bert-base-uncased)."""
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    def __post_init__(self):
        if self.hidden_act not in HIDDEN_ACTS:
            raise DlxError(f"BERT hidden_act={self.hidden_act!r} is unsupported; expected one of "
                           f"{', '.join(HIDDEN_ACTS)}")
        if self.hidden_size % self.num_attention_heads:
            raise DlxError(f"BERT num_attention_heads={self.num_attention_heads} does not divide "
                           f"hidden_size={self.hidden_size}")

    @classmethod
    def from_hf_dict(cls, hf: dict[str, Any]) -> BertConfig:
        """The config from HF `config.json` fields; fields it lacks keep their defaults."""
        if hf.get("model_type", "bert") != "bert":
            raise DlxError(f"config has model_type={hf['model_type']!r}; expected 'bert'")
        return cls(**{f.name: hf[f.name] for f in dataclasses.fields(cls) if f.name in hf})

    def to_hf_dict(self) -> dict[str, Any]:
        """HF `config.json` fields (with model_type "bert")."""
        return {"model_type": "bert", **dataclasses.asdict(self)}


class BertOutput(NamedTuple):
    """`last_hidden_state` (B, T, H); `pooler_output` (B, H), None without a pooler."""
    last_hidden_state: jax.Array
    pooler_output: jax.Array | None


class LogitsOutput(NamedTuple):
    """`logits`: (B, T, V) or (B, P, V) from the MLM head, (B, num_labels) from a classifier."""
    logits: jax.Array


class BertEmbeddings(nn.Module):
    """`(input_ids_BT, token_type_ids_BT)` -> float32 `LN(word + position + token type)` (B, T, H).

    No dropout here: the `Encoder`'s input dropout is HF's embedding dropout (module docstring).
    """
    config: BertConfig
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.word_embeddings = nn.Embed(c.vocab_size, c.hidden_size, dtype=self.dtype,
                                        embedding_init=_init)
        self.position_embeddings = nn.Embed(c.max_position_embeddings, c.hidden_size,
                                            embedding_init=_init)
        self.token_type_embeddings = nn.Embed(c.type_vocab_size, c.hidden_size,
                                              embedding_init=_init)
        self.norm = nn.LayerNorm(epsilon=c.layer_norm_eps)

    def __call__(self, input_ids_BT: jax.Array, token_type_ids_BT: jax.Array) -> jax.Array:
        length = input_ids_BT.shape[1]
        if length > self.config.max_position_embeddings:
            raise DlxError(f"sequence length {length} exceeds max_position_embeddings="
                           f"{self.config.max_position_embeddings}")
        x_BTH = (self.word_embeddings(input_ids_BT).astype(jnp.float32)
                 + self.position_embeddings(jnp.arange(length))[None]
                 + self.token_type_embeddings(token_type_ids_BT))
        return self.norm(x_BTH)

    def attend(self, h_BXH: jax.Array, bias_V: jax.Array) -> jax.Array:
        """`h_BXH` -> float32 `h · word_tableᵀ + bias_V` (B, X, V), the product in `dtype`: the
        tied MLM decoder."""
        return tied_logits(h_BXH, self.word_embeddings.embedding, bias_V, self.dtype)

    def attend_nll(self, h_BXH: jax.Array, bias_V: jax.Array, labels_BX: jax.Array) -> TokenNll:
        """The tied decoder fused with the softmax cross-entropy of `labels_BX`: see `TokenNll`."""
        return tied_token_nll(h_BXH, self.word_embeddings.embedding, bias_V, labels_BX,
                              self.dtype)


class BertModel(nn.Module):
    """`input_ids_BT` (+ `attention_mask_BT` 1 real / 0 pad, `token_type_ids_BT`) -> BertOutput.

    `use_fused` runs attention through `jax.nn.dot_product_attention` (cuDNN's kernel on GPU);
    it has no attention dropout, so training then needs `attention_probs_dropout_prob=0`.
    `remat` recomputes each encoder layer's activations in the backward pass (`nn.remat`).
    """
    config: BertConfig
    add_pooling_layer: bool = True
    dtype: jnp.dtype = jnp.float32
    use_fused: bool = False
    remat: bool = False

    def setup(self):
        c = self.config
        self.embeddings = BertEmbeddings(c, self.dtype)
        encoder_cls = computing_in(Encoder, self.dtype, self.is_initializing())
        self.encoder = encoder_cls(
            num_heads=c.num_attention_heads, mlp_dim=c.intermediate_size,
            dropout=c.hidden_dropout_prob, attention_dropout=c.attention_probs_dropout_prob,
            layer_norm_epsilon=c.layer_norm_eps, approximate_gelu=HIDDEN_ACTS[c.hidden_act],
            kernel_init=_init, num_layers=c.num_hidden_layers, positions="none",
            use_fused=self.use_fused, remat=self.remat)
        if self.add_pooling_layer:
            self.pooler = nn.Dense(c.hidden_size, dtype=self.dtype, kernel_init=_init,
                                   dot_general=mixed_dot.dot_general)

    def __call__(self, input_ids_BT: jax.Array, attention_mask_BT: jax.Array | None = None,
                 token_type_ids_BT: jax.Array | None = None, *, train: bool = False) -> BertOutput:
        if input_ids_BT.ndim != 2:
            raise DlxError(f"BERT input_ids has shape {tuple(input_ids_BT.shape)}; expected "
                           f"(batch, length)")
        for name, x in (("attention_mask", attention_mask_BT),
                        ("token_type_ids", token_type_ids_BT)):
            if x is not None and x.shape != input_ids_BT.shape:
                raise DlxError(f"BERT {name} has shape {tuple(x.shape)}; expected input_ids' "
                               f"{tuple(input_ids_BT.shape)}")
        if token_type_ids_BT is None:
            token_type_ids_BT = jnp.zeros_like(input_ids_BT)
        mask = None if attention_mask_BT is None else padding_mask(attention_mask_BT.astype(bool))
        x_BTH = self.embeddings(input_ids_BT, token_type_ids_BT).astype(self.dtype)
        h_BTH = self.encoder(x_BTH, mask, train=train)
        pooled_BH = jnp.tanh(self.pooler(h_BTH[:, 0])) if self.add_pooling_layer else None
        return BertOutput(h_BTH, pooled_BH)

    def attend(self, h_BXH: jax.Array, bias_V: jax.Array) -> jax.Array:
        """The tied MLM decoder `h_BXH` -> (B, X, V); see `BertEmbeddings.attend`."""
        return self.embeddings.attend(h_BXH, bias_V)

    def attend_nll(self, h_BXH: jax.Array, bias_V: jax.Array, labels_BX: jax.Array) -> TokenNll:
        """The tied MLM decoder fused with the cross-entropy; see `BertEmbeddings.attend_nll`."""
        return self.embeddings.attend_nll(h_BXH, bias_V, labels_BX)


class BertForMaskedLM(nn.Module):
    """BertModel + MLM head -> logits (B, T, V), or (B, P, V) at `masked_positions_BP` only; given
    `labels_BX` (B, T) or (B, P), a `TokenNll` instead (the decoder fused with the loss)."""
    config: BertConfig
    add_pooling_layer: bool = False
    dtype: jnp.dtype = jnp.float32
    use_fused: bool = False
    remat: bool = False

    @nn.compact
    def __call__(self, input_ids_BT: jax.Array, attention_mask_BT: jax.Array | None = None,
                 token_type_ids_BT: jax.Array | None = None,
                 masked_positions_BP: jax.Array | None = None,
                 labels_BX: jax.Array | None = None, *,
                 train: bool = False) -> LogitsOutput | TokenNll:
        c = self.config
        bert = BertModel(c, self.add_pooling_layer, self.dtype, self.use_fused, self.remat,
                         name="bert")
        h_BXH = bert(input_ids_BT, attention_mask_BT, token_type_ids_BT, train=train)[0]
        if masked_positions_BP is not None:
            # Gathering first runs the head (and the V-wide decoder) on P << T positions.
            h_BXH = jnp.take_along_axis(h_BXH, masked_positions_BP[..., None], axis=1)
        h_BXH = nn.Dense(c.hidden_size, dtype=self.dtype, kernel_init=_init,
                         dot_general=mixed_dot.dot_general, name="transform")(h_BXH)
        h_BXH = activations.gelu(h_BXH, approximate=HIDDEN_ACTS[c.hidden_act])
        h_BXH = nn.LayerNorm(epsilon=c.layer_norm_eps, name="transform_norm")(
            h_BXH.astype(jnp.float32))
        output_bias_V = self.param("output_bias", nn.initializers.zeros, (c.vocab_size,))
        if labels_BX is not None:
            if labels_BX.shape != h_BXH.shape[:2]:
                raise DlxError(f"labels_BX has shape {tuple(labels_BX.shape)}; expected "
                               f"{tuple(h_BXH.shape[:2])}, one label per predicted position")
            return bert.attend_nll(h_BXH, output_bias_V, labels_BX)
        return LogitsOutput(bert.attend(h_BXH, output_bias_V))


class BertForSequenceClassification(nn.Module):
    """BertModel -> pooler -> dropout -> Dense(num_labels): logits (B, num_labels)."""
    config: BertConfig
    num_labels: int = 2
    dtype: jnp.dtype = jnp.float32
    use_fused: bool = False
    remat: bool = False

    @nn.compact
    def __call__(self, input_ids_BT: jax.Array, attention_mask_BT: jax.Array | None = None,
                 token_type_ids_BT: jax.Array | None = None, *,
                 train: bool = False) -> LogitsOutput:
        pooled_BH = BertModel(self.config, True, self.dtype, self.use_fused, self.remat,
                              name="bert")(
            input_ids_BT, attention_mask_BT, token_type_ids_BT, train=train).pooler_output
        pooled_BH = Dropout(self.config.hidden_dropout_prob, deterministic=not train)(pooled_BH)
        logits_BL = nn.Dense(self.num_labels, dtype=self.dtype, kernel_init=_init,
                             dot_general=mixed_dot.dot_general, name="classifier")(pooled_BH)
        return LogitsOutput(logits_BL.astype(jnp.float32))


class BertTextClassifier(BertForSequenceClassification):
    """`x_BT` token ids (`[CLS] text [SEP]`, right-padded with `pad_token_id`) -> logits (B, C);
    the attention mask is `x != pad_token_id` and every token is of segment 0."""

    def __call__(self, x_BT: jax.Array, *, train: bool = False) -> jax.Array:
        return super().__call__(x_BT, x_BT != self.config.pad_token_id, train=train).logits


class _Entry(NamedTuple):
    """One HF tensor: its name, flax param path, HF shape, and whether the kernel is `W.T`."""
    key: str
    path: tuple[str, ...]
    shape: tuple[int, ...]
    transpose: bool = False


def _linear(key: str, path: tuple[str, ...], fan_in: int, fan_out: int) -> Iterator[_Entry]:
    yield _Entry(f"{key}.weight", path + ("kernel",), (fan_out, fan_in), True)
    yield _Entry(f"{key}.bias", path + ("bias",), (fan_out,))


def _norm(key: str, path: tuple[str, ...], features: int) -> Iterator[_Entry]:
    yield _Entry(f"{key}.weight", path + ("scale",), (features,))
    yield _Entry(f"{key}.bias", path + ("bias",), (features,))


def _body_entries(c: BertConfig, pooler: bool) -> Iterator[_Entry]:
    """The BertModel tensors, without the `bert.` prefix and `bert/` path of head models."""
    hidden, inner = c.hidden_size, c.intermediate_size
    for name, rows in (("word", c.vocab_size), ("position", c.max_position_embeddings),
                       ("token_type", c.type_vocab_size)):
        yield _Entry(f"embeddings.{name}_embeddings.weight",
                     ("embeddings", f"{name}_embeddings", "embedding"), (rows, hidden))
    yield from _norm("embeddings.LayerNorm", ("embeddings", "norm"), hidden)
    for k in range(c.num_hidden_layers):
        key, path = f"encoder.layer.{k}.", ("encoder", f"layer_{k}")
        for name in ("query", "key", "value"):
            yield from _linear(f"{key}attention.self.{name}", path + ("attention", name),
                               hidden, hidden)
        yield from _linear(f"{key}attention.output.dense", path + ("attention", "out"),
                           hidden, hidden)
        yield from _norm(f"{key}attention.output.LayerNorm", path + ("attention_norm",), hidden)
        yield from _linear(f"{key}intermediate.dense", path + ("mlp", "intermediate"),
                           hidden, inner)
        yield from _linear(f"{key}output.dense", path + ("mlp", "output"), inner, hidden)
        yield from _norm(f"{key}output.LayerNorm", path + ("mlp_norm",), hidden)
    if pooler:
        yield from _linear("pooler.dense", ("pooler",), hidden, hidden)


def _mlm_entries(c: BertConfig) -> Iterator[_Entry]:
    yield from _linear("cls.predictions.transform.dense", ("transform",), c.hidden_size,
                       c.hidden_size)
    yield from _norm("cls.predictions.transform.LayerNorm", ("transform_norm",), c.hidden_size)
    yield _Entry("cls.predictions.bias", ("output_bias",), (c.vocab_size,))


def _entries(module: nn.Module) -> list[_Entry]:
    """Every HF tensor of `module`, with HF's names (`bert.` prefix for head models)."""
    c = module.config
    if isinstance(module, BertModel):
        return list(_body_entries(c, module.add_pooling_layer))
    pooler = isinstance(module, BertForSequenceClassification) or module.add_pooling_layer
    body = [_Entry(f"bert.{e.key}", ("bert",) + e.path, e.shape, e.transpose)
            for e in _body_entries(c, pooler)]
    if isinstance(module, BertForMaskedLM):
        return body + list(_mlm_entries(c))
    return body + list(_linear("classifier", ("classifier",), c.hidden_size, module.num_labels))


def _read_state_dict(path: pathlib.Path) -> dict[str, np.ndarray]:
    """`model.safetensors` (preferred) or `pytorch_model.bin` in `path` -> float32 numpy arrays."""
    if (path / SAFETENSORS_FILE).is_file():
        from safetensors.numpy import load_file
        return {k: v.astype(np.float32) if np.issubdtype(v.dtype, np.floating) else v
                for k, v in load_file(path / SAFETENSORS_FILE).items()}
    if (path / TORCH_FILE).is_file():
        try:
            import torch
        except ImportError:
            raise DlxError(f"{path / TORCH_FILE} needs torch to read; install torch or convert "
                           f"it to {SAFETENSORS_FILE}") from None
        state_dict = torch.load(path / TORCH_FILE, map_location="cpu", weights_only=True)
        return {k: (v.float() if v.is_floating_point() else v).numpy()
                for k, v in state_dict.items()}
    raise DlxError(f"{path} has neither {SAFETENSORS_FILE} nor {TORCH_FILE}; expected a Hugging "
                   f"Face BERT checkpoint directory")


def _normalise_keys(state_dict: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """HF names with a `bert.` prefix on body tensors, legacy gamma/beta renamed, buffers and the
    next-sentence head dropped."""
    out = {}
    for key, value in state_dict.items():
        if key.endswith("position_ids") or key.startswith("cls.seq_relationship."):
            continue
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta",
                                                                        "LayerNorm.bias")
        if key.startswith(("embeddings.", "encoder.", "pooler.")):
            key = f"bert.{key}"
        out[key] = value
    return out


def _set(tree: dict, path: tuple[str, ...], value: jax.Array) -> None:
    for name in path[:-1]:
        tree = tree.setdefault(name, {})
    tree[path[-1]] = value


def read_hf_config(path: str | os.PathLike) -> BertConfig:
    """The BertConfig of the Hugging Face checkpoint directory `path` (its config.json)."""
    path = pathlib.Path(path)
    if not (path / CONFIG_FILE).is_file():
        raise DlxError(f"{path} has no {CONFIG_FILE}; expected a Hugging Face BERT checkpoint "
                       f"directory")
    try:
        hf = json.loads((path / CONFIG_FILE).read_text())
    except json.JSONDecodeError as e:
        raise DlxError(f"{path / CONFIG_FILE} is not valid JSON ({e.msg}, line {e.lineno})"
                       ) from None
    return BertConfig.from_hf_dict(hf)


def load_hf_checkpoint(path: str | os.PathLike, model_class: type[nn.Module] | None = None
                       ) -> tuple[BertConfig, nn.Module, dict]:
    """HF BERT directory -> (config, module, params); use `module.apply({"params": params}, ...)`.

    `model_class` (BertModel, BertForMaskedLM or BertForSequenceClassification) defaults to the
    richest the checkpoint holds: a classifier, else an MLM head, else the bare model. A
    BertModel may be loaded from a head checkpoint (the head is left out).
    """
    path = pathlib.Path(path)
    config = read_hf_config(path)
    state_dict = _normalise_keys(_read_state_dict(path))
    has = {part: any(k.startswith(part) for k in state_dict)
           for part in ("bert.pooler.", "cls.predictions.", "classifier.")}
    if model_class is None:
        model_class = (BertForSequenceClassification if has["classifier."] else
                       BertForMaskedLM if has["cls.predictions."] else BertModel)
    if model_class is BertModel:
        module = BertModel(config, add_pooling_layer=has["bert.pooler."])
        state_dict = {k.removeprefix("bert."): v for k, v in state_dict.items()}
    elif model_class is BertForMaskedLM:
        module = BertForMaskedLM(config, add_pooling_layer=has["bert.pooler."])
    elif model_class is BertForSequenceClassification:
        weight = state_dict.get("classifier.weight")
        num_labels = 2 if weight is None else weight.shape[0]  # None: a missing-key error below.
        module = BertForSequenceClassification(config, num_labels)
    else:
        raise DlxError(f"model_class={model_class!r} is unsupported; expected BertModel, "
                       f"BertForMaskedLM or BertForSequenceClassification")
    entries = _entries(module)
    known = {e.key for e in entries}
    if model_class is BertModel:  # Heads of a head checkpoint are known, and left out.
        known |= {k for k in state_dict if k.startswith(("cls.predictions.", "classifier."))}
    tied = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
            "cls.predictions.decoder.bias": "cls.predictions.bias"}
    for key, source in tied.items():
        if key in state_dict and model_class is BertForMaskedLM:
            if source in state_dict and not np.array_equal(state_dict[key], state_dict[source]):
                raise DlxError(f"{path}: {key} differs from {source}; expected them tied "
                               f"(an untied MLM decoder is unsupported)")
            known.add(key)
    unexpected = sorted(set(state_dict) - known)
    if unexpected:
        raise DlxError(f"{path}: unexpected keys {unexpected} for {model_class.__name__}")
    missing = [e.key for e in entries if e.key not in state_dict]
    if missing:
        raise DlxError(f"{path}: missing keys {missing} for {model_class.__name__}")
    params: dict = {}
    for e in entries:
        array = state_dict[e.key]
        if array.shape != e.shape:
            raise DlxError(f"{path}: {e.key} has shape {array.shape}; expected {e.shape} "
                           f"from {CONFIG_FILE}")
        _set(params, e.path, jnp.asarray(array.T if e.transpose else array, jnp.float32))
    return config, module, params


def save_hf_checkpoint(path: str | os.PathLike, config: BertConfig, params: dict,
                       with_mlm_head: bool = True) -> None:
    """Writes `config.json` and `model.safetensors` that transformers' BertForMaskedLM (or, without
    the head, BertModel) loads; `params` are a BertForMaskedLM's or a BertModel's."""
    from safetensors.numpy import save_file

    head_model = "bert" in params
    body = params["bert"] if head_model else params
    if with_mlm_head and not (head_model and "transform" in params):
        raise DlxError("save_hf_checkpoint(with_mlm_head=True) got params without the MLM head "
                       "(transform, transform_norm, output_bias); expected BertForMaskedLM "
                       "params or with_mlm_head=False")
    pooler = "pooler" in body
    if with_mlm_head:
        module: nn.Module = BertForMaskedLM(config, add_pooling_layer=pooler)
        tree = params
    else:
        module, tree = BertModel(config, add_pooling_layer=pooler), body
    tensors = {}
    for e in _entries(module):
        value = tree
        try:
            for name in e.path:
                value = value[name]
        except KeyError:
            raise DlxError(f"params lack {'/'.join(e.path)}; expected {type(module).__name__} "
                           f"params for the given config") from None
        array = np.asarray(value, np.float32)
        array = array.T if e.transpose else array
        if array.shape != e.shape:
            raise DlxError(f"params {'/'.join(e.path)} give {e.key} shape {array.shape}; "
                           f"expected {e.shape} from the config")
        tensors[e.key] = np.ascontiguousarray(array)
    hf_config = {**config.to_hf_dict(), "architectures": [type(module).__name__],
                 "tie_word_embeddings": True}

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (staging / CONFIG_FILE).write_text(json.dumps(hf_config, indent=2) + "\n")
        save_file(tensors, staging / SAFETENSORS_FILE, metadata={"format": "pt"})
        if path.exists():
            for name in (CONFIG_FILE, SAFETENSORS_FILE):
                os.replace(staging / name, path / name)
        else:
            os.rename(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
