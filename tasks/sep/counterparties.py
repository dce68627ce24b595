"""Counterparties in SEP (the seed's «Развитие» 1): look the lessee up by ИНН, and register it from
master data when SEP does not know it, instead of a person typing the form into SEP's web service.

    register_counterparty ──▶ FindCounterparty ──found──▶ «Есть в СЭП»
                                     └─CounterpartyNotFound──▶ RegisterCounterparty ──▶ «Зарегистрирован»
                                                                       └─InvalidCounterparty──▶ «Ошибка»

Each arrow is one request on the SEP chain (submit, poll no earlier than the minimum delay, apply);
``sep_counterparties`` keeps one row per ИНН with the form as sent.
"""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from integrations.errors import PermanentError
from integrations.sep.messages import FindCounterparty, RegisterCounterparty
from models.master import Counterparty
from models.sep import (
    COUNTERPARTY_CHECKING,
    COUNTERPARTY_ERROR,
    COUNTERPARTY_FOUND,
    COUNTERPARTY_IN_SEP,
    COUNTERPARTY_REGISTERED,
    COUNTERPARTY_REGISTERING,
    ERROR,
    SepCounterparty,
    SepRequest,
)
from tasks.sep.apply import Known, applies, errors_text
from tasks.sep.chain import open_request, open_request_for
from tasks.sep.lookup import sep_organization
from tasks.sep.rows import locked, store

NOT_FOUND = "CounterpartyNotFound"


def form_of(c: Counterparty | SepCounterparty, organization: str) -> RegisterCounterparty:
    """The form SEP gets: master data's counterparty, or the one kept as it was sent."""
    return RegisterCounterparty.model_validate(
        {
            "organization_inn": organization,
            "inn": c.inn,
            "kpp": c.kpp or None,  # master data keeps "" for none
            "ogrn": c.ogrn,
            "name": c.name,
            "address": c.address,
            "email": c.email,
        }
    )


def _form(session: Session, inn: str, kpp: str | None, organization: str) -> RegisterCounterparty:
    """The counterparty form from master data, checked as SEP will check it (before anything is sent)."""
    query = select(Counterparty).where(Counterparty.inn == inn)
    if kpp is not None:
        query = query.where(Counterparty.kpp == kpp)
    found = list(session.scalars(query))
    if not found:
        raise PermanentError(f"no counterparty with ИНН {inn}{f' КПП {kpp}' if kpp else ''} in master data")
    if len(found) > 1:
        kpps = ", ".join(c.kpp or "—" for c in found)
        raise PermanentError(f"ИНН {inn} has several КПП in master data ({kpps}): say which")
    c = found[0]
    missing = [name for name in ("ogrn", "address") if not getattr(c, name)]
    if missing:
        raise PermanentError(
            f"the counterparty ИНН {inn} has no {' and no '.join(missing)} in master data: "
            "add it to the 1C export, then register again"
        )
    try:
        return form_of(c, organization)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise PermanentError(f"the counterparty ИНН {inn} in master data cannot be sent: {problems}") from exc


def register_counterparty(
    session: Session,
    inn: str,
    *,
    kpp: str | None = None,
    organization_inn: str | None = None,
    source: str | None = None,
) -> tuple[SepCounterparty, SepRequest | None, bool]:
    """Look the counterparty up in SEP by ИНН; the answer registers it when missing.

    One row per ИНН: one in SEP already is returned as it is (no request); one on its way returns
    its open request; one that ended in an error is tried again with master data as it is now.
    """
    organization = sep_organization(session, organization_inn)
    row = session.scalars(select(SepCounterparty).where(SepCounterparty.inn == inn).with_for_update()).first()
    if row is not None and row.status in COUNTERPARTY_IN_SEP:
        return row, None, False
    if row is not None and row.status != COUNTERPARTY_ERROR:
        current = open_request_for(session, f"counterparty-find:{inn}") or open_request_for(
            session, f"counterparty-register:{inn}"
        )
        return row, current, False
    form = _form(session, inn, kpp, organization)
    values = {
        "kpp": form.kpp,
        "ogrn": form.ogrn,
        "name": form.name,
        "address": form.address,
        "email": str(form.email) if form.email else None,
        "organization_inn": organization,
        "status": COUNTERPARTY_CHECKING,
        "last_error": None,
        "source": source,
    }
    row = store(session, row, SepCounterparty, {"inn": inn, **values})
    request, created = open_request(
        session,
        FindCounterparty(organization_inn=organization, inn=inn),
        business_key=f"counterparty-find:{inn}",
        source=source,
        counterparty_id=row.id,
    )
    row.last_request_id = request.id
    return row, request, created


def _row_of(session: Session, request: SepRequest) -> SepCounterparty:
    return locked(session, SepCounterparty, request.counterparty_id)


def _in_sep(row: SepCounterparty, request: SepRequest, status: str, known: Known) -> None:
    found = (request.result or {}).get("counterparty")
    if not found or found.get("inn") != row.inn:  # not what the contract says: a person looks
        row.status = COUNTERPARTY_ERROR
        row.last_error = (
            f"SEP answered {request.operation} Done with {found and found.get('inn')!r} for ИНН {row.inn}"
        )
        return
    row.status = status
    row.sep_id = found.get("sep_id")
    row.in_sep_since = row.in_sep_since or known.now()
    row.last_error = None


@applies("FindCounterparty")
def _found(session: Session, request: SepRequest, known: Known) -> None:
    row = _row_of(session, request)
    if request.status != ERROR:
        _in_sep(row, request, COUNTERPARTY_FOUND, known)
        return
    if any(e.get("code") == NOT_FOUND for e in request.errors or []):
        # Not in SEP: register it with the form as kept (what master data said when it was asked).
        row.status = COUNTERPARTY_REGISTERING
        registering, _ = open_request(
            session,
            form_of(row, row.organization_inn),
            business_key=f"counterparty-register:{row.inn}",
            source=request.source,
            counterparty_id=row.id,
        )
        row.last_request_id = registering.id
        return
    row.status = COUNTERPARTY_ERROR
    row.last_error = errors_text(request)


@applies("RegisterCounterparty")
def _registered(session: Session, request: SepRequest, known: Known) -> None:
    row = _row_of(session, request)
    if request.status == ERROR:
        row.status = COUNTERPARTY_ERROR
        row.last_error = errors_text(request)
        return
    _in_sep(row, request, COUNTERPARTY_REGISTERED, known)
