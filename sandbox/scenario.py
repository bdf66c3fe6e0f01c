"""The live demo's scenario: customers writing in over every channel, then a gentle trickle.

Played by `mainland demo` (with `demo: {live_channels: true}`) against the imitations of a
`sandbox.demo_stack.DemoStack`, once Mainland listens. Over the first minute (`OPENING`):

- the same people write on several channels, as customers do: Emma de Vries mailed about order
  10482 (sample mail) and now asks on WhatsApp, in Dutch, then sends a photo of the parcel label;
  James Carter mailed about his cracked kettle lid and posts a photo of it on X; Tom Baker asks
  publicly on Mastodon and privately on X; Sanne de Vries uses the web form (through the real form
  API, `GET`/`POST /api/forms/<channel>`) and then WhatsApp; Priya Patel follows up her password
  mail on Telegram;
- Dutch and English, public posts and comments (Mastodon, X, Bluesky, Facebook, Instagram, a
  Telegram group) and private messages (WhatsApp, Telegram, X and Bluesky DMs, Messenger,
  Instagram Direct), a photo, and follow-ups on threads already open.

After that a message arrives every 30 to 60 seconds (`TRICKLE`), so the queue feels alive.
Every step prints one line ("← Emma de Vries wrote on WhatsApp: ...").
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from sandbox.demo_stack import DemoStack
from sandbox.x import PHOTO

log = logging.getLogger("mainland.demo")


@dataclass
class Cast:
    """What a scenario step can use: the imitations, Mainland's address, and what earlier steps made."""

    stack: DemoStack
    base_url: str
    form_channel: str | None = None
    made: dict[str, Any] = field(default_factory=dict)

    def web_form(self, name: str, email: str, subject: str, message: str) -> None:
        """Fill in the web form through its JSON API, as a site's own form would."""
        if not self.form_channel:
            raise RuntimeError("no web form channel in the demo configuration")
        api = f"{self.base_url.rstrip('/')}/api/forms/{self.form_channel}"
        with requests.Session() as http:
            fields = http.get(api, timeout=10).json()
            body = {key: fields[key] for key in ("submission_id", "issued_at", "token")}
            body.update({fields.get("honeypot", "website"): "", "name": name, "email": email,
                         "subject": subject, "message": message})
            answer = http.post(api, json=body, timeout=10)
        if answer.status_code != 200:
            raise RuntimeError(f"the web form answered {answer.status_code}: {answer.text[:200]}")


@dataclass(frozen=True)
class Step:
    """One customer action: when (seconds after the start), who, where, and what they write."""

    at: float
    who: str
    channel: str
    text: str
    act: Callable[[Cast], Any]


def _tom(cast: Cast) -> dict:
    return cast.stack.mastodon.account("tombaker", domain="mastodon.social", display_name="Tom Baker")


def _opening() -> list[Step]:
    def s(at, who, channel, text, act):
        return Step(at, who, channel, text, lambda cast, act=act, text=text: act(cast, text))

    def mastodon_first(cast: Cast, text: str) -> None:
        cast.made["tom_status"] = cast.stack.mastodon.mention(_tom(cast), text)

    def mastodon_follow_up(cast: Cast, text: str) -> None:
        cast.stack.mastodon.mention(_tom(cast), text, in_reply_to=cast.made.get("tom_status"))

    def telegram_priya(cast: Cast, text: str) -> None:
        priya = cast.stack.telegram.user("Priya", username="priya_p", last_name="Patel")
        cast.stack.telegram.private_message(priya, text)

    def telegram_group(cast: Cast, text: str) -> None:
        daan = cast.stack.telegram.user("Daan", username="daanvisser", last_name="Visser", language_code="nl")
        cast.stack.telegram.group_message(daan, text, group="Acme klanten")

    def page_post_comment(cast: Cast, text: str) -> None:
        meta = cast.stack.meta
        if "fb_post" not in cast.made:
            cast.made["fb_post"] = meta.page_post("Onze wintercollectie is binnen! / Our winter collection is in!")
        meta.customer_comment("Lars Bakker", text, platform="facebook", post=cast.made["fb_post"])

    def instagram_comment(cast: Cast, text: str) -> None:
        meta = cast.stack.meta
        if "ig_media" not in cast.made:
            cast.made["ig_media"] = meta.ig_media("Cosy socks, now in six colours 🧦")
        meta.customer_comment("Sophie Janssen", text, platform="instagram", post=cast.made["ig_media"])

    def emma_first(cast: Cast, text: str) -> None:
        cast.made["emma_first"] = cast.stack.whatsapp.customer_text("31623456789", text, name="Emma de Vries")

    def emma_corrects(cast: Cast, text: str) -> None:
        # A customer's edit of a message we hold: the thread shows the new text and keeps the old one.
        cast.stack.whatsapp.customer_edit(cast.made["emma_first"], text)

    return [
        s(2, "Emma de Vries", "WhatsApp",
          "Hoi! Ik had gemaild over bestelling 10482, maar nog niets gehoord. Weten jullie al waar mijn pakket is?",
          emma_first),
        s(3, "Emma de Vries", "WhatsApp (edited)",
          "Hoi! Ik had gemaild over bestelling 10428, maar nog niets gehoord. Weten jullie al waar mijn pakket is?",
          emma_corrects),
        s(4, "Tom Baker", "Mastodon", "Is the winter sale on in the Leeds shop as well, or only online?",
          mastodon_first),
        s(6, "James Carter", "X", "Here's the cracked lid I emailed you about. Photo attached. Not impressed.",
          lambda c, t: c.stack.x.customer_mention("jamescarter", t, name="James Carter", photo=True)),
        s(8, "Sanne de Vries", "the web form",
          "Goedemiddag, ik wil graag mijn adres wijzigen voor toekomstige bestellingen: Kerkstraat 12, 3511 AB Utrecht.",
          lambda c, t: c.web_form("Sanne de Vries", "sanne.devries@example.nl", "Adres wijzigen", t)),
        s(10, "Priya Patel", "Telegram",
          "Hi, I emailed about my password. The reset link still says 'expired'. Can you help here instead?",
          telegram_priya),
        s(11, "Noor El Amrani", "Facebook Messenger", "Get Started",
          lambda c, t: c.stack.meta.customer_presses("Noor El Amrani", t, "GET_STARTED")),
        s(12, "Noor El Amrani", "Facebook Messenger",
          "Hallo, zijn jullie op tweede kerstdag open in Amsterdam?",
          lambda c, t: c.stack.meta.customer_dm("Noor El Amrani", t, platform="messenger")),
        s(14, "Lars Bakker", "Facebook", "Hebben jullie deze jas ook in maat XL?", page_post_comment),
        s(16, "Olivia Brown", "Bluesky", "Thanks for the quick help last week! The new kettle is lovely ☕",
          lambda c, t: c.stack.bluesky.customer_mention("olivia.bsky.social", t, name="Olivia Brown")),
        s(19, "Sophie Janssen", "Instagram", "Zijn deze ook te koop in de winkel in Utrecht?", instagram_comment),
        s(22, "Tom Baker", "X", "Hi, sending this privately: my order 10533 was charged twice. Can you refund one?",
          lambda c, t: c.stack.x.customer_dm("tombaker", t, name="Tom Baker")),
        s(25, "Sanne de Vries", "WhatsApp",
          "Ik heb net het formulier ingevuld over mijn nieuwe adres. Lukt dat nog voor de bestelling van vandaag?",
          lambda c, t: c.stack.whatsapp.customer_text("31687654321", t, name="Sanne de Vries")),
        s(28, "Daan Visser", "Telegram (group)", "weet iemand of de actie met gratis verzending nog loopt?",
          telegram_group),
        s(32, "Emma de Vries", "WhatsApp", "Dit is het verzendlabel, misschien helpt dat. 📦",
          lambda c, t: c.stack.whatsapp.customer_image("31623456789", PHOTO, caption=t, name="Emma de Vries")),
        s(36, "Michael O'Neill", "Bluesky (DM)", "Hey, quick one: how do I pause my coffee subscription over Christmas?",
          lambda c, t: c.stack.bluesky.customer_dm("michaeloneill.bsky.social", t, name="Michael O'Neill")),
        s(40, "Lars Bakker", "Instagram Direct", "Ik wil mijn schoenen retour sturen, heb ik daar een label voor nodig?",
          lambda c, t: c.stack.meta.customer_dm("Lars Bakker", t, platform="instagram")),
        s(45, "Tom Baker", "Mastodon", "Also: do you still do gift wrapping? Asking for my mum 🎁",
          mastodon_follow_up),
        s(50, "Priya Patel", "Telegram", "Never mind the link, it worked on my laptop. But my order history is empty?",
          telegram_priya),
    ]


#: (who, channel, text, act) of the messages that keep arriving after the opening.
def _trickle() -> list[tuple[str, str, str, Callable[[Cast, str], Any]]]:
    return [
        ("Fatima Yilmaz", "WhatsApp", "Goedemorgen! Kan ik mijn bestelling nog aanpassen? Ik wil een andere kleur.",
         lambda c, t: c.stack.whatsapp.customer_text("31611122233", t, name="Fatima Yilmaz")),
        ("Ben Walker", "X", "is your site down? checkout keeps spinning",
         lambda c, t: c.stack.x.customer_mention("benwalker", t, name="Ben Walker")),
        ("Ruby Evans", "Mastodon", "Do you ship to Ireland, and how long does it take?",
         lambda c, t: c.stack.mastodon.mention(
             c.stack.mastodon.account("ruby", domain="fosstodon.org", display_name="Ruby Evans"), t)),
        ("Jeroen Smit", "Telegram", "Hoi, mijn kortingscode WINTER10 werkt niet bij het afrekenen.",
         lambda c, t: c.stack.telegram.private_message(
             c.stack.telegram.user("Jeroen", username="jsmit", last_name="Smit", language_code="nl"), t)),
        ("Grace Hughes", "Bluesky", "Is the blue teapot coming back in stock?",
         lambda c, t: c.stack.bluesky.customer_mention("gracehughes.bsky.social", t, name="Grace Hughes")),
        ("Anouk de Boer", "Facebook Messenger", "Ik heb twee keer dezelfde trui ontvangen, wat moet ik doen?",
         lambda c, t: c.stack.meta.customer_dm("Anouk de Boer", t, platform="messenger")),
        ("Chloe Martin", "Instagram Direct", "Hi! Do you do gift cards? Looking for a last-minute present.",
         lambda c, t: c.stack.meta.customer_dm("Chloe Martin", t, platform="instagram")),
        ("Emma de Vries", "WhatsApp", "Nog even over bestelling 10482: kan ik hem ook ophalen in de winkel?",
         lambda c, t: c.stack.whatsapp.customer_text("31623456789", t, name="Emma de Vries")),
        ("James Carter", "X", "Any news on the replacement lid? Still making tea in a saucepan here.",
         lambda c, t: c.stack.x.customer_dm("jamescarter", t, name="James Carter")),
        ("Tom Baker", "Mastodon", "Thanks for the help earlier, all sorted with the refund 👍",
         lambda c, t: c.stack.mastodon.direct(
             c.stack.mastodon.account("tombaker", domain="mastodon.social", display_name="Tom Baker"), t)),
    ]


#: The opening of the demo: who writes where, and when.
OPENING: list[Step] = _opening()
#: The pool the trickle draws from.
TRICKLE = _trickle()


class Scenario:
    """Plays `OPENING`, then a message from `TRICKLE` every `trickle_every` seconds, in a thread."""

    def __init__(self, stack: DemoStack, base_url: str, *, form_channel: str | None = None,
                 say: Callable[[str], None] = print, trickle_every: tuple[float, float] = (30.0, 60.0),
                 seed: int | None = None) -> None:
        self.cast = Cast(stack, base_url, form_channel)
        self.say = say
        self.trickle_every = trickle_every
        self.random = random.Random(seed)
        #: Steps played so far, as (who, channel).
        self.played: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Scenario:
        self._thread = threading.Thread(target=self._run, name="demo-scenario", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _play(self, who: str, channel: str, text: str, act: Callable[[Cast], Any]) -> None:
        if channel == "the web form" and not self.cast.form_channel:
            return
        try:
            act(self.cast)
        except Exception as exc:  # one failed step must not end the demo
            log.warning("demo: %s could not write on %s: %s", who, channel, exc)
            return
        self.played.append((who, channel))
        short = text if len(text) <= 80 else text[:79] + "…"
        self.say(f"← {who} wrote on {channel}: {short}")

    def _run(self) -> None:
        started = time.monotonic()
        for step in OPENING:
            if self._stop.wait(max(0.0, started + step.at - time.monotonic())):
                return
            self._play(step.who, step.channel, step.text, step.act)
        pool = list(TRICKLE)
        while not self._stop.wait(self.random.uniform(*self.trickle_every)):
            if not pool:
                pool = list(TRICKLE)
            who, channel, text, act = pool.pop(self.random.randrange(len(pool)))
            self._play(who, channel, text, lambda cast, act=act, text=text: act(cast, text))
