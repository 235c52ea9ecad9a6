"""lib.parse.mapping: header names to lead fields, full names, owners, user mappings; the header corpus."""

import re
from pathlib import Path

import pytest

from bench.mapping import evaluate
from bench.mapping import load_all as load_corpus
from lib.commit_settings import CommitSettings
from lib.parse.errors import MappingInvalid
from lib.parse.mapping import (
    LEAD_FIELDS,
    MAPPING_FIELDS,
    auto_map,
    check_mapping,
    name_order,
    normalize_name,
    owner_column,
    split_full_name,
)
from lib.parse.rows import RowChecker


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("Prénom", "first_name"),
        ("PRENOM", "first_name"),
        ("First name", "first_name"),
        ("firstname", "first_name"),
        ("first_name", "first_name"),
        ("Nom", "last_name"),
        ("Nom de famille", "last_name"),
        ("Last Name", "last_name"),
        ("Surname", "last_name"),
        ("E-mail", "email"),
        ("Email", "email"),
        ("e-mail ", "email"),
        ("Courriel", "email"),
        ("Adresse e-mail", "email"),
        ("Adresse mail", "email"),
        ("Mail", "email"),
        ("Email professionnel", "email"),
        ("Téléphone", "phone"),
        ("TELEPHONE", "phone"),
        ("Tél.", "phone"),
        ("Tel", "phone"),
        ("N° de téléphone", "phone"),
        ("Téléphone portable", "phone"),
        ("Mobile", "phone"),
        ("Portable", "phone"),
        ("GSM", "phone"),
        ("Phone", "phone"),
        ("Phone number", "phone"),
        ("Société", "company"),
        ("Entreprise", "company"),
        ("Raison sociale", "company"),
        ("Company", "company"),
        ("Nom de l'entreprise", "company"),
        ("Adresse", "address"),
        ("Address", "address"),
        ("Code postal", "postal_code"),
        ("CP", "postal_code"),
        ("Zip", "postal_code"),
        ("Postcode", "postal_code"),
        ("Ville", "city"),
        ("City", "city"),
        ("Pays", "country"),
        ("Country", "country"),
        ("Civilité", "civility"),
        ("Title", "job_title"),  # Salesforce, Zoho, Pipedrive; the civility beside a "Job Title" column
        ("Source", "source"),
        ("Origine", "source"),
        ("Commentaire", "notes"),
        ("Commentaires", "notes"),
        ("Notes", "notes"),
        ("Remarques", "notes"),
        ("Fonction", "job_title"),
        ("Poste", "job_title"),
        ("Date de naissance", None),
        ("Chiffre d'affaires", None),
        ("Hôtel", None),
        ("", None),
    ],
)
def test_auto_map_single_names(name, field):
    assert auto_map([name]) == [field]


def test_normalize_name():
    assert normalize_name("  N° Tél. ") == "n tel"
    assert normalize_name("E_MAIL") == "e mail"
    assert normalize_name("Société\xa0") == "societe"


def test_excel_french_header():
    header = ["Civilité", "Prénom", "Nom", "Société", "E-mail", "Téléphone", "Adresse", "Code postal", "Ville"]
    assert auto_map(header) == [
        "civility",
        "first_name",
        "last_name",
        "company",
        "email",
        "phone",
        "address",
        "postal_code",
        "city",
    ]


def test_each_field_mapped_once_first_match_wins():
    assert auto_map(["Téléphone", "Mobile", "Email", "Email 2"]) == ["phone", None, "email", None]
    # An exact alias beats an earlier keyword match.
    assert auto_map(["Email perso", "E-mail"]) == [None, "email"]
    assert auto_map(["Adresse e-mail", "Adresse"]) == ["email", "address"]


def test_check_mapping_accepts_lists_and_dicts():
    header = ["Nom", "Courriel", "Divers"]
    assert check_mapping(header, ["last_name", "email", None]) == ["last_name", "email", None]
    assert check_mapping(header, {"Courriel": "email", "Divers": "notes"}) == [None, "email", "notes"]


@pytest.mark.parametrize(
    ("mapping", "code"),
    [
        (["last_name", "mail", None], "unknown_field"),
        (["email", "email", None], "field_used_twice"),
        (["last_name", None, None], "no_contact_column"),
        (["email", None], "mapping_length"),
        ({"Mail": "email"}, "unknown_column"),
    ],
)
def test_check_mapping_errors(mapping, code):
    with pytest.raises(MappingInvalid) as err:
        check_mapping(["Nom", "Courriel", "Divers"], mapping)
    assert err.value.code == code
    assert err.value.message


def test_lead_fields_cover_the_aliases():
    assert set(auto_map(["Prénom", "Nom", "Email", "Tel", "Fonction"])) <= set(LEAD_FIELDS)


# -- the issue's headers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "field"),
    [
        # Wrong before: an email, not an address; full names, not a first or last name.
        ("Adresse électronique", "email"),
        ("Nom et prénom", "full_name"),
        ("Nom complet", "full_name"),
        # Missed before.
        ("Dénomination sociale", "company"),
        ("Person - Name", "full_name"),
        ("Contact owner", "owner"),
        ("Propriétaire du contact", "owner"),
        ("Lead Owner", "owner"),
        # Right before, still right.
        ("Adresse e-mail", "email"),
        ("Mél", "email"),
        ("N° de téléphone", "phone"),
        ("GSM", "phone"),
        ("CP", "postal_code"),
        ("Zip/Postal Code", "postal_code"),
        ("Company / Account", "company"),
        ("Person - Email - Work", "email"),
        ("Origine de la piste", "source"),
        # More owners, names and vendor spellings.
        ("Commercial", "owner"),
        ("Responsable", "owner"),
        ("Person - Owner", "owner"),
        ("Record Owner", "owner"),
        ("Email du commercial", "owner"),
        ("Full Name", "full_name"),
        ("Name", "full_name"),
        ("Civility", "civility"),
        ("FirstName", "first_name"),
        ("MobilePhone", "phone"),
        ("PostalCode", "postal_code"),
        ("LeadSource", "source"),
        ("EMAIL", "email"),
        ("SMS", "phone"),
        ("Street Address", "address"),
        ("Country/Region", "country"),
        ("Account Name", "company"),
        ("Nom de l'entreprise", "company"),
        ("Code postal (CP)", "postal_code"),
        ("Post code", "postal_code"),
        ("Fonction / Poste", "job_title"),
        ("Owner Name", "owner"),
        ("Nom du commercial", "owner"),
        # Unsure or another thing: kept as custom rather than guessed.
        ("Email Domain", None),
        ("Email Opt Out", None),
        ("Invalid email address", None),
        ("Fax", None),
        ("Fax Number", None),
        ("IP City", None),
        ("Owner Assigned Date", None),
        ("OwnerId", None),
        ("Organization - Owner", None),
        ("Deal - Owner", None),
        ("Complément d'adresse", None),
        ("Contact", None),
        ("Display Name", None),
        ("Company domain name", None),
        ("Statut commercial", None),
    ],
)
def test_issue_headers(name, field):
    assert auto_map([name]) == [field]


def test_normalize_name_splits_camel_case():
    assert normalize_name("HasOptedOutOfEmail") == "has opted out of email"
    assert normalize_name("FIRSTNAME") == "firstname"


def test_full_name_column_yields_to_first_and_last_name_columns():
    assert auto_map(["Nom complet", "Email"]) == ["full_name", "email"]
    assert auto_map(["Person - Name", "Person - First name", "Person - Last name", "Person - Email - Work"]) == [
        None,
        "first_name",
        "last_name",
        "email",
    ]
    assert auto_map(["Prénom", "Nom et prénom", "Mail"]) == ["first_name", None, "email"]


def test_title_is_the_job_title_unless_another_column_is():
    assert auto_map(["Salutation", "First Name", "Title", "Email"]) == ["civility", "first_name", "job_title", "email"]
    assert auto_map(["Title", "First Name", "Job Title", "E-mail Address"]) == [
        "civility",
        "first_name",
        "job_title",
        "email",
    ]


# -- second emails and phones ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "email", "phone"),
    [
        (["E-mail", "E-mail 2", "Téléphone", "Téléphone 2"], 0, 2),
        (["E-mail 2", "E-mail", "Téléphone 2", "Téléphone"], 1, 3),
        (["Téléphone", "Mobile", "Email", "Email perso"], 2, 0),
        (["Mobile", "Téléphone", "Email perso", "Email"], 3, 1),
        (["Secondary Email", "Email", "Fax", "Phone"], 1, 3),
        (["Autre e-mail", "Courriel", "Portable", "Tél."], 1, 3),
        (
            ["Person - Email - Home", "Person - Email - Work (2)", "Person - Phone - Mobile", "Person - Phone - Work"],
            0,
            2,
        ),
        (["Work email", "Email", "Mobile Phone Number", "Phone Number", "WhatsApp Phone Number"], 1, 3),
    ],
)
def test_a_second_email_or_phone_never_takes_the_first_place(header, email, phone):
    mapping = auto_map(header)
    assert mapping.index("email") == email
    assert mapping.index("phone") == phone
    assert mapping.count("email") == mapping.count("phone") == 1


def test_second_values_stay_in_custom_under_their_header():
    header = ["E-mail 2", "E-mail", "Mobile", "Téléphone"]
    checker = RowChecker(header, auto_map(header))
    row = checker.check(1, ["perso@exemple.fr", "pro@exemple.fr", "06 12 34 56 78", "01 23 45 67 89"])
    assert (row.email, row.phone) == ("pro@exemple.fr", "+33123456789")
    assert row.custom == {"E-mail 2": "perso@exemple.fr", "Mobile": "06 12 34 56 78"}


# -- full names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "value", "fields"),
    [
        ("Nom complet", "Jean Dupont", {"first_name": "Jean", "last_name": "Dupont"}),
        ("Nom complet", "DUPONT Jean", {"first_name": "Jean", "last_name": "DUPONT"}),
        ("Nom complet", "Jean-Pierre DE LA FONTAINE", {"first_name": "Jean-Pierre", "last_name": "DE LA FONTAINE"}),
        ("Nom complet", "Jean de LA FONTAINE", {"first_name": "Jean", "last_name": "de LA FONTAINE"}),
        ("Nom complet", "Jean de La Fontaine", {"first_name": "Jean", "last_name": "de La Fontaine"}),
        ("Full name", "Ludwig van Beethoven", {"first_name": "Ludwig", "last_name": "van Beethoven"}),
        ("Full name", "Anne Marie  Dupont", {"first_name": "Anne Marie", "last_name": "Dupont"}),
        ("Name", "JEAN DUPONT", {"first_name": "JEAN", "last_name": "DUPONT"}),
        ("Nom et prénom", "Dupont Jean", {"first_name": "Jean", "last_name": "Dupont"}),
        ("Nom et prénom", "de La Fontaine Jean", {"first_name": "Jean", "last_name": "de La Fontaine"}),
        ("Nom et prénom", "Jean DUPONT", {"first_name": "Jean", "last_name": "DUPONT"}),  # capitals first
        ("Prénom Nom", "Jean Dupont", {"first_name": "Jean", "last_name": "Dupont"}),
        ("Nom complet", "Dupont, Jean", {"first_name": "Jean", "last_name": "Dupont"}),
        ("Nom complet", "M. Jean Dupont", {"civility": "M.", "first_name": "Jean", "last_name": "Dupont"}),
        ("Nom complet", "Mme DUPONT", {"civility": "Mme", "last_name": "DUPONT"}),
        # Unsplittable: kept whole as the last name, neither lost nor sent to notes.
        ("Nom complet", "Madonna", {"last_name": "Madonna"}),
        ("Nom complet", "  Cher ", {"last_name": "Cher"}),
        ("Nom complet", "", {}),
    ],
)
def test_full_name_split(header, value, fields):
    checker = RowChecker([header, "Email"], ["full_name", "email"])
    row = checker.check(1, [value, "a@exemple.fr"])
    assert {k: v for k, v in row.fields.items() if k != "email"} == fields
    assert row.custom == {}


def test_full_name_keeps_a_civility_column_and_yields_to_filled_name_columns():
    header = ["Civilité", "Prénom", "Nom", "Nom complet", "Email"]
    checker = RowChecker(header, ["civility", "first_name", "last_name", "full_name", "email"])
    row = checker.check(1, ["Mme", "", "", "M. Jean Dupont", "a@exemple.fr"])
    assert row.fields == {"civility": "Mme", "first_name": "Jean", "last_name": "Dupont", "email": "a@exemple.fr"}
    row = checker.check(2, ["", "Marie", "Curie", "Marie Skłodowska-Curie", "b@exemple.fr"])
    assert row.fields == {"first_name": "Marie", "last_name": "Curie", "email": "b@exemple.fr"}
    assert row.custom == {"Nom complet": "Marie Skłodowska-Curie"}


def test_name_order_and_split_directly():
    assert (
        name_order("Nom et prénom") == name_order("NOM PRENOM") == name_order("Last name, first name") == "last_first"
    )
    assert name_order("Nom complet") == name_order("Prénom et nom") == name_order("Full Name") == "first_last"
    assert split_full_name("Valéry Giscard d'Estaing") == (None, "Valéry Giscard", "d'Estaing")  # a known limit
    assert split_full_name("Dr House") == ("Dr", None, "House")


# -- owners ---------------------------------------------------------------------------------------------


def test_owner_column_and_owner_cells():
    header = ["E-mail", "Contact owner", "Nom"]
    mapping = auto_map(header)
    assert mapping == ["email", "owner", "last_name"]
    assert owner_column(header, mapping) == "Contact owner"
    assert owner_column(["E-mail"], ["email"]) is None
    row = RowChecker(header, mapping).check(1, ["a@exemple.fr", " lucas@local.test ", "Dupont"])
    assert row.fields == {"email": "a@exemple.fr", "owner": "lucas@local.test", "last_name": "Dupont"}
    assert row.custom == {"Contact owner": "lucas@local.test"}  # the lead keeps it, whatever the assignment


def test_the_commit_reads_an_owner_field_and_no_non_lead_field_as_a_lead_column():
    settings = CommitSettings(assignment="column", owner_column="Commercial")
    job = {"header": ["E-mail", "Commercial"], "mapping": ["email", "owner"]}
    assert settings.owner_cell_source(job) == {"owner_field": "owner", "owner_header": None}
    sql = (Path(__file__).parents[1] / "lib" / "sql" / "commit.sql").read_text()
    read = set(re.findall(r"fields ->> '(\w+)'", sql))
    assert read and read <= set(LEAD_FIELDS)


def test_check_mapping_accepts_full_name_and_owner_once():
    header = ["Nom complet", "Mail", "Vendeur", "Responsable"]
    assert check_mapping(header, ["full_name", "email", "owner", None]) == ["full_name", "email", "owner", None]
    with pytest.raises(MappingInvalid) as err:
        check_mapping(header, ["full_name", "email", "owner", "owner"])
    assert err.value.code == "field_used_twice"
    assert set(MAPPING_FIELDS) == set(LEAD_FIELDS) | {"full_name", "owner"}


# -- the corpus -----------------------------------------------------------------------------------------

VENDORS = {"HubSpot", "Salesforce", "Pipedrive", "Zoho CRM", "Sellsy", "Axonaut", "Brevo", "Excel (hand-made)"}


def test_corpus_is_well_formed():
    rows = load_corpus()
    assert {r["vendor"] for r in rows} >= VENDORS
    for r in rows:
        assert r["evidence"] in ("vendor_docs", "public_export_sample", "reconstructed", "hand-made"), r["name"]
        assert r["source"] and r["language"] in ("fr", "en"), r["name"]
        names = [h for h, _ in r["columns"]]
        assert len(set(names)) == len(names), r["name"]
        assert {f for _, f in r["columns"]} <= {*MAPPING_FIELDS, None}, r["name"]


def test_corpus_accuracy_and_no_contact_column_wrong():
    report = evaluate(load_corpus())
    misses = "\n".join(f"{m.vendor} / {m.row}: {m.header!r} expected {m.expected}, got {m.got}" for m in report.misses)
    assert report.contact_wrong == 0, misses
    assert report.overall.rate >= 0.95, misses
    assert report.sets["held_out"].total >= 100 and report.sets["held_out"].rate >= 0.95, misses


def test_headers_the_held_out_rows_first_missed():
    # Found by the held-out rows' first run (bench.mapping): each a general rule, not a row.
    assert auto_map(["Téléphone du travail", "Téléphone privé"]) == ["phone", None]
    assert auto_map(["Email générique", "Remark", "Street1", "Street2"]) == ["email", "notes", "address", None]
    # The decision maker is the contact person: their email beats the generic mailbox.
    assert auto_map(["Email_Generique", "Email_Decideur", "Poste_Decideur"]) == [None, "email", "job_title"]
