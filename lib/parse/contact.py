"""Email and phone normalization: a lead's contact details and match keys.

email-validator and phonenumbers cost ~50 µs per value, several times the parse budget of a
row. Each has a fast path for the overwhelmingly common shapes (a plain ASCII address,
a French number in its usual formats), derived so that it only ever accepts what the
library accepts and returns the same result; anything else goes to the library, behind a
cache because junk values repeat. Tests check the equivalence on many generated values.
"""

import functools
import re
from collections.abc import Callable

import email_validator
import phonenumbers
from phonenumbers import PhoneMetadata

from lib.parse.errors import ParseError

# A strict subset of the addresses email-validator accepts (after lower-casing): ASCII
# dot-atom local part, ASCII host labels without "--" (R-LDH and Punycode labels have rules
# of their own), a letters-only top-level domain.
_EMAIL = re.compile(r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,63})")
_SPECIAL_TLDS = frozenset(d for d in email_validator.SPECIAL_USE_DOMAIN_NAMES if "." not in d)
_SPECIAL_DOMAINS = tuple(d for d in email_validator.SPECIAL_USE_DOMAIN_NAMES if "." in d)
_EMAIL_MAX_LENGTH = 254


def normalize_email(value: str) -> str | None:
    """The address in lower case, or None when it is not a valid address (no DNS check)."""
    email = value.lower()
    match = _EMAIL.fullmatch(email)
    if (
        match
        and len(email) <= _EMAIL_MAX_LENGTH
        and match[1] not in _SPECIAL_TLDS
        and "--" not in email[email.index("@") :]
        and not any(email.endswith(("." + d, "@" + d)) for d in _SPECIAL_DOMAINS)
    ):
        return email
    return validate_email(email)


@functools.lru_cache(maxsize=8192)
def validate_email(email: str) -> str | None:
    """email-validator's answer for a lower-cased address, cached: normalize_email's slow
    path (bench/parse_micro.py times it and empties its cache)."""
    try:
        valid = email_validator.validate_email(email, check_deliverability=False)
    except email_validator.EmailNotValidError:
        return None
    return valid.normalized.lower()


def normalize_phone(value: str, region: str = "FR") -> str | None:
    """The number in E.164 ("+33612345678"), or None when phonenumbers finds it invalid.
    A number without an international prefix is read as a number of ``region``."""
    return phone_normalizer(region)(value)


@functools.cache
def phone_normalizer(region: str) -> Callable[[str], str | None]:
    """normalize_phone for one region, for loops. Raises ParseError for an unknown region."""
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ParseError(
            "unknown_region",
            f"The default phone region {region!r} is not a country code phonenumbers knows; "
            "use a two-letter code such as FR, BE or CH.",
        )
    fast = _fast_phone(region)
    if fast is None:
        return functools.partial(parse_phone, region=region)

    def normalize(value: str) -> str | None:
        return fast(value) or parse_phone(value, region)

    return normalize


@functools.lru_cache(maxsize=8192)
def parse_phone(value: str, region: str) -> str | None:
    """phonenumbers' answer, cached: the slow path of phone_normalizer, and the reference its
    fast path must agree with (tests/test_parse_contact.py)."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_TYPE_DESCS = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


def _fast_phone(region: str) -> Callable[[str], str | None] | None:
    """A parser for the usual shapes of a region's numbers, or None when the region's
    numbering plan is not simple enough: one country code for the region alone, national
    prefix 0, international prefix 00, national numbers of a single length.

    It accepts "0" + N, "00" + cc + N, "+" + cc + N, cc + N and N (a leading zero dropped by
    a spreadsheet), also with "0" after the country code ("+33 (0)6 ..."), where N is a
    national number that phonenumbers' own patterns call valid and does not start with 0,
    and returns "+" + cc + N, as phonenumbers.parse would. Anything else returns None.
    """
    meta = PhoneMetadata.metadata_for_region(region)
    if (
        meta is None
        or meta.general_desc is None
        or meta.country_code is None
        or phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(meta.country_code) != (region,)
        or meta.national_prefix != "0"
        or meta.national_prefix_for_parsing not in (None, "0")
        or meta.national_prefix_transform_rule is not None
        or meta.international_prefix != "00"
        or len(meta.general_desc.possible_length) != 1
    ):
        return None
    (length,) = meta.general_desc.possible_length
    types = [
        desc.national_number_pattern
        for desc in (getattr(meta, name) for name in _TYPE_DESCS)
        if desc is not None
        and desc.national_number_pattern
        and (not desc.possible_length or length in desc.possible_length)
    ]
    if not types:
        return None
    # Valid: matches the general pattern and the pattern of one number type.
    general = meta.general_desc.national_number_pattern
    valid = re.compile(f"(?=(?:{general})\\Z)(?:" + "|".join(f"(?:{p})" for p in types) + ")")
    match = valid.fullmatch
    cc = str(meta.country_code)
    # What precedes N, told apart by length (distinct for a country code of 2+ digits).
    forms = ("", "0", "00" + cc, "00" + cc + "0", cc, cc + "0")
    prefixes = {length + len(p): p for p in forms}
    plus_cc = "+" + cc
    plus_prefixes = {length + len(p): p for p in (plus_cc, plus_cc + "0")}
    if len(prefixes) < len(forms):
        return None

    def parse(value: str) -> str | None:
        # Separators phonenumbers ignores; anything else (letters, extensions) is left to it.
        digits = value.replace(" ", "").replace(".", "").replace("-", "")
        if "(" in digits or "\xa0" in digits:
            digits = digits.replace("(", "").replace(")", "").replace("\xa0", "")
        prefix = (plus_prefixes if digits[:1] == "+" else prefixes).get(len(digits))
        if prefix is None or not digits.startswith(prefix):
            return None
        national = digits[len(prefix) :]
        if national.isascii() and national.isdigit() and national[0] != "0" and match(national):
            return plus_cc + national
        return None

    return parse
