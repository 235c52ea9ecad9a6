"""The import page (public/) in a real browser (Debian's Chromium through Playwright), on the
real local stack: the page is served by the stack's site and talks to its API as a user does.

Chromium is not a Python package: `apt-get install -y chromium` (CI's .ci/run installs it).
Without it these tests skip, except in CI (CI=true), where they fail. Each test saves
screenshots of the screens it passes through (SCREENS below; the README shows some).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from lib import db
from lib.auth import mint_token
from lib.cli import sign_in_link
from lib.local.stack import LOCAL_MEMBERS, LocalStack, seed_local_organization
from tests.helpers import (
    LEAD_HEADER,
    SMALL_SLICES,
    Api,
    add_other_org,
    finished,
    job,
    make_stack,
    outcome,
    phone,
    same_as_baseline,
    sample,
    storage,
    undisturbed,
    wait_until,
    write_csv,
)
from tests.supabase_auth import SupabaseAuth

pytestmark = pytest.mark.browser

# CHROMIUM_PATH: another Chromium build (or a missing one, to see the skip and the CI failure).
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
# Screenshots of every screen go to .local/screens (ignored by git); the README's are
# refreshed with PAGE_SCREENSHOTS=docs/screens.
ROOT = Path(__file__).resolve().parent.parent
SCREENS = ROOT / os.environ.get("PAGE_SCREENSHOTS", ".local/screens")
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
    """A screenshot of the window (or of one element) into SCREENS/NAME.png."""
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


class Mouse:
    """A user with a mouse: Playwright's clicks, fills and picks."""

    def __init__(self, page: Any):
        self.page = page

    def click(self, target: Any) -> None:
        target.click()

    def fill(self, target: Any, text: str) -> None:
        target.fill(text)

    def check(self, target: Any) -> None:
        target.check()

    def select(self, target: Any, value: str) -> None:
        target.select_option(value)

    def choose_file(self, target: Any, path: Path) -> None:
        with self.page.expect_file_chooser() as chooser:
            target.click()
        chooser.value.set_files(str(path))


class Keyboard(Mouse):
    """A user with the keyboard only: Tab to a control, then the key a person would press.
    No click, no programmatic focus."""

    MAX_TABS = 400

    def focused(self, target: Any) -> bool:
        return bool(target.evaluate("e => e === document.activeElement"))

    def tab_to(self, target: Any) -> None:
        target.wait_for()
        for _ in range(self.MAX_TABS):
            if self.focused(target):
                return
            self.page.keyboard.press("Tab")
        raise AssertionError(f"Tab never reaches {target}")

    def click(self, target: Any) -> None:
        self.tab_to(target)
        self.page.keyboard.press("Enter")

    def fill(self, target: Any, text: str) -> None:
        self.tab_to(target)
        self.page.keyboard.press("Control+A")
        self.page.keyboard.type(text)

    def check(self, target: Any) -> None:
        if target.get_attribute("type") == "radio":
            # Tab reaches a radio group on its checked radio; the arrows move the choice.
            name = target.get_attribute("name")
            self.tab_to(self.page.locator(f'input[type=radio][name="{name}"]:checked'))
            for _ in range(10):
                if target.is_checked():
                    return
                self.page.keyboard.press("ArrowDown")
            raise AssertionError(f"the arrows never check {target}")
        self.tab_to(target)
        self.page.keyboard.press("Space")
        assert target.is_checked()

    def select(self, target: Any, value: str) -> None:
        self.tab_to(target)
        values = target.evaluate("s => [...s.options].map(o => o.value)")
        self.page.keyboard.press("Home" if values.index(value) == 0 else "End")  # the first or the last
        assert target.input_value() == value

    def choose_file(self, target: Any, path: Path) -> None:
        self.tab_to(target)
        with self.page.expect_file_chooser() as chooser:
            self.page.keyboard.press("Space")
        chooser.value.set_files(str(path))


ERRORS_FR = {
    "no_contact": "Ni e-mail valide ni numéro de téléphone valide : la ligne ne peut pas être importée.",
    "invalid_email": "L’adresse e-mail n’est pas valide.",
    "invalid_phone": "Le numéro de téléphone n’est pas valide.",
}
WARNINGS_FR = {
    "invalid_email": "L’adresse e-mail n’est pas valide : le contact est importé",
    "invalid_phone": "Le numéro de téléphone n’est pas valide : le contact est importé",
}


@pytest.mark.parametrize("user", [Mouse, Keyboard], ids=["mouse", "keyboard"])
def test_import_from_the_page(
    stack: LocalStack, conn: psycopg.Connection, page: Any, tmp_path: Path, user: type[Mouse]
) -> None:
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
    act = user(page)
    act.choose_file(page.get_by_label(re.compile("Fichier de contacts")), tmp_path / "leads-page.csv")
    act.click(page.get_by_role("button", name="Envoyer et analyser"))
    expect(page.get_by_role("heading", name="Résultat de l’analyse")).to_be_visible()
    job_id = job_id_of(page)
    status, reply = api.call("GET", f"/api/jobs/{job_id}")
    assert status == 200
    job = reply["job"]
    assert job["status"] == "ready"
    for name in ("total_rows", "valid_rows", "invalid_rows", "duplicate_rows"):
        assert count(page, name) == job[name], name
    assert (job["total_rows"], job["invalid_rows"]) == (stats.rows, stats.invalid)
    # The codes in French, by code: an error's text and a warning's differ.
    review = api.call("GET", f"/api/jobs/{job_id}/errors")[1]
    assert {c["code"] for c in review["errors"]} == {"no_contact", "invalid_email", "invalid_phone"}
    assert {c["code"] for c in review["warnings"]} == {"invalid_email", "invalid_phone"}
    codes = page.locator("#codes-title").locator("xpath=..")
    for kind, texts in (("errors", ERRORS_FR), ("warnings", WARNINGS_FR)):
        for code in review[kind]:
            item = codes.locator(f'ul:{"first" if kind == "errors" else "last"}-of-type li[data-code="{code["code"]}"]')
            expect(item).to_contain_text(texts[code["code"]])
            expect(item).not_to_contain_text(code["message"])
    # A row's reason in French names its bad value.
    shown = api.call("GET", f"/api/jobs/{job_id}/invalid-rows?limit=10")[1]["rows"]
    row_no, reason = next((r["row_no"], x) for r in shown for x in r["reasons"] if x.get("value"))
    what = "L’adresse e-mail" if reason["code"] == "invalid_email" else "Le numéro de téléphone"
    expect(page.locator(f'tr[data-row="{row_no}"] li[data-code="{reason["code"]}"]')).to_have_text(
        f"{what} « {reason['value']} » n’est pas valide."
    )

    # Fix the first invalid row in place: an email makes it valid; the counts move.
    first = page.locator("table.invalid tbody tr").first
    row_no = int(first.get_attribute("data-row"))
    act.click(first.get_by_role("button", name=f"Corriger la ligne {row_no}"))
    act.fill(page.get_by_label(f"E-mail (ligne {row_no})"), "ligne.corrigee@exemple.fr")
    page.get_by_role("heading", name="Lignes invalides").scroll_into_view_if_needed()
    page.mouse.wheel(0, -120)
    shot(page, "review-fix")
    accessible(page, "review")
    act.click(page.get_by_role("button", name="Enregistrer"))
    expect(first.locator("td.state")).to_contain_text("valides")
    expect(page.locator('[data-count="valid_rows"]')).to_have_text(str(job["valid_rows"] + 1))
    expect(page.locator('[data-count="fixed_rows"]')).to_have_text("1")
    valid = job["valid_rows"] + 1
    assert api.call("GET", f"/api/jobs/{job_id}")[1]["job"]["valid_rows"] == valid

    # Exclude another invalid row, then include it again: the counts follow.
    second = page.locator("table.invalid tbody tr[data-row]").nth(1)
    other_no = int(second.get_attribute("data-row"))
    act.click(second.get_by_role("button", name=f"Exclure ligne {other_no}"))
    expect(page.locator('[data-count="excluded_rows"]')).to_have_text("1")
    expect(second.locator("td.state")).to_have_text("exclue")
    act.click(second.get_by_role("button", name=f"Réintégrer ligne {other_no}"))
    expect(page.locator('[data-count="excluded_rows"]')).to_have_text("0")
    expect(page.locator('[data-count="valid_rows"]')).to_have_text(str(valid))

    # The error report is the API's.
    with page.expect_download() as download:
        act.click(page.get_by_role("button", name="Télécharger le rapport d’erreurs"))
    with api.client() as client:
        report = client.get(f"/api/jobs/{job_id}/error-report.csv")
    assert Path(download.value.path()).read_bytes() == report.content
    assert download.value.suggested_filename == "leads-page-errors.csv"

    # Change one column's mapping: the file is read again, the page follows, the fix stays.
    expect(page.locator("#mapping-source")).to_have_attribute("data-source", "automatic")
    act.select(page.get_by_label("Champ pour la colonne « Commentaire »"), "")
    expect(page.locator("#mapping-source")).to_have_attribute("data-source", "edited")
    expect(page.get_by_label("Champ pour la colonne « Commentaire »")).to_have_value("")
    expect(page.locator('[data-count="valid_rows"]')).to_have_text(str(valid))
    remapped = api.call("GET", f"/api/jobs/{job_id}")[1]["job"]
    assert remapped["mapping"][-1] is None and remapped["valid_rows"] == valid
    act.click(page.get_by_role("button", name="Revenir à la correspondance automatique"))
    expect(page.locator("#mapping-source")).to_have_attribute("data-source", "automatic")
    expect(page.get_by_label("Champ pour la colonne « Commentaire »")).to_have_value("notes")
    expect(page.locator('[data-count="valid_rows"]')).to_have_text(str(valid))

    # Commit: round-robin over two members; the button says what it will do.
    act.check(page.get_by_label("À tour de rôle entre plusieurs membres"))
    act.check(page.get_by_label(LOCAL_MEMBERS[1][1]))
    act.check(page.get_by_label(LOCAL_MEMBERS[2][1]))
    # In-file duplicates are skipped (the first occurrence wins): not counted.
    button = page.get_by_role("button", name=f"Importer {valid - job['duplicate_rows']} contacts")
    expect(button).to_be_visible()
    shot(page, "commit-choices", page.locator("#commit-form"))
    act.click(button)
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
    act.click(page.get_by_role("link", name="Retour aux imports"))
    history_row = page.locator(f'tr[data-job="{job_id}"]')
    expect(history_row).to_contain_text("leads-page.csv")
    expect(history_row).to_contain_text("terminé")
    expect(history_row).to_contain_text(LOCAL_MEMBERS[0][1])
    shot(page, "history")
    accessible(page, "history")
    act.click(history_row.get_by_role("button", name=re.compile("Annuler cet import")))
    dialog = page.get_by_role("dialog", name="Annuler cet import ?")
    expect(dialog).to_contain_text(f"{row['inserted_rows']} contacts créés")
    shot(page, "undo-dialog")
    accessible(page, "undo dialog")
    act.click(dialog.get_by_role("button", name="Supprimer les contacts créés"))
    expect(page.get_by_role("heading", name=re.compile("Import annulé"))).to_be_visible()
    assert count(page, "reverted_rows") == row["inserted_rows"]
    left = conn.execute("select count(*) as n from leads where import_job_id = %s", (job_id,)).fetchone()
    assert left["n"] == 0


def test_expired_token_and_other_organizations_job(stack: LocalStack, conn: psycopg.Connection, page: Any) -> None:
    """An expired token goes back to signing in without showing data; another
    organization's job is "not found", like a job that does not exist."""
    from playwright.sync_api import expect

    # Another organization with its own member and job.
    _other_org, other_member = add_other_org(conn)
    other = Api(stack, other_member)
    status, reply = other.call("POST", "/api/jobs", {"file_name": "secret.csv"})
    assert status == 201, reply
    other_job = reply["job"]["id"]
    mine = Api(stack)
    status, reply = mine.call("POST", "/api/jobs", {"file_name": "mine.csv"})
    assert status == 201, reply

    # Expired: the API answers 401 and the page shows the sign-in with the API's message,
    # not the history.
    expired = token(stack, expires_in=-60)
    status, reply = mine.call("GET", "/api/jobs", token=expired)
    assert status == 401, reply
    assert reply["error"] == "TokenExpired"
    page.goto(sign_in_link(stack.app_url, expired, 3600))
    expect(page.get_by_role("heading", name="Connexion")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text("Votre session a expiré : connectez-vous à nouveau.")
    expect(page.get_by_text("mine.csv")).to_have_count(0)
    assert page.evaluate("sessionStorage.getItem('lead-import.session')") is None
    shot(page, "sign-in")
    accessible(page, "sign-in")

    # A link whose fragment says the token has expired: dropped before any API call.
    calls: list[str] = []
    page.on("request", lambda request: calls.append(request.url) if "/api/jobs" in request.url else None)
    page.goto(sign_in_link(stack.app_url, token(stack), -5))
    expect(page.get_by_role("alert")).to_have_text("Votre session a expiré : connectez-vous à nouveau.")
    assert calls == []

    # Signed in: another organization's job is not found, and so is a made-up one.
    page.get_by_label("Jeton d’accès").fill(token(stack))
    page.get_by_role("button", name="Se connecter avec ce jeton").click()
    expect(page.get_by_role("rowheader", name="mine.csv")).to_be_visible()
    for job_id in (other_job, str(uuid.uuid4())):
        page.goto(f"{stack.app_url}/?job={job_id}")
        expect(page.get_by_role("heading", name=re.compile("Import introuvable"))).to_be_visible()
        expect(page.get_by_text("secret.csv")).to_have_count(0)
    accessible(page, "not found")


def test_deployed_sign_in_asks_supabase_auth_for_a_link_and_refreshes_the_token(
    database_url: str, page: Any, tmp_path: Path
) -> None:
    """Deployed (GET /api/config gives Supabase's URL and anon key): the form asks Supabase Auth
    for a magic link to the typed email, landing back on the page; the link's session is
    refreshed before it expires, again and again but not in a loop, and the API calls after
    the first token expired carry the new one and keep working."""
    from playwright.sync_api import expect

    secret, anon = "jwt-secret-of-the-project-0123456789", "anon-key-of-the-project"
    member = LOCAL_MEMBERS[1]
    users = {email: str(user_id) for user_id, email, _ in LOCAL_MEMBERS}
    life = 6  # seconds: the life of every access token Supabase Auth hands out here
    with (
        SupabaseAuth(secret, anon, users, expires_in=life) as auth,
        make_stack(
            database_url, tmp_path, SUPABASE_URL=auth.url, SUPABASE_ANON_KEY=anon, SUPABASE_JWT_SECRET=secret
        ) as stack,
    ):
        seed_local_organization(database_url)  # the stack seeds it only when not "deployed"
        page.goto(stack.app_url)
        expect(page.get_by_role("heading", name="Connexion")).to_be_visible()
        expect(page.get_by_label("Jeton d’accès")).to_have_count(0)
        accessible(page, "deployed sign-in")
        # An address without an account: Supabase Auth's refusal (create_user is false), in French.
        page.get_by_label("Adresse e-mail").fill("inconnu@exemple.fr")
        page.get_by_role("button", name="Recevoir un lien de connexion").click()
        expect(page.get_by_role("alert")).to_have_text(re.compile("^Aucun compte n’existe pour cette adresse"))
        assert auth.requests("POST", "/auth/v1/otp")[0].status == 422
        page.get_by_label("Adresse e-mail").fill(member[1])
        page.get_by_role("button", name="Recevoir un lien de connexion").click()
        expect(page.locator("#main")).to_contain_text(f"Un lien de connexion a été envoyé à {member[1]}.")
        otp = auth.requests("POST", "/auth/v1/otp")[-1]
        assert otp.headers["apikey"] == anon
        assert otp.body["email"] == member[1] and otp.body["create_user"] is False
        assert otp.query["redirect_to"] == f"{stack.app_url}/"

        # The email's link: Supabase Auth verifies it and sends the browser back to the page
        # with the session in the fragment.
        api_calls: list[tuple[float, str, str]] = []  # (when, path, token)

        def seen(request: Any) -> None:
            if "/api/jobs" in request.url:
                bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
                api_calls.append((time.time(), urlsplit(request.url).path, bearer))

        page.on("request", seen)
        page.goto(auth.links[member[1]])
        expect(page.get_by_role("heading", name="Nouvel import")).to_be_visible()
        expect(page.get_by_text("Aucun import pour l’instant.")).to_be_visible()
        assert "#" not in page.url and "access_token" not in page.url
        landed = time.time()
        (verify,) = auth.requests("GET", "/auth/v1/verify")
        first = auth.sessions[0]  # the link's
        assert api_calls and api_calls[0][2] == first["access_token"]

        # Refreshed before it expires, with the refresh token of the link's session; each
        # refresh gives a new refresh token (they rotate: a used one is refused).
        wait_until(lambda: auth.requests("POST", "/auth/v1/token"), what="a refresh")
        refresh = auth.requests("POST", "/auth/v1/token")[0]
        assert refresh.at < verify.at + life
        assert refresh.query == {"grant_type": "refresh_token"} and refresh.headers["apikey"] == anon
        assert refresh.body == {"refresh_token": first["refresh_token"]}

        # Once the first token is past its expiry (and the API's clock tolerance), the API
        # refuses it; the page's calls carry a refreshed token and still work.
        api = Api(stack, member)
        wait_until(
            lambda: api.call("GET", "/api/jobs", token=first["access_token"])[0] == 401,
            timeout=life + 30,
            what="the first token to expire",
        )
        own = auth.session(member[1])["access_token"]  # a token of this project, for the test's own call
        status, reply = api.call("POST", "/api/jobs", {"file_name": "apres-expiration.csv"}, token=own)
        assert status == 201, reply
        page.get_by_role("link", name="Import de contacts").click()
        expect(page.get_by_role("rowheader", name="apres-expiration.csv")).to_be_visible()
        # A refresh about every half life, not a loop: at most one per second since landing.
        refreshes = auth.requests("POST", "/auth/v1/token")
        assert 2 <= len(refreshes) <= time.time() - landed + 1, len(refreshes)
        refreshed = {s["access_token"] for s in auth.sessions[1:]}
        assert api_calls[-1][1] == "/api/jobs" and api_calls[-1][2] in refreshed
        later = page.evaluate("JSON.parse(sessionStorage.getItem('lead-import.session'))")
        assert later["access_token"] in refreshed
        assert all(r.status == 200 for r in refreshes)


def sign_in(page: Any, stack: LocalStack) -> None:
    page.goto(sign_in_link(stack.app_url, token(stack), 3600))
    from playwright.sync_api import expect

    expect(page.get_by_role("heading", name="Nouvel import")).to_be_visible()


def upload(page: Any, path: Path) -> None:
    page.get_by_label(re.compile("Fichier de contacts")).set_input_files(str(path))
    page.get_by_role("button", name="Envoyer et analyser").click()


def progress_seen(page: Any, until: Any, timeout: float = 60, reload_after: int | None = None) -> list[int]:
    """The rows-done values the progress bar showed, in order, until `until` is visible;
    with `reload_after`, the page is reloaded once that many values were seen."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while not until.is_visible():
        assert time.monotonic() < deadline, f"timed out; progress seen: {seen}"
        done = page.evaluate("document.getElementById('job-progress')?.dataset.done ?? null")
        if done is not None and (not seen or seen[-1] != int(done)):
            seen.append(int(done))
            if reload_after is not None and len(seen) == reload_after:
                page.reload()
        time.sleep(0.05)
    return seen


def test_progress_moves_and_a_commit_cancelled_from_the_page_resumes(
    server_url: str, database_url: str, conn: psycopg.Connection, page: Any, tmp_path: Path
) -> None:
    """Slices of 50 rows that QStash delivers half a second apart: the page shows the parse
    moving (at least two values before the end), the commit is stopped from the page while
    under way, and retried from the page it ends exactly as an undisturbed import."""
    from playwright.sync_api import expect

    path = tmp_path / "leads-slow.csv"
    # 500 rows: ten parse slices, about 4.5 s, for a page that polls once a second and
    # reloads once on the way (with 300, a loaded machine sometimes let it see only two).
    data, stats = sample(path, rows=500, seed=11)
    baseline = undisturbed(server_url, tmp_path / "baseline", data)
    with make_stack(database_url, tmp_path, **SMALL_SLICES, LOCAL_QSTASH_FAULTS="delay_ms=450-450") as stack:
        sign_in(page, stack)
        upload(page, path)
        review = page.get_by_role("heading", name="Résultat de l’analyse")
        seen = progress_seen(page, review, reload_after=2)  # a reload mid-parse resumes watching
        mid = [v for v in seen if 0 < v < stats.rows]
        assert len(set(mid)) >= 3, f"progress seen while parsing: {seen}"
        job_id = job_id_of(page)

        # Commit round-robin over the three members (as the undisturbed run), stop it mid-way.
        page.get_by_label("À tour de rôle entre plusieurs membres").check()
        for member in LOCAL_MEMBERS:
            page.get_by_label(member[1]).check()
        page.get_by_role("button", name=re.compile(r"Importer \d+ contacts")).click()
        expect(page.get_by_role("heading", name="Progression : import en cours")).to_be_visible()
        wait_until(
            lambda: int(page.evaluate("document.getElementById('job-progress')?.dataset.done ?? 0")) > 0,
            what="the commit's progress",
        )
        shot(page, "progress")
        accessible(page, "progress")
        assert job(conn, job_id)["status"] == "committing"
        page.get_by_role("button", name="Arrêter").click()
        expect(page.get_by_text("L’import a été arrêté")).to_be_visible()
        stopped = job(conn, job_id)
        assert stopped["status"] == "cancelled"
        assert 0 < stopped["inserted_rows"] + stopped["skipped_rows"] < stats.valid, "stopped mid-commit"

        page.get_by_role("button", name="Réessayer").click()
        expect(page.get_by_role("heading", name=re.compile("Import terminé"))).to_be_visible()
        stack.wait_idle()
        same_as_baseline(outcome(conn, job_id), baseline)


MISSING_FR = "Le fichier envoyé n’est plus dans le stockage. Envoyez-le à nouveau et lancez un nouvel import."


def test_a_failed_job_shows_its_message_and_retries_from_the_page(
    database_url: str, conn: psycopg.Connection, page: Any, tmp_path: Path
) -> None:
    """The file removed from storage mid-parse: the page shows the job's message, in French
    by its code; with the file back, "Réessayer" resumes it to the review."""
    from playwright.sync_api import expect

    rows = "".join(f"l{i}@exemple.fr;06 12 34 {i // 100:02d} {i % 100:02d}\r\n" for i in range(40))
    data = ("E-mail;Téléphone\r\n" + rows).encode()
    with make_stack(
        database_url, tmp_path, IMPORT_PARSE_SLICE_ROWS="5", LOCAL_QSTASH_FAULTS="delay_ms=300-300"
    ) as stack:
        api = Api(stack)
        job_id = api.create(conn, data, "disparu.csv")
        sign_in(page, stack)
        api.start(job_id)
        page.goto(f"{stack.app_url}/?job={job_id}")
        expect(page.get_by_role("progressbar")).to_be_visible()
        wait_until(lambda: job(conn, job_id)["total_rows"] >= 5, what="the first parse slice")
        key = job(conn, job_id)["storage_path"]
        storage(stack).delete(key)
        failed = finished(conn, job_id, "failed")
        assert failed["error_code"] == "file_missing"
        message = page.get_by_role("alert").filter(has_text="L’import a échoué")
        expect(message).to_have_text(f"L’import a échoué : {MISSING_FR}")
        shot(page, "failed")
        accessible(page, "failed")

        # The history shows the message next to its retry.
        page.get_by_role("link", name="Retour aux imports").click()
        row = page.locator(f'tr[data-job="{job_id}"]')
        expect(row).to_contain_text(MISSING_FR)
        expect(row).not_to_contain_text(failed["error_message"])
        expect(row.get_by_role("button", name="Réessayer disparu.csv")).to_be_visible()
        row.get_by_role("link", name="Ouvrir disparu.csv").click()

        storage(stack).put(key, data)
        page.get_by_role("button", name="Réessayer").click()
        expect(page.get_by_role("heading", name="Résultat de l’analyse")).to_be_visible()
        assert count(page, "total_rows") == 40 == job(conn, job_id)["total_rows"]


def test_the_history_offers_each_job_the_actions_its_status_allows(
    stack: LocalStack, conn: psycopg.Connection, page: Any, tmp_path: Path
) -> None:
    """Each history row has the actions its status allows: a failed job its retry, described
    by its message; a completed one its undo; a pending or ready one its cancel. From the
    rows: cancel (the focus stays in the row), retry of the failed job to its review, undo
    of the completed one behind its confirmation (kept, then confirmed)."""
    from playwright.sync_api import expect

    api = Api(stack)
    good, stats = sample(tmp_path / "bon.csv", rows=30, seed=4)
    completed = api.import_file(conn, good, "termine.csv")
    ready = api.parse(conn, good, "a-valider.csv")["id"]
    status, reply = api.call("POST", "/api/jobs", {"file_name": "en-attente.csv"})
    assert status == 201, reply
    pending = reply["job"]["id"]
    # A file without an email or phone column fails at validating; with a good file in its
    # place, its retry goes through.
    failed = api.create(conn, write_csv(tmp_path / "sans-contact.csv", ["Nom", "Ville"], [["Léa", "Lyon"]]))
    api.start(failed)
    message = finished(conn, failed, "failed")["error_message"]
    assert message

    sign_in(page, stack)
    row = {job_id: page.locator(f'tr[data-job="{job_id}"]') for job_id in (completed["id"], ready, pending, failed)}
    expect(row[failed]).to_contain_text(message)

    def actions(job_id: Any) -> list[str]:
        return [" ".join(t.split()) for t in row[job_id].locator("td.actions :is(a, button)").all_text_contents()]

    expect(row[failed].get_by_role("button")).to_have_count(1)
    assert actions(failed) == ["Ouvrir sans-contact.csv", "Réessayer sans-contact.csv"]
    assert actions(completed["id"]) == ["Ouvrir termine.csv", "Annuler cet import termine.csv"]
    assert actions(pending) == ["Ouvrir en-attente.csv", "Arrêter en-attente.csv"]
    assert actions(ready) == ["Ouvrir a-valider.csv", "Arrêter a-valider.csv"]
    retry = row[failed].get_by_role("button", name="Réessayer sans-contact.csv")
    expect(retry).to_have_accessible_description(message)
    accessible(page, "history with every action")

    # Cancel the ready job from its row, with the keyboard: it is cancelled, its row offers
    # the retry, and the focus is there.
    keys = Keyboard(page)
    keys.click(row[ready].get_by_role("button", name="Arrêter a-valider.csv"))
    expect(row[ready]).to_contain_text("arrêté")
    again = row[ready].get_by_role("button", name="Réessayer a-valider.csv")
    expect(again).to_be_focused()
    assert job(conn, ready)["status"] == "cancelled"

    # Undo from its row: kept first (nothing happens), then confirmed.
    row[completed["id"]].get_by_role("button", name="Annuler cet import termine.csv").click()
    dialog = page.get_by_role("dialog", name="Annuler cet import ?")
    expect(dialog).to_contain_text(f"{completed['inserted_rows']} contacts créés")
    dialog.get_by_role("button", name="Garder l’import").click()
    expect(dialog).to_have_count(0)
    assert job(conn, completed["id"])["status"] == "completed"
    row[completed["id"]].get_by_role("button", name="Annuler cet import termine.csv").click()
    dialog.get_by_role("button", name="Supprimer les contacts créés").click()
    expect(page.get_by_role("heading", name=re.compile("Import annulé"))).to_be_visible()
    assert job(conn, completed["id"])["status"] == "reverted"
    left = conn.execute("select count(*) as n from leads where import_job_id = %s", (completed["id"],)).fetchone()
    assert left["n"] == 0

    # Retry the failed job from its row, its file replaced by a good one: to its review.
    storage(stack).put(job(conn, failed)["storage_path"], good)
    page.get_by_role("link", name="Retour aux imports").click()
    row[failed].get_by_role("button", name="Réessayer sans-contact.csv").click()
    expect(page).to_have_url(re.compile(f"job={failed}"))
    expect(page.get_by_role("heading", name="Résultat de l’analyse")).to_be_visible()
    assert count(page, "total_rows") == stats.rows == job(conn, failed)["total_rows"]


def test_a_job_the_service_stopped_is_worded_in_french_with_its_detail(
    stack: LocalStack, conn: psycopg.Connection, page: Any
) -> None:
    """A job the sweep stopped (no progress) or that QStash gave up on: the French page says
    what happened and what to do in French, with the service's English message, whose numbers
    it does not translate, as the detail."""
    from playwright.sync_api import expect

    api = Api(stack)
    stopped = {
        "stalled": (
            "L’import n’avançait plus et a été arrêté.",
            "The import made no progress for 90 s, 3 times in a row",
        ),
        "delivery_failed": (
            "Une étape de l’import a échoué malgré plusieurs tentatives.",
            "The parse step stopped at slice 4: QStash gave up after 5 retries (last answer: 503)",
        ),
    }
    sign_in(page, stack)
    for code, (french, english) in stopped.items():
        status, reply = api.call("POST", "/api/jobs", {"file_name": f"{code}.csv"})
        assert status == 201, reply
        job_id = reply["job"]["id"]
        # The state the sweep or the failure callback leaves (tests/test_retry.py makes them for real).
        conn.execute(
            "update import_jobs set status = 'failed', error_code = %s, error_message = %s, finished_at = now()"
            " where id = %s",
            (code, english, job_id),
        )
        page.goto(f"{stack.app_url}/?job={job_id}")
        alert = page.locator("p.error[role=alert]")
        expect(alert).to_contain_text(french)
        expect(alert).to_contain_text(f"(Détail : {english})")


def test_an_invalid_row_on_the_second_page_is_fixed_in_place(
    stack: LocalStack, conn: psycopg.Connection, page: Any, tmp_path: Path
) -> None:
    """Twenty invalid rows, ten a page: the keyboard goes to the second page (the focus on
    its table), a row there is fixed in place and the counts move; the second page is the
    last (no next page that would be empty), and the first page is still the first ten."""
    from playwright.sync_api import expect

    invalid = [["", "inconnu", "ACME", f"Ville {i}"] for i in range(20)]
    valid = [[f"l{i}@exemple.fr", phone(i), "ACME", "Lyon"] for i in range(5)]
    api = Api(stack)
    job_id = api.parse(conn, write_csv(tmp_path / "vingt.csv", LEAD_HEADER, invalid + valid))["id"]
    assert (job(conn, job_id)["invalid_rows"], job(conn, job_id)["valid_rows"]) == (20, 5)
    listed = api.call("GET", f"/api/jobs/{job_id}/invalid-rows?limit=100")[1]["rows"]
    numbers = [r["row_no"] for r in listed]
    assert len(numbers) == 20

    sign_in(page, stack)
    page.goto(f"{stack.app_url}/?job={job_id}")
    rows = page.locator("table.invalid tbody tr[data-row]")
    expect(rows).to_have_count(10)
    assert [int(n) for n in rows.evaluate_all("rs => rs.map(r => r.dataset.row)")] == numbers[:10]
    expect(page.get_by_role("button", name="Page précédente")).to_have_count(0)

    keys = Keyboard(page)
    keys.click(page.get_by_role("button", name="Page suivante"))
    second = page.get_by_role("table", name="Lignes invalides Page 2")
    expect(second).to_be_focused()
    expect(rows).to_have_count(10)
    assert [int(n) for n in rows.evaluate_all("rs => rs.map(r => r.dataset.row)")] == numbers[10:]
    expect(page.get_by_role("button", name="Page suivante")).to_have_count(0)
    accessible(page, "review, second page of invalid rows")

    row_no = numbers[14]
    row = page.locator(f'table.invalid tbody tr[data-row="{row_no}"]')
    keys.click(row.get_by_role("button", name=f"Corriger la ligne {row_no}"))
    keys.fill(page.get_by_label(f"Téléphone (ligne {row_no})"), "06 12 34 56 78")
    keys.click(page.get_by_role("button", name="Enregistrer"))
    expect(row.locator("td.state")).to_contain_text("valides")
    expect(page.locator('[data-count="valid_rows"]')).to_have_text("6")
    expect(page.locator('[data-count="invalid_rows"]')).to_have_text("19")
    expect(page.locator('[data-count="fixed_rows"]')).to_have_text("1")
    fixed = api.call("GET", f"/api/jobs/{job_id}/rows/{row_no}")[1]["row"]
    assert fixed["valid"] and fixed["values"]["Téléphone"] == "06 12 34 56 78"

    keys.click(page.get_by_role("button", name="Page précédente"))
    expect(page.get_by_role("table", name="Lignes invalides Page 1")).to_be_focused()
    assert [int(n) for n in rows.evaluate_all("rs => rs.map(r => r.dataset.row)")] == numbers[:10]
    keys.click(page.get_by_role("button", name="Page suivante"))
    expect(rows).to_have_count(9)  # the fixed row is no longer invalid
    assert row_no not in [int(n) for n in rows.evaluate_all("rs => rs.map(r => r.dataset.row)")]


def test_a_token_the_api_refuses_is_refreshed_once_before_signing_out(
    database_url: str, page: Any, tmp_path: Path
) -> None:
    """The API refuses a token the tab still takes for valid (a computer that slept past the
    refresh): the page refreshes the session once and retries, and the user stays signed in.
    When the refresh is refused too, the page goes back to signing in."""
    from playwright.sync_api import expect

    secret, anon = "jwt-secret-of-the-project-0123456789", "anon-key-of-the-project"
    user_id, email, _ = LOCAL_MEMBERS[1]
    users = {e: str(u) for u, e, _ in LOCAL_MEMBERS}
    with (
        SupabaseAuth(secret, anon, users) as auth,
        make_stack(
            database_url, tmp_path, SUPABASE_URL=auth.url, SUPABASE_ANON_KEY=anon, SUPABASE_JWT_SECRET=secret
        ) as stack,
    ):
        seed_local_organization(database_url)
        expired = mint_token(secret, str(user_id), email, expires_in=-120, issuer=f"{auth.url}/auth/v1")
        session = auth.session(email)

        def land(refresh_token: str) -> None:
            # A session the tab believes good for an hour, whose access token the API refuses.
            page.goto(f"{stack.app_url}/#access_token={expired}&expires_in=3600&refresh_token={refresh_token}")

        land(session["refresh_token"])
        expect(page.get_by_text("Aucun import pour l’instant.")).to_be_visible()
        (refresh,) = auth.requests("POST", "/auth/v1/token")
        assert refresh.body == {"refresh_token": session["refresh_token"]}

        land("a-refresh-token-supabase-never-gave")
        expect(page.get_by_role("heading", name="Connexion")).to_be_visible()
        expect(page.get_by_text("Aucun import pour l’instant.")).to_have_count(0)
        assert len(auth.requests("POST", "/auth/v1/token")) == 2


def test_the_commit_choices_preselect_the_owner_column_found_ask_for_a_member_and_count_what_will_be_imported(
    stack: LocalStack, conn: psycopg.Connection, page: Any, tmp_path: Path
) -> None:
    """The owner column the mapping found is the one preselected; without one, the user is
    asked to choose (no column picked silently). The commit button counts what the commit
    will try to import: the valid rows less the in-file duplicates it will skip, unless
    duplicates are created anyway; the summary's created leads are that count."""
    from playwright.sync_api import expect

    api = Api(stack)
    header = ["E-mail", "Téléphone", "Ville", "Commercial"]
    owned = [[f"l{i}@exemple.fr", phone(i), "Lyon", LOCAL_MEMBERS[i % 3][1]] for i in range(5)]
    with_owner = api.parse(conn, write_csv(tmp_path / "avec-commercial.csv", header, owned))
    assert with_owner["mapping"][3] == "owner"
    sign_in(page, stack)
    page.goto(f"{stack.app_url}/?job={with_owner['id']}")
    expect(page.get_by_label("Colonne", exact=True)).to_have_value("Commercial")
    expect(page.get_by_label("Selon une colonne du fichier (e-mail du membre)")).to_be_checked()

    # Ten valid rows, three of them repeating an earlier one (the email in other letters).
    rows = [[f"m{i}@exemple.fr", phone(i), "Paris"] for i in range(7)]
    rows += [[f"M{i}@Exemple.FR", phone(100 + i), "Nice"] for i in range(3)]
    plain = api.parse(conn, write_csv(tmp_path / "doublons.csv", header[:3], rows))
    assert (plain["valid_rows"], plain["duplicate_rows"]) == (10, 3)
    page.goto(f"{stack.app_url}/?job={plain['id']}")
    column = page.get_by_label("Colonne", exact=True)
    expect(column).to_have_value("")
    expect(column.locator("option:checked")).to_have_text("— choisissez une colonne —")
    button = page.locator("#commit-button")
    expect(button).to_have_text("Importer 7 contacts")
    page.get_by_label("Créer quand même").check()
    expect(button).to_have_text("Importer 10 contacts")
    page.get_by_label("Mettre à jour").check()
    expect(button).to_have_text("Importer 7 contacts")
    page.get_by_label("Ignorer").check()

    # A column assignment without a column: asked for, nothing sent.
    page.get_by_label("Selon une colonne du fichier (e-mail du membre)").check()
    button.click()
    expect(page.get_by_role("alert")).to_have_text("Choisissez la colonne qui contient l’e-mail du propriétaire.")
    expect(column).to_be_focused()
    assert job(conn, plain["id"])["status"] == "ready"

    # One member, not yet chosen (none is picked silently either): asked for, nothing sent;
    # then chosen, and the leads are theirs.
    page.get_by_label("Un membre").check()
    member = page.get_by_label("Membre", exact=True)
    expect(member.locator("option:checked")).to_have_text("— choisissez un membre —")
    button.click()
    expect(page.get_by_role("alert")).to_have_text("Choisissez le membre à qui attribuer les contacts.")
    expect(member).to_be_focused()
    assert job(conn, plain["id"])["status"] == "ready"
    user_id, email, _ = LOCAL_MEMBERS[1]
    member.select_option(email)
    button.click()
    expect(page.get_by_role("heading", name=re.compile("Import terminé"))).to_be_visible()
    done = finished(conn, plain["id"], "completed")
    assert (done["inserted_rows"], done["skipped_rows"]) == (7, 3)
    assert count(page, "inserted_rows") == 7
    owners = conn.execute(
        "select owner_id, count(*) as n from leads where import_job_id = %s group by 1", (plain["id"],)
    )
    assert [(r["owner_id"], r["n"]) for r in owners] == [(user_id, 7)]


def test_an_api_error_shows_its_message(
    browser: Any, stack: LocalStack, server_url: str, database_url: str, page: Any
) -> None:
    """The database refusing connections: the page says what the API says (503,
    `database_unavailable`), in French on the French page and as the API's own message on the
    English one; no blank screen; back once it accepts connections again."""
    from playwright.sync_api import expect

    french = "La base de données ne répond pas. Réessayez dans un instant."
    sign_in(page, stack)
    english = browser.new_context(locale="en-US")
    english_page = english.new_page()
    english_page.goto(sign_in_link(stack.app_url, token(stack), 3600))
    expect(english_page.get_by_role("heading", name="New import")).to_be_visible()
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    with db.connect(server_url) as admin:
        admin.execute(f'alter database "{name}" allow_connections false')  # a test database's own name
        admin.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s and pid <> pg_backend_pid()",
            (name,),
        )
        try:
            status, reply = Api(stack).call("GET", "/api/jobs")
            assert (status, reply["error"]) == (503, "database_unavailable"), reply
            page.reload()
            expect(page.locator("#history")).to_contain_text(french)
            page.goto(f"{stack.app_url}/?job={uuid.uuid4()}")
            expect(page.get_by_role("alert")).to_have_text(french)
            shot(page, "api-error")
            accessible(page, "api error")
            english_page.reload()
            expect(english_page.locator("#history")).to_contain_text(reply["message"])
        finally:
            admin.execute(f'alter database "{name}" allow_connections true')
            english.close()
    page.goto(stack.app_url)
    expect(page.get_by_role("heading", name="Historique des imports")).to_be_visible()
    # A code the page has no French for shows the API's own message.
    fallback = page.evaluate("import('./i18n.js').then(m => m.apiMessage('a_new_code', 'What the API says.'))")
    assert fallback == "What the API says."


def test_english_when_the_browser_prefers_it(browser: Any, stack: LocalStack) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(locale="en-US")
    try:
        page = context.new_page()
        page.goto(sign_in_link(stack.app_url, token(stack), 3600))
        expect(page.get_by_role("heading", name="New import")).to_be_visible()
        assert page.evaluate("document.documentElement.lang") == "en"
        expect(page.get_by_label(re.compile("Lead file"))).to_be_visible()
    finally:
        context.close()


def test_the_focus_stays_where_the_keyboard_put_it_while_the_history_loads(stack: LocalStack, page: Any) -> None:
    """A keyboard user who reaches the file chooser before the history has loaded keeps the
    focus there when it arrives (the screen takes the focus to its title once, when drawn)."""
    from playwright.sync_api import expect

    held: list[Any] = []
    page.route(re.compile(r"/api/jobs\?limit="), lambda route: held.append(route))
    page.goto(sign_in_link(stack.app_url, token(stack), 3600))
    expect(page.get_by_role("heading", name="Nouvel import")).to_be_visible()
    chooser = page.get_by_label(re.compile("Fichier de contacts"))
    Keyboard(page).tab_to(chooser)
    page.wait_for_function("() => true")  # lets Playwright hand over the held request
    assert held, "the history request was not held"
    held[0].continue_()
    expect(page.get_by_text("Aucun import pour l’instant.")).to_be_visible()
    assert Keyboard(page).focused(chooser)


def test_a_file_the_import_cannot_take_is_refused_before_upload(
    database_url: str, conn: psycopg.Connection, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    big = tmp_path / "gros.csv"
    big.write_bytes(b"E-mail\r\n" + b"x@exemple.fr\r\n" * 100_000)  # 1.4 MB
    sheet = tmp_path / "leads.xlsb"
    sheet.write_bytes(b"PK\x03\x04")
    with make_stack(database_url, tmp_path, IMPORT_MAX_FILE_MB="1") as stack:
        sign_in(page, stack)
        upload(page, big)
        expect(page.get_by_role("alert")).to_contain_text("au plus 1 Mo")
        upload(page, sheet)
        expect(page.get_by_role("alert")).to_contain_text("n’est ni un fichier CSV")
        assert conn.execute("select count(*) as n from import_jobs").fetchone()["n"] == 0


def test_upload_shows_its_progress(stack: LocalStack, conn: psycopg.Connection, page: Any, tmp_path: Path) -> None:
    """A 6 MB file sent at 3 MB/s (Chromium's network throttling): the upload's progress bar
    shows it moving, then the job starts from the bytes that arrived."""
    from playwright.sync_api import expect

    path = tmp_path / "gros.csv"
    path.write_bytes(b"E-mail;Ville\r\n" + b"".join(b"x%07d@exemple.fr;Lyon\r\n" % i for i in range(240_000)))
    sign_in(page, stack)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 3_000_000},
    )
    upload(page, path)
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while "?job=" not in page.url:
        assert time.monotonic() < deadline, f"upload progress seen: {seen}"
        value = page.evaluate("(b => b && `${b.value}/${b.max}`)(document.getElementById('upload-progress'))")
        if value:
            seen.add(value)
        time.sleep(0.05)
    size = path.stat().st_size
    moving = {v for v in seen if 0 < float(v.split("/")[0]) < size}
    assert len(moving) >= 2, seen
    job_id = job_id_of(page)
    expect(page.get_by_role("heading", name=re.compile("leads|gros"))).to_be_visible()
    assert job(conn, job_id)["status"] in ("validating", "parsing", "ready")
    cdp.detach()


def test_the_same_file_again_is_flagged_with_a_link(
    stack: LocalStack, conn: psycopg.Connection, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    data, _ = sample(tmp_path / "deux-fois.csv", rows=30, seed=3)
    api = Api(stack)
    first = api.parse(conn, data, "deux-fois.csv")["id"]
    second = api.parse(conn, data, "deux-fois.csv")["id"]
    sign_in(page, stack)
    page.goto(f"{stack.app_url}/?job={second}")
    note = page.get_by_role("note")
    expect(note).to_contain_text("Ce fichier a déjà été importé.")
    note.get_by_role("link", name="Voir l’import précédent").click()
    expect(page).to_have_url(re.compile(f"job={first}"))
    expect(page.get_by_role("note")).to_have_count(0)


def test_a_workbook_is_read_and_another_sheet_chosen_from_the_page(
    stack: LocalStack, conn: psycopg.Connection, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from lib.parse.sample_workbook import SECOND_SHEET, second_sheet_rows, write_sample_workbook

    path = tmp_path / "salon.xlsx"
    stats = write_sample_workbook(path, rows=40, seed=5)
    sign_in(page, stack)
    upload(page, path)
    sheet = page.get_by_label("Feuille lue")
    expect(sheet).to_be_visible(timeout=TIMEOUT_MS)
    job_id = job_id_of(page)
    assert job(conn, job_id)["total_rows"] == stats.rows
    assert job(conn, job_id)["workbook"]["sheet"] == "Leads"
    shot(page, "review-workbook")
    accessible(page, "review of a workbook")
    sheet.select_option(SECOND_SHEET)
    page.get_by_role("button", name="Lire cette feuille").click()
    wait_until(
        lambda: job(conn, job_id)["status"] == "ready" and job(conn, job_id)["workbook"]["sheet"] == SECOND_SHEET
    )
    expect(page.get_by_label("Feuille lue")).to_have_value(SECOND_SHEET, timeout=TIMEOUT_MS)
    assert job(conn, job_id)["total_rows"] == len(list(second_sheet_rows()))


def test_the_accessibility_check_finds_violations(page: Any) -> None:
    """The check the screens pass is not vacuous: an unlabelled field and a low-contrast
    text are serious violations to it."""
    page.set_content('<html lang="fr"><title>t</title><main><input><p style="color:#ccc">pâle</p></main></html>')
    with pytest.raises(AssertionError, match=r"label.*color-contrast|color-contrast.*label"):
        accessible(page, "bad page")
