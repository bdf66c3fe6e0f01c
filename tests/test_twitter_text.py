"""connectors.twitter_text: X's weighted post length, against twitter-text's own conformance cases."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

import connectors.x
from connectors import twitter_text
from connectors.twitter_text import is_valid_post, url_spans, weighted_length
from tests.budget import cpu_budget

# Conformance cases ------------------------------------------------------------------------------
#
# Transcribed from twitter/twitter-text's conformance file validate.yml (conformance/tests/validate.yml
# at commit 3b8031c): section WeightedTweetsWithDiscountedEmojiCounterTest, which runs the v3
# configuration, and section UnicodeDirectionalMarkerCounterTest. Texts and the expected
# `weightedLength` and `valid` are theirs; invisible characters are written as escapes, and texts
# that are repetitions are built by repetition (the length guard below checks them against the
# source's displayRangeEnd, which is the text's length in UTF-16 code units minus one).
#
# Not transcribed: WeightedTweetsCounterTest runs the v2 configuration, where emoji are not
# discounted; its texts are the ones below, and only its emoji expectations differ.

POEM = ("故人西辞黄鹤楼，烟花三月下扬州。孤帆远影碧空尽，唯见长江天际流。朱雀桥边野草花，乌衣巷口夕阳斜。"
        "旧时王谢堂前燕，飞入寻常百姓家。朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。"
        "泪湿罗巾梦不成，夜深前殿按歌声。红颜未老恩先断，斜倚薰笼坐到明。独在异乡为异客，每逢佳节倍思亲。"
        "遥知兄弟登高处，遍插茱萸少一人。")
X10 = "xxxxxxxxxx-"
JACK = "http://www.twitter.com/jack"
ALOHA = "https://www.twitter.com/aloha "
KANA = "あいうえおかきくけこ"
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
LONG_HOST_URL = "https://" + "somesuperlongurl" * 249 + ".com/foo"
ENGLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
PUNCTUATION = ("This is a tweet with general punctuation characters: "
               "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u200b "
               "\u2010 \u2011 \u2012 \u2013 \u2014 \u2015 \u2016  \u2017 \u2018 \u2019 \u201a \u201b "
               "\u201c \u201d \u201e \u201f \u2032 \u2033 \u2034 \u2035 \u2036 \u2037")

#: (description, text, weightedLength, valid, displayRangeEnd)
WEIGHTED = [
    ("Regular Tweet with url", "Hi http://test.co", 26, True, 16),
    ("Just url", "http://test.co", 23, True, 13),
    ("Long tweet, overflow at char index 280", "285 chars-" + X10 * 25, 285, False, 284),
    ("Long tweet with url in the middle, overflow at char index 284",
     f"285 chars- {JACK} " + X10 * 24, 299, False, 302),
    ("Long tweet with url at the end, overflow at char index 265", X10 * 24 + f" {JACK} ", 289, False, 292),
    ("10 url string, no overflow", ALOHA * 10, 240, True, 299),
    ("160 CJK char, overflow at char index 140", POEM, 320, False, 159),
    ("160 emoji char, overflow at char index 140", "\U0001f637" * 160, 320, False, 319),
    ("3 latin char + 160 CJK char, overflow at char index 141", "the" + POEM, 323, False, 162),
    ("'Á' is normalized into 1 char", "A\u0301B", 2, True, 2),
    ("שּׁ is normalized into 3 chars", "A\ufb2c", 4, True, 1),
    ("282 chars with a normalized character within valid range but outside 280",
     "282 chars-" + X10 * 24 + "xxxxxA\u0301x", 281, False, 281),
    ("Count a mix of single byte single word, and double word unicode characters",
     "H\U0001f431\u263a" + FAMILY, 7, True, 14),
    ("Count unicode emoji chars inside the basic multilingual plane",
     "\U0001f637\U0001f47e\U0001f621\U0001f525\U0001f4a9", 10, True, 9),
    ("Count unicode emoji chars outside the basic multilingual plane with skin tone modifiers",
     "\U0001f64b\U0001f3fd\U0001f468\u200d\U0001f3a4", 4, True, 8),
    ("Handle General Punctuation Characters with visible spaces(u2000-200A), no ZWJ/ZWNJ",
     PUNCTUATION, 110, True, 109),
    ("Handle long url with invalid domain labels and short url",
     "Long url with invalid domain labels and a short url: "
     + " ".join([LONG_HOST_URL] * 3) + " https://validurl.com", 12079, False, 12075),
    ("Handle a 64 character domain without protocol", "randomurl" * 7 + "s.com", 68, True, 67),
    ("Do not allow > 140 CJK characters by virtue of CJK chars greater than 63 punycode encoded chars "
     "in the host", KANA * 12 + " http://" + KANA * 5 + "あいう.com", 358, False, 184),
    ("Allow > 140 CJK characters by virtue of CJK chars less than 63 punycode encoded chars in the host",
     KANA * 12 + " http://" + KANA * 5 + "あい.com", 264, True, 183),
    ("140 family emoji", FAMILY * 140, 280, True, 1539),
    ("Unicode 10.0 emoji",
     f"Unicode 10.0 emoji: \U0001f92a; \U0001f9d5; \U0001f9d5\U0001f3fe; {ENGLAND}", 34, True, 47),
    ("Unicode 9.0 emoji", "Unicode 9.0 emoji: \U0001f920; \U0001f483; \U0001f483\U0001f3fe", 29, True, 30),
    # UnicodeDirectionalMarkerCounterTest
    ("Handle invalid characters", "ABC\u202a\uffffABC\ufffe", 12, False, 8),
    ("Tweet text containing directional characters should be considered valid",
     "\u2066\u202ahttp://foobar.پاکستان/\u202c\u2069", 31, True, 25),
]

#: Section `tweets`, in its 280-character version (conformance/validate.yml at commit 0f6da90):
#: is the text a valid post?
TWEETS = [
    ("Valid Tweet: < 20 characters", "I am a Tweet", True),
    ("Valid Tweet: 280 characters",
     "A lie gets halfway around the world before the truth has a chance to get its pants on. "
     "Winston Churchill (1874-1965) http://bit.ly/dJpywL", True),
    ("Valid Tweet: 280 characters (with accents)",
     "A lié géts halfway arøünd thé wørld béføré thé truth has a chance tø get its pants øn. "
     "Winston Churchill (1874-1965) http://bit.ly/dJpywL", True),
    ("Valid Tweet: 280 characters (double byte characters)", "の" * 140, True),
    ("Valid Tweet: 280 characters (double word characters)", "\U0001f431" * 140, True),
    ("Invalid Tweet: no characters (empty)", "", False),
    ("Invalid Tweet: 281 characters",
     "A lie gets halfway around the world before the truth has a chance to get its pants on. "
     "Winston Churchill (1874-1965) http://bit.ly/dJpywL "
     "A lie gets halfway around the world before the truth has a chance to get its pants on. "
     "Winston Churchill (1874-1965) http://bit.ly/dJpywL", False),
    ("Invalid Tweet: 281 characters (due to newline)",
     "A lie gets halfway around the world before the truth has a chance to get its pants on.\n"
     "Winston Churchill (1874-1965) http://bit.ly/dJpywL "
     "A lie gets halfway around the world before the truth has a chance to get its pants on. "
     "Winston Churchill (1874-1965) http://bit.ly/dJpywL", False),
]

#: Section `lengths`: these count the same under v3. Its three other cases count code points (the
#: v1 rule: "\U00010000\U0010ffff" is 2 there, 4 here) and are covered by the cases above.
LENGTHS = [
    ("Count the number of characters", "This is a test.", 15),
    ("Count a URL starting with http:// as 23 characters", "http://test.com", 23),
    ("Count a URL starting with https:// as 23 characters", "https://test.com", 23),
    ("Count a URL without protocol as 23 characters", "test.com", 23),
    ("Count multiple URLs correctly", "Test https://test.com test https://test.com test.com test", 86),
]


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@pytest.mark.parametrize(("text", "display_end"), [pytest.param(text, end, id=description)
                                                   for description, text, _, _, end in WEIGHTED])
def test_transcribed_texts_have_the_sources_length(text, display_end):
    assert utf16_length(text) - 1 == display_end


@pytest.mark.parametrize(("text", "weight", "valid"), [pytest.param(text, weight, valid, id=description)
                                                       for description, text, weight, valid, _ in WEIGHTED])
def test_weighted_length_conformance(text, weight, valid):
    assert weighted_length(text) == weight
    assert is_valid_post(text) is valid


@pytest.mark.parametrize(("text", "valid"), [pytest.param(text, valid, id=description)
                                             for description, text, valid in TWEETS])
def test_post_validity_conformance(text, valid):
    assert is_valid_post(text) is valid


@pytest.mark.parametrize(("text", "weight"), [pytest.param(text, weight, id=description)
                                              for description, text, weight in LENGTHS])
def test_length_conformance(text, weight):
    assert weighted_length(text) == weight


# The v3 configuration and our own cases ---------------------------------------------------------


def test_constants_are_twitter_texts_v3_configuration():
    assert (twitter_text.MAX_WEIGHTED_LENGTH, twitter_text.SCALE, twitter_text.DEFAULT_WEIGHT,
            twitter_text.TRANSFORMED_URL_LENGTH) == (280, 100, 200, 23)
    assert twitter_text.RANGES == ((0x0000, 0x10FF, 100), (0x2000, 0x200D, 100),
                                   (0x2010, 0x201F, 100), (0x2032, 0x2037, 100))


def test_connector_uses_this_rule():
    assert connectors.x.weighted_length("日本語 https://example.com/a/long/path") == 30


@pytest.mark.parametrize(("text", "weight"), [
    # The three non-ASCII `lengths` cases above, counted by the v3 rule.
    ("\U00010000\U0010ffff", 4),
    ("저찀쯿쿿", 8),
    ("H\U0001f431\u263a", 5),
    # Range edges.
    ("\u10ff\u1100", 3),
    ("\u200d\u200e\u2010\u201f\u2020\u2031\u2032\u2037\u2038", 13),
    # Emoji sequences of each kind count 2, newer ones too.
    ("\U0001f1fa\U0001f1f8", 2),  # flag
    ("1\ufe0f\u20e3 #\u20e3", 5),  # keycaps
    ("\U0001f44d\U0001f3fd", 2),  # skin tone
    ("\U0001f9d1\U0001f3fd\u200d\U0001f91d\u200d\U0001f9d1\U0001f3ff", 2),  # couple, two skin tones
    ("\u2764\ufe0f\u200d\U0001f525", 2),  # Unicode 13.1
    ("\U0001f426\u200d\U0001f525", 2),  # phoenix, Unicode 15.1
    ("\u263a\ufe0f", 2),  # text symbol asked to show as emoji
    ("\u00a9 2024", 7),  # © is pictographic, as twitter-text counts it
    ("12 #3 *", 7),  # digits, "#" and "*" alone are text
])
def test_weights(text, weight):
    assert weighted_length(text) == weight


@pytest.mark.parametrize(("text", "links"), [
    ("Write to help@example.com today", []),  # an address is not a link
    ("See example.com.", ["example.com"]),
    ("See example.com/help.", ["example.com/help"]),
    ("(see https://example.com/a_(b))", ["https://example.com/a_(b)"]),
    ("https://en.wikipedia.org/wiki/Primer_(film)", ["https://en.wikipedia.org/wiki/Primer_(film)"]),
    ("https://example.com? Yes.", ["https://example.com"]),
    ("https://example.com/search?q=a&b=c-", ["https://example.com/search?q=a&b=c-"]),
    ("https://example.com:8080/x#top", ["https://example.com:8080/x#top"]),
    ("run app.js and index.html", []),  # not TLDs
    ("notes.txt or setup.py", ["setup.py"]),  # .py is Paraguay's, so X links it too
    ("foo.co.jp t.co vine.co foo.jp", ["foo.co.jp", "t.co", "vine.co", "foo.jp"]),
    ("/example.com -example.com _example.com @example.com #example.com $example.com", []),
    ("http://localhost:8000/x http://192.168.0.1/x https://wiki.internal/x", []),
    ("https://mainland.support/a https://example.unlistedtld/b",
     ["https://mainland.support/a", "https://example.unlistedtld/b"]),
    ("詳しくはhttps://example.com/helpをご覧ください", ["https://example.com/help"]),
    ("これは日本語です。example.com/path中国語", ["example.com/path"]),
    ("https://t.co/abc123/more", ["https://t.co/abc123"]),
    ("http://☃.net/ https://bücher.de", ["http://☃.net/", "https://bücher.de"]),
    ("https://user:secret@example.com/", []),  # twitter-text does not link userinfo
])
def test_links(text, links):
    assert [text[start:end] for start, end in url_spans(text)] == links


def test_link_counts_23_however_long():
    assert weighted_length("https://example.com/" + "a" * 500) == 23
    assert weighted_length("https://example.com/" + "a" * 5000) == 5020  # over 4096: not a link


def test_invalid_characters_make_a_post_invalid():
    assert not is_valid_post("hello\ufeff")
    assert is_valid_post("hello\u202a")  # directional marks are fine


def test_long_texts_are_quick():
    # Every start position is tried, so a pathological text must not make that quadratic in practice.
    for text in ("é" * 20_000 + ".com", "a." * 10_000, "日本" * 5_000 + ".", "http://" + "a-" * 10_000):
        with cpu_budget(1, f"measuring {text[:12]!r}…"):
            assert weighted_length(text) >= 20_000


@given(st.text(max_size=60))
def test_normalisation_comes_first(text):
    assert weighted_length(unicodedata.normalize("NFD", text)) == weighted_length(text)
