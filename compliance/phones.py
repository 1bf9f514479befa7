"""Members' phone numbers: the one identifier brands share, normalised so the same person matches.

Two brands match a member only if they hold the phone number in the same form, so every number is
normalised to E.164 (``+8613800138000``) by ``phonenumbers`` (Google's libphonenumber metadata)
before it is sealed: national forms, spaces, dashes and the ``+86``/``0086`` prefixes all give the
same string. A number that is not a valid number of its region is refused, never guessed at.
"""

from __future__ import annotations

import phonenumbers

#: The region a number without a country code belongs to (the alliance's home market).
DEFAULT_REGION = "CN"
MAX_LENGTH = 40


class PhoneError(ValueError):
    """Not a valid phone number (HTTP 422)."""


def normalise_phone(text: str, region: str = DEFAULT_REGION) -> str:
    """``text`` as an E.164 number, or :class:`PhoneError` saying why it is not one."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_LENGTH:
        raise PhoneError(f"a phone number is 1 to {MAX_LENGTH} characters")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise PhoneError(f"not a phone number: {exc._msg}") from exc
    if not phonenumbers.is_valid_number(number):
        raise PhoneError("not a valid phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
