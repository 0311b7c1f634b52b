"""Text poolers for Hugging Face text towers, registered in open_clip's pooler registry.

open_clip's :class:`~open_clip.hf_model.HFTextEncoder` turns a transformers model's output into one
vector per text with a pooler named by ``text_cfg["hf_pooler_type"]`` (``"mean_pooler"``,
``"cls_pooler"``, ...). Importing this module (the model registry does) adds the poolers that
published domain models need:

* ``"last_layers_sum_pooler"`` (:class:`LastLayersSumPooler`): CAMMA's SurgVLP / HecVL / PeskaVLP
  sentence embedding, built from the last four hidden layers of Bio_ClinicalBERT.

A pooler that reads intermediate layers sets ``needs_hidden_states = True``; :func:`bind_text_pooler`
(called by :func:`~domainclip.core.models.registry.build_model` on every model it builds) then asks
the transformer for all hidden states, which open_clip's encoder does not request by itself.
"""

from __future__ import annotations

import torch
from open_clip.hf_model import register_pooler
from torch import nn

__all__ = ["LastLayersSumPooler", "bind_text_pooler"]


@register_pooler
class LastLayersSumPooler(nn.Module):
    """CAMMA's sentence embedding: the last four hidden layers, summed over tokens, layers summed.

    CAMMA's ``BertEncoder`` (github.com/CAMMA-public/SurgVLP,
    ``surgvlp/codes/models/backbones/text_backbones.py``, with ``text_last_n_layers=4``,
    ``text_agg_tokens=True``, ``text_aggregate_method="sum"``) stacks the last four entries of
    ``hidden_states``, merges each word's word pieces by summing them (``[CLS]`` .. ``[SEP]``; the
    padding after ``[SEP]`` is dropped and replaced by zero rows), averages over the padded length
    and sums the four layers. Merging pieces by a sum and padding with zeros keeps the total, so per
    layer this is the sum of the hidden states of the non-padding tokens divided by the padded
    sequence length, which is what this pooler computes (no loop over words). CAMMA's tokenizer
    pads to ``max_length=77``; so does open_clip's ``HFTokenizer`` with ``context_length: 77``.

    The transformer must return all hidden states (:func:`bind_text_pooler`). There is no
    projection: the embedding has the transformer's width.
    """

    #: Hidden layers summed (the last ones, ``hidden_states[-num_layers:]``; the embedding output
    #: counts as one when the transformer has fewer layers).
    num_layers = 4
    #: Ask :func:`bind_text_pooler` for the transformer's hidden states.
    needs_hidden_states = True

    def forward(self, x: object, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pool a transformers output into one vector per text.

        Args:
            x: the transformers model output (with ``hidden_states``).
            attention_mask: ``(B, L)`` 1 for real tokens, 0 for padding.

        Returns:
            ``(B, D)`` sentence embeddings.
        """
        hidden_states = getattr(x, "hidden_states", None)
        if not hidden_states:
            raise RuntimeError(
                "last_layers_sum_pooler needs the transformer's hidden states: build the model with "
                "domainclip.core.models.create_model (or call domainclip.core.models.poolers.bind_text_pooler)"
            )
        layers = torch.stack(tuple(hidden_states[-self.num_layers :]))  # (N, B, L, D)
        mask = attention_mask.to(layers.dtype)[None, :, :, None]
        token_sum = (layers * mask).sum(dim=2)  # (N, B, D)
        return token_sum.sum(dim=0) / attention_mask.shape[1]


def bind_text_pooler(clip: nn.Module) -> None:
    """Make a Hugging Face text tower return what its pooler reads (all hidden states, if it needs them).

    Args:
        clip: an open_clip model; towers other than open_clip's ``HFTextEncoder`` are left alone.
    """
    text = getattr(clip, "text", None)
    pooler = getattr(text, "pooler", None)
    transformer = getattr(text, "transformer", None)
    if getattr(pooler, "needs_hidden_states", False) and transformer is not None:
        transformer.config.output_hidden_states = True
