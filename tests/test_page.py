"""The import page (public/) in a real browser (Debian's Chromium through Playwright), on the
real local stack: the page is served by the stack's site and talks to its API as a user does.

Chromium is not a Python package: `apt-get install -y chromium` (CI's .ci/run installs it).
Without it these tests skip, except in CI (CI=true), where they fail. Each test saves
screenshots of the screens it passes through into docs/screens/ (the README shows them).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lib.auth import mint_token
from lib.cli import sign_in_link
from lib.local.stack import LOCAL_MEMBERS, LocalStack
from tests.helpers import Api, sample

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENS = Path(__file__).resolve().parent.parent / "docs" / "screens"
TIMEOUT_MS = 60_000


def _require_chromium() -> None:
    if os.path.exists(CHROMIUM):
        return
    message = (
        "the browser tests need Debian's Chromium: apt-get install -y chromium (Playwright's own download is not used)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)

    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(locale="fr-FR", viewport={"width": 1100, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"the page threw: {errors}"


def token(stack: LocalStack, member: tuple[Any, str, str] = LOCAL_MEMBERS[0], expires_in: int = 3600) -> str:
    return mint_token(stack.env["SUPABASE_JWT_SECRET"], str(member[0]), member[1], expires_in=expires_in)


def shot(page: Any, name: str, element: Any = None) -> None:
    """A screenshot of the window (or of one element) into docs/screens/NAME.png."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    (element or page).screenshot(path=str(SCREENS / f"{name}.png"))


def accessible(page: Any, screen: str) -> None:
    """axe-core (bundled by axe-playwright-python) finds no serious or critical violation."""
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{screen}: {sorted(bad)}"


def number(text: str) -> int:
    """A count as the page prints it (French thousands separators included)."""
    return int(re.sub(r"\D", "", text))


def count(page: Any, name: str) -> int:
    return number(page.locator(f'[data-count="{name}"]').first.inner_text())


def job_id_of(page: Any) -> str:
    match = re.search(r"[?&]job=([0-9a-f-]{36})", page.url)
    assert match, page.url
    return match.group(1)


def test_import_from_the_page(stack: LocalStack, conn: psycopg.Connection, page: Any, tmp_path: Path) -> None:
    """Sign in through a printed link, upload with the file chooser, review (the counts are
    the API's), fix an invalid row in place, commit round-robin over two members, the
    summary is the database's, the job is in the history, undo removes its leads."""
    from playwright.sync_api import expect

    _, stats = sample(tmp_path / "leads-page.csv", rows=300, seed=7)
    api = Api(stack)

    # Signing in: the printed link's fragment is taken, kept in sessionStorage, and removed.
    page.goto(sign_in_link(stack.app_url, token(stack), 3600))
    expect(page.get_by_role("heading", name="Nouvel import")).to_be_visible()
    assert "#" not in page.url and "access_token" not in page.url
    assert page.evaluate("sessionStorage.getItem('lead-import.session')")
    shot(page, "upload")
    accessible(page, "upload")

    # Upload with the file chooser, then the progress, then the review.
    page.get_by_label(re.compile("Fichier de contacts")).set_input_files(str(tmp_path / "leads-page.csv"))
    page.get_by_role("button", name="Envoyer et analyser").click()
    expect(page.get_by_role("heading", name="Résultat de l’analyse")).to_be_visible()
    job_id = job_id_of(page)
    status, reply = api.call("GET", f"/api/jobs/{job_id}")
    assert status == 200
    job = reply["job"]
    assert job["status"] == "ready"
    for name in ("total_rows", "valid_rows", "invalid_rows", "duplicate_rows"):
        assert count(page, name) == job[name], name
    assert (job["total_rows"], job["invalid_rows"]) == (stats.rows, stats.invalid)
    errors = api.call("GET", f"/api/jobs/{job_id}/errors")[1]["errors"]
    for code in errors:
        expect(page.locator(f'li[data-code="{code["code"]}"]').first).to_contain_text(code["message"])

    # Fix the first invalid row in place: an email makes it valid; the counts move.
    first = page.locator("table.invalid tbody tr").first
    row_no = int(first.get_attribute("data-row"))
    first.get_by_role("button", name=f"Corriger la ligne {row_no}").click()
    page.get_by_label(f"E-mail (ligne {row_no})").fill("ligne.corrigee@exemple.fr")
    page.get_by_role("heading", name="Lignes invalides").scroll_into_view_if_needed()
    page.mouse.wheel(0, -120)
    shot(page, "review-fix")
    accessible(page, "review")
    page.get_by_role("button", name="Enregistrer").click()
    expect(first.locator("td.state")).to_contain_text("valides")
    expect(page.locator('[data-count="valid_rows"]')).to_have_text(str(job["valid_rows"] + 1))
    expect(page.locator('[data-count="fixed_rows"]')).to_have_text("1")
    valid = job["valid_rows"] + 1
    assert api.call("GET", f"/api/jobs/{job_id}")[1]["job"]["valid_rows"] == valid

    # Change one column's mapping: the file is read again, the page follows, the fix stays.
    expect(page.locator("#mapping-source")).to_have_attribute("data-source", "automatic")
    page.get_by_label("Champ pour la colonne « Commentaire »").select_option("")
    expect(page.locator("#mapping-source")).to_have_attribute("data-source", "edited")
    expect(page.get_by_label("Champ pour la colonne « Commentaire »")).to_have_value("")
    expect(page.locator('[data-count="valid_rows"]')).to_have_text(str(valid))
    remapped = api.call("GET", f"/api/jobs/{job_id}")[1]["job"]
    assert remapped["mapping"][-1] is None and remapped["valid_rows"] == valid

    # Commit: round-robin over two members; the button says what it will do.
    page.get_by_label("À tour de rôle entre plusieurs membres").check()
    page.get_by_label(LOCAL_MEMBERS[1][1]).check()
    page.get_by_label(LOCAL_MEMBERS[2][1]).check()
    button = page.get_by_role("button", name=f"Importer {valid} contacts")
    expect(button).to_be_visible()
    shot(page, "commit-choices", page.locator("#commit-form"))
    button.click()
    expect(page.get_by_role("heading", name=re.compile("Import terminé"))).to_be_visible()
    shot(page, "summary")
    accessible(page, "summary")

    row = conn.execute("select * from import_jobs where id = %s", (job_id,)).fetchone()
    assert row["status"] == "completed"
    for name in ("inserted_rows", "updated_rows", "skipped_rows", "invalid_rows"):
        assert count(page, name) == row[name], name
    assert count(page, "warnings") == sum(row["warning_counts"].values())
    owners = conn.execute(
        "select owner_id, count(*) as n from leads where import_job_id = %s group by 1", (job_id,)
    ).fetchall()
    assert {r["owner_id"] for r in owners} == {LOCAL_MEMBERS[1][0], LOCAL_MEMBERS[2][0]}
    assert sum(r["n"] for r in owners) == row["inserted_rows"] > 0
    fixed = conn.execute(
        "select count(*) as n from leads where import_job_id = %s and email_normalized = 'ligne.corrigee@exemple.fr'",
        (job_id,),
    ).fetchone()
    assert fixed["n"] == 1

    # The history lists it; undo from there, with its confirmation.
    page.get_by_role("link", name="Retour aux imports").click()
    history_row = page.locator(f'tr[data-job="{job_id}"]')
    expect(history_row).to_contain_text("leads-page.csv")
    expect(history_row).to_contain_text("terminé")
    expect(history_row).to_contain_text(LOCAL_MEMBERS[0][1])
    shot(page, "history")
    accessible(page, "history")
    history_row.get_by_role("button", name=re.compile("Annuler cet import")).click()
    dialog = page.get_by_role("dialog", name="Annuler cet import ?")
    expect(dialog).to_contain_text(f"{row['inserted_rows']} contacts créés")
    shot(page, "undo-dialog")
    accessible(page, "undo dialog")
    dialog.get_by_role("button", name="Supprimer les contacts créés").click()
    expect(page.get_by_role("heading", name=re.compile("Import annulé"))).to_be_visible()
    assert count(page, "reverted_rows") == row["inserted_rows"]
    left = conn.execute("select count(*) as n from leads where import_job_id = %s", (job_id,)).fetchone()
    assert left["n"] == 0


def test_expired_token_and_other_organizations_job(stack: LocalStack, conn: psycopg.Connection, page: Any) -> None:
    """An expired token goes back to signing in without showing data; another
    organization's job is "not found", like a job that does not exist."""
    from playwright.sync_api import expect

    # Another organization with its own member and job.
    other_org, other_user = uuid.uuid4(), uuid.uuid4()
    conn.execute("insert into organizations (id, name) values (%s, 'Autre')", (other_org,))
    conn.execute(
        "insert into organization_members (organization_id, user_id, email, role) values (%s, %s, %s, 'owner')",
        (other_org, other_user, "autre@other.test"),
    )
    other = Api(stack, (other_user, "autre@other.test", "owner"))
    status, reply = other.call("POST", "/api/jobs", {"file_name": "secret.csv"})
    assert status == 201, reply
    other_job = reply["job"]["id"]
    mine = Api(stack)
    status, reply = mine.call("POST", "/api/jobs", {"file_name": "mine.csv"})
    assert status == 201, reply

    # Expired: the API answers 401 and the page shows the sign-in, not the history.
    page.goto(sign_in_link(stack.app_url, token(stack, expires_in=-60), 3600))
    expect(page.get_by_role("heading", name="Connexion")).to_be_visible()
    expect(page.get_by_role("alert")).not_to_be_empty()
    expect(page.get_by_text("mine.csv")).to_have_count(0)
    assert page.evaluate("sessionStorage.getItem('lead-import.session')") is None
    shot(page, "sign-in")
    accessible(page, "sign-in")

    # Signed in: another organization's job is not found, and so is a made-up one.
    page.get_by_label("Jeton d’accès").fill(token(stack))
    page.get_by_role("button", name="Se connecter avec ce jeton").click()
    expect(page.get_by_role("rowheader", name="mine.csv")).to_be_visible()
    for job_id in (other_job, str(uuid.uuid4())):
        page.goto(f"{stack.app_url}/?job={job_id}")
        expect(page.get_by_role("heading", name=re.compile("Import introuvable"))).to_be_visible()
        expect(page.get_by_text("secret.csv")).to_have_count(0)
    accessible(page, "not found")


def test_the_accessibility_check_finds_violations(page: Any) -> None:
    """The check the screens pass is not vacuous: an unlabelled field and a low-contrast
    text are serious violations to it."""
    page.set_content('<html lang="fr"><title>t</title><main><input><p style="color:#ccc">pâle</p></main></html>')
    with pytest.raises(AssertionError, match=r"label.*color-contrast|color-contrast.*label"):
        accessible(page, "bad page")
