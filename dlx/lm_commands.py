"""`dlx generate` and `dlx export`: use a trained language model from its workdir."""

from __future__ import annotations

import pathlib
import shutil

import jax
import ml_collections

from dlx import generate as generate_lib
from dlx import tasks
from dlx.data import tokenizer as tokenizer_lib
from dlx.errors import DlxError
from dlx.train import loop


def _restore(config: ml_collections.ConfigDict, workdir: str, task_type: type, command: str,
             model_name: str):
    """(run, step, host params) of `workdir`'s newest checkpoint; its task must be `task_type`."""
    run, step, state = loop.restore_for(config, workdir, task_type,
                                        f"{command} (model.name={model_name!r})")
    return run, step, state.params


def generate_text(config: ml_collections.ConfigDict, workdir: str, prompt: str,
                  max_new_tokens: int, temperature: float, top_k: int, seed: int) -> str:
    """The prompt and its continuation by the causal LM of `workdir`'s newest checkpoint, decoded;
    generation ends at the end-of-text token ([SEP]) or after `max_new_tokens`."""
    run, _, params = _restore(config, workdir, tasks.CausalLM,
                              "generate needs a causal language model", "gpt")
    tokenizer = tokenizer_lib.load(run.splits.metadata["tokenizer"])
    ids = tokenizer_lib.special_ids(tokenizer)
    prompt_ids = tokenizer_lib.encode(tokenizer, [prompt])[0]
    if not len(prompt_ids):
        raise DlxError(f"--prompt {prompt!r} encodes to no tokens; give some text")
    model = run.task.model
    out = generate_lib.generate(
        lambda p, ids_1T, mask_1T: model.apply({"params": p}, ids_1T, mask_1T), params,
        prompt_ids, max_new_tokens, key=jax.random.PRNGKey(seed),
        max_length=config.model.max_length, temperature=temperature, top_k=top_k,
        pad_id=ids.pad, stop_id=ids.sep)
    return tokenizer.decode(out.tolist(), skip_special_tokens=True)


def export_bert(config: ml_collections.ConfigDict, workdir: str, out: str) -> dict:
    """Writes the BERT of `workdir`'s newest checkpoint to `out` as a Hugging Face checkpoint
    (config.json, model.safetensors) with its tokenizer (tokenizer.json, vocab.txt)."""
    from dlx.nn.bert import save_hf_checkpoint
    run, step, params = _restore(config, workdir, tasks.MaskedLM, "export writes BERT masked LMs",
                                 "bert_mlm")
    save_hf_checkpoint(out, run.task.model.config, params, with_mlm_head=True)
    source = pathlib.Path(run.splits.metadata["tokenizer"])
    for name in (tokenizer_lib.TOKENIZER_FILE, tokenizer_lib.VOCAB_FILE):
        if (source / name).is_file():
            shutil.copyfile(source / name, pathlib.Path(out) / name)
    return {"out": str(out), "step": step, "vocab_size": run.splits.num_classes}
