"""The one normalisation of email addresses, used on every path that takes one.

Sign-up stores an address as `normalize_email` spells it; login, login throttling and
`make invoke --user` look it up the same way, so whatever spelling signed a user up signs
them in: decomposed or composed Unicode (NFC), a domain in punycode or in Unicode (IDNA),
any letter case in the domain. The local part keeps its case; the unique index compares
`lower(email)`, so that case never matters either.

email-validator is imported on first use: only the auth function (and local tools) need it.
"""

from __future__ import annotations

import unicodedata

MAX_EMAIL_CHARS = 320  # RFC 3696 erratum 1690: 64 for the local part, @, 255 for the domain


def normalize_email(address: str) -> str:
    """The stored spelling of `address`, or ValueError (with the reason) if it is none."""
    from email_validator import EmailNotValidError, validate_email

    if len(address) > MAX_EMAIL_CHARS:
        raise ValueError(f"value is not a valid email address: longer than {MAX_EMAIL_CHARS}")
    try:
        # No DNS look-up (it needs the network, and mail servers come and go). Special-use
        # domains (RFC 6761: .test, .invalid, ...) are refused, email-validator's default.
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValueError(f"value is not a valid email address: {error}") from error


def login_email(address: str) -> str:
    """What a login looks up and throttles for `address`: its stored spelling, or, for text
    no account can have (not an address, too long), the text as sent in NFC, so that it is
    still counted for throttling under one key whatever its Unicode form."""
    try:
        return normalize_email(address)
    except ValueError:
        return unicodedata.normalize("NFC", address)
