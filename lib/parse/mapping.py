"""Lead fields and the mapping of a file's columns onto them.

A mapping is a list aligned with the header: the lead field a column fills, or None for a
column kept in the lead's custom JSON under its header name. Each field is filled by at most
one column.
"""

import re
import unicodedata
from collections.abc import Mapping, Sequence

from lib.parse.errors import MappingInvalid

LEAD_FIELDS = (
    "civility",
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "job_title",
    "address",
    "postal_code",
    "city",
    "country",
    "source",
    "notes",
)
CONTACT_FIELDS = ("email", "phone")

# Header names, compared once normalized (see normalize_name), that map to a field.
_ALIASES = {
    "civility": "civilite, civ, titre, title, salutation, genre",
    "first_name": "prenom, first name, firstname, given name, forename",
    "last_name": "nom, nom de famille, last name, lastname, surname, family name, name",
    "email": "email, e mail, courriel, adresse email, adresse e mail, adresse mail, mail, "
    "email address, e mail address, mel",
    "phone": "telephone, tel, tel portable, tel mobile, mobile, portable, gsm, phone, "
    "phone number, numero de telephone, num tel, n tel, no tel, cell, cellphone, "
    "mobile phone, telephone mobile, telephone portable",
    "company": "societe, entreprise, raison sociale, company, company name, organisation, "
    "organization, nom de l entreprise, nom de la societe, compte, account",
    "job_title": "fonction, poste, job title, position, titre du poste",
    "address": "adresse, address, adresse postale, rue, street, address line 1, adresse 1",
    "postal_code": "code postal, cp, zip, zip code, postcode, postal code",
    "city": "ville, city, commune, localite, town",
    "country": "pays, country",
    "source": "source, origine, origin, lead source, provenance",
    "notes": "commentaire, commentaires, notes, note, remarques, remarque, comments, comment, "
    "observations, description",
}
# Words that, anywhere in a header no alias matched, suggest a field; earlier rules win, so
# "Adresse e-mail" is an email, "Nom de l'entreprise" a company and "Code postal" no address.
_KEYWORDS = (
    ("email", "email, e mail, courriel, mail"),
    ("phone", "telephone, tel, mobile, portable, gsm, phone"),
    ("postal_code", "code postal, postal, zip, postcode"),
    ("company", "societe, entreprise, company, raison sociale, organisation, organization"),
    ("job_title", "fonction, job"),
    ("civility", "civilite"),
    ("first_name", "prenom, first name, firstname"),
    ("last_name", "nom, last name, lastname, surname"),
    ("city", "ville, city"),
    ("country", "pays, country"),
    ("address", "adresse, address"),
    ("source", "source, origine"),
    ("notes", "commentaire, commentaires, remarques, notes"),
)


def normalize_name(name: str) -> str:
    """Lower case, no accents, punctuation as single spaces: "N° Tél." -> "n tel"."""
    text = unicodedata.normalize("NFKD", name.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.split(r"[\W_]+", text)).strip()


def _words(spec: str) -> list[str]:
    return [normalize_name(word) for word in spec.split(",")]


_BY_ALIAS = {alias: field for field, spec in _ALIASES.items() for alias in _words(spec)}
_BY_ALIAS.update({alias.replace(" ", ""): f for alias, f in list(_BY_ALIAS.items())})
_KEYWORD_RULES = [(field, _words(spec)) for field, spec in _KEYWORDS]


def auto_map(header: Sequence[str]) -> list[str | None]:
    """Map each header name to a lead field, exact aliases first, then keywords."""
    names = [normalize_name(h) for h in header]
    mapping: list[str | None] = [None] * len(header)
    used: set[str] = set()
    for i, name in enumerate(names):
        field = _BY_ALIAS.get(name) or _BY_ALIAS.get(name.replace(" ", ""))
        if field and field not in used:
            mapping[i] = field
            used.add(field)
    for i, name in enumerate(names):
        if mapping[i] is not None or not name:
            continue
        padded = f" {name} "
        for field, words in _KEYWORD_RULES:
            if any(f" {w} " in padded for w in words):
                if field not in used:
                    mapping[i] = field
                    used.add(field)
                break
    return mapping


def check_mapping(header: Sequence[str], mapping: Sequence[str | None] | Mapping[str, str | None]) -> list[str | None]:
    """Validate a user's mapping (a list aligned with the header, or header name -> field;
    unnamed columns are unmapped) and return it as a list. Raises MappingInvalid."""
    if isinstance(mapping, Mapping):
        unknown = [name for name in mapping if name not in header]
        if unknown:
            raise MappingInvalid(
                "unknown_column",
                f"The mapping names columns the file does not have: {', '.join(unknown)}. "
                f"Columns found: {', '.join(header)}.",
            )
        fields = [mapping.get(name) for name in header]
    else:
        fields = list(mapping)
        if len(fields) != len(header):
            raise MappingInvalid(
                "mapping_length",
                f"The mapping has {len(fields)} entries but the file has {len(header)} columns.",
            )
    unknown = sorted({f for f in fields if f is not None and f not in LEAD_FIELDS})
    if unknown:
        raise MappingInvalid(
            "unknown_field",
            f"Unknown lead field(s): {', '.join(unknown)}. Known fields: {', '.join(LEAD_FIELDS)}.",
        )
    for field in LEAD_FIELDS:
        columns = [header[i] for i, f in enumerate(fields) if f == field]
        if len(columns) > 1:
            raise MappingInvalid(
                "field_used_twice",
                f"The field {field} is mapped from several columns ({', '.join(columns)}); "
                "map it from one column only.",
            )
    if not any(f in CONTACT_FIELDS for f in fields):
        raise MappingInvalid(
            "no_contact_column",
            "Map at least one column to email or phone: a lead needs one to be imported.",
        )
    return fields
