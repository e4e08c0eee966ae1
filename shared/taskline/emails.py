"""The one normalisation of email addresses, used on every path that takes one.

Sign-up stores an address as `normalize_email` spells it; login, login throttling, invitations
and `make invoke --user` look it up the same way, so whatever spelling signed a user up signs
them in: decomposed or composed Unicode (NFC), a domain in punycode or in Unicode (IDNA),
any letter case in the domain. The local part keeps its case; the unique index compares
`lower(email)`, so that case never matters either.

Only addresses Taskline can email safely are accepted (docs/api.md, "Email addresses"):
- the local part is plain ASCII dot-atoms: no quoted strings, no control characters, no
  non-ASCII (sending those needs SMTPUTF8, which SES does not offer), and no RFC 2047
  encoded-word opener `=?`: a mail library decodes `=?utf-8?q?a=40b.example?=` in an address
  header into another address, so such a local part could make Taskline mail someone else;
- an internationalised domain is accepted, stored in Unicode and mailed in IDNA punycode
  (`mail_address`), so no header ever carries it as an encoded word.

email-validator is imported on first use: only the functions that take or send addresses need it.
"""

from __future__ import annotations

import unicodedata
from email.headerregistry import Address
from typing import Any

MAX_EMAIL_CHARS = 320  # RFC 3696 erratum 1690: 64 for the local part, @, 255 for the domain
ENCODED_WORD_OPENER = "=?"  # RFC 2047 section 2


def _validated(address: str) -> Any:
    """email-validator's result for an address Taskline may store and send to, or ValueError."""
    from email_validator import EmailNotValidError, validate_email

    if len(address) > MAX_EMAIL_CHARS:
        raise ValueError(f"value is not a valid email address: longer than {MAX_EMAIL_CHARS}")
    try:
        # No DNS look-up (it needs the network, and mail servers come and go). Special-use
        # domains (RFC 6761: .test, .invalid, ...) are refused, email-validator's default.
        # Quoted local parts and SMTPUTF8 (non-ASCII local parts) are refused explicitly, so a
        # new email-validator default cannot let them in.
        result = validate_email(
            address,
            check_deliverability=False,
            allow_smtputf8=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
        )
    except EmailNotValidError as error:
        raise ValueError(f"value is not a valid email address: {error}") from error
    if ENCODED_WORD_OPENER in result.local_part:
        raise ValueError(
            "value is not a valid email address: the part before the @-sign may not contain '=?'"
        )
    return result


def normalize_email(address: str) -> str:
    """The stored spelling of `address`, or ValueError (with the reason) if it is none."""
    normalized: str = _validated(address).normalized
    return normalized


def mail_address(stored: str) -> Address:
    """The address to put in `To:` and SES's Destinations for a stored address: its local part
    and its domain in IDNA punycode, both checked again (a row written outside the API, or
    before these rules, must not become a header injection). ValueError if it is unsafe."""
    result = _validated(stored)
    # Built from validated parts, never by concatenating text into a header: Address quotes
    # or refuses what is not an atom, and an ASCII dot-atom has nothing to quote.
    return Address(username=result.local_part, domain=result.ascii_domain)


def login_email(address: str) -> str:
    """What a login looks up and throttles for `address`: its stored spelling, or, for text
    no account can have (not an address, too long), the text as sent in NFC, so that it is
    still counted for throttling under one key whatever its Unicode form."""
    try:
        return normalize_email(address)
    except ValueError:
        return _lenient(address)


def _lenient(address: str) -> str:
    """The spelling sign-up stored before the stricter rules (accounts with a non-ASCII local
    part still sign in), else the text in NFC."""
    from email_validator import EmailNotValidError, validate_email

    try:
        if len(address) <= MAX_EMAIL_CHARS:
            lenient: str = validate_email(address, check_deliverability=False).normalized
            return lenient
    except EmailNotValidError:
        pass
    return unicodedata.normalize("NFC", address)
