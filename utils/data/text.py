"""A character-level text corpus (Jane Austen's six novels) and a character vocabulary.

The novels are plain UTF-8 files, one per novel, looked for in ``$DIGM_DATA_DIR/text/`` and then in
the cache folder ``$DIGM_CACHE_DIR/text/`` (default ``~/.cache/digm/text/``); each file must match its
published sha256 (a gzipped copy is accepted when its content does). :func:`load_text` joins them in
publication order. See ``../shared/data/text/README.txt`` for their provenance (Project Gutenberg texts
as packaged by the janeaustenr R package; public domain).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from utils.data.errors import DatasetNotFoundError
from utils.data.sources import ENV_CACHE_DIR, ENV_DATA_DIR, Resource, load_decoded

# Publication order; (file name, sha256 of the UTF-8 file).
AUSTEN_NOVELS = (
    ("sense_and_sensibility.txt", "105e1651fe93bed7130078578efd31e0c557d68667ba672ddc876f735b30fe09"),
    ("pride_and_prejudice.txt", "dfc684d4f857fa938268f9ab9c5567b64bd0691251eca959644adeabe6287a4d"),
    ("mansfield_park.txt", "98bc90519cdf4ef663ad7de2734bb529435ef24f7abbde6bb1a50898871dafe9"),
    ("emma.txt", "7c67b5985c6d0de1efaeb5d342d52cb82c38083c40e2295129e30e87ee690ebe"),
    ("northanger_abbey.txt", "51f91bbe0517db8e65cff009b097ce0a1836124c4e0532ac19e6c0cad982abed"),
    ("persuasion.txt", "8061549557aebd2fd6e353d18d9197cb707029112bd52d4d8b174583a925848a"),
)
TEXT_RESOURCES = tuple(
    Resource(
        folder="text",
        filename=name,
        file_hashes=(("sha256", sha),),
        content_hashes=(("sha256", sha),),
        description=f"Jane Austen's {name[:-4].replace('_', ' ').title()}",
    )
    for name, sha in AUSTEN_NOVELS
)


def _decode_utf8(content: bytes, where: str) -> str:
    return content.decode("utf-8")


def load_text(limit_chars: int | None = None) -> str:
    """Jane Austen's six novels as one string (4,025,028 characters, 81 distinct), or its first ``limit_chars``.

    Raises :class:`DatasetNotFoundError` naming the places tried when the novels are not found.
    """
    if limit_chars is not None and (
        isinstance(limit_chars, bool) or not isinstance(limit_chars, int) or limit_chars < 1
    ):
        raise ValueError(f"limit_chars={limit_chars!r} must be a positive integer or None.")
    parts: list[str] = []
    length = 0
    for resource in TEXT_RESOURCES:
        try:
            part = load_decoded(resource, _decode_utf8)
        except DatasetNotFoundError as err:
            raise DatasetNotFoundError(
                f"{err} Put the six novels (see utils/data/text.py for names and checksums) in "
                f"${ENV_DATA_DIR}/text/ or ${ENV_CACHE_DIR}/text/ (default ~/.cache/digm/text/).",
                err.attempts,
            ) from None
        parts.append(part)
        length += len(part)
        if limit_chars is not None and length >= limit_chars:
            break
    text = "".join(parts)
    return text if limit_chars is None else text[:limit_chars]


@dataclass(frozen=True)
class CharVocab:
    """A fixed alphabet of characters, mapping each to an integer id (its rank in sorted order).

    >>> vocab = CharVocab.from_text("hello")
    >>> vocab.decode(vocab.encode("hole"))
    'hole'
    """

    chars: tuple[str, ...]

    def __post_init__(self) -> None:
        if any(len(c) != 1 for c in self.chars) or len(set(self.chars)) != len(self.chars):
            raise ValueError(
                "CharVocab needs distinct single characters; build it with CharVocab.from_text(text)."
            )

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The vocabulary of every distinct character in ``text``, in code-point order."""
        if not text:
            raise ValueError("CharVocab.from_text got an empty string; pass the training text.")
        return cls(tuple(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def _codepoints(self) -> np.ndarray:
        return np.array([ord(c) for c in self.chars], dtype=np.int64)

    def encode(self, text: str) -> torch.Tensor:
        """Ids of the characters of ``text``, ``int64 [len(text)]`` (vectorised: 4 M characters in ~0.1 s)."""
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        table = self._codepoints()  # sorted, since from_text sorts; searchsorted needs that
        order = np.argsort(table)
        ids = np.searchsorted(table[order], points)
        ids = np.clip(ids, 0, len(table) - 1)
        known = table[order][ids] == points
        if not known.all():
            position = int(np.flatnonzero(~known)[0])
            raise ValueError(
                f"Character {text[position]!r} at position {position} is not in this vocabulary of "
                f"{len(self)} characters; build the vocabulary from text that contains it."
            )
        return torch.from_numpy(order[ids])

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """The string for a 1-D tensor (or list) of ids."""
        if isinstance(ids, torch.Tensor):
            if ids.ndim != 1:
                raise ValueError(
                    f"decode needs a 1-D tensor of ids, got shape {tuple(ids.shape)}; decode rows one by one."
                )
            values = ids.detach().cpu().tolist()
        else:
            values = list(ids)
        bad = [i for i in values if not 0 <= int(i) < len(self.chars)]
        if bad:
            raise ValueError(
                f"Id {bad[0]} is outside this vocabulary of {len(self)} characters (0..{len(self) - 1})."
            )
        return "".join(self.chars[int(i)] for i in values)
