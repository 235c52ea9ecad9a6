"""Workbooks converted to the CSV the parse reads (lib/parse/workbook.py), on files the tests
write: cells as the parse must see them, in every format; hostile workbooks refused with a
message saying what is wrong and what to do."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest

from lib.parse.errors import FileRejected
from lib.parse.rows import RowChecker, french_postal_code
from lib.parse.workbook import Bounds, Limits, cell_text, check_workbook, convert, convert_bounded
from tests.workbooks import HOSTILE, hostile, huge_declared_dimension, write_ods, write_xls, write_xlsm, write_xlsx

LIMITS = Limits(max_bytes=40 << 20, max_expanded_bytes=200 << 20)
BOUNDS = Bounds(memory_bytes=512 << 20, seconds=30)

HEADER = ["E-mail", "Téléphone", "Code postal", "Pays", "Client depuis", "Rendez-vous", "Montant", "Actif", "Total"]
ROWS = [
    ["zoe@exemple.fr", 612345678, 1000, "France", dt.date(2024, 3, 5), dt.datetime(2024, 3, 5, 14, 30), 1.5, True],
    ["leo@exemple.fr", 33612345679, 75008, "", dt.date(1999, 12, 31), dt.datetime(2024, 1, 2), 1234567890123, False],
    [None, "06 12 34 56 80", 1000, "Belgique", None, None, 0.1, None],
]
# What the CSV holds for them: whole numbers without ".0" or exponent, dates in ISO 8601,
# booleans as Excel shows them, formulas as their cached values.
EXPECTED = [
    HEADER,
    ["zoe@exemple.fr", "612345678", "1000", "France", "2024-03-05", "2024-03-05T14:30:00", "1.5", "TRUE", "2000"],
    ["leo@exemple.fr", "33612345679", "75008", "", "1999-12-31", "2024-01-02", "1234567890123", "FALSE", "3000"],
    ["", "06 12 34 56 80", "1000", "Belgique", "", "", "0.1", "", ""],
]


def csv_of(path: Path, sheet: str | None = None) -> tuple[list[list[str]], object]:
    out = io.BytesIO()
    result = convert(str(path), out, sheet)
    text = out.getvalue().decode("utf-8")
    return [line.split(";") for line in text.split("\r\n") if line], result


def sheets() -> dict[str, list[list[object]]]:
    rows = [[*r, f"=G{i + 2}*1000" if i < 2 else None] for i, r in enumerate(ROWS)]
    return {"Clients": [HEADER, *rows], "Vide": []}


def test_cell_text_rules() -> None:
    assert [cell_text(v) for v in (612345678.0, 1e15, 33612345678.0, 1.5, 1e-7, -0.0, 3)] == [
        "612345678", "1000000000000000", "33612345678", "1.5", "0.0000001", "0", "3",
    ]  # fmt: skip
    assert cell_text(dt.date(2024, 3, 5)) == "2024-03-05"
    assert cell_text(dt.datetime(2024, 3, 5)) == "2024-03-05"
    assert cell_text(dt.datetime(2024, 3, 5, 9, 5, 7)) == "2024-03-05T09:05:07"
    assert cell_text(dt.time(9, 5)) == "09:05:00"
    assert (cell_text(True), cell_text(False), cell_text(None), cell_text("")) == ("TRUE", "FALSE", "", "")


def test_xlsx_cells_formulas_and_a_huge_declared_dimension(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "clients.xlsx", sheets(), formulas={"I2": 2000, "I3": 3000})
    huge_declared_dimension(path)
    with path.open("rb") as f:
        assert check_workbook(f, path.stat().st_size, LIMITS) == "xlsx"
    rows, result = csv_of(path)
    assert rows == EXPECTED
    assert result.sheet == "Clients" and [(s.name, s.rows) for s in result.sheets] == [("Clients", 3), ("Vide", 0)]


def test_ods_xls_and_xlsm_give_the_same_cells(tmp_path: Path) -> None:
    plain = {"Clients": [HEADER[:8], *[r[:8] for r in ROWS]]}
    expected = [row[:8] for row in EXPECTED]  # rows are padded to the header's width
    for path, kind in (
        (write_ods(tmp_path / "clients.ods", plain), "ods"),
        (write_xls(tmp_path / "clients.xls", plain), "xls"),
        (write_xlsm(tmp_path / "clients.xlsm", plain), "xlsm"),
    ):
        with path.open("rb") as f:
            assert check_workbook(f, path.stat().st_size, LIMITS) == kind
        rows, _ = csv_of(path)
        assert rows == expected, (kind, rows)


def test_macros_are_never_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_xlsm(tmp_path / "macro.xlsm", {"Leads": [["E-mail"], ["a@exemple.fr"]]})
    monkeypatch.chdir(tmp_path)
    assert csv_of(path)[0] == [["E-mail"], ["a@exemple.fr"]]
    assert not (tmp_path / "PWNED").exists()
    with zipfile.ZipFile(path) as z:
        assert b"Auto_Open" in z.read("xl/vbaProject.bin")  # the macro is there, only never read


def test_first_sheet_with_data_and_a_chosen_sheet(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "two.xlsx",
        {"Titre": [["Export du 5 mars"]], "Leads": [["E-mail"], ["a@exemple.fr"]], "Salon": [["E-mail"], ["b@x.fr"]]},
    )
    rows, result = csv_of(path)
    assert rows == [["E-mail"], ["a@exemple.fr"]] and result.sheet == "Leads"
    assert [(s.name, s.rows) for s in result.sheets] == [("Titre", 0), ("Leads", 1), ("Salon", 1)]
    assert csv_of(path, "Salon")[0] == [["E-mail"], ["b@x.fr"]]
    with pytest.raises(FileRejected, match="no sheet named 'Autre'"):
        csv_of(path, "Autre")
    empty = write_xlsx(tmp_path / "empty.xlsx", {"Vide": [], "Leads": [["E-mail"], ["a@exemple.fr"]]})
    with pytest.raises(FileRejected, match=r"The sheet 'Vide' is empty\. .*the others: Leads"):
        csv_of(empty, "Vide")


def test_numbers_lost_zeros_and_regions_come_back_through_the_row_rules(tmp_path: Path) -> None:
    rows, _ = csv_of(write_xlsx(tmp_path / "c.xlsx", sheets(), formulas={"I2": 2000, "I3": 3000}))
    checker = RowChecker(HEADER, ["email", "phone", "postal_code", "country", None, None, None, None, None])
    first, second, third = (checker.check(i, r) for i, r in enumerate(rows[1:], 1))
    assert (first.phone, first.fields["postal_code"]) == ("+33612345678", "01000")
    assert (second.phone, second.fields["postal_code"]) == ("+33612345679", "75008")
    assert third.fields["postal_code"] == "1000"  # Belgium: its codes have four digits
    assert first.custom["Client depuis"] == "2024-03-05"


def test_the_postal_code_rule_on_csv_cells() -> None:
    assert french_postal_code("1000", None) == "01000"
    assert french_postal_code("1000", "FRANCE") == "01000"
    assert french_postal_code("1000", "Belgique") == "1000"
    assert french_postal_code("75008", "France") == "75008"
    assert french_postal_code("1000 ", None) == "1000 "  # not four digits: left as it is
    fr = RowChecker(["E-mail", "CP", "Pays"], ["email", "postal_code", "country"])
    assert fr.check(1, ["a@b.fr", "1000", ""]).fields["postal_code"] == "01000"
    be = RowChecker(["E-mail", "CP"], ["email", "postal_code"], region="BE")
    assert be.check(1, ["a@b.fr", "1000"]).fields["postal_code"] == "1000"


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_workbooks_are_refused_with_what_to_do(tmp_path: Path, name: str) -> None:
    path = hostile(tmp_path, name)
    with pytest.raises(FileRejected) as err:
        with path.open("rb") as f:
            check_workbook(f, path.stat().st_size, LIMITS)
        convert_bounded(str(path), str(tmp_path / "out.csv"), None, BOUNDS)
    for word in HOSTILE[name]:
        assert word in err.value.message, err.value.message


def test_a_workbook_over_the_limits_is_refused_before_converting(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "big.xlsx", {"Leads": [["E-mail", "Notes"], *[[f"l{i}@x.fr", "x" * 200] for i in range(3000)]]}
    )
    with path.open("rb") as f, pytest.raises(FileRejected) as err:
        check_workbook(f, path.stat().st_size, Limits(max_bytes=40 << 20, max_expanded_bytes=100_000))
    assert err.value.code == "workbook_too_large" and "CSV UTF-8" in err.value.message
    with path.open("rb") as f, pytest.raises(FileRejected, match="save the sheet of leads as"):
        check_workbook(f, path.stat().st_size, Limits(max_bytes=1000, max_expanded_bytes=200 << 20))
