"""The digit classifier that judges generated images (lecture 08's architecture, reused by lecture 13).

``DigitClassifier(width)``: two 3x3 conv blocks with max pooling (28 -> 14 -> 7), dropout, a 128-unit
ReLU layer whose activations are the features of the Fréchet distance, and a linear head over 10
classes. Images are [B, 1, 28, 28] in [-1, 1] (as a tanh generator's). ``loss((x, y))`` is the
cross-entropy for ``utils.train.fit``; ``probs_and_features(x)`` gives [N, 10] and [N, 128] in eval mode.
Lecture 08 builds the same layers in the lecture itself (the same module names, so its weights load here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DigitClassifier(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = int(width)
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # [B, w, 14, 14]
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # [B, 2w, 7, 7]
            nn.Flatten(), nn.Dropout(0.25), nn.Linear(2 * w * 49, 128), nn.ReLU(),  # [B, 128]
        )  # fmt: skip
        self.head = nn.Sequential(nn.Dropout(0.25), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"DigitClassifier takes images [B, 1, 28, 28] in [-1, 1], got {list(x.shape)}.")
        return self.head(self.features(x))

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, y = batch
        logits = self(x)
        return {"loss": F.cross_entropy(logits, y), "error": (logits.argmax(1) != y).float().mean()}

    @torch.no_grad()
    def probs_and_features(self, x: torch.Tensor, chunk: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        """[N, 1, 28, 28] in [-1, 1] -> class probabilities [N, 10] and penultimate features [N, 128]."""
        was = self.training
        self.eval()
        feats = torch.cat([self.features(x[i : i + chunk]) for i in range(0, len(x), chunk)])
        probs = torch.softmax(self.head(feats), 1)
        self.train(was)
        return probs, feats
