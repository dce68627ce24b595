"""Which invoice numbers a bank payment's purpose names: a table of real-looking purposes, and
properties over generated ones (any number, any way of writing it, any noise around it)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.onec.purpose import number_key, read_purpose

# (purpose, invoice numbers it names, ambiguous)
TABLE: list[tuple[str, list[str], bool]] = [
    ("Оплата по счету № 123 от 01.12.2026", ["123"], False),
    ("Оплата по счёту №123 от 01.12.2026г. В т.ч. НДС 20% 205-75", ["123"], False),
    ("Оплата по сч. 123 за автомобиль", ["123"], False),
    ("по сч 123", ["123"], False),
    ("счёт №123", ["123"], False),
    ("СЧ.№ТД-000045 от 3 декабря 2026", ["ТД-000045"], False),
    ("Оплата счета 123, 124", ["123", "124"], True),
    ("Оплата по счетам №№ 12, 13 и 14 НДС не облагается", ["12", "13", "14"], True),
    ("Оплата счета от 01.12.2026 № 99. Без НДС", ["99"], False),
    (
        "Оплата по счету № 0000-000123 от 01.12.2026 г. за автомобиль по договору № 45 от 01.01.2026. "
        "Сумма 1234-50 В т.ч. НДС (20%) 205.75 руб.",
        ["0000-000123"],
        False,
    ),
    ("Оплата по договору № 45 от 01.01.2026 по счету 77", ["77"], False),
    ("Предоплата по счету на оплату № 88 от 1.12.26, в том числе НДС 20 % - 14.67 рублей", ["88"], False),
    ("Оплата по счет-фактуре № 5 от 01.12.2026", [], False),
    ("Перечисление на расчетный счет 40702810900000012345", [], False),
    ("Оплата по лицевому счету 12345", [], False),
    ("р/сч 40702810900000012345 оплата по сч.55", ["55"], False),
    ("Оплата счета 1500 руб", [], False),
    ("Оплата по счету 123, 20% НДС", ["123"], False),
    ("Оплата за услуги связи за ноябрь 2026 г. НДС не облагается", [], False),
    ("Расчет за автомобиль, счетчик 12", [], False),
    ("Оплата по счету № 12 от 01.12.2025 и счету № 12 от 05.12.2026", ["12"], True),
    ("ОПЛАТА ПО СЧЕТУ N 731 ОТ 02.12.2026", ["731"], False),
    ("Оплата по сч/ 5", [], False),
    ("оплата по счету 01.12.2026", [], False),
]


@pytest.mark.parametrize(("purpose", "numbers", "ambiguous"), TABLE)
def test_real_looking_purposes(purpose: str, numbers: list[str], ambiguous: bool) -> None:
    reading = read_purpose(purpose)
    assert list(dict.fromkeys(r.number for r in reading.references)) == numbers
    assert reading.ambiguous is ambiguous
    assert (reading.single is not None) is (len(numbers) == 1 and not ambiguous)


def test_the_date_given_is_kept() -> None:
    single = read_purpose("Оплата по счету № 123 от 01.12.2026").single
    assert single is not None and single.date == date(2026, 12, 1) and single.key == "123"
    assert read_purpose("по сч. 7 от 2026-12-05").references[0].date == date(2026, 12, 5)
    assert read_purpose("по сч. 7 от 31.02.2026").references[0].date is None


@pytest.mark.parametrize(
    ("number", "key"),
    [
        ("0000-000123", "123"),
        ("123", "123"),
        ("ТД-45", "45"),
        ("123/2026", "123"),
        ("000", "0"),
        ("А1Б", "1"),
    ],
)
def test_number_keys(number: str, key: str) -> None:
    assert number_key(number) == key


# --- properties -----------------------------------------------------------------------------------
_PREFIX = st.sampled_from(["", "0000-", "00БП-", "ТД-", "A-", "OB00-"])
_NUMBERS = st.builds(lambda p, n: f"{p}{n}", _PREFIX, st.integers(min_value=1, max_value=99_999_999).map(str))
_WORDINGS = st.sampled_from(
    [
        "Оплата по счету № {n}",
        "Оплата по счёту №{n}",
        "оплата по сч. {n}",
        "по сч {n}",
        "Оплата счета {n}",
        "ОПЛАТА ПО СЧЕТУ N {n}",
        "Предоплата по счету на оплату № {n}",
        "Оплата по счету-договору № {n}",
        "счёт №{n}",
    ]
)
_DATES = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))
_NOISE = st.lists(
    st.sampled_from(
        [
            "В т.ч. НДС 20% 205-75",
            "в том числе НДС (20%) 16666.67 руб.",
            "НДС не облагается",
            "Сумма 1234.50",
            "по договору № 45 от 01.01.2026",
            "за автомобиль LADA Vesta",
            "р/сч 40702810900000012345",
            "Без НДС",
            "л/с 778899",
        ]
    ),
    max_size=3,
)


@given(_WORDINGS, _NUMBERS, st.one_of(st.none(), _DATES), _NOISE, _NOISE)
@settings(max_examples=300, deadline=None)
def test_any_way_of_naming_one_invoice_is_read(
    wording: str, number: str, day: date | None, before: list[str], after: list[str]
) -> None:
    named = wording.format(n=number) + (f" от {day:%d.%m.%Y}" if day else "")
    purpose = " ".join([*before, named + ".", *after])
    reading = read_purpose(purpose)
    assert [r.number for r in reading.references] == [number]
    assert not reading.ambiguous
    assert reading.single is not None and reading.single.key == number_key(number)
    assert reading.single.date == day


@given(st.lists(_NUMBERS, min_size=2, max_size=5, unique_by=number_key), _NOISE)
@settings(max_examples=200, deadline=None)
def test_several_invoices_named_are_all_found_and_ambiguous(numbers: list[str], noise: list[str]) -> None:
    purpose = "Оплата по счетам № " + ", ".join(numbers) + ". " + " ".join(noise)
    reading = read_purpose(purpose)
    assert [r.number for r in reading.references] == numbers
    assert reading.ambiguous and reading.single is None


@given(_NOISE)
def test_noise_alone_names_no_invoice(noise: list[str]) -> None:
    assert read_purpose(" ".join(noise)).references == ()


@given(st.text(max_size=300))
@settings(max_examples=500, deadline=None)
def test_any_text_is_read_without_error(text: str) -> None:
    reading = read_purpose(text)
    assert all(r.number and r.key for r in reading.references)
