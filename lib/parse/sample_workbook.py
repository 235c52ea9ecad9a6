"""The sample lead file as an Excel workbook (.xlsx, or .xlsm): the same rows as the CSV
sample (lib/parse/sample.py) for the same seed, as a user's workbook holds them.

Some cells are numbers, as Excel makes them: a phone typed without its leading zero
(612345678) and every third postal code. A multi-line comment's line ends are ``\\n``, the
line break a cell holds (Alt+Enter). A second sheet, "Salon", holds a few other leads with
dates. openpyxl writes it in write-only mode (rows streamed to the file); it is a
development dependency: the deployed service only reads workbooks.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from lib.parse.sample import HEADER, SampleCounter, SampleStats, sample_rows

SECOND_SHEET = "Salon"
SECOND_HEADER = ("Nom", "E-mail", "Téléphone", "Rencontré le")
SECOND_ROWS = 5


def workbook_cells(row: tuple[str, ...], i: int) -> list[Any]:
    """The cells of sample row ``i`` as a workbook holds them."""
    cells: list[Any] = list(row)
    phone, zip_code = row[5], row[7]
    if phone.isdigit() and phone[0] != "0":  # a number keeps the digits a person typed
        cells[5] = int(phone)
    if i % 3 == 0 and zip_code.isdigit():
        cells[7] = int(zip_code)
    cells[11] = row[11].replace("\r\n", "\n")
    return cells


def second_sheet_rows() -> list[tuple[Any, ...]]:
    return [
        (f"Visiteur {n}", f"visiteur{n}@salon.example.fr", 612000000 + n, dt.date(2024, 3, n + 1))
        for n in range(SECOND_ROWS)
    ]


def write_sample_workbook(path: str | Path, rows: int = 210_202, seed: int = 1) -> SampleStats:
    """Write the sample's ``rows`` data rows to the workbook ``path`` (first sheet "Leads")."""
    from openpyxl import Workbook  # type: ignore[import-untyped]

    counter = SampleCounter()
    wb = Workbook(write_only=True)
    leads = wb.create_sheet("Leads")
    leads.append(HEADER)
    for i, row in enumerate(sample_rows(rows, seed, counter)):
        leads.append(workbook_cells(row, i))
    salon = wb.create_sheet(SECOND_SHEET)
    salon.append(SECOND_HEADER)
    for second in second_sheet_rows():
        salon.append(second)
    wb.save(str(path))
    return counter.stats(rows)
