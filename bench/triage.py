"""Triage benchmark (#14): the spam model on the SpamAssassin corpus, split by date, against SpamAssassin 4.

    .venv/bin/python bench/triage.py [--no-spamassassin] [--jobs 2]

* The corpus (6,046 real mails: easy_ham, hard_ham, spam; `inbox/corpus.py`) is read as the ingest
  reads it (`inbox.spam_model.facts_from_email`; the two mails the parser refuses for want of any
  sender are left out, as the ingest quarantines them), ordered by its Date header (undated last,
  then by file name) and split in two halves: the base model learns the earlier half
  (`train_base_model_from_facts`) and judges the later one.
* Verdicts by the model's own thresholds (`inbox.spam_model.verdict`): spam at or above
  SPAM_THRESHOLD, clean at or below CLEAN_THRESHOLD, suspicious between.
  `ham_false_positive_rate` = ham judged spam / ham; `spam_recall` = spam judged spam / spam;
  `suspicious_share` = suspicious / all.
* Learning: 1,000 human decisions from the test half, the true labels of the items the base model
  marked suspicious first (in date order), then a fixed random sample of the rest, each through
  `SpamModel.learn` (saved as a version, as in the product). The learning curve (after 0, 100,
  200, 300, 500, 750 and 1,000 decisions) and the `*_after_learning` figures (after 100, 500 and
  1,000) are measured on the test items that were not decided, so nothing is judged that was taught.
* Speed: `spam_probability` one item at a time over 1,000 test items, CPU time of the process
  (`ms_per_item`, target < 2) and wall time; `learn_ms` is one decision learnt and saved (wall).
* Reference: SpamAssassin 4 from Debian (`spamassassin -L --cf='use_bayes 0' --cf='report_safe 0'
  --mbox`: local rules only, no network tests, no Bayes) on the same test half, in `--jobs`
  processes. The corpus carries its collectors' own X-Spam-* headers; they are removed before
  either judge sees a mail. Its verdicts are cached in `$MAINLAND_CACHE/triage-bench/` by
  SpamAssassin version and input, since a run takes minutes. Without the binary the reference
  figures are null and `spamassassin_note` says why.

Last line, one JSON object: `ham_false_positive_rate`, `spam_recall`, `suspicious_share`, the same
three `*_after_learning_100/500/1000` and `*_after_learning` (= 1,000), `learning_curve`,
`spamassassin_ham_fp`, `spamassassin_spam_recall` (whole test half), the same on the items left
after learning (`spamassassin_*_after_learning_items`), `ms_per_item`, `wall_ms_per_item`,
`learn_ms`, counts, thresholds and `targets_met`. Targets: ham false positives <= 0.2%, spam recall
>= 95%, suspicious <= 5%, and after learning better than SpamAssassin on both rates.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mailbox
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inbox import spam_model  # noqa: E402
from inbox.corpus import cache_dir, corpus_paths, is_spam  # noqa: E402

DECISION_STEPS = (100, 500, 1000)
CURVE_STEPS = (0, 100, 200, 300, 500, 750, 1000)
SPEED_ITEMS = 1000
SEED = 14
TARGETS = {"ham_false_positive_rate": 0.002, "spam_recall": 0.95, "suspicious_share": 0.05}
_X_SPAM = re.compile(rb"^x-spam-", re.IGNORECASE)
_LATE = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Mail:
    name: str          # folder/file, unique in the corpus
    raw: bytes         # without the mbox line and without X-Spam-* headers
    spam: bool
    sent_at: datetime | None
    facts: spam_model.ItemFacts


def _without_spam_headers(raw: bytes) -> bytes:
    """The mail without its "From " line and without any X-Spam-* header (with its folded lines)."""
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    head, sep, body = raw.partition(b"\n\n")
    kept, skipping = [], False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):  # a folded line belongs to the header before it
            if not skipping:
                kept.append(line)
            continue
        skipping = bool(_X_SPAM.match(line))
        if not skipping:
            kept.append(line)
    return b"\n".join(kept) + sep + body


def load_corpus() -> tuple[list[Mail], int]:
    mails, refused = [], 0
    for path in corpus_paths():
        raw = _without_spam_headers(path.read_bytes())
        facts = spam_model.facts_from_email(raw)
        if facts is None:
            refused += 1
            continue
        mails.append(Mail(f"{path.parent.name}/{path.name}", raw, is_spam(path), spam_model.sent_at(raw), facts))
    mails.sort(key=lambda mail: (mail.sent_at or _LATE, mail.name))
    return mails, refused


def rates(probabilities: list[float], mails: list[Mail]) -> dict[str, float]:
    verdicts = [spam_model.verdict(p) for p in probabilities]
    ham = [v for v, mail in zip(verdicts, mails, strict=True) if not mail.spam]
    spam = [v for v, mail in zip(verdicts, mails, strict=True) if mail.spam]
    return {
        "ham_false_positive_rate": round(ham.count(spam_model.SPAM) / len(ham), 5),
        "spam_recall": round(spam.count(spam_model.SPAM) / len(spam), 5),
        "suspicious_share": round(verdicts.count(spam_model.SUSPICIOUS) / len(verdicts), 5),
    }


def decision_order(base_probabilities: list[float], test: list[Mail]) -> list[int]:
    """Indexes into `test`: the suspicious ones first (date order), then a fixed sample of the rest."""
    suspicious = [i for i, p in enumerate(base_probabilities) if spam_model.verdict(p) == spam_model.SUSPICIOUS]
    rest = [i for i in range(len(test)) if i not in set(suspicious)]
    random.Random(SEED).shuffle(rest)
    return (suspicious + rest)[: max(DECISION_STEPS)]


def speed(model: spam_model.SpamModel, mails: list[Mail]) -> tuple[float, float]:
    """(CPU ms, wall ms) per item, judging one item at a time."""
    items = [mail.facts for mail in mails[:SPEED_ITEMS]]
    model.spam_probability(items[0])  # first call loads the model
    cpu, wall = time.process_time(), time.perf_counter()
    for facts in items:
        model.spam_probability(facts)
    return ((time.process_time() - cpu) * 1000 / len(items), (time.perf_counter() - wall) * 1000 / len(items))


# SpamAssassin -------------------------------------------------------------------------------------


def _spamassassin_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].strip()


def _write_mbox(mails: list[Mail], path: Path) -> None:
    with open(path, "wb") as out:
        for mail in mails:
            head, sep, body = mail.raw.replace(b"\r\n", b"\n").partition(b"\n\n")
            text = head + f"\nX-Bench-Id: {mail.name}".encode() + b"\n\n" + body
            text = re.sub(rb"(?m)^(>*From )", rb">\1", text)  # mboxrd quoting
            out.write(b"From bench@localhost Thu Jan  1 00:00:00 2004\n" + text.rstrip(b"\n") + b"\n\n")


def _read_verdicts(path: Path) -> dict[str, bool]:
    verdicts = {}
    for message in mailbox.mbox(path):
        name, status = message.get("X-Bench-Id"), message.get("X-Spam-Status", "")
        if name:
            verdicts[str(name).strip()] = str(status).strip().lower().startswith("yes")
    return verdicts


def spamassassin_verdicts(mails: list[Mail], jobs: int) -> tuple[dict[str, bool] | None, str]:
    """{name: judged spam} from SpamAssassin's local rules, or None and why not."""
    binary = shutil.which("spamassassin")
    if binary is None:
        return None, "skipped: spamassassin is not installed (apt-get install spamassassin)"
    version = _spamassassin_version(binary)
    digest = hashlib.sha256(version.encode())
    for mail in mails:
        digest.update(mail.name.encode() + hashlib.sha256(mail.raw).digest())
    cached = cache_dir().parent / "triage-bench" / f"spamassassin-{digest.hexdigest()[:16]}.json"
    if cached.exists():
        return json.loads(cached.read_text()), f"{version}, local rules, no Bayes (cached {cached})"
    with tempfile.TemporaryDirectory(prefix="triage-sa-") as tmp:
        chunks = [mails[index::jobs] for index in range(jobs)]
        runs = []
        for index, chunk in enumerate(chunks):
            source, target = Path(tmp, f"in-{index}.mbox"), Path(tmp, f"out-{index}.mbox")
            _write_mbox(chunk, source)
            with open(source, "rb") as stdin, open(target, "wb") as stdout:
                runs.append((target, subprocess.Popen(
                    [binary, "-L", "--cf=use_bayes 0", "--cf=report_safe 0", "--mbox"],
                    stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL)))
        verdicts: dict[str, bool] = {}
        for target, process in runs:
            if process.wait() != 0:
                return None, f"skipped: spamassassin exited with {process.returncode}"
            verdicts.update(_read_verdicts(target))
    if len(verdicts) != len(mails):
        return None, f"skipped: spamassassin returned {len(verdicts)} verdicts for {len(mails)} mails"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(verdicts))
    return verdicts, f"{version}, local rules, no Bayes"


def spamassassin_rates(verdicts: dict[str, bool], mails: list[Mail]) -> tuple[float, float]:
    ham = [verdicts[mail.name] for mail in mails if not mail.spam]
    spam = [verdicts[mail.name] for mail in mails if mail.spam]
    return round(sum(ham) / len(ham), 5), round(sum(spam) / len(spam), 5)


# The run ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-spamassassin", action="store_true", help="Leave out the SpamAssassin reference.")
    parser.add_argument("--jobs", type=int, default=2, help="SpamAssassin processes (default 2).")
    args = parser.parse_args()

    started = time.perf_counter()
    mails, refused = load_corpus()
    half = len(mails) // 2
    train, test = mails[:half], mails[half:]
    print(f"corpus: {len(mails)} mails ({refused} refused by the parser); learn from {len(train)} up to "
          f"{train[-1].sent_at:%Y-%m-%d}, judge {len(test)} "
          f"({sum(m.spam for m in test)} spam, {sum(not m.spam for m in test)} ham)", file=sys.stderr)

    reference: threading.Thread | None = None
    sa_result: dict = {}
    if not args.no_spamassassin:
        # SpamAssassin takes minutes: it runs (in its own processes) beside the model's measurements.
        def run_reference() -> None:
            sa_result["verdicts"], sa_result["note"] = spamassassin_verdicts(test, max(1, args.jobs))

        reference = threading.Thread(target=run_reference, daemon=True)
        reference.start()

    with tempfile.TemporaryDirectory(prefix="triage-bench-") as data_dir:
        model = spam_model.train_base_model_from_facts([(m.facts, m.spam) for m in train], Path(data_dir))
        base_probabilities = model.spam_probabilities([m.facts for m in test])
        result = rates(base_probabilities, test)
        print(f"base model: {result}", file=sys.stderr)
        cpu_ms, wall_ms = speed(model, test)

        order = decision_order(base_probabilities, test)
        suspicious_decided = sum(spam_model.verdict(base_probabilities[i]) == spam_model.SUSPICIOUS for i in order)
        curve, learn_wall = [], []
        done = 0
        for step in CURVE_STEPS:
            for index in order[done:step]:
                began = time.perf_counter()
                model.learn(test[index].facts, test[index].spam)
                learn_wall.append(time.perf_counter() - began)
            done = step
            decided = set(order[:step])
            left = [mail for i, mail in enumerate(test) if i not in decided]
            point = {"decisions": step, **rates(model.spam_probabilities([m.facts for m in left]), left)}
            curve.append(point)
            print(f"after {step} decisions: {point}", file=sys.stderr)
            if step in DECISION_STEPS:
                for key in TARGETS:
                    result[f"{key}_after_learning_{step}"] = point[key]
        for key in TARGETS:
            result[f"{key}_after_learning"] = result[f"{key}_after_learning_{max(DECISION_STEPS)}"]
        versions_kept = len(model.versions())

    left_after = [mail for i, mail in enumerate(test) if i not in set(order)]
    result.update({"learning_curve": curve, "ms_per_item": round(cpu_ms, 3), "wall_ms_per_item": round(wall_ms, 3),
                   "learn_ms": round(sorted(learn_wall)[len(learn_wall) // 2] * 1000, 1),
                   "decisions_on_suspicious": suspicious_decided, "versions_kept": versions_kept})

    if reference is not None:
        reference.join()
        verdicts, note = sa_result["verdicts"], sa_result["note"]
    else:
        verdicts, note = None, "skipped: --no-spamassassin"
    if verdicts is None:
        result.update({"spamassassin_ham_fp": None, "spamassassin_spam_recall": None})
    else:
        fp, recall = spamassassin_rates(verdicts, test)
        fp_left, recall_left = spamassassin_rates(verdicts, left_after)
        result.update({"spamassassin_ham_fp": fp, "spamassassin_spam_recall": recall,
                       "spamassassin_ham_fp_after_learning_items": fp_left,
                       "spamassassin_spam_recall_after_learning_items": recall_left})
    result["spamassassin_note"] = note

    met = {
        "ham_false_positive_rate": result["ham_false_positive_rate_after_learning"] <= TARGETS["ham_false_positive_rate"],
        "spam_recall": result["spam_recall_after_learning"] >= TARGETS["spam_recall"],
        "suspicious_share": result["suspicious_share_after_learning"] <= TARGETS["suspicious_share"],
        "ms_per_item": cpu_ms < 2.0,
    }
    if verdicts is not None:
        met["better_than_spamassassin"] = (
            result["ham_false_positive_rate_after_learning"] < result["spamassassin_ham_fp_after_learning_items"]
            and result["spam_recall_after_learning"] > result["spamassassin_spam_recall_after_learning_items"])
    result.update({
        "targets_met": met,
        "base_targets_met": {key: (result[key] <= limit if key != "spam_recall" else result[key] >= limit)
                             for key, limit in TARGETS.items()},
        "spam_threshold": spam_model.SPAM_THRESHOLD, "clean_threshold": spam_model.CLEAN_THRESHOLD,
        "human_weight": spam_model.HUMAN_WEIGHT,
        "train_items": len(train), "test_items": len(test), "test_spam": sum(m.spam for m in test),
        "test_ham": sum(not m.spam for m in test), "items_after_learning": len(left_after),
        "refused_by_parser": refused, "split_date": train[-1].sent_at.isoformat(),
        "seconds": round(time.perf_counter() - started, 1), "load_average": round(os.getloadavg()[0], 2),
    })
    print(json.dumps(result))


if __name__ == "__main__":
    main()
