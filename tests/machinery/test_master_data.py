"""``obmen import``: validation per row, idempotent upsert."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from integrations.validation import (
    map_lookalikes,
    parse_money,
    validate_inn,
    validate_vin,
    vin_check_digit_ok,
)
from models.db import session_scope
from models.master import Asset, Subscriber
from tasks.machinery.master_data import import_master_data
from tests.harness.processes import obmen

DATA = Path(__file__).parents[1] / "data" / "master.json"


def test_the_same_file_twice_changes_nothing(tmp_path: Path) -> None:
    first = obmen("import", str(DATA))
    assert first.returncode == 0, first.stderr + first.stdout
    # Off a terminal, progress is plain lines on stderr, the last one at the end.
    assert first.stderr.strip().splitlines()[-1] == f"importing {DATA}: 11/11"
    report = json.loads(first.stdout)
    assert report["inserted"] == {
        "organizations": 1, "employees": 2, "counterparties": 2, "tariffs": 1, "assets": 2,
        "lease_contracts": 1, "subscribers": 1, "sep_settings": 1,
    }  # fmt: skip
    # 1M8GDM9AXKP042788 is a valid North American VIN; XTA210990Y2765432 fails the check digit: a warning.
    assert report["warnings"] == [
        "assets[0]: VIN XTA210990Y2765432: check digit does not match (kept: not all makers use it)"
    ]
    second = json.loads(obmen("import", str(DATA)).stdout)
    assert second["inserted"] == {} and second["updated"] == {}
    assert sum(second["unchanged"].values()) == 11

    changed = json.loads(DATA.read_text())
    changed["tariffs"][0]["monthly_fee"] = "1700.00"
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(changed, ensure_ascii=False))
    third = json.loads(obmen("import", str(path)).stdout)
    assert third["updated"] == {"tariffs": 1}
    with session_scope() as s:
        assert s.scalar(select(Subscriber.tariff)) == "BASE"


def test_bad_rows_are_reported_by_place_and_the_good_ones_load() -> None:
    document = {
        "employees": [{"id": "E1", "name": "Анна"}],
        "assets": [
            {"inventory_number": "A", "name": "ok", "vin": "XTA210990Y2765432", "responsible": "E1"},
            {"inventory_number": "B", "name": "O in VIN", "vin": "XTA21099OY2765432"},
            {"inventory_number": "C", "name": "short ЭПТС", "epts": "16430100001234"},
            {"inventory_number": "D", "name": "unknown person", "responsible": "E404"},
            {"inventory_number": "E", "name": "Cyrillic", "vin": "ХТА210990Y2765432"},
        ],
        "organizations": [{"inn": "7707083894", "name": "bad checksum"}],
        "tariffs": [{"code": "T", "name": "float fee", "monthly_fee": 1500.5}],
    }
    with session_scope() as s:
        report = import_master_data(s, document)
    text = "\n".join(report.errors)
    assert "assets[1].vin: Value error, VIN may not contain O" in text
    assert "assets[2].epts: Value error, ЭПТС number has 15 digits, this one has 14" in text
    assert "assets[3].responsible_id: no employees row with id 'E404'" in text
    assert "assets[4].vin: Value error, VIN contains non-Latin characters" in text
    assert "organizations[0].inn: Value error, ИНН (INN) 7707083894 fails its checksum" in text
    assert "tariffs[0].monthly_fee" in text and "not a float" in text
    assert len(report.errors) == 6
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Asset)) == 1


def test_a_file_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[]")
    result = obmen("import", str(path))
    assert result.returncode != 0 and "one JSON object" in result.stderr


@pytest.mark.parametrize(
    ("inn", "message"),
    [
        ("7707083893", None),
        ("500100732259", None),
        ("7707083894", "checksum"),
        ("77070838931", "10 or 12 digits"),
        ("7707 083893", "spaces"),
        ("７７０７０８３８９３", "ASCII digits"),
        ("770708389З", "ASCII digits"),
    ],
)
def test_inn(inn: str, message: str | None) -> None:
    if message is None:
        assert validate_inn(inn) == inn
    else:
        with pytest.raises(ValueError, match=message):
            validate_inn(inn)


def test_vin_and_lookalikes() -> None:
    assert validate_vin(" xta210990y2765432 ") == "XTA210990Y2765432"
    latin, mapped = map_lookalikes("ХТА210990У2765432")
    assert latin == "XTA210990Y2765432"
    assert [(m.position, m.cyrillic, m.latin) for m in mapped] == [
        (1, "Х", "X"),
        (2, "Т", "T"),
        (3, "А", "A"),
        (10, "У", "Y"),
    ]
    assert vin_check_digit_ok("1M8GDM9AXKP042788")
    assert not vin_check_digit_ok("XTA210990Y2765432")


@pytest.mark.parametrize("bad", ["1.005", "1e3", "1,50", " 1", 1.5, "", "abc"])
def test_money_refuses_what_is_not_a_plain_decimal(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_money(bad)


def test_money_keeps_kopecks_exact() -> None:
    assert parse_money("0.10") + parse_money("0.20") == Decimal("0.30")
