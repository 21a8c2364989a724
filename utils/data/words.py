"""Sentences and words of a text: a rule-based sentence splitter, a tokenizer and a word vocabulary.

* ``split_sentences(text)``: paragraphs are separated by blank lines; inside a paragraph a sentence
  ends at ``.``, ``!`` or ``?`` (with any closing quotes or brackets after it) when the next word
  starts with a capital letter, a digit or an opening quote, unless the word before the full stop is
  a title or an initial (``Mr. Darcy``, ``Mrs. Jennings``, ``Esq. of``, ``F. W.``). A ``?`` or ``!``
  inside speech followed by a small letter (``"Oh!" cried she``) does not end the sentence.
* ``tokenize(sentence)``: lower-cased words (with inner apostrophes: ``don't``, ``mary's``), numbers,
  ``--`` and single punctuation marks; double quotes and ``_`` (italics) are dropped.
* ``WordVocab``: the most frequent words of a training text plus four special tokens (``<pad>`` 0,
  ``<bos>`` 1, ``<eos>`` 2, ``<unk>`` 3); ``encode``/``decode`` one sentence, ``pad_batch`` many
  into one ``[N, max_len + 2]`` tensor ``<bos> w_1 .. w_n <eos> <pad> ..``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
# Words that end in a full stop without ending the sentence (compared without the stop, lower-cased).
ABBREVIATIONS = frozenset(
    "mr mrs messrs dr st esq hon rev col capt gen sept oct nov dec jan feb aug co vol no viz etc".split()
)
_END = re.compile(r"[.!?]+[\"')\]]*")  # a sentence-final mark and the quotes/brackets closing after it
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*|\d+(?:[.,]\d+)*|--|[^\sa-z\d\"_]")
_HEADING = re.compile(r"^(chapter|volume)\s+[\divxlc]+\.?$", re.IGNORECASE)


def split_paragraphs(text: str) -> list[str]:
    """The paragraphs of ``text`` (separated by blank lines), each on one line with single spaces."""
    if not isinstance(text, str):
        raise TypeError(f"split_paragraphs needs a string, got {type(text).__name__}.")
    paragraphs = (" ".join(p.split()) for p in re.split(r"\n\s*\n", text))
    return [p for p in paragraphs if p]


def _ends_sentence(paragraph: str, end: re.Match[str]) -> bool:
    rest = paragraph[end.end() :].lstrip()
    if not rest:
        return True
    if not (rest[0].isupper() or rest[0].isdigit() or rest[0] in "\"'(["):
        return False  # '"Oh!" cried she' or 'etc. and so on': the sentence goes on
    if paragraph[end.start()] != "." or end.group().startswith(".."):
        return True
    before = re.search(r"([A-Za-z]+)$", paragraph[: end.start()])
    if before is None:
        return True
    word = before.group(1)
    is_initial = len(word) == 1 and word.isupper()  # 'F. W. Wentworth'
    return not (is_initial or word.lower() in ABBREVIATIONS)


def split_sentences(text: str, skip_headings: bool = True) -> list[str]:
    """The sentences of ``text`` in order, each a string with single spaces (see the module doc).

    Sentences never cross a paragraph break. ``skip_headings`` drops paragraphs such as
    ``CHAPTER 12`` or ``Chapter IV``.
    """
    sentences = []
    for paragraph in split_paragraphs(text):
        if skip_headings and _HEADING.match(paragraph):
            continue
        start = 0
        for end in _END.finditer(paragraph):
            if _ends_sentence(paragraph, end):
                sentences.append(paragraph[start : end.end()].strip())
                start = end.end()
        tail = paragraph[start:].strip()
        if tail:
            sentences.append(tail)
    return [s for s in sentences if s]


def tokenize(sentence: str) -> list[str]:
    """Lower-cased word and punctuation tokens of one sentence; double quotes and underscores dropped.

    >>> tokenize('"I do not know, Mr. Darcy\\'s sister--"')
    ['i', 'do', 'not', 'know', ',', 'mr', '.', "darcy's", 'sister', '--']
    """
    if not isinstance(sentence, str):
        raise TypeError(f"tokenize needs a string (one sentence), got {type(sentence).__name__}.")
    return _TOKEN.findall(sentence.lower())


def detokenize(tokens: Sequence[str]) -> str:
    """Tokens joined into readable text: no space before punctuation or after an opening bracket, and
    hyphenated words joined again."""
    text = " ".join(tokens)
    text = re.sub(r" ([.,;:!?)\]])", r"\1", text)
    text = re.sub(r"(?<=\w) - (?=\w)", "-", text)  # 'over - persuasion' -> 'over-persuasion' ('--' stays)
    return re.sub(r"([(\[]) ", r"\1", text)


@dataclass(frozen=True)
class WordVocab:
    """A word vocabulary: ``words[i]`` has id ``i``; the first four are ``<pad> <bos> <eos> <unk>``.

    >>> vocab = WordVocab.from_sentences([["the", "cat"], ["the", "dog"]])
    >>> vocab.decode(vocab.encode(["the", "cat", "sat"]))
    ['the', 'cat', '<unk>']
    """

    words: tuple[str, ...]

    pad_id = 0
    bos_id = 1
    eos_id = 2
    unk_id = 3

    def __post_init__(self) -> None:
        if tuple(self.words[:4]) != SPECIALS:
            raise ValueError(
                f"WordVocab's first four words must be {SPECIALS}; build it with from_sentences."
            )
        if len(set(self.words)) != len(self.words):
            raise ValueError("WordVocab's words must be distinct; build it with WordVocab.from_sentences.")
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.words)})

    @classmethod
    def from_sentences(
        cls, sentences: Iterable[Sequence[str]], max_size: int | None = None, min_count: int = 1
    ) -> WordVocab:
        """The words of tokenized ``sentences`` seen at least ``min_count`` times, most frequent first
        (ties alphabetically), at most ``max_size`` in all including the four special tokens."""
        if max_size is not None and max_size < len(SPECIALS) + 1:
            raise ValueError(
                f"max_size={max_size} leaves no room for words; use at least {len(SPECIALS) + 1}."
            )
        counts = Counter(w for s in sentences for w in s)
        if not counts:
            raise ValueError("WordVocab.from_sentences got no words; pass tokenized training sentences.")
        ranked = sorted((w for w, c in counts.items() if c >= min_count and w not in SPECIALS),
                        key=lambda w: (-counts[w], w))  # fmt: skip
        keep = None if max_size is None else max_size - len(SPECIALS)
        return cls(SPECIALS + tuple(ranked[:keep]))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._index  # type: ignore[attr-defined]

    def encode(self, tokens: Sequence[str]) -> torch.Tensor:
        """Ids ``int64 [len(tokens)]`` of one tokenized sentence; unknown words become ``<unk>`` (3)."""
        if isinstance(tokens, str):
            raise TypeError("encode needs a list of tokens, not a string; use encode(tokenize(sentence)).")
        index = self._index  # type: ignore[attr-defined]
        return torch.tensor([index.get(w, self.unk_id) for w in tokens], dtype=torch.int64)

    def decode(self, ids: torch.Tensor | Sequence[int], strip: bool = True) -> list[str]:
        """The tokens of ``ids`` (1-D). With ``strip``: from after a leading ``<bos>`` up to the first
        ``<eos>`` or ``<pad>``, both excluded."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(
                    f"decode needs 1-D ids, got shape {tuple(ids.shape)}; decode rows one by one."
                )
            ids = ids.tolist()
        values = [int(i) for i in ids]
        bad = [i for i in values if not 0 <= i < len(self)]
        if bad:
            raise ValueError(
                f"Id {bad[0]} is outside this vocabulary of {len(self)} words (0..{len(self) - 1})."
            )
        if strip:
            values = values[1:] if values[:1] == [self.bos_id] else values
            stops = [k for k, i in enumerate(values) if i in (self.eos_id, self.pad_id)]
            values = values[: stops[0]] if stops else values
        return [self.words[i] for i in values]

    def pad_batch(
        self, sentences: Sequence[Sequence[str]], max_len: int, truncate: bool = False
    ) -> torch.Tensor:
        """Tokenized sentences as ``int64 [N, max_len + 2]``: ``<bos> ids.. <eos>`` then ``<pad>``.

        A sentence of more than ``max_len`` tokens is an error unless ``truncate`` keeps its first
        ``max_len`` (it still ends with ``<eos>``)."""
        if max_len < 1:
            raise ValueError(f"max_len={max_len} must be a positive number of tokens.")
        out = torch.full((len(sentences), max_len + 2), self.pad_id, dtype=torch.int64)
        for row, tokens in enumerate(sentences):
            if len(tokens) > max_len and not truncate:
                raise ValueError(
                    f"Sentence {row} has {len(tokens)} tokens, more than max_len={max_len}; filter the "
                    "sentences by length first or pass truncate=True."
                )
            ids = self.encode(list(tokens)[:max_len])
            out[row, 0] = self.bos_id
            out[row, 1 : len(ids) + 1] = ids
            out[row, len(ids) + 1] = self.eos_id
        return out
