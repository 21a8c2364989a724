"""utils.data.words: sentence splitting, tokenizing and the word vocabulary (lecture 11)."""

from __future__ import annotations

import pytest
import torch

from utils.data import WordVocab, detokenize, split_paragraphs, split_sentences, tokenize


def test_titles_do_not_end_a_sentence():
    text = "Mr. Darcy bowed. Mrs. Bennet and Dr. Grant were there. Then St. James's was quiet."
    assert split_sentences(text) == [
        "Mr. Darcy bowed.",
        "Mrs. Bennet and Dr. Grant were there.",
        "Then St. James's was quiet.",
    ], "a full stop after Mr/Mrs/Dr/St is an abbreviation, not the end of a sentence"


def test_initials_do_not_end_a_sentence():
    assert split_sentences("Captain F. W. Wentworth came. He sat.") == [
        "Captain F. W. Wentworth came.",
        "He sat.",
    ]


def test_speech_followed_by_a_small_letter_goes_on():
    text = '"Oh! my dear!" cried she. "What is it?" said he, "Tell me." She did.'
    assert split_sentences(text) == [
        '"Oh! my dear!" cried she.',
        '"What is it?" said he, "Tell me."',
        "She did.",
    ], (
        "'!\"' or '?\"' followed by a small letter is inside the sentence; a closing quote stays with its sentence"
    )


def test_closing_quote_belongs_to_the_sentence_it_closes():
    assert split_sentences('"I am here." She smiled.') == ['"I am here."', "She smiled."]


def test_sentences_never_cross_a_paragraph_and_headings_are_skipped():
    text = "CHAPTER 12\n\n\nThe end of a\nparagraph without a stop\n\nA new one.  Yes!"
    assert split_sentences(text) == ["The end of a paragraph without a stop", "A new one.", "Yes!"]
    assert split_sentences("Chapter IV\n\nIt rained.", skip_headings=False) == ["Chapter IV", "It rained."]


def test_paragraphs_join_lines_with_single_spaces():
    assert split_paragraphs("a\nb  c\n\n\n d \n") == ["a b c", "d"]


def test_tokenize_lowercases_keeps_apostrophes_and_drops_quotes():
    assert tokenize('"Mr. Darcy\'s sister--she is _very_ fine, isn\'t she?"') == [
        "mr", ".", "darcy's", "sister", "--", "she", "is", "very", "fine", ",", "isn't", "she", "?"
    ]  # fmt: skip


def test_detokenize_glues_punctuation():
    assert detokenize(["well", ",", "she", "said", "(", "softly", ")", "."]) == "well, she said (softly)."
    assert detokenize(["over", "-", "persuasion", "--", "and", "so"]) == "over-persuasion -- and so"


def _vocab() -> WordVocab:
    return WordVocab.from_sentences([["the", "cat", "sat"], ["the", "dog", "sat"], ["the", "end"]])


def test_vocab_order_is_specials_then_frequency_then_alphabet():
    assert _vocab().words == ("<pad>", "<bos>", "<eos>", "<unk>", "the", "sat", "cat", "dog", "end")


def test_round_trip_of_known_words():
    vocab = _vocab()
    tokens = ["the", "dog", "sat"]
    assert vocab.decode(vocab.encode(tokens)) == tokens, "decode(encode(tokens)) should give the tokens back"


def test_unknown_words_become_unk():
    vocab = _vocab()
    ids = vocab.encode(["the", "emu"])
    assert ids.tolist() == [4, vocab.unk_id]
    assert vocab.decode(ids) == ["the", "<unk>"]


def test_max_size_and_min_count_limit_the_vocabulary():
    sentences = [["a"] * 3 + ["b"] * 2 + ["c"]]
    assert WordVocab.from_sentences(sentences, max_size=6).words[4:] == ("a", "b")
    assert WordVocab.from_sentences(sentences, min_count=2).words[4:] == ("a", "b")


def test_pad_batch_layout_and_strip():
    vocab = _vocab()
    batch = vocab.pad_batch([["the", "cat"], ["dog"]], max_len=3)
    assert batch.tolist() == [[1, 4, 6, 2, 0], [1, 7, 2, 0, 0]], "<bos> words <eos> then <pad>"
    assert vocab.decode(batch[1]) == ["dog"], "decode strips <bos> and stops at <eos>"
    assert vocab.decode(batch[1], strip=False) == ["<bos>", "dog", "<eos>", "<pad>", "<pad>"]


def test_pad_batch_refuses_or_truncates_long_sentences():
    vocab = _vocab()
    with pytest.raises(ValueError, match="max_len"):
        vocab.pad_batch([["the", "cat", "sat"]], max_len=2)
    assert vocab.pad_batch([["the", "cat", "sat"]], max_len=2, truncate=True).tolist() == [[1, 4, 6, 2]]


def test_bad_inputs_are_clear_errors():
    vocab = _vocab()
    with pytest.raises(TypeError, match="list of tokens"):
        vocab.encode("the cat")
    with pytest.raises(ValueError, match="outside"):
        vocab.decode(torch.tensor([99]))
    with pytest.raises(ValueError, match="no words"):
        WordVocab.from_sentences([])
    with pytest.raises(ValueError, match="first four"):
        WordVocab(("the", "cat"))
