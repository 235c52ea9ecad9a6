"""lib.parse.detect: the validating step's inspection of real files."""

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from lib.parse.detect import FileScanner, inspect, inspect_stream
from lib.parse.errors import FileRejected

FILES = Path(__file__).parent / "files"
FRENCH = "Civilité;Prénom;Nom;Société;E-mail;Téléphone;Ville\r\n"
ROW = "M.;Hélène;Lefèvre;Crédit Agricole;helene{i}@orange.fr;06 12 34 56 78;Besançon\r\n"


def facts_of(data: bytes, chunk_size: int = 1 << 16):
    return inspect_stream(io.BytesIO(data), chunk_size=chunk_size)


def rejected(data: bytes) -> FileRejected:
    with pytest.raises(FileRejected) as err:
        facts_of(data)
    return err.value


def test_excel_cp1252_file():
    data = (FILES / "excel_fr_cp1252.csv").read_bytes()
    facts, scan = facts_of(data)
    assert facts.encoding == "cp1252"
    assert facts.bom_length == 0
    assert facts.delimiter == ";"
    assert facts.header[:4] == ["Civilité", "Prénom", "Nom", "Société"]
    assert facts.mapping == [
        "civility",
        "first_name",
        "last_name",
        "company",
        "email",
        "phone",
        "address",
        "postal_code",
        "city",
        "notes",
    ]
    assert facts.data_offset == data.index(b"\r\n") + 2
    assert facts.estimated_rows == 10
    assert scan.size == len(data)
    assert scan.sha256 == hashlib.sha256(data).hexdigest()
    assert not scan.utf8_ok


def test_utf8_bom_is_skipped_not_glued_to_the_header():
    data = (FILES / "excel_fr_utf8_bom.csv").read_bytes()
    facts, scan = facts_of(data)
    assert (facts.encoding, facts.bom_length, facts.delimiter) == ("utf-8", 3, ";")
    assert facts.header[0] == "Civilité"
    assert facts.mapping[0] == "civility"
    assert facts.data_offset == data.index(b"\r\n") + 2
    assert scan.utf8_ok


def test_utf8_without_bom():
    data = (FRENCH + ROW.format(i=1)).encode("utf-8")
    facts, _ = facts_of(data)
    assert facts.encoding == "utf-8" and facts.header[1] == "Prénom"


def test_ascii_head_does_not_hide_a_cp1252_tail():
    """The head is pure ASCII; the first accent comes after it. The whole-file scan decides."""
    ascii_rows = "".join(f"M.;Jean;Martin;ACME;jean{i}@orange.fr;0612345678;Paris\r\n" for i in range(30_000))
    data = ("Civilite;Prenom;Nom;Societe;E-mail;Telephone;Ville\r\n" + ascii_rows + ROW.format(i=0)).encode("cp1252")
    scanner = FileScanner(head_size=64 << 10)
    for i in range(0, len(data), 1000):
        scanner.feed(data[i : i + 1000])
    scan = scanner.finish()
    assert scan.head.isascii() and not scan.utf8_ok
    assert inspect(scan.head, scan=scan).encoding == "cp1252"
    estimated = inspect(scan.head, scan=scan).estimated_rows
    assert 27_000 < estimated < 33_000  # early rows are shorter (row numbers in the emails)


def test_utf8_split_across_feeds_stays_valid():
    data = (FRENCH + ROW.format(i=1) * 100).encode("utf-8")
    for size in (1, 2, 3, 7):
        scanner = FileScanner()
        for i in range(0, len(data), size):
            scanner.feed(data[i : i + size])
        scan = scanner.finish()
        assert scan.utf8_ok and scan.size == len(data) and scan.head == data


def test_truncated_utf8_at_the_end_is_not_utf8():
    scanner = FileScanner()
    scanner.feed(b"a;b\nc;\xc3")
    assert not scanner.finish().utf8_ok


def test_cp1252_never_read_as_mojibake():
    text = FRENCH + "".join(ROW.format(i=i) for i in range(50)) + "M.;Noël;Bœuf;;x@y.fr;;Système € 12\r\n"
    facts, _ = facts_of(text.encode("cp1252"))
    assert facts.encoding == "cp1252"
    assert facts.header[3] == "Société"


def test_mac_roman_file():
    text = FRENCH + "".join(ROW.format(i=i) for i in range(50)) + "Mme;Françoise;Noël;Père & Fils;f@y.fr;;Sète\r\n"
    facts, _ = facts_of(text.encode("mac_roman"))
    assert facts.encoding == "mac_roman"
    assert facts.header == ["Civilité", "Prénom", "Nom", "Société", "E-mail", "Téléphone", "Ville"]


def test_mostly_utf8_with_a_stray_byte_is_utf8():
    data = (FRENCH + ROW.format(i=1) * 20).encode("utf-8") + b"M.;Jos\xe9;X;;j@x.fr;;Paris\r\n"
    facts, scan = facts_of(data)
    assert not scan.utf8_ok
    assert facts.encoding == "utf-8"


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("Nom;Email;Adresse\nDupont;a@b.fr;1, rue X\nMartin;c@d.fr;2, rue Y, bât. A\n", ";"),
        ('Name,Email,Notes\nSmith,a@b.fr,"x; y"\nJones,c@d.fr,z\n', ","),
        ("Nom\tEmail\tNotes\nDupont\ta@b.fr\tx, y; z\n", "\t"),
        ("Nom|Email|Notes\nDupont|a@b.fr|x, y; z\n", "|"),
        ('Nom;Email;Notes\n"Dupont, Jean";a@b.fr;"multi\nligne, avec; tout"\nMartin;c@d.fr;ok\n', ";"),
        ("sep=;\nNom,prenom;Email\nDupont, J;a@b.fr\n", ";"),
        ("Email\na@b.fr\nc@d.fr\n", ","),
    ],
)
def test_delimiter(text, delimiter):
    facts, _ = facts_of(text.encode())
    assert facts.delimiter == delimiter
    assert "email" in facts.mapping


def test_excel_sep_line_is_skipped():
    data = b"sep=;\r\nNom;Email\r\nDupont;a@b.fr\r\n"
    facts, _ = facts_of(data)
    assert facts.header == ["Nom", "Email"]
    assert facts.data_offset == data.index(b"Dupont")


def test_header_names_cleaned():
    data = b"Nom; Email ;;Nom;Notes\n\nDupont;a@b.fr;x;y;z\n"
    facts, _ = facts_of(data)
    assert facts.header == ["Nom", "Email", "column_3", "Nom (2)", "Notes"]
    assert facts.mapping == ["last_name", "email", None, None, "notes"]


def test_header_with_line_break():
    facts, _ = facts_of(b'"Adresse\ne-mail";Nom\na@b.fr;X\n')
    assert facts.header == ["Adresse e-mail", "Nom"]
    assert facts.mapping == ["email", "last_name"]


def test_empty_file():
    assert rejected(b"").code == "empty_file"
    assert rejected(b"\xef\xbb\xbf").code == "empty_file"
    assert rejected(b"\r\n\n  \n;;;\n").code == "empty_file"


def test_xlsx_workbook(tmp_path):
    path = tmp_path / "leads.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
    err = rejected(path.read_bytes())
    assert err.code == "binary_file"
    assert "Excel .xlsx workbook" in err.message and "CSV" in err.message


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG image"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, ".xls workbook"),
        (b"PK\x03\x04\x14\x00" + b"\x00" * 50 + b"word/document.xml", "ZIP archive"),
        (b"Nom;Email\nDupont;a\x00@b.fr\n", "NUL bytes"),
        (b"Nom;Email\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f\x10\x11\x12\n", "binary data"),
        (b"<!DOCTYPE html><html><body><table>", "web page"),
    ],
)
def test_binary_files(data, words):
    err = rejected(data)
    assert err.code == "binary_file"
    assert words in err.message


def test_nul_bytes_beyond_the_head_are_caught_by_the_scan():
    data = (FRENCH + ROW.format(i=1) * 20_000).encode("utf-8") + b"x;\x00\n"
    scanner = FileScanner(head_size=1 << 16)
    scanner.feed(data)
    scan = scanner.finish()
    assert b"\x00" not in scan.head
    with pytest.raises(FileRejected) as err:
        inspect(scan.head, scan=scan)
    assert err.value.code == "binary_file" and f"byte {len(data) - 2}" in err.value.message


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_is_refused_with_a_way_out(encoding):
    err = rejected((FRENCH + ROW.format(i=1)).encode(encoding))
    assert err.code == "utf16_file"
    assert "CSV UTF-8" in err.message


def test_header_but_no_data():
    err = rejected(b"Nom;E-mail;T\xc3\xa9l\xc3\xa9phone\r\n\r\n")
    assert err.code == "no_data"
    assert "Nom, E-mail, Téléphone" in err.message


def test_no_header():
    err = rejected(b"jean@orange.fr;Dupont\nmarie@free.fr;Martin\n")
    assert err.code == "no_header" and "jean@orange.fr" in err.message
    assert rejected(b"Dupont;06 12 34 56 78\nMartin;0612345679\n").code == "no_header"


def test_no_contact_column_lists_the_headers():
    err = rejected("Nom;Prénom;Ville\nDupont;Jean;Paris\n".encode())
    assert err.code == "no_contact_column"
    assert "Nom, Prénom, Ville" in err.message


def test_unclosed_quote_at_the_start():
    data = b'Nom;Email\nDupont;"a@b.fr\n' + b"Martin;c@d.fr\n" * 10_000
    scanner = FileScanner(head_size=1 << 14)
    scanner.feed(data)
    scan = scanner.finish()
    facts = inspect(scan.head, scan=scan)  # the header row is fine; the parse reports the rest
    assert facts.header == ["Nom", "Email"]
    data = b'"Nom;Email\n' + b"Martin;c@d.fr\n" * 10_000
    scanner = FileScanner(head_size=1 << 14)
    scanner.feed(data)
    scan = scanner.finish()
    with pytest.raises(FileRejected) as err:
        inspect(scan.head, scan=scan)
    assert err.value.code == "unreadable_start" and "quote" in err.value.message


def test_ods_spreadsheet():
    data = b"PK\x03\x04" + b"\x00" * 26 + b"mimetypeapplication/vnd.oasis.opendocument.spreadsheet"
    assert "OpenDocument spreadsheet" in rejected(data).message


def test_inspect_head_only():
    data = (FILES / "excel_fr_utf8_bom.csv").read_bytes()
    facts = inspect(data)
    assert facts.encoding == "utf-8" and facts.bom_length == 3 and facts.estimated_rows == 9
