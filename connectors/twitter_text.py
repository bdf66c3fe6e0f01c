"""How X counts the length of a post: the weighted-length rule of twitter-text v3, implemented here.

X refuses a post whose *weighted length* is over 280. X publishes the rule in its open-source
twitter-text project (github.com/twitter/twitter-text) as the "v3" configuration, `config/v3.json`:
max weighted length 280, scale 100, default weight 200, transformed URL length 23, emoji parsing on,
and four ranges of weight 100 (U+0000-U+10FF, U+2000-U+200D, U+2010-U+201F, U+2032-U+2037). Applied
to a text:

1. The text is NFC-normalised (so "A" + combining acute counts once, like "Á").
2. Every link twitter-text would extract counts as 23, however long it is, because X rewrites it to
   a t.co link: `http(s)://` links, and links without a protocol whose domain ends in a known TLD.
3. Every emoji counts 2, whatever it is made of: ZWJ sequences (a family), skin-tone modifiers,
   flags, keycaps, subdivision flags.
4. Every other code point counts 1 in the ranges above (Latin, Greek, Cyrillic, Hebrew, Arabic,
   Indic scripts, common punctuation) and 2 elsewhere (CJK, Hangul, symbols, astral planes).

This module replaces the `twitter-text-parser` package (unmaintained since 2023; it needs
`pkg_resources`, which setuptools 81 removed). It is tested against twitter-text's own conformance
cases in tests/test_twitter_text.py. Emoji are found with the `regex` package's Unicode properties
(`Extended_Pictographic`, `Emoji_Modifier`, `Regional_Indicator`), which follow current Unicode,
so new emoji count right without a table of our own. TLDs are a table below: every ccTLD and the
generic TLDs people actually use. With a protocol, a plain ASCII host may end in any TLD (X knows
all of IANA's; this table does not), except names reserved for private networks.
"""

from __future__ import annotations

import unicodedata
from typing import Final

import regex

MAX_WEIGHTED_LENGTH: Final = 280
SCALE: Final = 100
DEFAULT_WEIGHT: Final = 200
TRANSFORMED_URL_LENGTH: Final = 23
#: (first, last, weight): code points in these ranges weigh 100, i.e. count 1; all others DEFAULT_WEIGHT.
RANGES: Final[tuple[tuple[int, int, int], ...]] = (
    (0x0000, 0x10FF, 100),  # Latin to Georgian: the scripts whose words are as long as English ones
    (0x2000, 0x200D, 100),  # typographic spaces, zero-width space/non-joiner/joiner
    (0x2010, 0x201F, 100),  # dashes and curly quotes
    (0x2032, 0x2037, 100),  # primes
)
#: A post containing one of these is invalid whatever its length (twitter-text's invalid characters).
INVALID_CHARACTERS: Final = frozenset("\ufffe\ufeff\uffff")
#: twitter-text does not treat a longer URL (host in punycode, protocol included) as a link.
MAX_URL_LENGTH: Final = 4096

# Top-level domains ------------------------------------------------------------------------------

#: ccTLDs as in IANA's root zone (with the few retired ones twitter-text still lists).
_COUNTRY_TLDS = """
ac ad ae af ag ai al am an ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl bm bn bo bq br
bs bt bv bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm do dz ec ee
eg eh er es et eu fi fj fk fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy hk hm
hn hr ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km kn kp kr kw ky kz la lb lc li
lk lr ls lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo mp mq mr ms mt mu mv mw mx my mz na nc ne
nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps pt pw py qa re ro rs ru rw sa sb sc
sd se sg sh si sj sk sl sm sn so sr ss st su sv sx sy sz tc td tf tg th tj tk tl tm tn to tp tr tt
tv tw tz ua ug uk um us uy uz va vc ve vg vi vn vu wf ws ye yt za zm zw
한국 香港 澳門 新加坡 台灣 台湾 中國 中国 გე ລາວ ไทย ලංකා ഭാരതം ಭಾರತ భారత్ சிங்கப்பூர் இலங்கை இந்தியா
ଭାରତ ભારત ਭਾਰਤ ভাৰত ভারত বাংলা भारत भारतम् भारोत پاکستان مليسيا موريتانيا مصر قطر فلسطين عمان عراق
سورية سودان تونس بھارت ایران امارات المغرب السعودية الجزائر الاردن հայ қаз укр срб рф мон мкд ею
бел бг ελ
"""

#: Generic TLDs: the historic ones, and the newer ones seen in everyday links. Not all of IANA's
#: ~1,100 (most are brands nobody types); a link without a protocol on a missing one counts its
#: characters, as it would in a text where it is not meant as a link.
_GENERIC_TLDS = """
com net org edu gov mil int info biz name pro aero arpa asia cat coop jobs mobi museum post tel
travel xxx
academy accountant accountants actor adult agency app art audio auto autos baby band bank bar beauty
beer best bet bid bike bio black blog blue boats bond boo boutique build business buzz cab cafe cam
camera camp capital car cards care career careers cars casa cash casino catering center ceo cfd
charity chat cheap church city claims cleaning click clinic clothing cloud club coach codes coffee
college community company computer condos construction consulting contact contractors cooking cool
country coupons courses credit creditcard cricket cruises cyou dad dance date dating day deals
degree delivery democrat dental dentist design dev diamonds diet digital direct directory discount
doctor dog domains download earth eat eco education email energy engineer engineering enterprises
equipment esq estate events exchange expert exposed express fail faith family fan fans farm fashion
film finance financial fish fishing fit fitness flights florist flowers foo food football forsale
forum foundation fun fund furniture futbol fyi gallery game games garden gay gift gifts gives glass
global gmbh gold golf graphics gratis green gripe group guide guitars guru hair haus health
healthcare help hiphop hockey holdings holiday homes horse hospital host hosting house how icu immo
immobilien inc industries ing ink institute insurance insure international investments irish jetzt
jewelry juegos kaufen kim kitchen kiwi land lat law lawyer lease legal lgbt life lighting limited
limo link live llc llp loan loans lol love ltd ltda luxury maison makeup management market
marketing markets mba media meme memorial men menu moda moe mom money monster mortgage motorcycles
mov movie music navy network new news nexus ngo ninja office one ong onion onl online ooo organic
page partners parts party pet phd photo photography photos pics pictures pink pizza place plumbing
plus poker porn press prod productions prof promo properties property pub quest racing radio
realestate realty recipes red rehab reise reisen rent rentals repair report republican rest
restaurant review reviews rich rip rocks rodeo run sale salon sarl sbs school schule science
security sex sexy shoes shop shopping show singles site ski skin soccer social software solar
solutions soy space sport store stream studio study style sucks supplies supply support surf
surgery systems taxi team tech technology tennis theater theatre tickets tienda tips tires today
tools top tours town toys trade trading training tube university uno vacations ventures vet viajes
video villas vin vip vision vodka vote voting voto voyage wang watch webcam website wedding wiki win
wine work works world wtf xyz yachts yoga zip zone
abudhabi africa amsterdam barcelona bayern berlin boston brussels bzh capetown cymru doha dubai
durban eus gal hamburg helsinki istanbul joburg koeln kyoto london madrid melbourne miami moscow
nagoya nrw nyc okinawa osaka paris quebec rio ruhr ryukyu saarland scot stockholm swiss sydney
taipei tirol tokyo vegas vlaanderen wales wien yokohama zuerich
amazon apple aws azure cern google microsoft youtube
公司 网络 网址 在线 中文网 商城 コム 닷컴 ком онлайн сайт орг рус москва дети
"""

_KNOWN_TLDS: Final = frozenset((_COUNTRY_TLDS + _GENERIC_TLDS).split())

#: Names that are never public TLDs (RFC 2606, RFC 6761, ICANN's .internal, and common private
#: ones): a link to them cannot be one X would rewrite, so its characters count.
_PRIVATE_TLDS: Final = ("local", "localhost", "localdomain", "test", "example", "invalid", "internal",
                        "intranet", "lan", "home", "corp", "private")

# URLs -------------------------------------------------------------------------------------------

# What may be part of a domain label: anything but ASCII punctuation, space, control characters,
# the invalid characters and the bidirectional marks (those may sit right before a link instead).
_BIDI_MARKS = r"\u202a-\u202e\u061c\u200e\u200f\u2066-\u2069"
_DOMAIN_CHAR = rf"[^\s\p{{Z}}\p{{Cc}}!-/:-@\[-`{{-~\ufffe\ufeff\uffff{_BIDI_MARKS}]"
# Latin letters with diacritics, which twitter-text accepts in hosts without a protocol and in paths.
_LATIN_ACCENTS = r"\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02af\u02bb\u0300-\u036f\u1e00-\u1eff"
_CYRILLIC = r"\u0400-\u052f"
# A TLD must not run on into more of a word, a mention or a phone-number-like tail.
_TLD_END = r"(?![0-9a-z@+-])"

# A label may hold "-" (subdomains also "_") but neither starts nor ends with one. The possessive
# `*+` never gives back: a shorter label would be followed by a label character rather than a dot.
_UNICODE_HOST = (rf"(?:{_DOMAIN_CHAR}(?:[_-]|{_DOMAIN_CHAR})*+(?<![_-])\.)*"
                 rf"{_DOMAIN_CHAR}(?:-|{_DOMAIN_CHAR})*+(?<!-)\."
                 rf"(?:\L<tlds>|xn--[0-9a-z-]+){_TLD_END}")
_ASCII_HOST = (r"(?:[0-9a-z][0-9a-z_-]*+(?<![_-])\.)*[0-9a-z][0-9a-z-]*+(?<!-)\."
               rf"(?!(?:{'|'.join(_PRIVATE_TLDS)}){_TLD_END})[a-z]{{2,63}}{_TLD_END}")

# A link glued to a word, a @mention, a #hashtag or a $cashtag is not a link.
_GLUED = "0-9a-z@＠$#＃\ufffe\ufeff\uffff"
_URL_START = regex.compile(
    rf"(?<![{_GLUED}])"
    r"(?:"
    # With a protocol, an ASCII host not ending in a known TLD is tried last: twitter-text prefers the
    # longest host ending in one ("http://example.comだよね.comtest" links only "http://example.com").
    rf"(?P<protocol>https?://)(?P<host>{_UNICODE_HOST}|{_ASCII_HOST})"
    # Without a protocol, not after "-", "_", "." or "/" (the tail of a longer name, or a path).
    # twitter-text matches such a host and then drops it with its port, path and query; here only
    # the host is passed over, which differs when those hold another link ("/a.com/x,b.com").
    rf"|(?<![-_./])"
    # Nor inside a run of domain characters where a host could start before (not glued to the
    # character before it): a host starting here would be the tail of that one, which was tried
    # already. This keeps a long run of them from costing quadratic time.
    rf"(?<![^{_GLUED}]{_DOMAIN_CHAR}+?)"
    rf"(?P<host>{_UNICODE_HOST})"
    r")",
    regex.IGNORECASE,
    tlds=sorted(_KNOWN_TLDS),
)
# Without a protocol, only the Latin-script domains inside a host are links: in "これは example.com"
# typed without a space, the host found above starts at "こ", the link at "e".
_LATIN_DOMAIN = regex.compile(
    rf"(?:[0-9a-z{_LATIN_ACCENTS}-]+\.)+(?:\L<tlds>|xn--[0-9a-z-]+){_TLD_END}",
    regex.IGNORECASE,
    tlds=sorted(_KNOWN_TLDS),
)

_PATH_CHARS = rf"0-9a-z{_LATIN_ACCENTS}{_CYRILLIC}!*';:=+,.$/%#\[\]\-\u2013_~@|&"
_PATH_RUN = regex.compile(rf"[{_PATH_CHARS}()]*", regex.IGNORECASE)
# A path does not end in punctuation that more likely closes the sentence ("see example.com/a.").
_PATH_END = regex.compile(rf"[0-9a-z{_LATIN_ACCENTS}{_CYRILLIC}=_#/+-]", regex.IGNORECASE)
_QUERY_RUN = regex.compile(r"[0-9a-z!?*'@();:&=+$/%#\[\]\-_.,~|]*", regex.IGNORECASE)
_QUERY_END = regex.compile(r"[0-9a-z=_#/&-]", regex.IGNORECASE)
_PORT = regex.compile(r":[0-9]+")
# A t.co link is only its slug (and query): whatever follows is text.
_TCO_PATH = regex.compile(r"/[0-9a-z]+", regex.IGNORECASE)


def _path_length(run: str) -> int:
    """How much of `run` (path characters after a host, starting with "/") belongs to the link.

    Parentheses belong to it only when balanced, nested at most twice ("wiki/Primer_(film)"), so a
    link in brackets "(see example.com/a)" does not swallow the closing one.
    """
    length = end = depth = 0
    for index, char in enumerate(run):
        if char == "(":
            if depth == 2:
                break
            depth += 1
        elif char == ")":
            if depth == 0:
                break
            depth -= 1
            if depth == 0:
                end = index + 1  # a balanced group may end a path
        elif depth == 0 and _PATH_END.match(char):
            end = index + 1
        if depth == 0:
            length = end
    return max(length, 1)  # the "/" itself always belongs


def _query_length(run: str) -> int:
    """How much of `run` (query characters after "?") belongs to the link; 0 leaves the "?" out."""
    for end in range(len(run), 0, -1):
        if _QUERY_END.match(run[end - 1]):
            return end + 1
    return 0


def _host_fits(host: str, url_length: int, has_protocol: bool) -> bool:
    """Whether X would make a link of this host: it must convert to ASCII by IDNA 2003 (the standard
    library's codec; twitter-text's Java uses java.net.IDN, the same standard), which allows labels of
    1 to 63 characters, and the URL so converted (with a protocol) must be at most MAX_URL_LENGTH."""
    try:
        ascii_host = host.encode("idna")
    except UnicodeError:
        return False
    length = url_length - len(host) + len(ascii_host) + (0 if has_protocol else len("https://"))
    return 0 < len(ascii_host) and length <= MAX_URL_LENGTH


def url_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every link twitter-text would find in `text` (which should be NFC already)."""
    if "." not in text:  # every link has a dot in its host: skip the scan for most chat replies
        return []
    spans: list[tuple[int, int]] = []
    # twitter-text's pattern consumes the character before a link, so the next link starts at least
    # one character after the previous match. The search runs on the rest of the text from that
    # character on (a space stands for the start of the text), so that the look-behinds above see it
    # but nothing of the previous match.
    before = -1
    while before < len(text) - 1:
        rest = text[before:] if before >= 0 else " " + text
        if not (match := _URL_START.search(rest, 1)):
            break
        start, end = before + match.start(), before + match.end()
        host, protocol = match["host"], match["protocol"]
        if port := _PORT.match(text, end):
            end = port.end()
        has_path = text.startswith("/", end)
        if has_path:
            if protocol and host.lower() == "t.co" and (slug := _TCO_PATH.match(text, end)):
                end = slug.end()
            else:
                end += _path_length(_PATH_RUN.match(text, end).group())
        if text.startswith("?", end):
            end += _query_length(_QUERY_RUN.match(text, end + 1).group())
        before = end
        if protocol:
            if _host_fits(host, end - start, has_protocol=True):
                spans.append((start, end))
            continue
        domains = list(_LATIN_DOMAIN.finditer(host))
        for number, domain in enumerate(domains, start=1):
            # The path (with port and query) belongs to the last domain; without a path, neither port
            # nor query are part of a link without a protocol.
            link_end = end if has_path and number == len(domains) else start + domain.end()
            if _host_fits(domain.group(), link_end - start - domain.start(), has_protocol=False):
                spans.append((start + domain.start(), link_end))
    return spans


# Emoji ------------------------------------------------------------------------------------------

# One emoji as a reader sees it, however many code points it takes. `Extended_Pictographic` is the
# property Unicode defines for this (it includes © and ®, which twitter-text counts as emoji too);
# digits, "#" and "*" have the Emoji property but are emoji only as keycaps. twitter-text lists the
# standard sequences of one Unicode version instead; here any well-formed sequence counts once, so
# emoji newer than its list count 2 as they display, and only odd combinations that no platform
# draws as one picture (two unrelated emoji joined by ZWJ, a flag of no region) count less than X
# might. A lone half of a flag or skin tone counts 2 either way, as code points outside the ranges.
_EMOJI_ELEMENT = (r"(?:\p{Emoji_Modifier_Base}\p{Emoji_Modifier}"  # skin tone
                  r"|\p{Extended_Pictographic}\ufe0f?"  # emoji, or text symbol shown as emoji
                  r"|\p{Emoji_Modifier})")
_EMOJI = regex.compile(
    r"\p{Regional_Indicator}{2}"  # flag
    r"|[#*0-9]\ufe0f?\u20e3"  # keycap
    r"|\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f"  # subdivision flag (England, Scotland, Wales)
    rf"|{_EMOJI_ELEMENT}(?:\u200d{_EMOJI_ELEMENT})*"  # an emoji, or several joined by ZWJ
)


# Counting ---------------------------------------------------------------------------------------


def _char_weight(char: str) -> int:
    code = ord(char)
    for first, last, weight in RANGES:
        if first <= code <= last:
            return weight
    return DEFAULT_WEIGHT


def _text_weight(text: str, start: int, end: int) -> int:
    """The weight of text[start:end], which holds no link: emoji count DEFAULT_WEIGHT each."""
    total = 0
    position = start
    for emoji in _EMOJI.finditer(text, start, end):
        total += sum(_char_weight(char) for char in text[position:emoji.start()]) + DEFAULT_WEIGHT
        position = emoji.end()
    return total + sum(_char_weight(char) for char in text[position:end])


def weighted_length(text: str) -> int:
    """The length of a post as X counts it: links 23, emoji 2, CJK 2, most other characters 1."""
    text = unicodedata.normalize("NFC", text)
    total = 0
    position = 0
    for start, end in url_spans(text):
        total += _text_weight(text, position, start) + TRANSFORMED_URL_LENGTH * SCALE
        position = end
    total += _text_weight(text, position, len(text))
    return total // SCALE


def is_valid_post(text: str) -> bool:
    """Whether X accepts `text` as a post: not empty, no invalid character, and not too long."""
    return (bool(text) and not INVALID_CHARACTERS.intersection(text)
            and weighted_length(text) <= MAX_WEIGHTED_LENGTH)
