"""The SFT baseline's dataset: the same token sequences DYPO's SFT term trains on.

verl's ``MultiTurnSFTDataset`` renders every turn with the chat template separately and asserts that the
concatenation equals the whole conversation rendered at once. Qwen3-style templates drop the ``<think>`` block
of an assistant turn rendered on its own, so on reasoning traces that assertion fails (and with
``ignore_input_ids_mismatch=true`` the thinking would silently be dropped from training).

:class:`TeacherSFTDataset` instead builds each row exactly like a DYPO teacher row (:func:`recipe_dypo.teachers.
teacher_response_ids`): the prompt rendered with ``add_generation_prompt=True`` (what the RL dataset feeds the
rollout), then the teacher's text tokens and EOS; loss on the response tokens only. Selected in
``configs/sft_trainer.yaml`` through verl's ``data.custom_cls``.
"""

from __future__ import annotations

import torch
from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

from recipe_dypo.teachers import teacher_response_ids


class TeacherSFTDataset(MultiTurnSFTDataset):
    """Rows ``messages = [prompt turns..., {"role": "assistant", "content": teacher solution}]``."""

    def tokenize_row(self, messages: list[dict], item: int) -> tuple[list[int], list[int]]:
        """(input_ids, loss_mask) of one row: chat-templated prompt + teacher tokens + EOS."""
        if not messages or messages[-1].get("role") != "assistant":
            raise ValueError(f"SFT row {item}: the last message must be the assistant's teacher solution")
        prompt = self.tokenizer.apply_chat_template(
            messages[:-1], add_generation_prompt=True, tokenize=True, **self.apply_chat_template_kwargs
        )
        prompt = list(prompt["input_ids"] if isinstance(prompt, dict) or hasattr(prompt, "keys") else prompt)
        ((response, _),) = teacher_response_ids(self.tokenizer, [messages[-1]["content"]], max_tokens=1 << 30)
        if response is None:
            raise ValueError(f"SFT row {item}: the teacher solution does not tokenise")
        return prompt + response, [0] * len(prompt) + [1] * len(response)

    def __getitem__(self, item):
        ids, mask = self.tokenize_row(self.messages[item], item)
        if len(ids) > self.max_length:
            if self.truncation == "error":
                raise ValueError(f"SFT row {item}: {len(ids)} tokens > data.max_length={self.max_length}")
            keep = slice(-self.max_length, None) if self.truncation == "left" else slice(0, self.max_length)
            ids, mask = ids[keep], mask[keep]
        input_ids = torch.tensor(ids, dtype=torch.long)
        loss_mask = torch.tensor(mask, dtype=torch.long)
        attention_mask = torch.ones_like(input_ids)
        if self.pad_mode == "right" and len(ids) < self.max_length:
            pad = self.max_length - len(ids)
            pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            input_ids = torch.cat([input_ids, torch.full((pad,), pad_id, dtype=torch.long)])
            loss_mask = torch.cat([loss_mask, torch.zeros(pad, dtype=torch.long)])
            attention_mask = torch.cat([attention_mask, torch.zeros(pad, dtype=torch.long)])
        position_ids = torch.arange(len(input_ids), dtype=torch.long)
        out = {"input_ids": input_ids, "position_ids": position_ids, "loss_mask": loss_mask}
        if self.pad_mode == "right":
            out["attention_mask"] = attention_mask
        return out
