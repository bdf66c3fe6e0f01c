"""Identity normal forms, evidence in message text, name comparison and suggestion scoring (inbox/identity.py)."""

from __future__ import annotations

import pytest

from inbox import identity
from inbox.customers import normalize_identity as pipeline_normalize
from inbox.identity import Reason


@pytest.mark.parametrize("raw", ["Jan.DeVries@Example.COM", "  jan.devries@example.com ", "<Jan.Devries@example.com>",
                                 "mailto:JAN.DEVRIES@EXAMPLE.COM"])
def test_email_addresses_are_lower_cased_whole(raw):
    assert identity.normalize_email(raw) == "jan.devries@example.com"


def test_email_provider_tricks_are_not_applied():
    # Dots and +tags mean something at most providers: two addresses stay two.
    assert identity.normalize_email("j.an+shop@gmail.com") == "j.an+shop@gmail.com"


@pytest.mark.parametrize("raw", ["not an address", "jan@", "@example.com", "jan@example", "a b@example.com", ""])
def test_non_addresses_are_refused(raw):
    assert identity.normalize_email(raw) is None


def test_an_unparsable_address_is_kept_for_its_customer():
    assert identity.normalize_identity("email", "  Broken@@Address ") == "broken@@address"
    assert pipeline_normalize("webform", "Jan@Example.com") == "jan@example.com"


@pytest.mark.parametrize("raw", ["06-12345678", "+31 6 1234 5678", "0031612345678", "06 12 34 56 78", "(06) 12345678",
                                 "+31612345678", "0031 (0)6 12345678"])
def test_dutch_phone_formats_become_one_e164_number(raw):
    assert identity.normalize_phone(raw, "NL") == "+31612345678"


def test_national_numbers_need_the_default_region():
    assert identity.normalize_phone("06-12345678") is None
    assert identity.normalize_phone("+31 6 1234 5678") == "+31612345678"
    assert identity.normalize_phone("0031612345678") == "+31612345678"
    assert identity.normalize_phone("020 794 6095", "GB") != identity.normalize_phone("020 794 6095", "NL")


@pytest.mark.parametrize("raw", ["12", "call me", "+999 1234", "0" * 40])
def test_impossible_numbers_are_refused(raw):
    assert identity.normalize_phone(raw, "NL") is None


def test_handles_per_network():
    assert identity.normalize_identity("mastodon", "@Jan@Mastodon.Social") == "jan@mastodon.social"
    assert identity.normalize_identity("bluesky", "Jan.bsky.social") == "jan.bsky.social"
    assert identity.normalize_identity("x", "@JanDeVries") == "jandevries"
    assert identity.normalize_identity("telegram", " 123456789 ") == "123456789"
    # WhatsApp's business-scoped ids and Facebook's page-scoped ids are opaque: case is kept.
    assert identity.normalize_identity("whatsapp", "NL.AbCdEf") == "NL.AbCdEf"
    assert identity.normalize_identity("facebook", "AbC123") == "AbC123"
    assert identity.normalize_identity("phone", "+31 6 1234 5678") == "+31612345678"
    assert identity.canonical_kind("webform") == "email"


def test_emails_written_in_a_chat_message_are_found():
    text = "Hoi! Mijn mail is Jan.DeVries@Example.com (of jan@werk.nl), jan.devries@example.com dus."
    assert identity.emails_in_text(text) == ["jan.devries@example.com", "jan@werk.nl"]
    assert identity.emails_in_text("no address here, just @handles and a@b") == []


def test_phone_numbers_written_in_a_chat_message_are_found():
    assert identity.phones_in_text("bel me op 06-12345678 of +44 20 7946 0958", "NL") == [
        "+31612345678", "+442079460958"]
    assert identity.phones_in_text("order 123456 of 2024", "NL") == []


def test_name_keys_ignore_accents_case_titles_and_order():
    assert identity.name_key("Dhr. José  de Vríes") == "jose de vries"
    assert identity.name_key("de Vries, Jan") == "jan de vries"
    assert identity.name_key("jan@example.com") == ""
    assert identity.name_key("+31 6 1234 5678") == ""


def test_close_names_score_high_and_other_given_names_low():
    close = identity.name_similarity(identity.name_key("Jan de Vries"), identity.name_key("Jan de Vriess"))
    accent = identity.name_similarity(identity.name_key("Müller, Jürgen"), identity.name_key("Jurgen Muller"))
    family = identity.name_similarity(identity.name_key("Jan Jansen"), identity.name_key("Joke Jansen"))
    assert close >= identity.CLOSE_NAME
    assert accent == 1.0
    assert family < 0.7


def test_full_names_need_a_family_name():
    assert identity.is_full_name("jan de vries")
    assert identity.is_full_name("j de vries")
    assert not identity.is_full_name("jan")
    assert not identity.is_full_name("de vries")


def test_evidence_combines_as_independent_and_penalties_subtract():
    one = identity.combine([Reason("same_phone", "+31", 0.6)])
    two = identity.combine([Reason("same_phone", "+31", 0.6), Reason("email_in_text", "a@b.nl", 0.6)])
    assert one == pytest.approx(0.6)
    assert two == pytest.approx(0.84)
    # The same piece of evidence twice counts once.
    assert identity.combine([Reason("same_phone", "+31", 0.6)] * 3) == pytest.approx(0.6)
    assert identity.combine([Reason("same_phone", "+31", 0.6), Reason("conflict", "telegram", -0.6)]) == 0.0


def test_different_accounts_of_a_single_valued_kind_conflict():
    mine = {"telegram": {"111"}, "email": {"a@x.nl"}}
    theirs = {"telegram": {"222"}, "email": {"b@x.nl"}}
    reasons = identity.conflict_reasons(mine, theirs)
    assert [(r.code, r.detail) for r in reasons] == [("conflict", "telegram")]
    # Two email addresses are normal for one person.
    assert identity.conflict_reasons({"email": {"a"}}, {"email": {"b"}}) == []


def test_a_shared_number_says_less_and_common_names_say_less():
    assert identity.shared_claim_weight(0.9, 1) > identity.shared_claim_weight(0.9, 2) > identity.shared_claim_weight(
        0.9, 4)
    assert identity.close_name_weight(1.0, 0) > identity.close_name_weight(1.0, 3)
    assert identity.close_name_weight(0.5, 0) == 0.0


def test_expected_namesakes_count_other_records_only():
    counts = {"": 1000, "jan": 100, "vries": 50, "ottoline": 2, "quarles": 2}
    assert identity.expected_namesakes("jan de vries", counts) == pytest.approx(5.0)
    pair = ("ottoline quarles", "ottoline quarles")
    assert identity.expected_namesakes("ottoline quarles", counts, pair) == 0.0
    assert identity.rare_name_weight(0.0) == pytest.approx(identity.WEIGHTS["rare_name"])
    assert identity.rare_name_weight(identity.RARE_NAME) == 0.0
