"""The letter corpus through the parser and the SEP recogniser: every encoding, layout and mangling
yields the same fields, look-alike letters are mapped and recorded, and nothing raises."""

from __future__ import annotations

from datetime import date

import pytest

from integrations.mail.parse import content_hash, parse_letter, read_headers
from integrations.mail.sep import Kind, read_vin, recognise
from tests.mail import corpus

SENDERS = ["@elpts.ru"]


def notice_of(raw: bytes):
    letter = parse_letter(raw)
    verdict = recognise(letter, SENDERS)
    assert verdict.notice is not None, (verdict.reason, letter)
    return letter, verdict.notice


@pytest.mark.parametrize(
    ("build", "number", "code"),
    [
        (lambda: corpus.sep_letter(), "2026-000123", "482913"),
        (corpus.windows1251_qp, "2026-000201", "111222"),
        (lambda: corpus.koi8r_base64(label=True), "2026-000202", "333444"),
        (lambda: corpus.koi8r_base64(label=False), "2026-000202", "333444"),
        (corpus.lying_label, "2026-000203", "555666"),
        (corpus.raw_8bit_headers, "2026-000204", "777888"),
        (corpus.unknown_charset, "2026-000205", "999000"),
        (corpus.html_only, "2026-000206", "121212"),
        (lambda: corpus.alternative(None), "2026-000207", "343434"),
        (corpus.forwarded_attachment, "2026-000208", "565656"),
        (corpus.forwarded_inline, "2026-000209", "787878"),
        (corpus.text_as_attachment, "2026-000210", "909090"),
        (corpus.with_pdf, "2026-000211", "131313"),
        (corpus.broken_multipart, "2026-000212", "246810"),
        (corpus.folded_subject_without_space, "2026-000213", "112233"),
        (corpus.as_the_sep_emulator_sends, "2026-000214", "141414"),
    ],
    ids=[
        "utf8",
        "windows1251-qp",
        "koi8r-base64",
        "koi8r-unlabelled",
        "cp1251-labelled-latin1",
        "raw-8bit-headers",
        "unknown-charset",
        "html-only",
        "alternative-empty-plain",
        "forwarded-rfc822",
        "forwarded-inline",
        "text-attachment",
        "pdf-attachment",
        "broken-multipart",
        "folded-subject",
        "sep-emulator",
    ],
)
def test_every_encoding_and_layout_gives_the_same_fields(build, number: str, code: str) -> None:
    _, notice = notice_of(build())
    assert notice.application_number == number
    assert notice.code == code
    assert notice.epts == "164301000012345"
    assert notice.vin is not None and notice.vin.value == "XTA210990Y2765432"
    assert notice.confirm_by == date(2026, 12, 2)


def test_subjects_decode_to_russian_text() -> None:
    assert (
        parse_letter(corpus.windows1251_qp()).subject == "СЭП: заявление № 2026-000201 на смену собственника"
    )
    assert parse_letter(corpus.koi8r_base64()).subject == "СЭП: заявление N 2026-000202 на смену собственника"
    letter = parse_letter(corpus.raw_8bit_headers())
    assert letter.subject.startswith("СЭП: заявление") and letter.sender == "notify@sep.elpts.ru"
    assert "header subject: raw 8-bit text" in letter.defects


def test_charset_guesses_are_recorded_as_defects() -> None:
    assert any("read as koi8_r" in d for d in parse_letter(corpus.koi8r_base64(label=False)).defects)
    assert any(
        "labelled iso-8859-1 but reads as cp1251" in d for d in parse_letter(corpus.lying_label()).defects
    )
    assert any("unknown charset 'x-klingon'" in d for d in parse_letter(corpus.unknown_charset()).defects)


def test_html_is_read_as_text_without_scripts() -> None:
    letter = parse_letter(corpus.html_only())
    assert letter.text_from == "text/html"
    assert "000000" not in letter.text  # the script's fake code is not text
    assert "Номер заявления: 2026-000206" in letter.text


def test_the_plain_alternative_wins_when_it_says_something() -> None:
    letter = parse_letter(corpus.alternative(corpus.sep_body("2026-000300", code="454545")))
    assert letter.text_from == "text/plain"
    assert recognise(letter, SENDERS).notice.code == "454545"  # type: ignore[union-attr]


def test_a_forwarded_letter_is_recognised_by_its_own_sender() -> None:
    letter, notice = notice_of(corpus.forwarded_attachment())
    assert letter.sender == "ivanov@example.ru"
    assert notice.recognised_by == "a forwarded letter (level 1): sender notify@sep.elpts.ru"
    _, inline = notice_of(corpus.forwarded_inline())
    assert inline.recognised_by == "the letter: names SEP and carries its fields"


def test_attachments_are_ignored_unless_they_are_the_text() -> None:
    letter = parse_letter(corpus.with_pdf())
    assert letter.text_from == "text/plain" and letter.attachments == ["application/pdf 'заявление.pdf'"]
    assert parse_letter(corpus.text_as_attachment()).text_from == "attachment text/plain 'notification.txt'"


def test_broken_mime_is_read_with_its_defects() -> None:
    letter = parse_letter(corpus.broken_multipart())
    assert any("CloseBoundaryNotFoundDefect" in d for d in letter.defects)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("ownership_change", Kind.OWNERSHIP_CHANGE),
        ("lease_application", Kind.LEASE_APPLICATION),
        ("lease_entered", Kind.LEASE_ENTERED),
    ],
)
def test_the_kind_comes_from_the_subject(kind: str, expected: Kind) -> None:
    _, notice = notice_of(corpus.sep_letter(kind, "2026-000400"))
    assert notice.kind is expected


def test_a_lease_entered_letter_carries_no_code() -> None:
    _, notice = notice_of(corpus.sep_letter("lease_entered", "2026-000401", code=None, until=None))
    assert notice.kind is Kind.LEASE_ENTERED and notice.code is None and notice.confirm_by is None


def test_masked_vins() -> None:
    _, notice = notice_of(corpus.sep_letter(vin="XTA********765432"))
    assert notice.vin is not None and notice.vin.masked and notice.vin.value == "XTA********765432"
    other = read_vin("XTA•••••765432")  # another mask character, another length
    assert other.value == "XTA********765432" and other.masked
    assert read_vin("XT**2").value is None  # shows too little to match


def test_cyrillic_look_alikes_in_a_vin_are_mapped_and_recorded() -> None:
    # Х, Т, А and У below are Cyrillic letters.
    _, notice = notice_of(corpus.sep_letter(vin="ХТА210990У2765432"))
    assert notice.vin is not None and notice.vin.value == "XTA210990Y2765432"
    assert [(m.position, m.cyrillic, m.latin) for m in notice.vin.lookalikes] == [
        (1, "Х", "X"),
        (2, "Т", "T"),
        (3, "А", "A"),
        (10, "У", "Y"),
    ]


def test_a_vin_with_letters_no_vin_has_is_reported_not_used() -> None:
    _, notice = notice_of(corpus.sep_letter(vin="XTA21O99OY2765432"))  # Latin O, never in a VIN
    assert notice.vin is not None and notice.vin.value is None
    assert any("characters a VIN never has: O" in p for p in notice.problems)


def test_an_epts_only_letter() -> None:
    _, notice = notice_of(corpus.sep_letter(vin=None, epts="164301000077777"))
    assert notice.vin is None and notice.epts == "164301000077777"


def test_a_wrong_length_epts_is_a_problem_not_a_field() -> None:
    _, notice = notice_of(corpus.sep_letter(epts="16430100001234"))
    assert notice.epts is None and any("15 digits" in p for p in notice.problems)


def test_dates_in_words_and_iso() -> None:
    assert notice_of(corpus.sep_letter(until="2026-12-31"))[1].confirm_by == date(2026, 12, 31)
    assert notice_of(corpus.sep_letter(until="5 января 2027 г."))[1].confirm_by == date(2027, 1, 5)


def test_a_letter_not_from_sep_is_not_recognised_and_says_why() -> None:
    verdict = recognise(parse_letter(corpus.not_sep()), SENDERS)
    assert verdict.notice is None
    assert "news@shop.example.com is not a SEP sender" in verdict.reason


def test_sep_named_from_another_address_needs_the_fields() -> None:
    # A colleague writing about SEP, with no application fields: not a notification.
    chat = corpus.sep_letter(
        sender="Коллега <colleague@example.ru>", body="Коллеги, СЭП сегодня не работает.\n"
    )
    assert recognise(parse_letter(chat), SENDERS).notice is None


def test_garbage_is_parsed_without_raising_and_is_not_readable() -> None:
    letter = parse_letter(corpus.garbage())
    assert not letter.readable
    assert parse_letter(b"").readable is False


def test_headers_and_the_content_hash_ignore_transit_headers() -> None:
    raw = corpus.sep_letter(message_id="<same@sep.elpts.ru>")
    relayed = (
        b"Received: from mx by relay; Tue, 1 Dec 2026 10:00:00 +0300\r\nDelivered-To: sep@example.ru\r\n"
        + raw
    )
    assert content_hash(raw) == content_hash(relayed)
    assert read_headers(relayed).message_id == "<same@sep.elpts.ru>"
    assert (
        read_headers(corpus.windows1251_qp()).subject == "СЭП: заявление № 2026-000201 на смену собственника"
    )
