"""Lead fields and the mapping of a file's columns onto them.

A mapping is a list aligned with the header: per column, the field it fills, or None for a
column kept in the lead's custom JSON under its header name. Each field is filled by at most
one column. The fields are the lead columns (LEAD_FIELDS) and two that are not lead columns:

- ``full_name``: a column of whole names. Row checking (lib/parse/rows.py) splits each cell into
  first_name and last_name with split_full_name (the rule is there). A row whose first_name or
  last_name column is filled keeps its full name in custom instead: separate columns win.
- ``owner``: the column naming each lead's owner in the CRM the file comes from ("Contact
  owner", "Lead Owner", "Propriétaire du contact", "Commercial"). It fills no lead column: its
  cells are kept in custom under the header, and in the staged row's fields, where the
  commit's owner-column assignment reads them (CommitSettings.owner_cell_source).
  owner_column(header, mapping) names that column for the review to offer.

Automatic mapping (auto_map). A header is normalized (case, accents, punctuation, camelCase:
"N° Tél." -> "n tel", "MobilePhone" -> "mobile phone") and cut into words. It names a field when
it holds one of the field's terms ("email", "téléphone", "code postal", "nom et prénom"...) and
every other word is one the field allows: fillers (de, du, the, contact, person, lead, piste...),
the field's neutral words ("adresse" in "Adresse e-mail", "numéro" in "Numéro de téléphone"),
its qualifiers ("work", "perso", "mobile", "mailing"...), or a second-column marker ("2",
"autre", "other", "secondary"). Any other word leaves the column unmapped, so "Email Domain",
"IP City", "Email Opt Out", "Fax Number" or "Owner Assigned Date" stay custom instead of being
guessed. Each field then takes, among its candidate columns, the best ranked, then the first:
a plain column ("Téléphone", "E-mail") beats a qualified one ("Mobile", "Email perso", "Phone -
Work"), which beats a second one ("E-mail 2", "Autre téléphone"), whatever the column order;
the columns that lose stay custom. So a second email or phone never takes the first's place.
Two more rules: a full-name column stays unmapped when the file has a first or last name
column; "Title" is the job title (Salesforce, Zoho, Pipedrive) unless another column is the
job title, where it is the civility (Outlook).
"""

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
# Mapping targets that are no lead column (see the module docstring).
EXTRA_FIELDS = ("full_name", "owner")
MAPPING_FIELDS = LEAD_FIELDS + EXTRA_FIELDS
CONTACT_FIELDS = ("email", "phone")


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words a header may hold around any field's term.
_FILLERS = _wordset(
    "de du des d l la le les the of a au aux et "
    "contact contacts person personne lead leads prospect prospects piste pistes record fiche "
    "interlocuteur decideur decideurs "
    "principal principale primary main 1"
)
# Words that make a column a second one of its field: it loses to any first one.
_SECONDARY = _wordset(
    "2 3 4 5 6 7 8 9 secondary secondaire autre autres other others alternatif alternative "
    "additional supplementaire bis second seconde deuxieme"
)
_QUALIFIED = 1  # rank of a qualified column ("Mobile", "Email perso")
_SECOND = 2  # rank of a second column ("E-mail 2")
_PREFERRED = -1  # a word that makes a column better than a plain one ("Owner email")

_PLACES = "mailing home business work office domicile bureau postal postale"
_KINDS = (
    "work pro professionnel professionnelle business bureau office home perso personnel personnelle "
    "personal private prive privee domicile travail"
)


@dataclass(frozen=True)
class _Rule:
    field: str
    terms: tuple[tuple[tuple[str, ...], int], ...]  # (words of a term, its rank)
    words: dict[str, int]  # other words the field allows, with their rank


def _rule(
    field: str, terms: str, *, qualified_terms: str = "", neutral: str = "", qualifiers: str = "", preferred: str = ""
) -> _Rule:
    """Terms are comma-separated, already normalized; word lists are space-separated."""
    ranked = [(t, 0) for t in terms.split(",")] + [(t, _QUALIFIED) for t in qualified_terms.split(",") if t.strip()]
    words = dict.fromkeys(neutral.split(), 0)
    words |= dict.fromkeys(qualifiers.split(), _QUALIFIED)
    words |= dict.fromkeys(preferred.split(), _PREFERRED)
    return _Rule(field, tuple((tuple(t.split()), rank) for t, rank in ranked if t.split()), words)


_RULES = (
    _rule("civility", "civilite, civility, civ, salutation, titre, genre"),
    _rule("first_name", "prenom, prenoms, first name, firstname, given name, forename, fname"),
    _rule("last_name", "nom, nom de famille, last name, lastname, surname, family name, lname"),
    _rule(
        "full_name",
        "nom complet, nom et prenom, nom prenom, noms et prenoms, prenom nom, prenom et nom, full name, fullname, name",
    ),
    _rule(
        "email",
        "email, emails, mail, courriel, mel, adresse electronique",
        neutral="adresse address addr",
        qualifiers=_KINDS + " generique generic",
    ),
    _rule(
        "phone",
        "telephone, tel, phone",
        qualified_terms="mobile, portable, gsm, cell, cellphone, cellulaire, sms, whatsapp, landline, fixe, ligne directe",
        neutral="numero number no n num nr",
        qualifiers=_KINDS + " mobile portable gsm cell fixe direct directe ligne whatsapp sms landline standard",
    ),
    _rule(
        "company",
        "societe, entreprise, raison sociale, denomination sociale, denomination, company, "
        "organisation, organization, compte, account, company account, etablissement",
        neutral="nom name",
        qualifiers="associated associee current actuelle",
    ),
    _rule(
        "job_title",
        "fonction, poste, job title, jobtitle, job, position, titre du poste, intitule du poste, intitule de poste",
        qualified_terms="title",  # see auto_map: the civility when another column is the job title
        neutral="fonction poste",
    ),
    _rule(
        "address",
        "adresse, address, rue, street, adresse postale, voie",
        neutral="line ligne rue street",
        qualifiers=_PLACES,
    ),
    _rule(
        "postal_code",
        "code postal, codepostal, cp, c p, zip, zip code, zipcode, postcode, post code, postal code, zip postal code",
        neutral="cp zip",
        qualifiers=_PLACES,
    ),
    _rule("city", "ville, city, commune, localite, town", qualifiers=_PLACES),
    _rule("country", "pays, country", neutral="region", qualifiers=_PLACES),
    _rule("source", "source, origine, origin, provenance", qualifiers="original originale initial initiale"),
    _rule(
        "notes",
        "commentaire, commentaires, notes, note, remarque, remarques, comment, comments, "
        "observation, observations, description, memo, remark, remarks",
        qualifiers="interne internes internal",
    ),
    _rule(
        "owner",
        "owner, proprietaire, responsable, commercial, vendeur, gestionnaire, charge d affaires, "
        "charge de compte, assigned to, assigne a, attribue a, sales rep, salesperson, "
        "account manager, suivi par",
        neutral="name nom",
        qualifiers="sales commercial compte assigne assigned",
        preferred="email mail courriel",
    ),
)


def normalize_name(name: str) -> str:
    """Lower case, no accents, camelCase, digits after letters and punctuation as single spaces:
    "N° Tél." -> "n tel", "Street1" -> "street 1"."""
    text = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[^\W\d_])(?=\d)", " ", name)
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.split(r"[\W_]+", text)).strip()


def _words(name: str) -> list[str]:
    """The header's words, "e mail" as one word."""
    words = normalize_name(name).split()
    out: list[str] = []
    for word in words:
        if out and out[-1] == "e" and word in ("mail", "mails"):
            out[-1] = "email"
        else:
            out.append(word)
    return out


@dataclass(frozen=True)
class _Match:
    field: str
    rank: int
    term: tuple[str, ...]


# Every term by its first word, in rule order: a header is only compared with the terms that
# start with one of its words (a 10,000-column header is mapped in a few tens of ms).
_BY_FIRST_WORD: dict[str, list[tuple[_Rule, tuple[str, ...], int]]] = {}
for _r in _RULES:
    for _term, _base in _r.terms:
        _BY_FIRST_WORD.setdefault(_term[0], []).append((_r, _term, _base))
_RULE_ORDER = {rule.field: k for k, rule in enumerate(_RULES)}


def _classify(words: list[str]) -> _Match | None:
    """The field a header names, or None; the longest matching term wins, then the best rank,
    then the first rule."""
    best: _Match | None = None
    best_key: tuple[int, int, int] | None = None
    for start, word in enumerate(words):
        for rule, term, base in _BY_FIRST_WORD.get(word, ()):
            n = len(term)
            if tuple(words[start : start + n]) != term:
                continue
            rank = _rank(rule, base, words[:start] + words[start + n :])
            if rank is None:
                continue
            key = (-n, rank, _RULE_ORDER[rule.field])
            if best_key is None or key < best_key:
                best, best_key = _Match(rule.field, rank, term), key
    return best


def _rank(rule: _Rule, base: int, rest: list[str]) -> int | None:
    rank, preferred = base, False
    for word in rest:
        allowed = rule.words.get(word)
        if allowed is None:
            if word in _FILLERS:
                allowed = 0
            elif word in _SECONDARY or word.isdigit():
                allowed = _SECOND
            else:
                return None
        if allowed == _PREFERRED:
            preferred = True
        else:
            rank = max(rank, allowed)
    return rank - 1 if preferred else rank


def auto_map(header: Sequence[str]) -> list[str | None]:
    """Map each header name to a field, or None to keep the column as custom (module docstring)."""
    matches = [_classify(_words(h)) for h in header]
    mapping: list[str | None] = [None] * len(header)
    used: set[str] = set()
    ranked = sorted((m.rank, i, m.field) for i, m in enumerate(matches) if m is not None)
    for _, i, field in ranked:
        if field not in used:
            mapping[i] = field
            used.add(field)
    if "full_name" in used and ("first_name" in used or "last_name" in used):
        mapping[mapping.index("full_name")] = None
    if "civility" not in used:
        for i, m in enumerate(matches):
            if m is not None and m.term == ("title",) and mapping[i] is None:
                mapping[i] = "civility"
                break
    return mapping


def owner_column(header: Sequence[str], mapping: Sequence[str | None]) -> str | None:
    """The header of the column mapped to ``owner``: what the review offers as the owner column
    of a column assignment (CommitSettings.owner_column), or None."""
    for name, field in zip(header, mapping, strict=True):
        if field == "owner":
            return name
    return None


# -- full names --------------------------------------------------------------------------------

_CIVILITIES = _wordset("m mr mme mmes mlle mlles mrs ms miss dr pr me monsieur madame mademoiselle mister")
_PARTICLES = _wordset("de du des d del della dela di da do dos das le la les van von der den ter ten")


def name_order(header_name: str) -> str:
    """How a full-name column orders its names: "last_first" when its header names the last
    name first ("Nom et prénom", "Nom Prénom", "Last name, first name"), else "first_last"."""
    words = _words(header_name)
    last = [i for i, w in enumerate(words) if w in ("nom", "noms", "last", "lastname", "surname")]
    first = [i for i, w in enumerate(words) if w in ("prenom", "prenoms", "first", "firstname")]
    return "last_first" if last and first and last[0] < first[0] else "first_last"


def split_full_name(value: str, order: str = "first_last") -> tuple[str | None, str | None, str | None]:
    """(civility, first_name, last_name) of a full name; None for a part it does not have.

    The rule, in order:
    1. A leading civility ("M.", "Mme", "Dr", "Mr"...) followed by a name is the civility.
    2. "Dupont, Jean" (one comma): last name, then first name.
    3. One word: the last name, whole ("Dupont"; a name that cannot be split is never lost).
    4. Words in capitals beside words that are not ("DUPONT Jean", "Jean-Pierre DE LA FONTAINE"):
       the run of capitalized words at the start or the end is the last name (with a particle
       just before a final run: "Jean de LA FONTAINE"), the rest the first name.
    5. Otherwise, by the column's order (name_order): "first_last" ("Jean de La Fontaine",
       "Anne Marie Dupont"): the last name starts at the first particle after the first word
       (de, du, des, d', le, la, van, von, der, di, da, dos...) or is the last word;
       "last_first" ("Dupont Jean", "de La Fontaine Jean"): the first name is the last word.
    Spaces are collapsed; the words keep their case.
    """
    words = value.split()
    civility = None
    if len(words) > 1 and words[0].rstrip(".").casefold() in _CIVILITIES:
        civility, words = words[0], words[1:]
    text = " ".join(words)
    if not text:
        return civility, None, None
    if text.count(",") == 1:
        last, first = (part.strip() for part in text.split(","))
        if last and first:
            return civility, first, last
        text = (last or first).strip()
        words = text.split()
    if len(words) == 1:
        return civility, None, words[0]
    caps = [_is_caps(w) for w in words]
    if any(caps) and not all(caps):
        n = len(words)
        start = caps.index(True)
        end = n - caps[::-1].index(True)
        if all(caps[start:end]) and (start == 0 or end == n):
            if end == n and start > 1 and words[start - 1].casefold() in _PARTICLES:
                start -= 1
            given = words[:start] + words[end:]
            return civility, " ".join(given), " ".join(words[start:end])
    if order == "last_first":
        return civility, words[-1], " ".join(words[:-1])
    cut = next(
        (i for i in range(1, len(words) - 1) if words[i].casefold().rstrip("'’") in _PARTICLES),
        len(words) - 1,
    )
    return civility, " ".join(words[:cut]), " ".join(words[cut:])


def _is_caps(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters)


# -- user mappings -----------------------------------------------------------------------------


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
    unknown = sorted({f for f in fields if f is not None and f not in MAPPING_FIELDS})
    if unknown:
        raise MappingInvalid(
            "unknown_field",
            f"Unknown lead field(s): {', '.join(unknown)}. Known fields: {', '.join(MAPPING_FIELDS)}.",
        )
    for field in MAPPING_FIELDS:
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
