"""Counterparty registration (the seed's «Развитие» 1): looked up in SEP by ИНН first, registered from
master data when SEP has none, each a request on the SEP chain against the emulator."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from integrations.errors import PermanentError
from models.db import session_scope
from models.sep import SepCounterparty
from tasks.machinery.master_data import import_master_data
from tests.sep.conftest import LESSEE, requests_of, run_due, sep, soap_requests
from tests.sep.flows import NEW_LESSEE, call, import_forms, letters_to


def counterparty(inn: str) -> SepCounterparty:
    with session_scope() as session:
        return session.scalars(select(SepCounterparty).where(SepCounterparty.inn == inn)).one()


def test_a_lessee_missing_in_sep_is_registered_from_master_data(sep_box, master) -> None:
    import_forms()
    answer = call("sep.register_counterparty", inn=LESSEE, source="ops")
    assert (answer["created"], answer["business_key"], answer["counterparty_status"]) == (
        True, f"counterparty-find:{LESSEE}", "Проверяется"
    )  # fmt: skip
    run_due()
    row = counterparty(LESSEE)
    assert (row.status, row.last_error, row.request_status) == ("Зарегистрирован", None, "Получен ответ")
    assert soap_requests(sep_box, "FindCounterparty") == ["FindCounterparty"]
    assert soap_requests(sep_box, "RegisterCounterparty") == ["RegisterCounterparty"]
    in_sep = sep(sep_box).world.counterparties[LESSEE]
    assert row.sep_id == in_sep["sepId"]
    assert (in_sep["kpp"], in_sep["ogrn"], in_sep["address"], in_sep["email"]) == (
        "773601001", "1027700132195", "г. Москва, ул. Партнёрская, д. 1", "edo@partner.example.ru"
    )  # fmt: skip
    # Registered: asking again sends nothing.
    again = call("sep.register_counterparty", inn=LESSEE)
    assert (again["created"], again["request_id"], again["counterparty_status"]) == (
        False,
        None,
        "Зарегистрирован",
    )
    assert len(requests_of()) == 2


def test_a_counterparty_sep_has_already_is_only_found(sep_box, master) -> None:
    import_forms()
    httpx.post(
        sep_box.url + "/_sandbox/sep/counterparties",
        json={"inn": NEW_LESSEE, "ogrn": "1027739642281", "name": "ООО «Новый»", "address": "Москва"},
    ).raise_for_status()
    call("sep.register_counterparty", inn=NEW_LESSEE)
    run_due()
    assert counterparty(NEW_LESSEE).status == "Есть в СЭП"
    assert soap_requests(sep_box, "RegisterCounterparty") == []


def test_bad_master_data_and_bad_input_are_refused_before_anything_is_sent(sep_box, master) -> None:
    with pytest.raises(PermanentError, match="no ogrn and no address in master data"):
        call("sep.register_counterparty", inn=LESSEE)  # master.json has no ОГРН nor address
    with pytest.raises(PermanentError, match="no counterparty with ИНН 7710140679 in master data"):
        call("sep.register_counterparty", inn="7710140679")
    with pytest.raises(ValidationError, match="checksum"):
        call("sep.register_counterparty", inn="7736050004")
    with session_scope() as session:  # a wrong ОГРН never reaches the register, so is never sent
        bad = {"inn": LESSEE, "kpp": "773601001", "name": "x", "ogrn": "1027700132196", "address": "a"}
        report = import_master_data(session, {"counterparties": [bad]})
        assert report.errors == [
            "counterparties[0].ogrn: Value error, ОГРН (OGRN) 1027700132196 fails its checksum"
        ]
    with pytest.raises(PermanentError, match="no ogrn and no address"):
        call("sep.register_counterparty", inn=LESSEE)
    assert requests_of() == [] and soap_requests(sep_box) == []
    with session_scope() as session:
        assert session.scalars(select(SepCounterparty)).all() == []


def test_sep_refusing_the_form_is_an_error_told_to_the_sep_responsible(sep_box, master) -> None:
    """An organisation without КПП passes our form (a sole trader has none) but not SEP's checks."""
    import_forms(
        {
            "counterparties": [
                {"inn": "7710140679", "name": "АО «Без КПП»", "ogrn": "1027739642281", "address": "Москва"}
            ]
        }
    )
    call("sep.register_counterparty", inn="7710140679")
    run_due()
    row = counterparty("7710140679")
    assert row.status == "Ошибка"
    assert row.last_error is not None and row.last_error.startswith("InvalidCounterparty: an organisation")
    [told] = [letter for letter in letters_to("petr@example.ru") if "RegisterCounterparty" in letter.subject]
    assert "InvalidCounterparty" in told.text_body
    # Fixed in master data, registered on the next try under the same ИНН.
    import_forms(
        {
            "counterparties": [
                {
                    "inn": "7710140679",
                    "kpp": "771001001",
                    "name": "АО «Без КПП»",
                    "ogrn": "1027739642281",
                    "address": "Москва",
                }
            ]
        }
    )
    assert call("sep.register_counterparty", inn="7710140679", kpp="771001001")["created"] is True
    run_due()
    assert counterparty("7710140679").status == "Зарегистрирован"
