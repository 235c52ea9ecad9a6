"""Row validation: one CSV record in, one staged row out (see docs/ARCHITECTURE.md "Rows").

Errors make a row invalid: ``malformed_row`` (more non-empty cells than the header),
``no_contact`` (neither a valid email nor a valid phone; an unusable value that caused it
is named too, as ``invalid_email`` / ``invalid_phone``). Warnings leave a valid row valid:
``invalid_email`` / ``invalid_phone`` when the other contact is good (the raw value is kept,
not used to match), ``undecodable_bytes`` when a cell holds bytes the file's encoding could
not decode (shown as U+FFFD).

A postal code of four digits in a row of France (or of no country) gets back the leading zero
Excel took from it, when the job's region is FR (french_postal_code).

Fields that are no lead column (lib/parse/mapping.py): a ``full_name`` cell is split into
first_name, last_name (and a leading civility when the row has none) by split_full_name, in the
order its header suggests (name_order); when the row's first_name or last_name column is
filled, those win and the full name is kept in custom under its header. An ``owner`` cell is
kept in custom under its header and in fields["owner"], where the commit's owner-column
assignment reads it.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from lib.parse.contact import normalize_email, phone_normalizer
from lib.parse.mapping import check_mapping, name_order, split_full_name
from lib.parse.reader import BLANK


@dataclass(slots=True)
class StagedRow:
    row_no: int  # 1-based data row number, header excluded
    raw: list[str]  # the cells as read
    fields: dict[str, str]  # lead field -> trimmed value (email, phone normalized when valid)
    custom: dict[str, str]  # header name -> trimmed value, for non-empty unmapped cells
    email: str | None  # normalized valid email
    phone: str | None  # E.164 valid phone
    errors: list[str]
    warnings: list[str]
    key: str | None  # match key of a valid row: email, else phone
    valid: bool


class RowChecker:
    """Validates the rows of one file under one mapping; build it once per slice."""

    def __init__(
        self,
        header: Sequence[str],
        mapping: Sequence[str | None],
        region: str = "FR",
    ) -> None:
        mapping = check_mapping(header, mapping)
        self.width = len(header)
        self.region = region.upper()
        self._fields = [(i, f) for i, f in enumerate(mapping) if f is not None and f != "full_name"]
        self._custom = [(i, header[i]) for i, f in enumerate(mapping) if f is None or f == "owner"]
        full = mapping.index("full_name") if "full_name" in mapping else None
        self._full_name = None if full is None else (full, header[full], name_order(header[full]))
        self._padding = [""] * self.width
        self._normalize_phone = phone_normalizer(self.region)
        self._zero_postal_codes = self.region == "FR" and "postal_code" in mapping

    def check(self, row_no: int, cells: list[str]) -> StagedRow:
        width = self.width
        joined = "".join(cells)
        # str.strip() trims every Unicode space (NBSP, narrow NBSP...) but no zero-width one.
        blank = BLANK if "\u200b" in joined or "\ufeff" in joined else None
        padded = cells if len(cells) >= width else cells + self._padding[len(cells) :]
        fields = {f: v for i, f in self._fields if (v := padded[i].strip(blank))}
        custom = {name: v for i, name in self._custom if (v := padded[i].strip(blank))}
        if self._full_name is not None and (v := padded[self._full_name[0]].strip(blank)):
            if "first_name" in fields or "last_name" in fields:
                custom[self._full_name[1]] = v
            else:
                civility, first, last = split_full_name(v, self._full_name[2])
                if first:
                    fields["first_name"] = first
                if last:
                    fields["last_name"] = last
                if civility and "civility" not in fields:
                    fields["civility"] = civility
        if self._zero_postal_codes and (code := fields.get("postal_code")) is not None:
            fields["postal_code"] = french_postal_code(code, fields.get("country"))
        errors: list[str] = []
        warnings: list[str] = []
        if len(cells) > width and "".join(cells[width:]).strip(blank):
            errors.append("malformed_row")

        email = phone = None
        bad: list[str] = []
        if (value := fields.get("email")) is not None:
            if (email := normalize_email(value)) is None:
                bad.append("invalid_email")
            else:
                fields["email"] = email
        if (value := fields.get("phone")) is not None:
            if (phone := self._normalize_phone(value)) is None:
                bad.append("invalid_phone")
            else:
                fields["phone"] = phone
        if email is None and phone is None:
            errors.append("no_contact")
            errors += bad
        else:
            warnings += bad
        if "\ufffd" in joined:
            warnings.append("undecodable_bytes")

        valid = not errors
        key = (email or phone) if valid else None
        return StagedRow(row_no, cells, fields, custom, email, phone, errors, warnings, key, valid)


FRANCE = frozenset({"france", "fr", "fra", "republique francaise", "république française", "france metropolitaine"})


def french_postal_code(code: str, country: str | None) -> str:
    """A French postal code that lost its leading zero (``1000``, Bourg-en-Bresse's
    department, from a number cell or a CSV that Excel wrote) gets it back, when the row's
    country is France or empty (the job's region is FR: see RowChecker)."""
    if len(code) == 4 and code.isdigit() and (country is None or country.lower() in FRANCE):
        return "0" + code
    return code
