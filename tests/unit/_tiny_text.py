"""A tiny BERT and a toy sentiment task for the text tests (built locally: no hub, no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from leanbench.data.base import Split, TaskData

POSITIVE = ["good", "great", "fine", "nice", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "poor", "terrible", "dull", "boring"]
FILLER = ["the", "movie", "was", "a", "film", "plot", "story", "really", "quite", "and", "acting", "very"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def toy_texts(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n sentences of 3-8 words: label 1 holds a positive word, label 0 a negative one."""
    rng = np.random.default_rng(seed)
    X = np.empty(n, dtype=object)
    y = rng.integers(0, 2, n)
    for i in range(n):
        words = list(rng.choice(FILLER, rng.integers(2, 7)))
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(POSITIVE if y[i] else NEGATIVE)))
        X[i] = " ".join(words)
    return X, y.astype(np.int64)


def toy_task(n_train: int = 96, n_val: int = 48, n_test: int = 48, max_length: int | None = None) -> TaskData:
    splits = []
    for name, n, seed in (("train", n_train, 1), ("validation", n_val, 2), ("test", n_test, 3)):
        X, y = toy_texts(n, seed)
        splits.append(Split(name, X, y, np.array([f"{name}:{i}" for i in range(n)], dtype=object)))
    meta = {"max_length": max_length} if max_length else {}
    return TaskData(*splits, label_names=["negative", "positive"], input_shape=(), source="toy", meta=meta)


def save_tokenizer(path: Path) -> None:
    """A WordLevel tokenizer over the toy vocabulary with BERT's special tokens and templates."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIAL + sorted(set(POSITIVE + NEGATIVE + FILLER)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   model_input_names=["input_ids", "token_type_ids", "attention_mask"],
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(str(path))


def save_tiny_bert(path: Path, layers: int = 2, seed: int = 0) -> Path:
    """A randomly initialised BertModel (hidden 32, 4 heads, FFN 64) + tokenizer saved in `path`."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(SPECIAL) + len(set(POSITIVE + NEGATIVE + FILLER)), hidden_size=32,
                        num_hidden_layers=layers, num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(str(path))
    save_tokenizer(path)
    return path
