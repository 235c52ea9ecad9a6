"""lib.parse.mapping: header names to lead fields, and user mappings."""

import pytest

from lib.parse.errors import MappingInvalid
from lib.parse.mapping import LEAD_FIELDS, auto_map, check_mapping, normalize_name


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
