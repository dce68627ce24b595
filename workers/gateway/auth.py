"""Bearer tokens with scopes for ops and manager endpoints (``OBMEN_API_TOKENS``)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from config.settings import ApiToken, get_settings

_bearer = HTTPBearer(auto_error=False, description="A token from OBMEN_API_TOKENS")


def require(scope: str) -> Callable[..., ApiToken]:
    """Dependency: a valid token with ``scope`` (401 without a valid token, 403 with too little scope)."""

    def check(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> ApiToken:
        token = get_settings().token_for(credentials.credentials) if credentials else None
        if token is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not token.grants(scope):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this token lacks the {scope!r} scope")
        return token

    return check
