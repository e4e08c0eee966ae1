"""dependencies.py from the seed: the bearer-token guard (PyJWT instead of python-jose).

The caller's id comes from the token's `sub`, without loading the user: the FastAPI tutorial
loads the user on every request, which would cost the peer one more query.
"""

import os
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, status
from fastapi.security import OAuth2PasswordBearer

SECRET_KEY = os.environ["JWT_SECRET"]
ALGORITHM = "HS256"
ISSUER = os.environ.get("JWT_ISSUER", "taskline")
AUDIENCE = os.environ.get("JWT_AUDIENCE", "taskline-api")

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")


def get_current_user_id(token: Annotated[str, Depends(oauth2_scheme)]) -> int:
    credentials_exception = HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="Could not validate credentials",
        headers={"WWW-Authenticate": "Bearer"},
    )
    try:
        payload = jwt.decode(
            token, SECRET_KEY, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER
        )
        return int(payload["sub"])
    except (jwt.InvalidTokenError, KeyError, ValueError):
        raise credentials_exception from None
