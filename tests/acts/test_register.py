"""The acts register and its state machine: every transition, legal and illegal, and what follows."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from models.acts import (
    ACCEPTED_UNSIGNED,
    ACT_STATUSES,
    CREATED,
    EMAILING,
    REFUSED,
    SENDING,
    SENT,
    SIGNED,
    SIGNED_BY_US,
    Act,
    ActDeal,
    ActFile,
)
from models.db import session_scope
from tasks.acts import machine
from tasks.acts.register import ActConflict, ActIn, change_status, deal_stage, lock_act
from tasks.machinery.outbox import set_dispatch_mode
from tasks.machinery.workdays import MOSCOW
from tests.acts.support import IP_INN, SCAN, act, crm_actions, deadlines, draft, history, outbox_tasks

M, S, OB = machine.MANAGER, machine.SBIS, machine.OBMEN

# Written out by hand from the seed, not derived from machine.MOVES: (kind, from, to, actor).
LEGAL = {
    ("paper", CREATED, SIGNED_BY_US, M),
    ("paper", SIGNED_BY_US, SENT, M),
    ("paper", SENT, SIGNED, M),
    ("paper", SENT, ACCEPTED_UNSIGNED, M),
    ("paper", SENT, REFUSED, M),
    ("paper", ACCEPTED_UNSIGNED, SIGNED, M),
    ("paper", ACCEPTED_UNSIGNED, REFUSED, M),
    ("electronic", CREATED, SENT, M),  # lands on «Отправка в СБИС»
    ("electronic", SENDING, SENT, OB),
    ("electronic", SENDING, SENT, S),
    ("electronic", SENT, SIGNED, S),
    ("electronic", SENT, REFUSED, S),
    ("electronic", SENT, ACCEPTED_UNSIGNED, M),
    ("electronic", SENT, REFUSED, M),
    ("electronic", ACCEPTED_UNSIGNED, SIGNED, S),
    ("electronic", ACCEPTED_UNSIGNED, REFUSED, S),
    ("electronic", ACCEPTED_UNSIGNED, REFUSED, M),
    # A paper act of a counterparty who chose e-mail: obmen's letter is the sending.
    ("e-mail", CREATED, SIGNED_BY_US, M),
    ("e-mail", SIGNED_BY_US, SENT, M),  # lands on «Отправка по e-mail»
    ("e-mail", EMAILING, SENT, OB),
    ("e-mail", SENT, SIGNED, M),
    ("e-mail", SENT, ACCEPTED_UNSIGNED, M),
    ("e-mail", SENT, REFUSED, M),
    ("e-mail", ACCEPTED_UNSIGNED, SIGNED, M),
    ("e-mail", ACCEPTED_UNSIGNED, REFUSED, M),
}


@pytest.fixture(autouse=True)
def _no_publish(obmen_app) -> Iterator[None]:
    set_dispatch_mode("off")
    yield
    set_dispatch_mode("inline")


def test_every_transition_of_the_machine_legal_and_illegal() -> None:
    checked = 0
    for kind, source, target, actor in itertools.product(
        ("paper", "e-mail", "electronic"), ACT_STATUSES, ACT_STATUSES, (M, S, OB)
    ):
        act_type = "electronic_ul" if kind == "electronic" else "paper_ul"
        method = "email" if kind == "e-mail" else None
        if (kind, source, target, actor) in LEGAL:
            move = machine.check("А-1", act_type, source, target, actor, method)
            assert move.target == target
            assert move.lands_on == (
                EMAILING if (kind, source) == ("e-mail", SIGNED_BY_US) else move.lands_on
            )
        else:
            with pytest.raises(
                machine.IllegalTransition, match=f"\\({kind}\\).* from «{source}» to «{target}»"
            ):
                machine.check("А-1", act_type, source, target, actor, method)
        checked += 1
    assert checked == 3 * 8 * 8 * 3


def test_illegal_transitions_say_what_is_allowed() -> None:
    with pytest.raises(machine.IllegalTransition) as caught:
        machine.check("А-7", "paper_ip", CREATED, SENT, M)
    assert str(caught.value) == (
        "act А-7 (paper): the manager cannot move it from «Создан» to «Акт направлен заявителю»; "
        "allowed: «Подписан с нашей стороны»"
    )
    with pytest.raises(machine.IllegalTransition, match="«Акт получен и подписан» is final"):
        machine.check("А-7", "paper_ip", SIGNED, REFUSED, M)
    with pytest.raises(machine.IllegalTransition, match="nothing is for the manager to do"):
        machine.check("А-7", "electronic_ul", SENDING, SENT, M)


def _move(act_id: int, target: str, actor: str = M, **kwargs: object) -> str:
    with session_scope() as s:
        return change_status(s, lock_act(s, act_id), target, actor=actor, **kwargs)  # type: ignore[arg-type]


def test_the_paper_path_with_its_scans_deadline_and_deal_stage() -> None:
    act_id = draft()
    assert act(act_id).status == CREATED
    # A new deal is read from Bitrix24; then it goes to «Подготовка акта» (a draft exists), unless
    # it stands on a later stage of the acts already.
    assert outbox_tasks() == ["acts.deal.sync", "acts.crm.move_stages"]
    for read, wanted in ((None, None), ("NEW", "PREPARATION"), ("UC_APPROVED", None)):
        with session_scope() as s:
            s.execute(update(ActDeal).where(ActDeal.deal_id == 101).values(stage_id=read))
            assert deal_stage(s, 101) == wanted

    with pytest.raises(ValueError, match="needs the scan"):
        _move(act_id, SIGNED_BY_US)
    assert _move(act_id, SIGNED_BY_US, upload=SCAN) == SIGNED_BY_US
    sent_at = datetime(2025, 10, 30, 12, 0, tzinfo=MOSCOW)
    _move(act_id, SENT, now=sent_at)
    row = act(act_id)
    assert row.sent_at == sent_at
    [deadline] = deadlines()
    # Fri 31, Sat 1 Nov (a working Saturday), Wed 5, Thu 6, Fri 7 → due at 00:00 Saturday 8 November.
    assert (deadline.kind, deadline.status) == ("signature", "waiting")
    assert deadline.due_at == datetime(2025, 11, 8, 0, 0, tzinfo=MOSCOW)
    [stage] = crm_actions()
    assert (stage.kind, stage.business_key, stage.status) == ("stage", "stage:deal:101", "pending")
    with session_scope() as s:
        assert deal_stage(s, 101) == "UC_ACT_SENT"

    with pytest.raises(ValueError, match="needs the scan"):
        _move(act_id, SIGNED)
    _move(act_id, SIGNED, upload=SCAN)
    row = act(act_id)
    assert row.status == SIGNED and row.closed_at is not None
    assert deadlines()[0].status == "cancelled"
    assert len(crm_actions()) == 1  # the one stage row per deal, re-armed
    with session_scope() as s:
        assert deal_stage(s, 101) == "WON"
        kinds = sorted(s.scalars(select(ActFile.kind).where(ActFile.act_id == act_id)))
    assert kinds == ["act", "signed", "signed_by_us"]
    assert history(act_id) == [
        (None, CREATED, M),
        (CREATED, SIGNED_BY_US, M),
        (SIGNED_BY_US, SENT, M),
        (SENT, SIGNED, M),
    ]
    assert outbox_tasks().count("acts.crm.move_stages") == 3  # drafted, sent, signed


def test_after_the_task_the_manager_records_accepted_then_refused() -> None:
    act_id = draft()
    _move(act_id, SIGNED_BY_US, upload=SCAN)
    _move(act_id, SENT)
    _move(act_id, ACCEPTED_UNSIGNED)
    with session_scope() as s:
        assert deal_stage(s, 101) == "WON"
    assert deadlines()[0].status == "cancelled"
    _move(act_id, REFUSED)
    with session_scope() as s:
        assert deal_stage(s, 101) == "UC_REMARKS"
    assert act(act_id).status == REFUSED


def test_an_electronic_act_asked_to_be_sent_goes_to_sbis() -> None:
    act_id = draft(act_type="electronic_ul", number="Э-1")
    row = act(act_id)
    assert row.sbis_document_id and row.exchange_method == "edo"
    assert _move(act_id, SENT) == SENDING
    assert act(act_id).status == SENDING
    assert "acts.sbis.send" in outbox_tasks()
    assert deadlines() == []  # the clock starts when СБИС has it
    with pytest.raises(machine.IllegalTransition):
        _move(act_id, SIGNED)  # the counterparty's signature comes from СБИС, not from a manager


def test_an_illegal_move_writes_nothing() -> None:
    act_id = draft()
    before = (history(act_id), outbox_tasks(), deadlines())
    with pytest.raises(machine.IllegalTransition):
        _move(act_id, SIGNED, upload=SCAN)
    assert act(act_id).status == CREATED
    assert (history(act_id), outbox_tasks(), deadlines()) == before
    with session_scope() as s:
        assert s.scalars(select(ActFile.kind).where(ActFile.act_id == act_id)).all() == ["act"]


def test_the_act_number_is_the_business_key() -> None:
    first = draft()
    assert draft() == first
    with session_scope() as s:
        assert len(s.scalars(select(Act)).all()) == 1
    with pytest.raises(ActConflict, match="already belongs to deal 101"):
        draft(deal_id=202)


def test_creating_with_send_sends_at_once() -> None:
    act_id = draft(act_type="electronic_ul", number="Э-2", send=True)
    assert act(act_id).status == SENDING
    with pytest.raises(machine.IllegalTransition):
        draft(number="П-2", send=True)  # a paper act must be signed by us first
    with session_scope() as s:
        assert s.scalars(select(Act.number).order_by(Act.id)).all() == ["Э-2"]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"act_type": "electronic_ul", "counterparty_inn": None}, "needs the counterparty's ИНН"),
        ({"act_type": "electronic_ul", "counterparty_kpp": None}, "needs the counterparty's КПП"),
        ({"act_type": "paper_ip"}, "12-digit ИНН"),
        ({"act_type": "paper_ul", "counterparty_inn": IP_INN}, "10-digit ИНН"),
        ({"act_type": "electronic_ul", "exchange_method": "email"}, "draft a paper act instead"),
        ({"counterparty_inn": "7728168972"}, "checksum"),
        ({"act_type": "scroll"}, "act_type"),
        ({"products": [" "]}, "each product"),
        ({"deal_id": 0}, "greater than 0"),
    ],
)
def test_bad_acts_are_refused_with_a_clear_error(fields: dict, error: str) -> None:
    values = {
        "number": "А-1",
        "deal_id": 101,
        "act_type": "paper_ul",
        "counterparty_inn": "7728168971",
        "counterparty_kpp": "772801001",
    }
    values.update(fields)
    with pytest.raises(ValidationError, match=error):
        ActIn(**values)


@pytest.mark.parametrize(
    ("acts", "stage"),
    [
        ([], None),
        ([(1, CREATED)], "PREPARATION"),
        ([(1, CREATED), (2, SIGNED_BY_US)], "PREPARATION"),
        ([(1, SENT)], "UC_ACT_SENT"),
        ([(1, SIGNED), (2, SENT)], "UC_ACT_SENT"),
        ([(1, SIGNED), (2, ACCEPTED_UNSIGNED)], "WON"),
        ([(1, SIGNED), (2, CREATED)], None),
        ([(1, SIGNED), (2, REFUSED)], "UC_REMARKS"),
        ([(1, REFUSED), (2, SENT)], "UC_ACT_SENT"),  # the corrected act replaced the refused one
        ([(2, SIGNED), (1, REFUSED)], "WON"),
    ],
)
def test_the_deal_stage_follows_all_its_acts(acts: list[tuple[int, str]], stage: str | None) -> None:
    assert machine.deal_stage_for(acts) == stage


def test_sending_time_is_read_in_moscow() -> None:
    act_id = draft()
    _move(act_id, SIGNED_BY_US, upload=SCAN)
    # 21:30 UTC on Monday 27 October is Tuesday in Moscow: Wed 29 … Wed 5 November.
    _move(act_id, SENT, now=datetime(2025, 10, 27, 21, 30, tzinfo=UTC))
    assert deadlines()[0].due_at == datetime(2025, 11, 6, 0, 0, tzinfo=MOSCOW)
