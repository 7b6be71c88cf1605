"""Pure model definitions (flax.linen) and a builder from `config.model`."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from dlx.errors import DlxError, missing_key
from dlx.nn import activations, init
from dlx.nn.cnn import Conv1DNet, SimpleCNN
from dlx.nn.mlp import MLP
from dlx.nn.rnn import RNNClassifier


def _mlp(model_config: ml_collections.ConfigDict, num_outputs: int, axis_name: str | None) -> MLP:
    return MLP(features=tuple(model_config.features), num_outputs=num_outputs,
               activation=activations.get(model_config.activation), dropout=model_config.dropout,
               use_batchnorm=model_config.batchnorm, axis_name=axis_name,
               kernel_init=init.get(model_config.kernel_init),
               bias_init=init.get(model_config.bias_init))


def _conv1d(model_config: ml_collections.ConfigDict, num_outputs: int,
            axis_name: str | None) -> Conv1DNet:
    del axis_name  # No BatchNorm.
    return Conv1DNet(num_outputs=num_outputs, channels=model_config.channels)


def _simple_cnn(model_config: ml_collections.ConfigDict, num_outputs: int,
                axis_name: str | None) -> SimpleCNN:
    return SimpleCNN(num_outputs=num_outputs, use_batchnorm=model_config.batchnorm,
                     dropout=model_config.dropout, hidden=model_config.hidden, axis_name=axis_name)


def _rnn(model_config: ml_collections.ConfigDict, num_outputs: int,
         axis_name: str | None) -> RNNClassifier:
    del axis_name  # No BatchNorm.
    return RNNClassifier(cell_type=model_config.cell_type, hidden_size=model_config.hidden_size,
                         num_layers=model_config.num_layers,
                         bidirectional=model_config.bidirectional, num_outputs=num_outputs,
                         dropout=model_config.dropout, readout=model_config.readout,
                         weight_init=model_config.weight_init)


DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _dtype(model_config: ml_collections.ConfigDict) -> jnp.dtype:
    """`model.dtype` ("float32" when a config predates the key) as a jnp dtype."""
    name = model_config.get("dtype", "float32")
    if name not in DTYPES:
        raise DlxError(f"model.dtype={name!r} is unsupported; expected one of: "
                       f"{', '.join(DTYPES)}")
    return DTYPES[name]


def _remat(model_config: ml_collections.ConfigDict) -> bool:
    """`model.remat` (False when a config predates the key): gradient checkpointing per block."""
    remat = model_config.get("remat", False)
    if not isinstance(remat, bool):
        raise DlxError(f"model.remat={remat!r} is not a bool; expected true or false")
    return remat


def _bert_mlm(model_config: ml_collections.ConfigDict, num_outputs: int,
              axis_name: str | None) -> nn.Module:
    """BertForMaskedLM over a `num_outputs`-token vocabulary (the data source's)."""
    del axis_name  # No BatchNorm.
    from dlx.nn.bert import BertConfig, BertForMaskedLM
    config = BertConfig(
        vocab_size=num_outputs, hidden_size=model_config.hidden_size,
        num_hidden_layers=model_config.num_layers, num_attention_heads=model_config.num_heads,
        intermediate_size=model_config.intermediate_size,
        hidden_dropout_prob=model_config.dropout,
        attention_probs_dropout_prob=model_config.attention_dropout,
        max_position_embeddings=model_config.max_length)
    return BertForMaskedLM(config, dtype=_dtype(model_config), use_fused=model_config.use_fused,
                           remat=_remat(model_config))


def _gpt(model_config: ml_collections.ConfigDict, num_outputs: int,
         axis_name: str | None) -> nn.Module:
    """A GPT-2-style causal LM over a `num_outputs`-token vocabulary (the data source's)."""
    del axis_name  # No BatchNorm.
    from dlx.nn.gpt import GPT
    return GPT(vocab_size=num_outputs, hidden_size=model_config.hidden_size,
               num_layers=model_config.num_layers, num_heads=model_config.num_heads,
               mlp_dim=model_config.mlp_dim, max_length=model_config.max_length,
               dropout=model_config.dropout, attention_dropout=model_config.attention_dropout,
               use_fused=model_config.use_fused, dtype=_dtype(model_config),
               remat=_remat(model_config))


def _elmo_bilm(model_config: ml_collections.ConfigDict, num_outputs: int,
               axis_name: str | None) -> nn.Module:
    """ELMo's biLSTM language model over a `num_outputs`-token vocabulary (the data source's)."""
    del axis_name  # No BatchNorm.
    from dlx.nn.elmo import BiLM
    return BiLM(vocab_size=num_outputs, hidden_size=model_config.hidden_size,
                num_layers=model_config.num_layers, residual=model_config.residual,
                dropout=model_config.dropout)


def _bert_classifier(model_config: ml_collections.ConfigDict, num_outputs: int,
                     axis_name: str | None) -> nn.Module:
    """BERT with the architecture of the checkpoint `model.init_from` and a `num_outputs`-way
    classifier on its pooled [CLS] output."""
    del axis_name  # No BatchNorm.
    import dataclasses
    from dlx.nn.bert import BertTextClassifier, read_hf_config
    config = read_hf_config(model_config.init_from)
    config = dataclasses.replace(config, hidden_dropout_prob=model_config.dropout,
                                 attention_probs_dropout_prob=model_config.attention_dropout)
    return BertTextClassifier(config, num_labels=num_outputs, remat=_remat(model_config))


def _seq2seq(model_config: ml_collections.ConfigDict, num_outputs: int,
             axis_name: str | None) -> nn.Module:
    """The recurrent encoder–decoder with attention over a `num_outputs`-token vocabulary."""
    del axis_name  # No BatchNorm.
    from dlx.nn.seq2seq import Seq2Seq
    return Seq2Seq(vocab_size=num_outputs, embed_dim=model_config.embed_dim,
                   hidden_size=model_config.hidden_size, cell_type=model_config.cell_type,
                   num_layers=model_config.num_layers, bidirectional=model_config.bidirectional,
                   attention=model_config.attention, attention_dim=model_config.attention_dim,
                   dropout=model_config.dropout)


def _seq2seq_transformer(model_config: ml_collections.ConfigDict, num_outputs: int,
                         axis_name: str | None) -> nn.Module:
    """The Transformer encoder–decoder over a `num_outputs`-token vocabulary."""
    del axis_name  # No BatchNorm.
    from dlx.nn.seq2seq import TransformerSeq2Seq
    return TransformerSeq2Seq(vocab_size=num_outputs, hidden_size=model_config.hidden_size,
                              num_layers=model_config.num_layers,
                              num_heads=model_config.num_heads, mlp_dim=model_config.mlp_dim,
                              dropout=model_config.dropout, remat=_remat(model_config))


def _gan(model_config: ml_collections.ConfigDict, num_outputs: int,
         axis_name: str | None) -> nn.Module:
    """A DCGAN-style generator and discriminator of `model.image_size` square images."""
    del num_outputs, axis_name  # Images, not classes; no BatchNorm.
    from dlx.nn.gan import GAN
    return GAN(latent_dim=model_config.latent_dim, image_size=model_config.image_size,
               generator_features=model_config.generator_features,
               discriminator_features=model_config.discriminator_features,
               output=model_config.output, minibatch_std=model_config.minibatch_std)


def _autoencoder(model_config: ml_collections.ConfigDict, num_outputs: int,
                 axis_name: str | None) -> nn.Module:
    """A dense, convolutional or variational autoencoder; `model.input_shape` sets its output."""
    del num_outputs, axis_name  # The output is the input's shape; no BatchNorm.
    from dlx.nn.autoencoder import from_config
    return from_config(model_config)


def _gnn_node(model_config: ml_collections.ConfigDict, num_outputs: int,
              axis_name: str | None) -> nn.Module:
    """A two-layer GCN or GAT (`model.conv`) giving every node `num_outputs` logits."""
    del axis_name  # No BatchNorm.
    from dlx.nn.gnn import NodeClassifier
    return NodeClassifier(num_outputs=num_outputs, conv=model_config.conv,
                          hidden=model_config.hidden, heads=model_config.heads,
                          dropout=model_config.dropout,
                          attention_dropout=model_config.attention_dropout)


def _gnn_graph(model_config: ml_collections.ConfigDict, num_outputs: int,
               axis_name: str | None) -> nn.Module:
    """GCN, GAT or edge-blind dense layers (`model.conv`), a per-graph readout, `num_outputs`."""
    del axis_name  # No BatchNorm.
    from dlx.nn.gnn import GraphClassifier
    return GraphClassifier(num_outputs=num_outputs, conv=model_config.conv,
                           hidden=model_config.hidden, num_layers=model_config.num_layers,
                           heads=model_config.heads, readout=model_config.readout,
                           dropout=model_config.dropout)


def pretrained_weights(model_config: ml_collections.ConfigDict) -> dict:
    """The weights a model starts from, read from disk once, here: for `bert_classifier` with
    `model.pretrained`, `{"bert": body}` with the BERT body of `model.init_from` (and its pooler
    when the checkpoint has one); `{}` for the others. `with_pretrained` puts them in place."""
    if model_config.name != "bert_classifier" or not model_config.pretrained:
        return {}
    from dlx.nn.bert import BertModel, load_hf_checkpoint
    _, _, body = load_hf_checkpoint(model_config.init_from, BertModel)
    return {"bert": body}


def with_pretrained(params: dict, weights: dict) -> dict:
    """Fresh `params` with each subtree of `weights` (from `pretrained_weights`) merged into the
    one of the same name; the rest (the classifier, a pooler the checkpoint lacks) keeps its fresh
    initialisation, as in transformers."""
    return {**params, **{name: {**params[name], **subtree} for name, subtree in weights.items()}}


MODELS = {"mlp": _mlp, "conv1d": _conv1d, "simple_cnn": _simple_cnn, "rnn": _rnn,
          "bert_mlm": _bert_mlm, "gpt": _gpt, "bert_classifier": _bert_classifier,
          "seq2seq": _seq2seq, "seq2seq_transformer": _seq2seq_transformer,
          "elmo_bilm": _elmo_bilm, "gan": _gan,
          "dense_autoencoder": _autoencoder, "conv_autoencoder": _autoencoder,
          "vae": _autoencoder,
          "gnn_node": _gnn_node, "gnn_graph": _gnn_graph}


def build(model_config: ml_collections.ConfigDict, num_outputs: int,
          axis_name: str | None = None) -> nn.Module:
    """The module named by `model.name`, with `axis_name` for cross-device BatchNorm under pmap."""
    if model_config.name not in MODELS:
        raise DlxError(f"model.name={model_config.name!r} is not a known model; "
                       f"expected one of: {', '.join(MODELS)}")
    try:
        return MODELS[model_config.name](model_config, num_outputs, axis_name)
    except AttributeError as e:  # ConfigDict raises AttributeError for a missing key.
        raise missing_key("model", model_config.name, e) from None
