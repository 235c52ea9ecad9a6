"""A generated lead file shaped like a French Excel export, for benchmarks and end-to-end tests.

cp1252, ``;``-separated, CRLF records, quoted cells holding ``;``, ``""`` and line breaks,
accents everywhere, a few invalid rows, duplicates, bad emails and phones. The returned
SampleStats are exact: every value is built to be valid or invalid on purpose.
"""

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HEADER = (
    "Civilité",
    "Prénom",
    "Nom",
    "Société",
    "E-mail",
    "Téléphone",
    "Adresse",
    "Code postal",
    "Ville",
    "Pays",
    "Source",
    "Commentaire",
)
_FIRST = (
    "Hélène",
    "Françoise",
    "Jérôme",
    "Zoé",
    "Chloé",
    "Noël",
    "Loïc",
    "Gaël",
    "Anaïs",
    "Cécile",
    "Benoît",
    "Maëlle",
    "Léa",
    "Théo",
    "Jean",
    "Marie",
    "Pierre",
    "Sophie",
    "Camille",
    "Lucas",
    "Emma",
    "Hugo",
    "Inès",
    "Raphaël",
    "Agnès",
    "Clément",
)
_LAST = (
    "Dupont",
    "Lefèvre",
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefebvre",
    "Michel",
    "Garcia",
    "Roux",
    "Fournier",
    "Girard",
    "Bonnet",
    "Mercier",
    "Lemaître",
    "Chevalier",
)
_COMPANIES = (
    "Société Générale",
    "Crédit Agricole Île-de-France",
    "Boulangerie Dupont & Fils",
    "SARL L'Étoile",
    'Le "Petit" Café',
    "Martin; Associés",
    "Bœuf & Cie",
    "",
)
_DOMAINS = ("orange.fr", "gmail.com", "free.fr", "wanadoo.fr", "laposte.net", "sfr.fr", "yahoo.fr")
_STREETS = ("rue de l'Église", "avenue des Champs-Élysées", "boulevard Saint-Germain", "place du Marché")
_CITIES = (
    ("75008", "Paris"),
    ("69002", "Lyon"),
    ("13001", "Marseille"),
    ("42000", "Saint-Étienne"),
    ("25000", "Besançon"),
    ("45000", "Orléans"),
    ("30000", "Nîmes"),
)
_SOURCES = ("Salon", "Site web", "Bouche-à-oreille", "LinkedIn", "")
_BAD_EMAILS = ("jean.dupont@", "jean dupont@orange.fr", "contact@orange", "@free.fr", "à voir")
_BAD_PHONES = ("06 12 34", "0000", "inconnu", "01 23 45 67 89 00 11")
_ASCII = str.maketrans("éèêëàâäîïôöûüùçœæÉÈÊËÀÂÎÏÔÖÛÜÇŒÆ", "eeeeaaaiioouuuceaEEEEAAIIOOUUCOA")


@dataclass(frozen=True, slots=True)
class SampleStats:
    rows: int
    valid: int
    invalid: int
    duplicates: int  # valid rows whose match key repeats an earlier valid row's
    invalid_email_warnings: int
    invalid_phone_warnings: int
    multiline: int


def write_sample_csv(path: str | Path, rows: int = 210_202, seed: int = 1) -> SampleStats:
    """Write ``rows`` data rows (plus the header) to ``path``."""
    counter = SampleCounter()
    with open(path, "w", encoding="cp1252", newline="") as f:
        out = csv.writer(f, delimiter=";", lineterminator="\r\n")
        out.writerow(HEADER)
        out.writerows(sample_rows(rows, seed, counter))
    return counter.stats(rows)


class SampleCounter:
    """What sample_rows made on purpose, for SampleStats."""

    def __init__(self) -> None:
        self.invalid = self.duplicates = self.bad_email = self.bad_phone = self.multiline = 0

    def stats(self, rows: int) -> SampleStats:
        return SampleStats(
            rows, rows - self.invalid, self.invalid, self.duplicates, self.bad_email, self.bad_phone, self.multiline
        )


def sample_rows(rows: int, seed: int, counter: SampleCounter | None = None) -> Iterator[tuple[str, ...]]:
    """The sample's data rows as text cells, the same for a given seed whatever the file type
    (lib/parse/sample_workbook.py writes them as a workbook)."""
    c = counter or SampleCounter()
    rnd = random.Random(seed)
    keys: list[tuple[str, str]] = []  # (email, phone) of earlier valid rows
    for i in range(rows):
        first, last = rnd.choice(_FIRST), rnd.choice(_LAST)
        email = f"{first}.{last}{i}@{rnd.choice(_DOMAINS)}".translate(_ASCII).lower()
        phone = _phone(i, rnd)
        roll = rnd.random()
        if roll < 0.02:
            email, phone = rnd.choice(("", "n/a", "à voir")), rnd.choice(("", "inconnu"))
            c.invalid += 1
        elif roll < 0.05 and keys:
            email, phone = rnd.choice(keys)  # an earlier valid row's match key
            email = email.upper() if rnd.random() < 0.3 else email
            c.duplicates += 1
        else:
            key = (email, "")
            if roll < 0.15:
                email, key = "", ("", phone)  # phone only
            elif roll < 0.25:
                phone = ""  # email only
            elif roll < 0.26:
                email, key = rnd.choice(_BAD_EMAILS), ("", phone)
                c.bad_email += 1
            elif roll < 0.27:
                phone = rnd.choice(_BAD_PHONES)
                c.bad_phone += 1
            keys.append(key)
        comment = ""
        if rnd.random() < 0.01:
            comment = f'Rappeler "vite"; intéressé\npar l\'offre à 1 200 €\r\nvu le {i % 28 + 1}/03'
            c.multiline += 1
        elif rnd.random() < 0.2:
            comment = "Client fidèle — relancé en août"
        zip_code, city = rnd.choice(_CITIES)
        yield (
            rnd.choice(("M.", "Mme", "")),
            f"\xa0{first}" if i % 50 == 0 else first,
            last.upper() if i % 7 == 0 else last,
            rnd.choice(_COMPANIES),
            email,
            phone,
            f"{i % 200 + 1} {rnd.choice(_STREETS)}",
            zip_code,
            city,
            "France",
            rnd.choice(_SOURCES),
            comment,
        )


def _phone(i: int, rnd: random.Random) -> str:
    """A valid French number, unique per row, in one of the usual spellings."""
    prefix = rnd.choice(("6", "6", "7", "1", "2", "3", "4", "5"))
    lead = {"6": "12", "7": "81"}.get(prefix, "23")  # ranges phonenumbers calls valid
    rest = f"{(i * 7919 + 13) % 1_000_000:06d}"
    national = prefix + lead + rest
    pairs = " ".join(national[j : j + 2] for j in range(1, 9, 2))
    style = rnd.random()
    if style < 0.5:
        return f"0{national[0]} {pairs}"
    if style < 0.7:
        return f"0{national}"
    if style < 0.8:
        return f"+33 {national[0]} {pairs}"
    if style < 0.9:
        return f"0{national[0]}.{pairs.replace(' ', '.')}"
    if style < 0.97:
        return national  # Excel dropped the leading zero
    return f"+33 (0){national[0]} {pairs}"
