"""Workbooks the tests write, with the libraries users' spreadsheets are written by:
openpyxl (.xlsx, .xlsm), odfpy (.ods), xlwt (.xls, BIFF8 as Excel 97-2003 wrote it),
msoffcrypto-tool (a password-protected .xlsx, encrypted as Excel does)."""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Rows = Sequence[Sequence[Any]]


def write_xlsx(path: Path, sheets: dict[str, Rows], *, formulas: dict[str, Any] | None = None) -> Path:
    """A workbook of these sheets. A cell value "=..." is a formula; `formulas` maps a
    formula's cell ("G2", first sheet) to the value Excel caches with it (openpyxl caches none)."""
    from openpyxl import Workbook

    wb = Workbook()
    first = True
    for name, rows in sheets.items():
        ws = wb.active if first else wb.create_sheet(name)
        assert ws is not None
        ws.title = name
        first = False
        for row in rows:
            ws.append(list(row))
        for row_cells in ws.iter_rows():
            for cell in row_cells:
                if isinstance(cell.value, dt.date) and not isinstance(cell.value, dt.datetime):
                    cell.number_format = "DD/MM/YYYY"
    wb.save(str(path))
    if formulas:
        patch_part(
            path,
            "xl/worksheets/sheet1.xml",
            lambda xml: _cache_formulas(xml, formulas),
        )
    return path


def _cache_formulas(xml: str, formulas: dict[str, Any]) -> str:
    for ref, value in formulas.items():
        xml, n = re.subn(rf'(<c r="{ref}"[^>]*>)<f>([^<]*)</f><v\s*/>', rf"\1<f>\2</f><v>{value}</v>", xml)
        assert n == 1, ref
    return xml


def patch_part(path: Path, part: str, change: Any) -> None:
    """Rewrite one part of a zip (a workbook) through `change(text) -> text`."""
    with zipfile.ZipFile(path) as src:
        parts = {i.filename: src.read(i.filename) for i in src.infolist()}
    parts[part] = change(parts[part].decode()).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in parts.items():
            out.writestr(name, data)


def huge_declared_dimension(path: Path) -> None:
    """The first sheet declares A1:XFD1048576 and holds formatted but empty cells at its far
    end and empty rows after the data, as a sheet whose columns were formatted whole."""

    def change(xml: str) -> str:
        xml = re.sub(r'<dimension ref="[^"]*"\s*/>', '<dimension ref="A1:XFD1048576"/>', xml)
        empty = '<row r="500000"><c r="A500000" s="0"/></row><row r="1048576"><c r="XFD1048576" s="0"/></row>'
        return xml.replace("</sheetData>", empty + "</sheetData>")

    patch_part(path, "xl/worksheets/sheet1.xml", change)


def stray_far_value(path: Path) -> None:
    """A space typed in the sheet's very last cell, far from the data."""

    def change(xml: str) -> str:
        far = '<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t xml:space="preserve"> </t></is></c></row>'
        return xml.replace("</sheetData>", far + "</sheetData>")

    patch_part(path, "xl/worksheets/sheet1.xml", change)


def write_xlsm(path: Path, sheets: dict[str, Rows]) -> Path:
    """A macro-enabled workbook: the macro-enabled content type and a VBA project part (its
    bytes an Auto_Open macro's source would sit in; nothing here may ever run it)."""
    write_xlsx(path, sheets)
    with zipfile.ZipFile(path) as src:
        parts = {i.filename: src.read(i.filename) for i in src.infolist()}
    types = parts["[Content_Types].xml"].decode()
    types = types.replace(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
        "application/vnd.ms-excel.sheet.macroEnabled.main+xml",
    ).replace("</Types>", '<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/></Types>')
    parts["[Content_Types].xml"] = types.encode()
    parts["xl/vbaProject.bin"] = (
        b'Attribute VB_Name = "Module1"\r\nSub Auto_Open()\r\n  Shell "touch PWNED"\r\nEnd Sub\r\n'
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in parts.items():
            out.writestr(name, data)
    return path


def write_ods(path: Path, sheets: dict[str, Rows]) -> Path:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    doc = OpenDocumentSpreadsheet()
    for name, rows in sheets.items():
        table = Table(name=name)
        for row in rows:
            tr = TableRow()
            for value in row:
                if value is None or value == "":
                    cell = TableCell()
                elif isinstance(value, bool):
                    cell = TableCell(valuetype="boolean", booleanvalue="true" if value else "false")
                    cell.addElement(P(text="VRAI" if value else "FAUX"))
                elif isinstance(value, int | float):
                    cell = TableCell(valuetype="float", value=value)
                    cell.addElement(P(text=str(value)))
                elif isinstance(value, dt.date):
                    cell = TableCell(valuetype="date", datevalue=value.isoformat())
                    cell.addElement(P(text=value.strftime("%d/%m/%Y")))
                else:
                    cell = TableCell(valuetype="string")
                    for line in str(value).split("\n"):
                        cell.addElement(P(text=line))
                tr.addElement(cell)
            table.addElement(tr)
        doc.spreadsheet.addElement(table)
    doc.save(str(path))
    return path


def write_xls(path: Path, sheets: dict[str, Rows]) -> Path:
    import xlwt

    wb = xlwt.Workbook(encoding="utf-8")
    date_style = xlwt.easyxf(num_format_str="DD/MM/YYYY")
    for name, rows in sheets.items():
        ws = wb.add_sheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is None or value == "":
                    continue
                if isinstance(value, dt.date):
                    ws.write(r, c, value, date_style)
                else:
                    ws.write(r, c, value)
    wb.save(str(path))
    return path


def encrypted_xlsx(path: Path, plain: Path, password: str = "secret") -> Path:  # noqa: S107 (a test file)
    from msoffcrypto.format.ooxml import OOXMLFile

    with plain.open("rb") as f, path.open("wb") as out:
        OOXMLFile(f).encrypt(password, out)
    return path


def zip_bomb_xlsx(path: Path, plain: Path, expanded_mb: int = 100) -> Path:
    """`plain` with its first sheet replaced by `expanded_mb` MB of well-formed rows that
    compress about a thousand times (a real zip bomb: nothing in it lies about sizes)."""
    with zipfile.ZipFile(plain) as src:
        parts = {i.filename: src.read(i.filename) for i in src.infolist()}
    row = b'<row><c t="inlineStr"><is><t>bombe@exemple.fr</t></is></c></row>' * 1000
    head = (
        b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        for name, data in parts.items():
            if name != "xl/worksheets/sheet1.xml":
                out.writestr(name, data)
        with out.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(head)
            for _ in range((expanded_mb << 20) // len(row)):
                sheet.write(row)
            sheet.write(b"</sheetData></worksheet>")
    return path


def hostile(tmp_path: Path, name: str) -> Path:
    """The hostile workbook `name` of HOSTILE, written in tmp_path."""
    plain = write_xlsx(tmp_path / "plain.xlsx", {"Leads": [["E-mail"], ["a@exemple.fr"]]})
    path = tmp_path / f"{name}.xlsx"
    if name == "encrypted":
        encrypted_xlsx(path, plain)
    elif name == "truncated":
        path.write_bytes(plain.read_bytes()[: plain.stat().st_size // 2])
    elif name == "corrupt":
        path.write_bytes(corrupt_part(plain, "xl/worksheets/sheet1.xml"))
    elif name == "zip_bomb":
        zip_bomb_xlsx(path, plain)
    elif name == "no_data":
        write_xlsx(path, {"Feuil1": [], "Feuil2": [[None, " "]]})
    elif name == "stray_far_value":
        path.write_bytes(plain.read_bytes())
        stray_far_value(path)
    return path


def corrupt_part(path: Path, part: str) -> bytes:
    """The file with bytes of one part's compressed data scrambled, as a bad disk or a bad
    copy leaves it: the zip's directory is intact, the part does not inflate."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(part)
    name_len, extra_len = (
        int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little"),
        int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little"),
    )
    start = info.header_offset + 30 + name_len + extra_len
    for i in range(start + 2, start + info.compress_size - 2):
        data[i] ^= 0x5A
    return bytes(data)


# name -> words the message must hold: what is wrong, and what to do
HOSTILE = {
    "encrypted": ("password", "remove the password", "CSV UTF-8"),
    "truncated": ("damaged or incomplete", "upload the original file again"),
    "corrupt": ("damaged or incomplete", "save it again"),
    "zip_bomb": ("would expand", "times", "save the sheet as CSV UTF-8"),
    "no_data": ("No sheet of this workbook holds any data", "right file"),
    "stray_far_value": ("far below or to the right", "Delete the rows and columns", "CSV UTF-8"),
}
