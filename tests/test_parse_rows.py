"""lib.parse.rows: validation and normalization of rows, on real files."""

import io
from pathlib import Path

import pytest

from lib.parse.detect import inspect
from lib.parse.errors import ParseError
from lib.parse.reader import iter_records
from lib.parse.rows import RowChecker, StagedRow

FILES = Path(__file__).parent / "files"
HEADER = ["Prénom", "Nom", "E-mail", "Téléphone", "Divers"]
MAPPING = ["first_name", "last_name", "email", "phone", None]


def check(cells: list[str], region: str = "FR") -> StagedRow:
    return RowChecker(HEADER, MAPPING, region).check(7, cells)


def staged(name: str) -> list[StagedRow]:
    data = (FILES / name).read_bytes()
    facts = inspect(data)
    checker = RowChecker(facts.header, facts.mapping)
    stream = io.BytesIO(data[facts.data_offset :])
    records = iter_records(stream, start=facts.data_offset, encoding=facts.encoding, delimiter=facts.delimiter)
    return [checker.check(row_no, cells) for row_no, (cells, _) in enumerate(records, 1)]


def test_valid_row_normalized():
    row = check([" Jean ", "Dupont", " Jean.Dupont@Orange.FR", "06 12 34 56 78", "VIP"])
    assert row.valid and row.errors == [] and row.warnings == []
    assert row.row_no == 7
    assert row.fields == {
        "first_name": "Jean",
        "last_name": "Dupont",
        "email": "jean.dupont@orange.fr",
        "phone": "+33612345678",
    }
    assert row.custom == {"Divers": "VIP"}
    assert row.email == "jean.dupont@orange.fr" and row.phone == "+33612345678"
    assert row.key == "jean.dupont@orange.fr"
    assert row.raw == [" Jean ", "Dupont", " Jean.Dupont@Orange.FR", "06 12 34 56 78", "VIP"]


def test_trimming_nbsp_and_zero_width_and_empty_means_absent():
    row = check(["\xa0Zoé\u202f", "\u200bNoël\ufeff", "zoe@free.fr", " \xa0 ", ""])
    assert row.fields == {"first_name": "Zoé", "last_name": "Noël", "email": "zoe@free.fr"}
    assert row.custom == {}
    assert row.phone is None


def test_phone_is_the_key_without_email():
    row = check(["", "", "", "+33 (0)6 12 34 56 78", ""])
    assert row.valid and row.key == "+33612345678" and row.email is None


def test_invalid_email_with_valid_phone_is_a_warning():
    row = check(["Jean", "", "jean.dupont@", "0612345678", ""])
    assert row.valid and row.errors == [] and row.warnings == ["invalid_email"]
    assert row.fields["email"] == "jean.dupont@"  # raw value kept
    assert row.email is None and row.key == "+33612345678"


def test_invalid_phone_with_valid_email_is_a_warning():
    row = check(["", "", "a@b.fr", "0000", ""])
    assert row.valid and row.warnings == ["invalid_phone"]
    assert row.fields["phone"] == "0000" and row.phone is None and row.key == "a@b.fr"


def test_no_contact_names_the_bad_values():
    assert check(["Jean", "Dupont", "", "", ""]).errors == ["no_contact"]
    row = check(["Jean", "Dupont", "jean@", "12", ""])
    assert not row.valid and row.key is None
    assert row.errors == ["no_contact", "invalid_email", "invalid_phone"]
    assert row.warnings == []


def test_short_row_padded_long_row_malformed():
    row = check(["Jean", "Dupont", "a@b.fr"])
    assert row.valid and row.fields["email"] == "a@b.fr" and row.custom == {}
    row = check(["Jean", "Dupont", "a@b.fr", "", "", "", " "])
    assert row.valid  # extra cells, all empty
    row = check(["Jean", "Dupont", "a@b.fr", "", "", "surplus"])
    assert not row.valid and row.errors == ["malformed_row"] and row.key is None


def test_undecodable_bytes_warning():
    row = check(["Jos\ufffd", "", "a@b.fr", "", ""])
    assert row.valid and row.warnings == ["undecodable_bytes"]


def test_region():
    assert check(["", "", "", "0470 12 34 56", ""], region="BE").phone == "+32470123456"
    assert check(["", "", "", "0470 12 34 56", ""], region="be").phone == "+32470123456"
    with pytest.raises(ParseError) as err:
        RowChecker(HEADER, MAPPING, "XX")
    assert err.value.code == "unknown_region"


def test_excel_cp1252_file():
    rows = staged("excel_fr_cp1252.csv")
    assert [r.row_no for r in rows] == list(range(1, 11))  # blank and ";;;" lines are not rows
    by_name = {r.fields.get("first_name"): r for r in rows}
    assert {r.fields["first_name"] for r in rows} == {
        "Jérôme",
        "Hélène",
        "Zoé",
        "François",
        "Sans",
        "Courte",
        "Trop",
        "Vides",
        "Octet",
        "Dernière",
    }
    r = by_name["Jérôme"]
    assert r.valid and r.key == "jerome.lefevre@orange.fr" and r.phone == "+33612345678"
    assert r.fields["address"] == "12 rue de l'Église"
    r = by_name["Hélène"]
    assert r.fields["company"] == "Martin; Associés"
    assert r.fields["address"] == '3 avenue "Les Tilleuls"'
    assert r.fields["notes"] == "Rappeler en août\naprès 18h; prix 1 200 €"
    assert r.email == "helene.dupont@free.fr" and r.phone == "+33612345679"
    r = by_name["Zoé"]
    assert r.valid and r.warnings == ["invalid_email"] and r.phone == "+33123456789"
    assert by_name["François"].warnings == ["invalid_phone"]
    assert by_name["Sans"].errors == ["no_contact"]
    assert by_name["Courte"].valid and by_name["Courte"].fields["email"] == "courte@laposte.net"
    assert by_name["Trop"].errors == ["malformed_row"]
    assert by_name["Vides"].valid
    r = by_name["Octet"]
    assert r.valid and r.warnings == ["undecodable_bytes"] and r.fields["company"] == "Soci\ufffdté"
    r = by_name["Dernière"]
    assert r.valid and r.key == "+33612345678" and r.fields["city"] == "Nîmes"
    assert sum(r.valid for r in rows) == 8


def test_utf8_bom_file_gives_the_same_rows():
    cp1252 = [
        (r.fields, r.custom, r.errors) for r in staged("excel_fr_cp1252.csv") if r.fields["first_name"] != "Octet"
    ]
    utf8 = [(r.fields, r.custom, r.errors) for r in staged("excel_fr_utf8_bom.csv")]
    assert utf8 == cp1252


def test_english_comma_file():
    rows = staged("english_comma.csv")
    assert [r.valid for r in rows] == [True, True, True]
    assert rows[0].fields["company"] == "Acme, Inc."
    assert rows[0].fields["notes"] == 'Met at the fair, "very" keen'
    assert rows[0].phone == "+442079460958"
    assert rows[1].key == "bob@example.org"
    assert rows[2].key == "+33612345678"
