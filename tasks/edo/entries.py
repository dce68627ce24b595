"""The EDO flow's public entries: a customer's package from the cabinet, the company's answer, and
the batch of answer deadlines one sweep found due. The files are in ``edo_files`` first (by SHA-256)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tasks.edo import register
from tasks.edo.chain import ANSWER, SUBMIT
from tasks.edo.deadlines import DEADLINES
from tasks.edo.register import AnswerIn, PackageIn
from tasks.machinery.deadlines import batch_entry
from tasks.machinery.steps import entry


@entry(SUBMIT, args=PackageIn)
def submit_package(session: Session, args: PackageIn) -> int:
    """Take in a customer's signed package (its customer, documents and signatures); the package id."""
    package, _ = register.submit_package(session, args)
    return package.id


@entry(ANSWER, args=AnswerIn)
def send_answer(session: Session, args: AnswerIn) -> int:
    """Take in the company's signed answer to an incoming document, from a listed sender; the package id."""
    package, _ = register.send_answer(session, args)
    return package.id


fire_batch = batch_entry(DEADLINES)
