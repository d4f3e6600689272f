"""The `distill` step for causal LMs: a smaller causal LM student learns the teacher's next-token
distribution on a text corpus (token-level knowledge distillation; Hinton et al. 2015, as applied to LMs
by DistilGPT-2 / Sanh et al. 2019):

    loss = alpha * T^2 * mean_tokens KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, next token)

Corpus: `distill.data`, a .txt file (documents separated by blank lines) or JSONL/CSV with a `text` column,
relative to the study folder. Documents are tokenized with the teacher's tokenizer (the student must share
its vocabulary), joined with EOS, cut into `seq_len`-token sequences; a seeded 10% of them (at least one)
is the validation set for early stopping (`patience` epochs).

Teacher logits are computed *on the fly* for every batch, not cached: a cache of full-vocabulary logits
takes seq_len x vocab floats per sequence (128 x 49,152 x 4 B = 25 MB for SmolLM2), which outgrows the
corpus quickly; a top-k cache would change the loss. The price is one teacher forward per student step.
FLOPs (Kaplan et al. 2020): 6 N_student per trained token + 2 N_teacher per token the teacher scores.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from leanbench.compress.base import StepContext, StepResult
from leanbench.errors import DataError, ModelError


def lm_distillation_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor,
                         temperature: float, alpha: float) -> torch.Tensor:
    """student/teacher logits (B, T, V) predicting labels (B, T); mean over tokens."""
    s, t = student.flatten(0, 1).float(), teacher.flatten(0, 1).float()
    kl = F.kl_div(F.log_softmax(s / temperature, dim=-1), F.log_softmax(t / temperature, dim=-1),
                  reduction="batchmean", log_target=True)
    ce = F.cross_entropy(s, labels.flatten())
    return alpha * temperature ** 2 * kl + (1.0 - alpha) * ce


def corpus_sequences(adapter: Any, docs: list[str], seq_len: int) -> torch.Tensor:
    """(n, seq_len + 1) token ids: the documents joined with EOS, cut into consecutive windows."""
    eos = adapter.tokenizer.eos_token_id
    ids: list[int] = []
    for toks in adapter.encode(docs, add_special_tokens=False):
        ids += toks + ([eos] if eos is not None else [])
    n = (len(ids) - 1) // seq_len
    if n < 2:
        raise DataError(f"distill.data: the corpus has {len(ids)} tokens, fewer than 2 sequences of "
                        f"seq_len={seq_len} + 1; give more text or a smaller seq_len")
    t = torch.tensor(ids[: n * seq_len + 1])
    return torch.stack([t[i * seq_len: (i + 1) * seq_len + 1] for i in range(n)])


def _corpus(cfg: Any, ctx: StepContext) -> list[str]:
    from leanbench.data.loaders import resolve_path
    from leanbench.evaluate.language_modeling import read_documents

    if cfg.data is None:
        raise ModelError("distill for a causal LM needs `data:` (a text corpus: .txt or JSONL with 'text')")
    base = Path(ctx.data.meta.get("base_dir", "."))
    return read_documents(resolve_path(cfg.data, base, where="distill.data"), "text")


def _check_pair(student: Any, teacher: Any) -> None:
    if getattr(teacher, "adapter_name", None) != "causal-lm":
        raise ModelError(f"distill: the teacher must be a causal LM, got adapter '{teacher.adapter_name}'")
    if student.compression:
        raise ModelError("distill: the student is compressed (quantized/pruned); distill first, then compress")
    if student.tokenizer.get_vocab() != teacher.tokenizer.get_vocab():
        raise ModelError("distill: the student and the teacher have different vocabularies; token-level KL "
                         "needs the same tokenizer")


def _epoch_loss(student: torch.nn.Module, teacher: torch.nn.Module, seqs: torch.Tensor, cfg: Any,
                optimizer: torch.optim.Optimizer | None) -> float:
    total, count = 0.0, 0
    for i in range(0, len(seqs), cfg.batch_size):
        batch = seqs[i:i + cfg.batch_size]
        inputs, labels = batch[:, :-1], batch[:, 1:]
        with torch.inference_mode():
            t_logits = teacher(input_ids=inputs, use_cache=False).logits
        with torch.set_grad_enabled(optimizer is not None):
            s_logits = student(input_ids=inputs, use_cache=False).logits
            loss = lm_distillation_loss(s_logits, t_logits.clone(), labels, cfg.temperature, cfg.alpha)
        if optimizer is not None:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        total += float(loss.detach()) * len(batch)
        count += len(batch)
    return total / max(count, 1)


def distill_lm(cfg: Any, model: Any, ctx: StepContext) -> StepResult:
    """Trains a copy of the student; keeps the weights of the best validation epoch."""
    from leanbench.models.causal_lm import CausalLMAdapter
    from leanbench.models.lm_layers import count_params

    teacher, _ = ctx.teacher(cfg.teacher)
    _check_pair(model, teacher)
    seed = cfg.seed if cfg.seed is not None else ctx.seed
    torch.manual_seed(seed)
    seqs = corpus_sequences(teacher, _corpus(cfg, ctx), cfg.seq_len)
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(seqs)))
    n_val = max(1, len(seqs) // 10)
    val, train = seqs[order[:n_val]], seqs[order[n_val:]]
    student = copy.deepcopy(model.model).train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_state, history, waited = math.inf, copy.deepcopy(student.state_dict()), [], 0
    for epoch in range(cfg.epochs):
        train_loss = _epoch_loss(student, teacher.model, train[torch.randperm(len(train))], cfg, optimizer)
        student.eval()
        val_loss = _epoch_loss(student, teacher.model, val, cfg, None)
        student.train()
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss})
        ctx.progress(epoch + 1, cfg.epochs, f"val loss {val_loss:.4f}")
        if val_loss < best:
            best, best_state, waited = val_loss, copy.deepcopy(student.state_dict()), 0
        else:
            waited += 1
            if cfg.patience and waited >= cfg.patience:
                break
    student.load_state_dict(best_state)
    tokens = len(history) * (len(train) + len(val)) * cfg.seq_len
    n_s, n_t = count_params(student)[0], count_params(teacher.model)[0]
    flops = 6.0 * n_s * len(history) * len(train) * cfg.seq_len + 2.0 * n_t * tokens
    info = {"epochs_run": len(history), "best_val_loss": best, "history": history, "sequences": len(seqs),
            "seq_len": cfg.seq_len, "teacher_logits": "computed on the fly (not cached)"}
    return StepResult(CausalLMAdapter(student.eval(), model.tokenizer, model.info), flops=flops, info=info)
