"""lib.parse.contact: normalization, and fast paths that agree with the libraries."""

import random

import email_validator
import phonenumbers
import pytest

from lib.parse.contact import _EMAIL, _fast_phone, normalize_email, normalize_phone, parse_phone


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("06 12 34 56 78", "+33612345678"),
        ("0612345678", "+33612345678"),
        ("06.12.34.56.78", "+33612345678"),
        ("06-12-34-56-78", "+33612345678"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+33 (0)6 12 34 56 78", "+33612345678"),
        ("0033 6 12 34 56 78", "+33612345678"),
        ("612345678", "+33612345678"),  # Excel dropped the leading zero
        ("33612345678", "+33612345678"),
        ("06\xa012\xa034\xa056\xa078", "+33612345678"),
        ("01 23 45 67 89", "+33123456789"),
        ("+32 470 12 34 56", "+32470123456"),  # Belgian mobile: slow path
        ("+41 44 668 18 00", "+41446681800"),
        ("0639123456", None),  # no such French range
        ("06 12 34", None),
        ("0000", None),
        ("inconnu", None),
        ("06 12 34 56 78 90", None),
    ],
)
def test_normalize_phone(raw, e164):
    assert normalize_phone(raw) == e164


def test_phone_region():
    assert normalize_phone("0470 12 34 56", "BE") == "+32470123456"
    assert normalize_phone("0470 12 34 56", "FR") == "+33470123456"  # a French fixed line


def _phone_variants(rnd: random.Random, cc: str, length: int) -> str:
    """Numbers of every length around the national one, every prefix, every separator."""
    n = length + rnd.choice((0, 0, 0, 0, -1, 1))
    national = rnd.choice("01234567896667") + "".join(rnd.choice("0123456789") for _ in range(n - 1))
    prefixes = ("", "0", "00" + cc, "00" + cc + "0", cc, cc + "0", "+" + cc, "+" + cc + "0", "+" + cc + "(0)")
    prefix = rnd.choice((*prefixes, "+", "00", "+1", "0" + cc, "+0" + cc, "+" + cc + " 0 "))
    out = []
    for ch in prefix + national:
        if rnd.random() < 0.3:
            out.append(rnd.choice((" ", ".", "-", "  ", " - ", "(", ")", "/", "\xa0", "x", "\u2011")))
        out.append(ch)
    if rnd.random() < 0.1:
        out.insert(0, rnd.choice(("-", ".", "(", "+")))
    if rnd.random() < 0.1:
        out.append(rnd.choice(("-", ".", ")", " ext 12")))
    return "".join(out).strip() or "0"


def _fast_regions() -> list[str]:
    return [r for r in sorted(phonenumbers.SUPPORTED_REGIONS) if _fast_phone(r) is not None]


def test_fast_phone_covers_france():
    assert "FR" in _fast_regions()


@pytest.mark.parametrize("region", _fast_regions())
def test_fast_phone_agrees_with_phonenumbers(region):
    """Whatever the fast path accepts, phonenumbers parses to the same valid E.164 number."""
    fast = _fast_phone(region)
    assert fast is not None
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    cc, (length,) = str(meta.country_code), meta.general_desc.possible_length
    rnd = random.Random(region)
    accepted = 0
    for _ in range(60_000 if region == "FR" else 4_000):
        raw = _phone_variants(rnd, cc, length)
        if (got := fast(raw)) is not None:
            accepted += 1
            assert got == parse_phone(raw, region), raw
    assert accepted > 0


def test_fast_phone_takes_the_usual_french_shapes():
    fast = _fast_phone("FR")
    assert fast is not None
    rnd = random.Random(7)
    for _ in range(5_000):
        national = rnd.choice("67") + rnd.choice("0123456789") + "".join(rnd.choice("0123456789") for _ in range(7))
        pairs = " ".join(national[i : i + 2] for i in range(1, 9, 2))
        for raw in (f"0{national[0]} {pairs}", f"0{national}", f"+33 {national[0]} {pairs}", national):
            expected = parse_phone(raw, "FR")
            assert fast(raw) == expected, raw  # valid ones all take the fast path


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("jean.dupont@orange.fr", "jean.dupont@orange.fr"),
        ("Jean.Dupont@Orange.FR", "jean.dupont@orange.fr"),
        ("o'brien@example.com", "o'brien@example.com"),
        ("élodie@exemple.fr", "élodie@exemple.fr"),
        ("info@bücher.de", "info@bücher.de"),
        ("jean.dupont@", None),
        ("jean dupont@orange.fr", None),
        ("contact@orange", None),
        ("@free.fr", None),
        ("a..b@orange.fr", None),
        ("x@y.test", None),
        ("x@localhost", None),
        ("Jean <jean@orange.fr>", None),
        ("n/a", None),
    ],
)
def test_normalize_email(raw, normalized):
    assert normalize_email(raw) == normalized


def _library(email: str) -> str | None:
    try:
        return email_validator.validate_email(email, check_deliverability=False).normalized.lower()
    except email_validator.EmailNotValidError:
        return None


def test_fast_email_agrees_with_email_validator():
    rnd = random.Random(11)
    local_chars = "abcz09._+-'!#%&*/=?^`{|}~éA"
    domain_chars = "abcz09.-_é"
    tlds = ("fr", "com", "c", "test", "local", "onion", "x1", "123", "museum", "xn--p1ai", "a" * 64)
    fast_hits = 0
    for i in range(30_000):
        if i % 2:  # plausible addresses, sometimes slightly off
            first = rnd.choice(("jean", "Élodie", "o'neil", "anne-marie", "x"))
            last = rnd.choice(("dupont", "", "l"))
            local = rnd.choice(
                (f"{first}.{last}", f"{first}{last}{i}", f"{first}_{last}+crm", f".{first}", f"{first}.")
            )
            domain = rnd.choice(("orange.fr", "sub.domain.co.uk", "a-b.fr", "ab--c.fr", "xn--bcher-kva.de", "-x.fr"))
            email = (local + "@" + domain).lower()
            if _EMAIL.fullmatch(email):
                fast_hits += 1
            assert normalize_email(email) == _library(email), email
            continue
        local = "".join(rnd.choice(local_chars) for _ in range(rnd.randint(0, 12)))
        labels = [
            "".join(rnd.choice(domain_chars) for _ in range(rnd.randint(0, 10))) for _ in range(rnd.randint(1, 3))
        ]
        if rnd.random() < 0.05:
            labels.append("b" * rnd.choice((62, 63, 64)))
        if rnd.random() < 0.05:
            local = "l" * rnd.choice((64, 65, 200, 250))
        domain = ".".join(labels)
        if rnd.random() < 0.8:
            domain += "." + rnd.choice(tlds)
        email = (local + "@" + domain).lower()
        if rnd.random() < 0.02:
            email = email.replace("@", "@@")
        if _EMAIL.fullmatch(email):
            fast_hits += 1
        assert normalize_email(email) == _library(email), email
    assert fast_hits > 3_000
