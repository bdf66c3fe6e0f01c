"""Identity-resolution benchmark: a generated population with known ground truth through the real pipeline.

    python bench/identity.py [--customers 10000] [--seed 1] [--days 90] [--keep DIR]

A population of people (default 10,000) is generated with the noise real customer data has:

* names from a skewed distribution (many people are called "Jan de Vries"), typos in names, first
  names or nicknames only on chat networks, "de Vries, Jan" order, initials, no name at all;
* phone numbers written as 06-12345678, +31 6 1234 5678, 0031612345678, 06 12 34 56 78, (06) ...;
* email addresses in any case, some people with a second (work) address;
* households sharing a family name, a landline and a postal address in the CRM, and some CRM
  records that list another household member's mobile number;
* half of the people in a CRM export (imported first, through `inbox.customer_import`), each
  person writing on one to four channels (email, web form, WhatsApp, Telegram, X, Mastodon,
  Bluesky, Facebook, Instagram), often several on the same day, sometimes typing their email
  address or phone number into a chat.

Every item goes through `Ingestor.ingest` (the real pipeline: identity resolution, threading,
evidence, suggestions) in time order, in channel batches like polling delivers them.

Ground truth: each customer record belongs to the person whose CRM row or first item created it.
It prints

* automatic attachment: precision (attached to a record of the same person) and recall (of items
  whose exact identity the system had already seen for that person, the share attached to them);
* suggestions (score >= inbox.identity.SUGGEST_THRESHOLD): precision (the pair is one person) and
  recall (of all pairs of records of one person, the share joined by correct suggestions, directly
  or through a chain: what confirming every correct suggestion would merge);
* time: identity resolution and evidence per 1,000 items, and the whole ingest per 1,000 items.

The last line is a JSON object: auto_precision, auto_recall, suggest_precision, suggest_recall,
ms_per_1000 (identity resolution + evidence, CPU), wall_ms_per_1000, ingest_ms_per_1000, ingest_wall_ms_per_1000, items, customers, records,
suggestions, true_pairs. Targets: auto_precision 1.0; suggest_recall >= 0.9 at
suggest_precision >= 0.8.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inbox import ingest as ingest_module  # noqa: E402
from inbox.attachments import AttachmentStore  # noqa: E402
from inbox.customer_import import Record, import_records  # noqa: E402
from inbox.identity import CLOSE_NAME, SUGGEST_THRESHOLD, is_full_name, name_similarity  # noqa: E402
from inbox.ingest import Ingestor  # noqa: E402
from inbox.models import Author, FetchResult, InboundItem  # noqa: E402
from inbox.store import Store  # noqa: E402

FIRST = ("Jan Piet Kees Henk Willem Johan Gerrit Hans Peter Sander Bas Thijs Daan Lars Ruben Niels Joost Mark Erik "
         "Marieke Anna Emma Sophie Lisa Julia Sanne Anouk Eva Fleur Iris Lotte Maria Sarah Noor Fatima Mohammed "
         "Ahmed Yusuf Ayse Mehmet Priya Wei Li Chen Olga Ivan Pierre Marie Jean Luca Giulia Carlos Lucia Ana "
         "Joris Femke Wouter Ilse Bram Esther Koen Merel Rik Floor Jeroen Linda Arjen Karin Hugo Vera").split()
LAST = ("de Vries|Jansen|de Jong|van den Berg|Bakker|Janssen|Visser|Smit|Meijer|de Boer|Mulder|de Groot|Bos|Vos|"
        "Peters|Hendriks|van Leeuwen|Dekker|Brouwer|de Wit|Dijkstra|Smits|de Graaf|van der Meer|van der Linden|Kok|"
        "Jacobs|de Haan|Vermeulen|van den Heuvel|van der Veen|van den Broek|de Bruijn|de Bruin|van der Heijden|"
        "Schouten|van Beek|Willems|van Vliet|van de Ven|Hoekstra|Maas|Verhoeven|Koster|van Dam|van der Wal|Prins|"
        "Blom|Huisman|Peeters|el Amrani|Yilmaz|Kaya|Öztürk|Nguyen|Wang|Kumar|Singh|Müller|Schmidt|García|Rossi|"
        "Dubois|Ivanova|Kowalski|Nowak|Andersson|O'Brien|Zwanenburg|Terpstra|Wijnands|Ravesteijn|Oosterhuis|"
        "Kuipers|Groenewegen|Vlietstra|Brinkhorst|Hoogendoorn|Boersma|Veenstra|Kramer|Postma|Timmermans").split("|")
# Less common given names, and family names built from Dutch place-name parts: together with the
# lists above they give a realistic spread, where the commonest family name is about half a per cent
# of people (as "de Jong" and "de Vries" are in the Netherlands) and most names are rare.
FIRST_TAIL = ("Aafke Abel Adriaan Agnes Aletta Alwin Amber Anke Annelies Arend Arie Aster Barend Bart Bente Berber "
              "Berend Bernard Bodil Boris Bouke Brecht Caspar Cato Cees Claartje Coen Cornelis Dirk Doortje Douwe "
              "Durk Eelco Egbert Elbert Elske Emiel Enzo Evert Fenna Ferdinand Folkert Frits Froukje Geert Gijs "
              "Goos Greetje Guus Hanna Harm Hein Hidde Hilde Ids Ilona Imke Ivo Jaap Jelle Jesse Jikke Job Jolien "
              "Jorien Jurre Karel Katja Klaas Lambert Leentje Lieke Lodewijk Loes Luuk Maaike Machteld Mathijs "
              "Meindert Mieke Minke Nanne Nel Nienke Okke Olaf Oscar Otto Pam Pieter Quirijn Reinier Riemke Rienk "
              "Rixt Roel Romy Rutger Saskia Sietse Sjoerd Stijn Sybren Taco Teun Tineke Tjeerd Toos Trijntje Tygo "
              "Udo Valentijn Veerle Wessel Wiebe Wietske Willemijn Wim Wobbe Yara Ymke Zeger Zoë Aylin Burak Elif "
              "Emre Hamza Imane Khadija Nadia Omar Samira Soufiane Youssef Zainab Anil Deepa Ravi Sunita Mei Jun "
              "Hiroshi Yuki Pablo Marta Sven Ingrid Bjorn Astrid Piotr Agata Tomasz Dmitri Natasha Kwame Ama").split()
_ROOTS = ("berg dijk veld hof bosch broek meer horst kamp laan water brink hout steen rijn wijk hoek sloot beek "
          "heide mortel zand klaver molen donk voort stad huis dam burg gaard rade loo haar wold vaart").split()
_STARTS = ("van den |ter |ver|hoog|groot|klein|oost|west|noord|zuid|oude|nieuw|blok|wit|zwart|rood|groen|lang|"
           "breed|hooge|lage|schip|kerk|graven|appel|eik|linde|vos|haas|vink|meeuw").split("|")
_ENDS = ("", "er", "man", "s", "ink", "stra", "ma", "inga", "ens")
LAST_TAIL = sorted({(a + b + c).title().replace("Van Den ", "van den ").replace("Ter ", "ter ")
                    for a in _STARTS for b in _ROOTS for c in _ENDS})
NICKS = ("sunny", "the_real_me", "kitty", "gamer", "bikerdude", "mamabear", "foodie", "traveller", "jj", "xoxo",
         "nightowl", "coffeelover", "dutchie", "happy", "🌷", "🐶 lover", "ninja", "captain")
DOMAINS = ("gmail.com", "hotmail.com", "outlook.com", "ziggo.nl", "kpnmail.nl", "xs4all.nl", "icloud.com",
           "live.nl", "planet.nl", "yahoo.com")
CHANNELS = {  # channel name: (identity kind, weight of being one of a person's channels)
    "mail": ("email", 0.55), "contact": ("webform", 0.15), "whatsapp": ("phone", 0.4), "telegram": ("telegram", 0.12),
    "x": ("x", 0.1), "mastodon": ("mastodon", 0.05), "bluesky": ("bluesky", 0.05), "facebook": ("facebook", 0.12),
    "instagram": ("instagram", 0.1),
}
CHAT = {"whatsapp", "telegram", "x", "mastodon", "bluesky", "facebook", "instagram"}
START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


@dataclass
class Person:
    pid: int
    first: str
    last: str
    email: str | None
    work_email: str | None
    mobile: str
    accounts: dict[str, str] = field(default_factory=dict)
    household: int | None = None


@dataclass
class Item:
    person: int
    channel: str
    kind: str
    handle: str
    name: str
    text: str
    when: dt.datetime
    true_identity: tuple[str, str]  # what the handle is, canonically (ground truth, not our normaliser)


def zipf_choice(rng: random.Random, seq, s: float = 1.05):
    weights = [1 / (i + 1) ** s for i in range(len(seq))]
    return rng.choices(seq, weights=weights, k=1)[0]


def typo(rng: random.Random, word: str) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    op = rng.choice(("swap", "drop", "double", "replace"))
    if op == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op == "drop":
        return word[:i] + word[i + 1:]
    if op == "double":
        return word[:i] + word[i] + word[i:]
    return word[:i] + rng.choice("aeiouns") + word[i + 1:]


def noisy_phone(rng: random.Random, e164: str) -> str:
    national = "0" + e164[3:]
    return rng.choice((
        f"{national[:2]}-{national[2:]}", f"+31 6 {e164[4:8]} {e164[8:]}", "00" + e164[1:],
        f"{national[:2]} {national[2:4]} {national[4:6]} {national[6:8]} {national[8:]}", f"({national[:2]}) {national[2:]}",
        e164, national))


def name_variant(rng: random.Random, p: Person, channel: str) -> str:
    """The name a person signs with on a channel: mostly their name, with the usual noise."""
    full = f"{p.first} {p.last}"
    r = rng.random()
    if channel in ("mail", "contact", "facebook"):
        if r < 0.84:
            return typo(rng, full) if rng.random() < 0.10 else full
        if r < 0.90:
            return f"{p.last}, {p.first}"
        if r < 0.93:
            return f"{p.first[0]}. {p.last}"
        if r < 0.97:
            return p.first
        return ""
    if r < 0.82:
        return typo(rng, full) if rng.random() < 0.10 else full
    if r < 0.94:
        return p.first
    return rng.choice(NICKS)


def make_population(rng: random.Random, n: int) -> list[Person]:
    people: list[Person] = []
    used_emails: set[str] = set()
    mobiles = rng.sample(range(10_000_000, 99_999_999), n)
    households: list[list[int]] = []
    for pid in range(n):
        if households and rng.random() < 0.18 and len(households[-1]) < 4 and pid > 0:
            # Another member of the previous person's household.
            last = people[households[-1][0]].last
            households[-1].append(pid)
            household = len(households) - 1
        else:
            last = zipf_choice(rng, LAST, 0.8) if rng.random() < 0.15 else rng.choice(LAST_TAIL)
            households.append([pid])
            household = len(households) - 1
        first = zipf_choice(rng, FIRST, 0.9) if rng.random() < 0.55 else rng.choice(FIRST_TAIL)
        email = None
        if rng.random() < 0.9:
            local = rng.choice((f"{first}.{last}", f"{first[0]}{last}", f"{first}{last}{rng.randint(1, 99)}",
                                f"{first}_{rng.randint(1, 999)}", f"{last}.{first[0]}")).lower()
            local = "".join(ch for ch in local.replace(" ", "").replace("'", "") if ch.isascii())
            email = f"{local}@{rng.choice(DOMAINS)}"
            while email in used_emails:
                email = f"{local}{rng.randint(100, 9999)}@{rng.choice(DOMAINS)}"
            used_emails.add(email)
        work = f"{first[0].lower()}.{pid}@company{pid % 97}.example" if rng.random() < 0.06 else None
        person = Person(pid, first, last, email, work, f"+316{mobiles[pid]}", household=household)
        for channel in ("telegram", "x", "mastodon", "bluesky", "facebook", "instagram"):
            person.accounts[channel] = {
                "telegram": str(100000 + pid * 7), "x": str(9_000_000 + pid * 13),
                "mastodon": f"{first.lower()}{pid}@mastodon.social", "bluesky": f"did:plc:{pid:024x}",
                "facebook": str(5_000_000_000 + pid), "instagram": str(7_000_000_000 + pid)}[channel]
        people.append(person)
    return people, households


def crm_records(rng: random.Random, people: list[Person], households) -> list[tuple[int, Record, int]]:
    records = []
    landlines = {h: f"+3120{rng.randint(1_000_000, 9_999_999)}" for h in range(len(households))}
    for p in people:
        if rng.random() >= 0.5:
            continue
        name = f"{p.first} {p.last}" if rng.random() < 0.9 else f"{p.first[0]}. {p.last}"
        emails = []
        if p.email and rng.random() < 0.95:
            emails = [p.email.upper() if rng.random() < 0.1 else p.email.capitalize() if rng.random() < 0.2 else p.email]
        phones = []
        members = households[p.household]
        if rng.random() < 0.8:
            # Some records list another household member's mobile (a parent's for a child).
            owner = people[members[0]] if len(members) > 1 and rng.random() < 0.25 else p
            phones.append(noisy_phone(rng, owner.mobile))
        if len(members) > 1 and rng.random() < 0.5:
            phones.append(noisy_phone(rng, landlines[p.household]))
        if not emails:
            # A CRM record always has something to find it by.
            emails = [f"crm-{p.pid}@nomail.example"] if not p.email else [p.email]
        records.append((len(records) + 2, Record(crm_ref=f"K{p.pid:06d}", name=name, emails=emails, phones=phones,
                                                 attributes={"address": f"Street {p.household}"}), p.pid))
    return records


def make_items(rng: random.Random, people: list[Person], days: int) -> list[Item]:
    items: list[Item] = []
    names, weights = list(CHANNELS), [w for _k, w in CHANNELS.values()]
    for p in people:
        count = rng.choices((1, 2, 3, 4), weights=(0.35, 0.35, 0.2, 0.1))[0]
        chosen: list[str] = []
        while len(chosen) < count:
            channel = rng.choices(names, weights=weights)[0]
            if channel in ("mail", "contact") and not p.email:
                continue
            if channel not in chosen:
                chosen.append(channel)
        anchor = rng.randrange(days)
        for channel in chosen:
            # Most people switch channel within the same episode: that day, or within a few days.
            r = rng.random()
            gap = 0 if r < 0.8 else rng.randint(1, 3) if r < 0.9 else rng.randint(4, 30)
            day = min(days - 1, anchor + gap)
            for n in range(rng.choices((1, 2, 3), weights=(0.6, 0.3, 0.1))[0]):
                when = START + dt.timedelta(days=day + n * rng.randint(0, 5), seconds=rng.randint(7 * 3600, 22 * 3600))
                kind = CHANNELS[channel][0]
                text = rng.choice(("Where is my order?", "Thanks for the help!", "The app crashes when I log in.",
                                   "Can I change my delivery address?", "Refund please, item broken."))
                if channel in ("mail", "contact"):
                    address = p.email
                    if channel == "mail" and p.work_email and rng.random() < 0.4:
                        address = p.work_email
                    true = ("email", address)
                    handle = address.upper() if rng.random() < 0.05 else address.title() if rng.random() < 0.1 else address
                elif channel == "whatsapp":
                    true = handle = ("phone", p.mobile)
                    handle = p.mobile
                else:
                    true = (kind, p.accounts[channel].lower() if kind in ("mastodon",) else p.accounts[channel])
                    handle = p.accounts[channel]
                if channel in CHAT:
                    # Asked who they are (an agent needs the order), people type their email address or
                    # phone number, mostly in their first message on a channel.
                    r = rng.random() * (0.7 if n == 0 else 1.6)
                    if r < 0.45 and p.email:
                        shown = p.email.upper() if rng.random() < 0.2 else p.email
                        text = rng.choice((f"My email is {shown}.", f"I also mailed you from {shown}",
                                           f"mail: {shown} thx"))
                    elif r < 0.65 and channel != "whatsapp":
                        text = f"Call me on {noisy_phone(rng, p.mobile)} please"
                items.append(Item(p.pid, channel, kind, handle, name_variant(rng, p, channel), text, when, true))
    items.sort(key=lambda i: i.when)
    return items


def run(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    people, households = make_population(rng, args.customers)
    records = crm_records(rng, people, households)
    items = make_items(rng, people, args.days)
    # Memory-backed when possible: the figures are about resolution, not about fsync on this disk.
    scratch = "/dev/shm" if Path("/dev/shm").is_dir() else None
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mainland-identity-", dir=scratch))
    work.mkdir(parents=True, exist_ok=True)
    store = Store(work / "identity.db")
    store.migrate()
    ingestor = Ingestor(store, AttachmentStore(work / "attachments"), instance_id="bench", phone_region="NL")

    # Time spent in identity resolution and evidence, measured around the real functions: CPU time
    # of this process (SQLite runs in it), so other load on the machine does not count; wall time too.
    spent = [0.0, 0.0]

    def timed(fn):
        def wrapper(*a, **kw):
            c0, w0 = time.process_time(), time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[0] += time.process_time() - c0
                spent[1] += time.perf_counter() - w0
        return wrapper

    ingest_module.resolve_author = timed(ingest_module.resolve_author)
    ingest_module.note_item_evidence = timed(ingest_module.note_item_evidence)
    ingest_module.is_suppressed = timed(ingest_module.is_suppressed)

    owner: dict[int, int] = {}  # customer id -> person
    t0 = time.perf_counter()
    import_records(store, ((line, rec) for line, rec, _pid in records), region="NL", now=START - dt.timedelta(days=1))
    for _line, rec, pid in records:
        owner[store.customer_by_crm_ref(rec.crm_ref)] = pid
    crm_seconds = time.perf_counter() - t0
    print(f"{len(people):,} people, {len(records):,} CRM records imported in {crm_seconds:.1f} s, "
          f"{len(items):,} items over {args.days} days", file=sys.stderr)

    seen_identity: dict[tuple[str, str], int] = {}  # ground truth: identity -> person who used it
    for _line, rec, pid in records:
        for e in rec.emails:
            seen_identity[("email", e.lower())] = pid
    auto = {"attached": 0, "correct": 0, "expected": 0, "expected_ok": 0}
    ext = itertools.count(1)
    t_ingest, c_ingest = time.perf_counter(), time.process_time()
    batch: list[tuple[Item, InboundItem]] = []

    def flush():
        if not batch:
            return
        channel = batch[0][0].channel
        result = ingestor.ingest(channel, FetchResult(items=[b for _i, b in batch], cursor=None), save_cursor=False)
        assert result.stored == len(batch), result
        for (item, _inbound), message_id in zip(batch, result.message_ids, strict=True):
            customer = store.execute("SELECT customer_id FROM messages WHERE id = ?", (message_id,)).fetchone()[0]
            key = (item.true_identity[0], item.true_identity[1].lower())
            expected = seen_identity.get(key) == item.person
            attached = customer in owner
            if attached:
                auto["attached"] += 1
                auto["correct"] += owner[customer] == item.person
            else:
                owner[customer] = item.person
            if expected:
                auto["expected"] += 1
                auto["expected_ok"] += attached and owner[customer] == item.person
            seen_identity.setdefault(key, item.person)
        batch.clear()

    for item in items:
        if batch and (batch[0][0].channel != item.channel or len(batch) >= 50):
            flush()
        kind = "email" if item.kind == "webform" else item.kind
        batch.append((item, InboundItem(channel=item.channel, external_id=f"{item.channel}-{next(ext)}",
                                        author=Author(handle=item.handle, name=item.name, identity_kind=kind),
                                        text=item.text, sent_at=item.when)))
    flush()
    ingest_seconds, ingest_cpu = time.perf_counter() - t_ingest, time.process_time() - c_ingest

    # Suggestions against the ground truth.
    live = {r[0] for r in store.execute("SELECT id FROM customers WHERE merged_into IS NULL")}
    rows = store.execute("SELECT customer_a, customer_b, score, reasons FROM merge_suggestions WHERE status = 'open' "
                         "AND score >= ?", (SUGGEST_THRESHOLD,)).fetchall()
    correct_edges = [(a, b) for a, b, _s, _r in rows if owner[a] == owner[b]]
    wrong = [(a, b, s, r) for a, b, s, r in rows if owner[a] != owner[b]]
    parent = {c: c for c in live}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in correct_edges:
        parent[find(a)] = find(b)
    by_person: dict[int, list[int]] = defaultdict(list)
    for customer in live:
        by_person[owner[customer]].append(customer)
    true_pairs = joined = 0
    missed = []
    for records_of in by_person.values():
        for a, b in itertools.combinations(records_of, 2):
            true_pairs += 1
            joined += find(a) == find(b)
            if find(a) != find(b):
                missed.append((a, b))
    weak = {(r[0], r[1]) for r in store.execute("SELECT customer_a, customer_b FROM merge_suggestions")}
    names = {r[0]: r[1] for r in store.execute("SELECT id, name_key FROM customers")}
    missed_kinds: dict[str, int] = defaultdict(int)
    show: list[tuple[int, int]] = []
    for a, b in missed:
        if (min(a, b), max(a, b)) in weak:
            missed_kinds["weak evidence"] += 1
        elif not (is_full_name(names[a]) and is_full_name(names[b])):
            missed_kinds["no evidence, a name incomplete"] += 1
        elif name_similarity(names[a], names[b]) < CLOSE_NAME:
            missed_kinds["no evidence, names differ"] += 1
        else:
            missed_kinds["no evidence, same name, other days"] += 1
            if args.show_missed < 0:
                show.append((a, b))
    for a, b in (show[:30] if args.show_missed < 0 else missed[:args.show_missed]):
        desc = []
        for c in (a, b):
            kinds = [f"{k}:{v}" for k, v in store.execute("SELECT kind, value FROM identities WHERE customer_id = ?",
                                                            (c,))]
            msgs = [(m[0], m[1][:10] if m[1] else "", m[2]) for m in store.execute(
                "SELECT author_name, sent_at, channel FROM messages WHERE customer_id = ?", (c,))]
            desc.append(f"#{c} {store.customer_record(c)['name_key']!r} {kinds} {msgs[:3]}")
        pair = store.execute("SELECT score, reasons FROM merge_suggestions WHERE customer_a = ? AND customer_b = ?",
                             (min(a, b), max(a, b))).fetchone()
        print("missed", " | ".join(desc), pair, file=sys.stderr)
    reason_counts: dict[str, int] = defaultdict(int)
    for _a, _b, _s, reasons in rows:
        for r in json.loads(reasons):
            if r["weight"] > 0:
                reason_counts[r["code"]] += 1
    if args.show_wrong:
        for a, b, s, r in wrong[:args.show_wrong]:
            print(f"wrong {a}/{b} {s:.2f} {r}", file=sys.stderr)
    store.close()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    n = len(items)
    summary = {
        "auto_precision": round(auto["correct"] / auto["attached"], 4) if auto["attached"] else 1.0,
        "auto_recall": round(auto["expected_ok"] / auto["expected"], 4) if auto["expected"] else 1.0,
        "suggest_precision": round(len(correct_edges) / len(rows), 4) if rows else 1.0,
        "suggest_recall": round(joined / true_pairs, 4) if true_pairs else 1.0,
        "ms_per_1000": round(spent[0] * 1000 / n * 1000, 1),
        "wall_ms_per_1000": round(spent[1] * 1000 / n * 1000, 1),
        "ingest_ms_per_1000": round(ingest_cpu * 1000 / n * 1000, 1),
        "ingest_wall_ms_per_1000": round(ingest_seconds * 1000 / n * 1000, 1),
        "items": n, "customers": len(people), "records": len(live), "suggestions": len(rows),
        "true_pairs": true_pairs, "auto_attached": auto["attached"], "seed": args.seed,
        "reasons": dict(sorted(reason_counts.items())),
        "missed": dict(sorted(missed_kinds.items())),
    }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000, help="people in the population (default 10,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=90, help="the period the items are spread over")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep the database")
    parser.add_argument("--show-wrong", type=int, default=0, metavar="N", help="print N wrong suggestions")
    parser.add_argument("--show-missed", type=int, default=0, metavar="N",
                        help="print N pairs of records of one person that no suggestion joins")
    args = parser.parse_args()
    s = run(args)
    print(f"automatic attachment: precision {s['auto_precision']:.4f}, recall {s['auto_recall']:.4f} "
          f"({s['auto_attached']:,} attached)")
    print(f"suggestions (score >= {SUGGEST_THRESHOLD}): precision {s['suggest_precision']:.4f}, "
          f"recall {s['suggest_recall']:.4f} ({s['suggestions']:,} suggestions, {s['true_pairs']:,} true pairs "
          f"among {s['records']:,} records)")
    print(f"evidence in suggestions: {', '.join(f'{k} {v:,}' for k, v in s['reasons'].items())}")
    print(f"time per 1,000 items: identity resolution + evidence {s['ms_per_1000']:.0f} ms CPU "
          f"({s['wall_ms_per_1000']:.0f} ms wall); the whole ingest {s['ingest_ms_per_1000']:.0f} ms CPU "
          f"({s['ingest_wall_ms_per_1000']:.0f} ms wall)")
    targets = s["auto_precision"] == 1.0 and s["suggest_recall"] >= 0.9 and s["suggest_precision"] >= 0.8
    print(f"targets (auto precision 1.0, suggestion recall >= 0.9 at precision >= 0.8): "
          f"{'met' if targets else 'NOT met'}")
    print(f"pairs not joined: {', '.join(f'{k} {v:,}' for k, v in s['missed'].items())}")
    s.pop("reasons")
    s.pop("missed")
    print(json.dumps(s))


if __name__ == "__main__":
    main()
