"""Demo of the seed's «Развитие» on top of the SEP demo's leased Volvo (OS-77): the new lessee
registered in SEP from master data, «+» refused once the lease application is submitted, перенаём and
end of lease with the parties' codes, the «заявление исполнено» notices and the SEP-responsible's digest.
Each request goes the SEP way: queue number, no poll before the minimum delay, result applied."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from integrations.errors import PermanentError
from integrations.sep.messages import LeaseChangeKind, PartyRole
from models.db import session_scope
from models.mail import OutgoingLetter
from models.sep import SepAssetStatus, SepCounterparty, SepLeaseChange
from sandbox.demo import DemoContext, ScenarioFailed
from sandbox.demo.sep import EPTS, LESSEE, ORG, _follow, _one
from tasks.machinery.master_data import import_master_data
from tasks.sep import actions, counterparties, lease_changes, notices

NEW_LESSEE = "7704211201"
FORMS: dict[str, Any] = {
    "counterparties": [
        {
            "inn": NEW_LESSEE,
            "kpp": "770401001",
            "name": "ООО «Новый перевозчик»",
            "email": "edo@new-carrier.example.ru",
            "ogrn": "1027739642281",
            "address": "г. Москва, ул. Новая, д. 2",
        }
    ]
}


def _change(ctx: DemoContext, number: str, kind: LeaseChangeKind, **more: Any) -> None:
    """Submit a lease change, confirm it with the parties' codes from their letters, follow it to «Исполнен»."""
    with session_scope() as session:
        lease_changes.submit_lease_change(
            session, number, kind=kind, epts=[EPTS], organization_inn=ORG, source="demo", **more
        )

    def status() -> str | None:
        row = _one(select(SepLeaseChange).where(SepLeaseChange.change_number == number))
        return f"«{row.status}»" if row else None

    _follow(ctx, f"  sep_lease_changes {number} ({kind.value})", status, lambda v: "Зарегистрировано" in v)
    row = _one(select(SepLeaseChange).where(SepLeaseChange.change_number == number))
    # The codes SEP sent each confirming party to the technical mailbox, as a person reads them.
    codes = ctx.sandbox.emulator("sep").world.applications[row.application_number].codes
    ctx.say(f"  SEP's letters with the codes of: {', '.join(codes)} (application № {row.application_number})")
    with session_scope() as session:
        lease_changes.confirm_lease_change(
            session, number, codes={PartyRole(role): code for role, code in codes.items()}, source="demo"
        )
    _follow(ctx, f"  sep_lease_changes {number}", status, lambda v: "Исполнен" in v)
    asset = _one(select(SepAssetStatus).order_by(SepAssetStatus.period.desc(), SepAssetStatus.id.desc()))
    ctx.say(f"  sep_asset_statuses: OS-77 «{asset.status}» as of {asset.period:%Y-%m-%d %H:%M:%S}")


def run(ctx: DemoContext) -> None:
    with session_scope() as session:
        report = import_master_data(session, FORMS)
    if report.errors:
        raise ScenarioFailed(f"master data refused: {report.errors}")

    ctx.say(f"== counterparty ИНН {NEW_LESSEE}: not in SEP, registered from master data")
    with session_scope() as session:
        counterparties.register_counterparty(session, NEW_LESSEE, organization_inn=ORG, source="demo")

    def counterparty() -> str | None:
        row = _one(select(SepCounterparty).where(SepCounterparty.inn == NEW_LESSEE))
        return f"«{row.status}»" + (f" ({row.sep_id})" if row.sep_id else "") if row else None

    _follow(ctx, "  sep_counterparties", counterparty, lambda v: "Зарегистрирован" in v or "Ошибка" in v)

    try:
        with session_scope() as session:
            actions.edit_lease_vehicles(session, "ДЛ-7/1", add=[EPTS])
    except PermanentError as refused:
        ctx.say(f"== ЭПТС «+» on appendix ДЛ-7/1 after submitting: refused — {refused}")
    else:
        raise ScenarioFailed("a submitted lease application took another vehicle")

    ctx.say(f"== перенаём: OS-77 from ИНН {LESSEE} to ИНН {NEW_LESSEE}, both lessees confirm")
    _change(ctx, "ПН-77", LeaseChangeKind.LESSEE_CHANGE, new_lessee_inn=NEW_LESSEE)
    ctx.say("== end of lease: ownership of OS-77 passes to the new lessee, the lease mark goes")
    _change(ctx, "ОК-77", LeaseChangeKind.LEASE_END)

    with session_scope() as session:
        told = session.scalars(
            select(OutgoingLetter)
            .where(OutgoingLetter.business_key.like("sep-executed:%"))
            .order_by(OutgoingLetter.id)
        ).all()
        for letter in told:
            ctx.say(f"notice to {letter.to_address}: «{letter.subject}»")
        digests = notices.send_digests(session)
    ctx.say(f"daily digest (sep.send_digest) for ИНН {ORG}: {digests or 'nothing waits for a person'}")
