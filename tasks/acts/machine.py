"""The act state machine: who may move an act from which status to which, and what the deal does.

Paper acts follow the manager's hand: scan signed by us uploaded → sent → signed scan uploaded.
Acts exchanged by e-mail (paper acts of a counterparty who chose e-mail) go the same way, except
that «sent» is obmen's letter with the act attached: the manager's «sent» lands on «Отправка по
e-mail» and the send step moves it on once the letter has left. Electronic acts are sent through СБИС and signed or refused there.
After the task «Указать статус акта» the manager records either outcome for both kinds. Everything
else is refused with an error naming the allowed moves, so no act is ever left in a dead end.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from config.settings import get_settings
from models.acts import (
    ACCEPTED_UNSIGNED,
    CREATED,
    EMAILING,
    FILE_SIGNED,
    FILE_SIGNED_BY_US,
    REFUSED,
    SENDING,
    SENT,
    SIGNED,
    SIGNED_BY_US,
    is_electronic,
)

MANAGER = "manager"  # POST /acts/{id}/status, obmen acts set-status, or the act's item in Bitrix24
SBIS = "sbis"  # the СБИС change feed
OBMEN = "obmen"  # obmen's own steps (the send to СБИС, the letter)

PAPER = "paper"
EMAIL = "e-mail"
ELECTRONIC = "electronic"
EVERY_KIND = frozenset({PAPER, EMAIL, ELECTRONIC})
BY_HAND = (PAPER, EMAIL)  # the manager uploads the scans


class IllegalTransition(ValueError):
    """A move the machine does not allow; the message says which moves are allowed instead."""


@dataclass(frozen=True)
class Move:
    source: str
    target: str
    actors: frozenset[str]
    kinds: frozenset[str]
    # The status actually set: a manager asking to send an electronic act starts the send to СБИС.
    lands_on: str | None = None
    # The file kind that must be uploaded with (or before) this move.
    needs_file: str | None = None


def _m(
    source: str,
    target: str,
    actors: Iterable[str],
    kinds: Iterable[str],
    lands_on: str | None = None,
    needs_file: str | None = None,
) -> Move:
    return Move(source, target, frozenset(actors), frozenset(kinds), lands_on, needs_file)


MOVES: tuple[Move, ...] = (
    # Paper and e-mail: the manager's three steps (obmen sends the letter for e-mail).
    _m(CREATED, SIGNED_BY_US, [MANAGER], BY_HAND, needs_file=FILE_SIGNED_BY_US),
    _m(SIGNED_BY_US, SENT, [MANAGER], [PAPER]),
    _m(SIGNED_BY_US, SENT, [MANAGER], [EMAIL], lands_on=EMAILING),
    _m(EMAILING, SENT, [OBMEN], [EMAIL]),
    _m(SENT, SIGNED, [MANAGER], BY_HAND, needs_file=FILE_SIGNED),
    _m(ACCEPTED_UNSIGNED, SIGNED, [MANAGER], BY_HAND, needs_file=FILE_SIGNED),
    # Electronic: the manager sends, obmen delivers it to СБИС, СБИС reports the outcome.
    _m(CREATED, SENT, [MANAGER], [ELECTRONIC], lands_on=SENDING),
    _m(SENDING, SENT, [OBMEN, SBIS], [ELECTRONIC]),
    _m(SENT, SIGNED, [SBIS], [ELECTRONIC]),
    _m(SENT, REFUSED, [SBIS], [ELECTRONIC]),
    _m(ACCEPTED_UNSIGNED, SIGNED, [SBIS], [ELECTRONIC]),
    _m(ACCEPTED_UNSIGNED, REFUSED, [SBIS], [ELECTRONIC]),
    # Both, after the task «Указать статус акта»: the manager called the counterparty.
    _m(SENT, ACCEPTED_UNSIGNED, [MANAGER], EVERY_KIND),
    _m(SENT, REFUSED, [MANAGER], EVERY_KIND),
    _m(ACCEPTED_UNSIGNED, REFUSED, [MANAGER], EVERY_KIND),
)


def kind_of(act_type: str, exchange_method: str | None = None) -> str:
    if is_electronic(act_type):
        return ELECTRONIC
    return EMAIL if exchange_method == "email" else PAPER


def allowed(source: str, act_type: str, actor: str, exchange_method: str | None = None) -> list[Move]:
    kind = kind_of(act_type, exchange_method)
    return [m for m in MOVES if m.source == source and kind in m.kinds and actor in m.actors]


def check(
    number: str, act_type: str, source: str, target: str, actor: str, exchange_method: str | None = None
) -> Move:
    """The move from ``source`` to ``target`` for ``actor``, or :class:`IllegalTransition`."""
    options = allowed(source, act_type, actor, exchange_method)
    for move in options:
        if move.target == target:
            return move
    kind = kind_of(act_type, exchange_method)
    if options:
        hint = "allowed: " + ", ".join(f"«{m.target}»" for m in options)
    elif not [m for m in MOVES if m.source == source and kind in m.kinds]:
        hint = f"«{source}» is final"
    else:
        hint = f"nothing is for the {actor} to do from «{source}»"
    raise IllegalTransition(
        f"act {number} ({kind}): the {actor} cannot move it from «{source}» to «{target}»; {hint}"
    )


# --- the deal follows its acts ----------------------------------------------------------------
DRAFT = frozenset({CREATED, SIGNED_BY_US})
AWAITING = frozenset({SENT})
DONE = frozenset({SIGNED, ACCEPTED_UNSIGNED})


def deal_stage_for(acts: Iterable[tuple[int, str]]) -> str | None:
    """The stage a deal's acts ``(id, status)`` call for, or None when they call for no move.

    Computed from all the deal's acts, never from the last event, so the order in which changes
    arrive does not matter: any refusal → «Услуга оказана, есть замечания»; else any act awaiting
    the counterparty → «Акт направлен Заявителю»; else every act signed or accepted → «Услуга оказана»;
    else every act a draft → «Подготовка акта».
    A refused act followed by a newer act of the deal (the corrected one) no longer counts.
    """
    s = get_settings()
    ordered = sorted(acts)
    last_id = ordered[-1][0] if ordered else None
    found = [status for act_id, status in ordered if status != REFUSED or act_id == last_id]
    if not found:
        return None
    if REFUSED in found:
        return s.acts_stage_remarks
    if AWAITING.intersection(found):
        return s.acts_stage_act_sent
    if all(status in DONE for status in found):
        return s.acts_stage_done
    if all(status in DRAFT for status in found):
        return s.acts_stage_preparing
    return None
