"""Console accounts: users with roles, argon2 password hashes, the login throttle and the audit register.

``obmen user …`` and the console's login page both come here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from config.settings import get_settings
from models.base import utcnow
from models.console import ROLES, ConsoleAudit, ConsoleLoginFailure, ConsoleUser
from models.db import db_now

_hasher = PasswordHasher()
# argon2 of a password nobody has: a login that does not exist costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash("no such user")
LOGIN = re.compile(r"[A-Za-z0-9._@-]{1,64}")
MIN_PASSWORD = 8


class AccountError(ValueError):
    """A refusal to show to the person (in Russian, as the console speaks)."""


def _check_login(login: str) -> str:
    if not LOGIN.fullmatch(login):
        raise AccountError("Логин: от 1 до 64 латинских букв, цифр и знаков . _ @ -")
    return login


def _check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"Пароль: не короче {MIN_PASSWORD} символов")
    return password


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"Роль: одна из {', '.join(ROLES)}")
    return role


def find_user(session: Session, login: str) -> ConsoleUser | None:
    return session.scalars(select(ConsoleUser).where(ConsoleUser.login == login)).one_or_none()


def _existing(session: Session, login: str) -> ConsoleUser:
    user = find_user(session, login)
    if user is None:
        raise AccountError(f"Нет пользователя {login}")
    return user


def add_user(session: Session, login: str, password: str, role: str) -> ConsoleUser:
    login, password, role = _check_login(login), _check_password(password), _check_role(role)
    if find_user(session, login) is not None:
        raise AccountError(f"Пользователь {login} уже есть")
    user = ConsoleUser(login=login, password_hash=_hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, login: str, password: str) -> ConsoleUser:
    user = _existing(session, login)
    user.password_hash = _hasher.hash(_check_password(password))
    # Every session opened with the old password ends.
    user.password_changed_at = db_now(session)
    return user


def set_role(session: Session, login: str, role: str) -> ConsoleUser:
    user = _existing(session, login)
    user.role = _check_role(role)
    return user


def set_disabled(session: Session, login: str, disabled: bool) -> ConsoleUser:
    user = _existing(session, login)
    user.disabled_at = db_now(session) if disabled else None
    return user


@dataclass(frozen=True)
class LoginResult:
    user: ConsoleUser | None
    # Why not, in the console's words.
    refusal: str | None = None
    throttled: bool = False


def authenticate(session: Session, login: str, password: str, address: str) -> LoginResult:
    """Check a login; count a failure per login and address, and refuse past the throttle."""
    settings = get_settings()
    login = login.strip()[:64]
    since = db_now(session) - timedelta(seconds=settings.console_login_window_s)
    failures = session.execute(
        select(
            func.count().filter(ConsoleLoginFailure.login == login),
            func.count().filter(ConsoleLoginFailure.address == address),
        ).where(
            ConsoleLoginFailure.at >= since,
            or_(ConsoleLoginFailure.login == login, ConsoleLoginFailure.address == address),
        )
    ).one()
    if max(failures) >= settings.console_login_max_failures:
        minutes = max(1, settings.console_login_window_s // 60)
        return LoginResult(None, f"Слишком много неудачных попыток. Повторите через {minutes} мин.", True)
    user = find_user(session, login)
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        valid = user is not None and user.disabled_at is None
    except (VerificationError, InvalidHashError):
        valid = False
    if not valid or user is None:
        session.add(ConsoleLoginFailure(login=login, address=address[:64]))
        return LoginResult(None, "Неверный логин или пароль")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = utcnow()
    return LoginResult(user)


def audit(
    session: Session,
    login: str,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    outcome: str = "ok",
    address: str | None = None,
) -> ConsoleAudit:
    row = ConsoleAudit(
        login=login,
        address=address,
        action=action,
        target=target[:300] if target else None,
        detail=detail,
        outcome=outcome[:2000],
    )
    session.add(row)
    return row
