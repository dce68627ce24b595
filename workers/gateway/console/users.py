"""Users (admin): the list, adding one, changing a role, disabling. ``obmen user …`` does the same."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from models.console import ADMIN, ROLES, ConsoleUser
from models.db import session_scope
from workers.gateway.console.accounts import AccountError, add_user, set_disabled, set_role
from workers.gateway.console.actions import record
from workers.gateway.console.pages import Flow, Page
from workers.gateway.console.web import ConsoleRoute, Person, Posted, admin, back, flash, posted, render

router = APIRouter(prefix="/users", route_class=ConsoleRoute)


@router.get("")
def users(request: Request, person: Person = admin) -> Response:
    with session_scope() as session:
        found = session.scalars(select(ConsoleUser).order_by(ConsoleUser.login)).all()
        return render(request, "users.html", person, users=found, roles=ROLES)


@router.post("")
def change(request: Request, person: Person = admin, form: Posted = posted) -> Response:
    login, action = form.get("login"), form.get("action")
    try:
        with session_scope() as session:
            if action == "add":
                add_user(session, login, form.raw("password"), form.get("role"))
                detail = {"role": form.get("role")}
            elif action == "role":
                set_role(session, login, form.get("role"))
                detail = {"role": form.get("role")}
            elif action in ("disable", "enable"):
                if login == person.login:
                    raise AccountError("Нельзя отключить самого себя")
                set_disabled(session, login, action == "disable")
                detail = {}
            else:
                raise AccountError("Неизвестное действие")
            record(session, request, person, f"users.{action}", f"console_users:{login}", detail)
        flash(request, f"Пользователь {login}: готово")
    except AccountError as exc:
        flash(request, str(exc), "bad")
    return back(request, "/console/users")


FLOW = Flow(router, pages=(Page("/console/users", "Пользователи", ADMIN),))
