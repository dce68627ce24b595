"""The EDO flow's steps: check and send a package, keep an answer's print forms, track an answer,
fire an answer deadline. Each works on one register row (``tasks.machinery.steps``); the logic is in
``sending.py``, ``answers.py`` and ``deadlines.py``, and every exchange carries the package key."""

from __future__ import annotations

from sqlalchemy.orm import Session

from models.edo import EdoAnswerDeadline, EdoPackage
from tasks.edo import answers, deadlines, sending
from tasks.edo.chain import CHECK, DEADLINE_FIRE, PRINT, SEND, TRACK, statuses_of
from tasks.edo.clients import about
from tasks.machinery.steps import step


@step(CHECK, model=EdoPackage, statuses=statuses_of(CHECK))
def check_package(session: Session, package: EdoPackage) -> None:
    """Find the counterparty's box by ИНН/КПП or register it, check the signatures; ``sending``,
    or ``refused`` with the reason."""
    with about(package.package_key):
        sending.check(session, package)


@step(SEND, model=EdoPackage, statuses=statuses_of(SEND))
def send_package(session: Session, package: EdoPackage) -> None:
    """Look for the package at the operator by its key; send it when it is not there; record the
    operator's message id and time."""
    with about(package.package_key):
        sending.send(session, package)


@step(PRINT, model=EdoPackage, statuses=statuses_of(PRINT))
def print_package(session: Session, package: EdoPackage) -> None:
    """Keep each answer document's print form with the signature stamp as version 2; mail the customer."""
    with about(package.package_key):
        answers.print_forms(session, package)


@step(TRACK, model=EdoPackage, statuses=statuses_of(TRACK))
def track_package(session: Session, package: EdoPackage) -> None:
    """Ask the operator whether the customer received, signed or refused the answer."""
    with about(package.package_key):
        answers.track(session, package)


@step(DEADLINE_FIRE, model=EdoAnswerDeadline, statuses={"due"})
def fire_deadline(session: Session, deadline: EdoAnswerDeadline) -> None:
    """Tell the responsible an answer is overdue (skipped when it was answered meanwhile)."""
    deadlines.fire(session, deadline)
