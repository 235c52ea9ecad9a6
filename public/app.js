// The import page: sign in, upload, watch, review and fix, choose, commit, undo, history.
// Plain DOM (no framework, no build step): every text from the API or the file goes in as
// text nodes, never as HTML.

import {
  api,
  ApiError,
  loadConfig,
  sendMagicLink,
  session,
  sessionExpired,
  setSignedOutHandler,
  signOut,
  takeFragment,
  upload,
  useToken,
} from "./api.js";
import { duration, jobError, lang, num, reviewText, t, when } from "./i18n.js";

const ACTIVE = new Set(["validating", "parsing", "committing", "reverting"]);
const FILE_TYPES = ["csv", "txt", "tsv", "xlsx", "xlsm", "ods", "xls"];
const FIELDS = [
  "civility", "first_name", "last_name", "full_name", "email", "phone", "company", "job_title",
  "address", "postal_code", "city", "country", "source", "notes", "owner",
];
const FIELD_NAMES = {
  fr: {
    civility: "Civilité", first_name: "Prénom", last_name: "Nom", full_name: "Nom complet", email: "E-mail",
    phone: "Téléphone", company: "Société", job_title: "Fonction", address: "Adresse", postal_code: "Code postal",
    city: "Ville", country: "Pays", source: "Source", notes: "Notes", owner: "Propriétaire (e-mail d’un membre)",
  },
  en: {
    civility: "Title", first_name: "First name", last_name: "Last name", full_name: "Full name", email: "Email",
    phone: "Phone", company: "Company", job_title: "Job title", address: "Address", postal_code: "Postal code",
    city: "City", country: "Country", source: "Source", notes: "Notes", owner: "Owner (a member’s email)",
  },
}[lang];
const INVALID_PAGE = 10;

const main = document.getElementById("main");
const live = document.getElementById("live");
const alertBox = document.getElementById("alert");
const signOutButton = document.getElementById("sign-out");

let config = { max_file_mb: 100 };
let view = 0; // bumped by every navigation: async work of an older view stops
let pollTimer = null;
let signInMessage = null;
// Set by a navigation: the next screen drawn takes the focus to its title, as soon as it is drawn
// (not after its slower parts load, which would pull the focus from a control the user reached).
let focusOnScreen = false;

// -- small helpers -------------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function showError(err) {
  alertBox.textContent = err?.message || String(err);
  alertBox.hidden = false;
}

function clearError() {
  alertBox.textContent = "";
  alertBox.hidden = true;
}

function announce(text) {
  live.textContent = text;
}

/** Run an action from a control: the control is disabled meanwhile, any error is shown. */
async function act(control, fn) {
  clearError();
  if (control) control.disabled = true;
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) showError(err);
    return undefined;
  } finally {
    if (control && control.isConnected) control.disabled = false;
  }
}

function screen(title, ...content) {
  const heading = h("h2", { tabindex: "-1", id: "screen-title" }, title);
  main.replaceChildren(heading, ...content);
  document.title = `${title} — ${t("title")}`;
  if (focusOnScreen) {
    focusOnScreen = false;
    heading.focus();
  }
  return heading;
}

function focusTitle() {
  document.getElementById("screen-title")?.focus();
}

function jobLink(id, text) {
  return h("a", { href: `?job=${encodeURIComponent(id)}`, onclick: (e) => { e.preventDefault(); go(id); } }, text);
}

function statusText(status) {
  return t(`status_${status}`);
}

// -- navigation ----------------------------------------------------------------------------------

function go(jobId) {
  history.pushState(null, "", jobId ? `?job=${encodeURIComponent(jobId)}` : window.location.pathname);
  route();
}

async function route() {
  const my = ++view;
  focusOnScreen = true;
  clearTimeout(pollTimer);
  clearError();
  if (!session()) {
    signOutButton.hidden = true;
    renderSignIn(signInMessage || (sessionExpired() ? t("signin_expired") : null));
    return;
  }
  signInMessage = null;
  signOutButton.hidden = false;
  const id = new URLSearchParams(window.location.search).get("job");
  if (id) await showJob(id, my);
  else await showHome(my);
}

setSignedOutHandler((message) => {
  signInMessage = message;
  ++view;
  clearTimeout(pollTimer);
  signOutButton.hidden = true;
  renderSignIn(message);
  focusTitle();
});

// -- signing in ----------------------------------------------------------------------------------

function renderSignIn(message) {
  document.title = `${t("signin_title")} — ${t("title")}`;
  const content = [h("p", {}, t("signin_intro"))];
  if (config.supabase_url && config.supabase_anon_key) {
    const input = h("input", { id: "signin-email", type: "email", name: "email", autocomplete: "email", required: true });
    const form = h(
      "form",
      {
        onsubmit: (e) => {
          e.preventDefault();
          act(form.querySelector("button"), async () => {
            await sendMagicLink(input.value.trim());
            // The form goes, and the focus with it: to the message (the live region says it too).
            const sent = h("p", { id: "signin-sent", tabindex: "-1" }, t("signin_sent", { email: input.value.trim() }));
            form.replaceWith(sent);
            sent.focus();
            announce(t("signin_sent", { email: input.value.trim() }));
          });
        },
      },
      h("label", { for: "signin-email" }, t("signin_email")),
      input,
      h("button", { type: "submit" }, t("signin_send")),
    );
    content.push(form);
  } else {
    const input = h("input", { id: "signin-token", type: "password", name: "token", autocomplete: "off", required: true });
    content.push(
      h("p", {}, t("signin_local")),
      h(
        "form",
        {
          onsubmit: (e) => {
            e.preventDefault();
            useToken(input.value);
            signInMessage = null;
            route();
          },
        },
        h("label", { for: "signin-token" }, t("signin_token")),
        input,
        h("button", { type: "submit" }, t("signin_use_token")),
      ),
    );
  }
  screen(t("signin_title"), ...content);
  if (message) showError({ message });
}

// -- home: upload and history --------------------------------------------------------------------

async function showHome(my) {
  const fileInput = h("input", { id: "file", type: "file", name: "file", accept: ".csv,.txt,.tsv,.xlsx,.xlsm,.ods,.xls,text/csv,text/plain" });
  const progress = h("progress", { id: "upload-progress", max: "1", value: "0", "aria-labelledby": "upload-label" });
  const progressText = h("span", { id: "upload-text" });
  const progressBox = h("div", { class: "progress", hidden: true }, h("span", { id: "upload-label" }, t("upload_progress")), progress, progressText);
  const form = h(
    "form",
    {
      id: "upload-form",
      onsubmit: (e) => {
        e.preventDefault();
        act(form.querySelector("button"), () => startImport(fileInput.files[0], progressBox, progress, progressText));
      },
    },
    h("label", { for: "file" }, t("upload_file", { mb: num(config.max_file_mb) })),
    fileInput,
    h("button", { type: "submit" }, t("upload_button")),
    progressBox,
  );
  const historyBox = h("div", { id: "history" }, h("p", {}, t("loading")));
  screen(
    t("upload_title"),
    form,
    h("section", { "aria-labelledby": "history-title" }, h("h2", { id: "history-title" }, t("history_title")), historyBox),
  );
  await renderHistory(historyBox, my);
}

async function startImport(file, box, progress, text) {
  if (!file) throw new Error(t("file_required"));
  const ext = file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
  if (!FILE_TYPES.includes(ext)) throw new Error(t("file_type", { name: file.name }));
  if (file.size === 0) throw new Error(t("file_empty"));
  if (file.size > config.max_file_mb * 1024 * 1024) {
    throw new Error(t("file_too_large", { size: num(Math.ceil(file.size / 1024 / 1024)), mb: num(config.max_file_mb) }));
  }
  const created = await api.post("/api/jobs", { file_name: file.name, file_size: file.size });
  const jobId = created.job.id;
  box.hidden = false;
  const mb = (n) => `${num(Math.round((n / 1024 / 1024) * 10) / 10)} Mo`.replace("Mo", lang === "en" ? "MB" : "Mo");
  await upload(created.upload_url, file, (done, total) => {
    progress.max = total || 1;
    progress.value = done;
    text.textContent = t("upload_sent", { done: mb(done), total: mb(total) });
  });
  await api.post(`/api/jobs/${jobId}/start`);
  go(jobId);
}

async function renderHistory(box, my) {
  let jobs, members;
  try {
    jobs = (await api.get("/api/jobs?limit=50")).jobs;
    members = jobs.length ? await memberNames(jobs[0].organization_id) : {};
  } catch (err) {
    if (my === view) box.replaceChildren(h("p", { class: "error" }, err.message));
    return;
  }
  if (my !== view) return;
  if (!jobs.length) {
    box.replaceChildren(h("p", {}, t("history_empty")));
    return;
  }
  const rows = jobs.map((job) => {
    const actions = [jobLink(job.id, h("span", {}, t("open"), h("span", { class: "visually-hidden" }, ` ${job.file_name}`)))];
    // A failed job's message is in its status cell, and describes its retry.
    const messageId = `history-error-${job.id}`;
    const button = (label, fn, attrs = {}) =>
      h("button", { type: "button", onclick: (e) => act(e.currentTarget, fn), ...attrs }, label, h("span", { class: "visually-hidden" }, ` ${job.file_name}`));
    if (job.status === "failed" || job.status === "cancelled") {
      const describedBy = job.status === "failed" && job.error_message ? messageId : null;
      actions.push(button(t("retry"), async () => { await api.post(`/api/jobs/${job.id}/retry`); go(job.id); }, { "aria-describedby": describedBy }));
    }
    // The API cancels a pending, ready or running job.
    if (ACTIVE.has(job.status) || job.status === "pending" || job.status === "ready") {
      actions.push(button(t("cancel"), async () => {
        const reply = await api.post(`/api/jobs/${job.id}/cancel`);
        announce(t("history_status", { file: job.file_name, status: statusText(reply.job.status) }));
        await renderHistory(box, my);
        // The button went with the old row: the focus goes to the new row's action (or its link).
        const row = box.querySelector(`tr[data-job="${CSS.escape(job.id)}"]`);
        (row?.querySelector("td.actions button") || row?.querySelector("td.actions a"))?.focus();
      }));
    }
    if (job.status === "completed") {
      actions.push(button(t("undo"), async () => {
        if (await confirmUndo(job)) {
          await api.post(`/api/jobs/${job.id}/revert`);
          go(job.id);
        }
      }));
    }
    const status = [statusText(job.status)];
    if (job.status === "failed" && job.error_message) status.push(h("div", { class: "error", id: messageId }, jobError(job)));
    return h(
      "tr",
      { dataset: { job: job.id } },
      h("th", { scope: "row" }, job.file_name),
      h("td", {}, members[job.created_by] || ""),
      h("td", {}, when(job.created_at)),
      h("td", {}, status),
      h("td", {}, t("history_counts", { total: num(job.total_rows), inserted: num(job.inserted_rows), updated: num(job.updated_rows) })),
      h("td", { class: "actions" }, actions),
    );
  });
  box.replaceChildren(
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, t("history_title")),
      h("thead", {}, h("tr", {}, ["col_file", "col_who", "col_when", "col_status", "col_counts", "col_actions"].map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, rows),
    ),
  );
}

const memberCache = new Map();

async function members(orgId) {
  if (!memberCache.has(orgId)) memberCache.set(orgId, (await api.get(`/api/organizations/${orgId}/members`)).members);
  return memberCache.get(orgId);
}

async function memberNames(orgId) {
  const list = await members(orgId).catch(() => []);
  return Object.fromEntries(list.map((m) => [m.id, m.email]));
}

// -- one job ---------------------------------------------------------------------------------------

async function showJob(id, my) {
  let job;
  try {
    job = (await api.get(`/api/jobs/${encodeURIComponent(id)}`)).job;
  } catch (err) {
    if (my !== view || err.status === 401) return;
    const back = h("p", {}, h("a", { href: "./", onclick: (e) => { e.preventDefault(); go(null); } }, t("back_home")));
    if (err.status === 404) {
      screen(t("not_found"), back);
    } else {
      screen(t("title"), back);
      showError(err);
    }
    return;
  }
  if (my !== view) return;
  await renderJob(job, my);
}

async function renderJob(job, my) {
  clearTimeout(pollTimer);
  try {
    if (ACTIVE.has(job.status)) return renderProgress(job, my);
    if (job.status === "ready") return await renderReview(job, my);
    if (job.status === "completed" || job.status === "reverted") return renderSummary(job, my);
    return renderStopped(job, my);
  } catch (err) {
    // A screen that could not load what it shows: the API's message, and the way back.
    if (my !== view || err.status === 401) return undefined;
    screen(jobTitle(job), backLink());
    showError(err);
    return undefined;
  }
}

function jobTitle(job) {
  return t("job_title", { file: job.file_name });
}

function backLink() {
  return h("p", { class: "back" }, h("a", { href: "./", onclick: (e) => { e.preventDefault(); go(null); } }, t("back_home")));
}

/** Re-read the job and show what its status calls for (after an action). */
async function reload(jobId, my) {
  const job = (await api.get(`/api/jobs/${jobId}`)).job;
  if (my === view) await renderJob(job, my);
}

// -- watching --------------------------------------------------------------------------------------

function renderProgress(job, my) {
  const bar = h("progress", { id: "job-progress", "aria-labelledby": "progress-label" });
  const text = h("p", { id: "progress-text", "aria-live": "polite" });
  const label = h("h3", { id: "progress-label" });
  const stop = h("button", {
    type: "button",
    onclick: (e) => act(e.currentTarget, async () => {
      const reply = await api.post(`/api/jobs/${job.id}/cancel`);
      if (my === view) await renderJob(reply.job, my);
    }),
  }, t("cancel"));
  screen(jobTitle(job), h("section", { class: "progress-box" }, label, bar, text), job.status === "reverting" ? null : stop, backLink());
  const samples = [];
  const update = (j) => {
    label.textContent = t("progress_label", { phase: statusText(j.status) });
    const done = j.rows_done ?? 0;
    const expected = j.rows_expected;
    if (expected) {
      bar.max = expected;
      bar.value = Math.min(done, expected);
    } else {
      bar.removeAttribute("value");
    }
    samples.push([performance.now(), done]);
    while (samples.length > 6) samples.shift();
    const parts = [
      j.activity === "reading the workbook"
        ? t("progress_workbook")
        : expected
          ? t("progress_text", { done: num(done), expected: num(expected) })
          : t("progress_waiting"),
    ];
    if (samples.length > 1) {
      const [t0, d0] = samples[0];
      const rate = ((done - d0) * 1000) / (performance.now() - t0);
      if (rate > 0) {
        parts.push(t("progress_rate", { rate: num(Math.round(rate)) }));
        if (expected && expected > done) parts.push(t("progress_left", { time: duration((expected - done) / rate) }));
      }
    }
    text.textContent = parts.join(" · ");
    bar.dataset.done = String(done);
  };
  update(job);
  const tick = async () => {
    if (my !== view) return;
    let j;
    try {
      j = (await api.get(`/api/jobs/${job.id}`)).job;
    } catch (err) {
      if (my !== view || err.status === 401) return;
      showError(err);
      pollTimer = setTimeout(tick, 2000);
      return;
    }
    if (my !== view) return;
    clearError();
    if (j.status === job.status) {
      update(j);
      pollTimer = setTimeout(tick, 1000);
    } else {
      announce(statusText(j.status));
      focusOnScreen = true;
      await renderJob(j, my);
    }
  };
  pollTimer = setTimeout(tick, 1000);
}

function renderStopped(job, my) {
  const content = [];
  const retry = (label) =>
    h("button", {
      type: "button",
      onclick: (e) => act(e.currentTarget, async () => {
        const reply = await api.post(`/api/jobs/${job.id}/${job.status === "pending" ? "start" : "retry"}`);
        if (my === view) await renderJob(reply.job, my);
      }),
    }, label);
  if (job.status === "failed") content.push(h("p", { class: "error", role: "alert" }, t("failed_text", { message: jobError(job) })), retry(t("retry")));
  else if (job.status === "cancelled") content.push(h("p", {}, t("cancelled_text")), retry(t("retry")));
  else if (job.status === "pending") content.push(h("p", {}, t("pending_text")), retry(t("start")));
  else content.push(h("p", {}, statusText(job.status)));
  screen(jobTitle(job), h("p", {}, statusText(job.status)), ...content, backLink());
}

// -- review ----------------------------------------------------------------------------------------

async function renderReview(job, my) {
  const [codes, memberList, samples] = await Promise.all([
    api.get(`/api/jobs/${job.id}/errors`),
    members(job.organization_id).catch(() => []),
    sampleValues(job),
  ]);
  if (my !== view) return;
  const counts = countsBox(job);
  const invalid = h("div", { id: "invalid-rows" });
  const choices = commitForm(job, memberList, my);
  screen(
    jobTitle(job),
    factsBox(job),
    mappingBox(job, samples, my),
    counts,
    codesBox(codes),
    h("section", { "aria-labelledby": "invalid-title" }, h("h3", { id: "invalid-title" }, t("invalid_title")), invalid, reportButton(job)),
    choices,
    backLink(),
  );
  await invalidPage(job, invalid, [0], my);
}

function factsBox(job) {
  const delimiter = { ";": "; (point-virgule)", ",": ", (virgule)", "\t": "tabulation", "|": "|" }[job.delimiter] ?? job.delimiter;
  // A workbook's encoding and delimiter are those of the CSV the service made of it: not the
  // user's business. Its type is.
  const facts = job.workbook
    ? [["fact_type", String(job.workbook.type || "").toUpperCase()], ["fact_rows", num(job.total_rows)]]
    : [
        ["fact_encoding", job.encoding],
        ["fact_delimiter", lang === "en" ? JSON.stringify(job.delimiter) : delimiter],
        ["fact_rows", num(job.total_rows)],
      ];
  const box = h(
    "section",
    { "aria-labelledby": "facts-title" },
    h("h3", { id: "facts-title" }, t("facts_title")),
    h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, t(k)), h("dd", {}, v ?? "")])),
  );
  if (job.duplicate_of_job_id) {
    box.append(h("p", { class: "warning", role: "note" }, t("same_file"), " ", jobLink(job.duplicate_of_job_id, t("same_file_link"))));
  }
  if (job.workbook) box.append(sheetChoice(job));
  return box;
}

// A workbook's sheets, with their rows: another one is read again from the workbook (the
// API drops the row fixes made on this sheet, and says so).
function sheetChoice(job) {
  const my = view;
  const sheets = job.workbook.sheets || [];
  const select = h(
    "select",
    { id: "sheet" },
    sheets.map((s) => h("option", { value: s.name, selected: s.name === job.workbook.sheet }, t("sheet_option", { name: s.name, rows: num(s.rows) }))),
  );
  const button = h("button", {
    type: "button",
    onclick: (e) => act(e.currentTarget, async () => {
      const reply = await api.put(`/api/jobs/${job.id}/sheet`, { sheet: select.value });
      announce(reply.notice || t("sheet_changed"));
      if (my === view) await renderJob(reply.job, my);
    }),
  }, t("sheet_read"));
  return h("p", { class: "sheet" }, h("label", { for: "sheet" }, t("sheet_label")), " ", select, " ", button);
}

async function sampleValues(job) {
  const rows = await Promise.all([1, 2, 3].map((n) => api.get(`/api/jobs/${job.id}/rows/${n}`).then((r) => r.row).catch(() => null)));
  return rows.filter(Boolean);
}

function mappingBox(job, samples, my) {
  const header = job.header || [];
  const mapping = job.mapping || [];
  const selects = header.map((name, i) => {
    const id = `field-${i}`;
    return h(
      "select",
      {
        id,
        "aria-label": t("field_for", { header: name }),
        onchange: (e) => act(null, async () => {
          const fields = selects.map((s) => s.value || null);
          const reply = await api.put(`/api/jobs/${job.id}/mapping`, { mapping: fields });
          announce(t("mapping_changed"));
          if (my === view) await renderJob(reply.job, my);
        }).finally(() => { e.target.disabled = false; }),
      },
      h("option", { value: "" , selected: !mapping[i] }, t("field_custom")),
      FIELDS.map((f) => h("option", { value: f, selected: mapping[i] === f }, FIELD_NAMES[f])),
    );
  });
  const rows = header.map((name, i) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, name),
      h("td", { class: "samples" }, samples.map((r) => r.values?.[name]).filter((v) => v).slice(0, 3).join(" · ")),
      h("td", {}, selects[i]),
    ),
  );
  const source = job.mapping_source || "automatic";
  const section = h(
    "section",
    { "aria-labelledby": "mapping-title" },
    h("h3", { id: "mapping-title" }, t("mapping_title")),
    h("p", { id: "mapping-source", dataset: { source } }, t(`mapping_source_${source}`)),
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("col_column")), h("th", { scope: "col" }, t("col_samples")), h("th", { scope: "col" }, t("col_field")))),
      h("tbody", {}, rows),
    ),
  );
  if (source !== "automatic") {
    section.append(
      h("button", {
        type: "button",
        onclick: (e) => act(e.currentTarget, async () => {
          const reply = await api.post(`/api/jobs/${job.id}/mapping/automatic`);
          announce(t("mapping_changed"));
          if (my === view) await renderJob(reply.job, my);
        }),
      }, t("mapping_automatic")),
    );
  }
  return section;
}

const COUNTS = [
  ["total_rows", "count_total"],
  ["valid_rows", "count_valid"],
  ["invalid_rows", "count_invalid"],
  ["duplicate_rows", "count_duplicates"],
  ["fixed_rows", "count_fixed"],
  ["excluded_rows", "count_excluded"],
];

function countsBox(job) {
  return h(
    "section",
    { "aria-labelledby": "counts-title" },
    h("h3", { id: "counts-title" }, t("counts_title")),
    h("dl", { class: "counts", id: "counts" }, COUNTS.map(([k, label]) => h("div", {}, h("dt", {}, t(label)), h("dd", { dataset: { count: k } }, num(job[k]))))),
  );
}

function updateCounts(job) {
  for (const [k] of COUNTS) {
    const dd = document.querySelector(`[data-count="${k}"]`);
    if (dd) dd.textContent = num(job[k]);
  }
  const button = document.getElementById("commit-button");
  if (button) {
    button.dataset.valid = String(job.valid_rows);
    button.dataset.duplicates = String(job.duplicate_rows ?? 0);
    relabelCommit(button);
  }
}

function codesBox(codes) {
  const list = (items, warning) =>
    h("ul", {}, items.map((c) => h("li", { dataset: { code: c.code } }, h("strong", {}, reviewText(c, { warning })), " — ", t("code_rows", { count: num(c.count), rows: c.example_rows.join(", ") }))));
  return h(
    "section",
    { "aria-labelledby": "codes-title" },
    h("h3", { id: "codes-title" }, t("errors_title")),
    codes.errors.length ? list(codes.errors, false) : h("p", {}, t("invalid_none")),
    codes.warnings.length ? [h("h4", {}, t("warnings_title")), list(codes.warnings, true)] : null,
  );
}

async function invalidPage(job, box, afters, my, { focus = false } = {}) {
  const after = afters[afters.length - 1];
  let page;
  try {
    // One row more than a page: whether a next page exists, without offering an empty one.
    page = await api.get(`/api/jobs/${job.id}/invalid-rows?after=${after}&limit=${INVALID_PAGE + 1}`);
  } catch (err) {
    if (my === view && err.status !== 401) box.replaceChildren(h("p", { class: "error" }, err.message));
    return;
  }
  if (my !== view) return;
  if (!page.rows.length && afters.length === 1) {
    box.replaceChildren(h("p", {}, t("invalid_none")));
    return;
  }
  const more = page.rows.length > INVALID_PAGE;
  const rows = page.rows.slice(0, INVALID_PAGE);
  const number = afters.length;
  const goTo = (next) => invalidPage(job, box, next, my, { focus: true });
  const nav = h("div", { class: "pager" }, h("span", { id: "invalid-page" }, t("page_n", { n: num(number) })));
  if (number > 1) nav.append(h("button", { type: "button", onclick: () => goTo(afters.slice(0, -1)) }, t("prev_page")));
  if (more) nav.append(h("button", { type: "button", onclick: () => goTo([...afters, rows[rows.length - 1].row_no]) }, t("next_page")));
  // The page's table is named by the section's title and its page number; a change of page
  // takes the focus to it (the button pressed is gone).
  const table = rows.length
    ? h(
        "table",
        { class: "invalid", tabindex: "-1", "aria-labelledby": "invalid-title invalid-page" },
        h("thead", {}, h("tr", {}, ["col_row", "col_cells", "col_reasons", "col_actions"].map((k) => h("th", { scope: "col" }, t(k))))),
        h("tbody", {}, rows.map((row) => invalidRow(job, page.header, row, my))),
      )
    : h("p", { tabindex: "-1" }, t("invalid_no_more"));
  box.replaceChildren(table, nav);
  if (focus) table.focus();
}

function rowState(row) {
  if (row.valid) return h("span", { class: "ok" }, "✓ ", t("count_valid").toLowerCase());
  if (row.excluded) return h("span", { class: "muted" }, t("excluded"));
  return h("ul", { class: "reasons" }, (row.reasons || []).map((r) => h("li", { dataset: { code: r.code } }, reviewText(r))));
}

function invalidRow(job, header, row, my) {
  const tr = h("tr", { dataset: { row: row.row_no } });
  let editor = null; // the row's fix form, in a row of its own under it
  const render = (r) => {
    editor?.remove();
    editor = null;
    const values = r.values || {};
    const cells = h("dl", { class: "cells" }, header.map((name) => h("div", {}, h("dt", {}, name), h("dd", {}, values[name] ?? ""))));
    if (r.extra_cells?.length) cells.append(h("div", {}, h("dt", {}, "+"), h("dd", {}, r.extra_cells.join(" ; "))));
    const fix = h("button", { type: "button", "aria-label": t("fix_row", { row: r.row_no }), onclick: () => editRow(r) }, t("fix"));
    const exclude = h(
      "button",
      {
        type: "button",
        "aria-label": `${r.excluded ? t("include") : t("exclude")} ${t("col_row").toLowerCase()} ${r.row_no}`,
        onclick: (e) => act(e.currentTarget, async () => {
          const reply = await api.patch(`/api/jobs/${job.id}/rows/${r.row_no}`, { excluded: !r.excluded });
          updateCounts(reply.job);
          announce(t(reply.row.excluded ? "row_excluded" : "row_included", { row: r.row_no }));
          render(reply.row);
          tr.querySelector("button")?.focus();
        }),
      },
      r.excluded ? t("include") : t("exclude"),
    );
    tr.replaceChildren(h("th", { scope: "row" }, num(r.row_no)), h("td", {}, cells), h("td", { class: "state" }, rowState(r)), h("td", { class: "actions" }, r.excluded ? null : fix, exclude));
  };
  const editRow = (r) => {
    const inputs = header.map((name, i) => {
      const id = `cell-${r.row_no}-${i}`;
      return [h("label", { for: id }, t("cell_label", { header: name, row: r.row_no })), h("input", { id, name, value: r.values?.[name] ?? "", dataset: { header: name } })];
    });
    const form = h(
      "form",
      {
        class: "fix-form",
        "aria-label": t("fix_row", { row: r.row_no }),
        onsubmit: (e) => {
          e.preventDefault();
          act(form.querySelector("button[type=submit]"), async () => {
            const cells = {};
            for (const input of form.querySelectorAll("input")) {
              if (input.value !== (r.values?.[input.dataset.header] ?? "")) cells[input.dataset.header] = input.value;
            }
            const reply = await api.patch(`/api/jobs/${job.id}/rows/${r.row_no}`, { cells });
            updateCounts(reply.job);
            announce(t(reply.row.valid ? "row_now_valid" : "row_still_invalid", { row: r.row_no }));
            render(reply.row);
            tr.querySelector("button")?.focus();
          });
        },
        onkeydown: (e) => {
          if (e.key === "Escape") {
            render(r);
            tr.querySelector("button")?.focus();
          }
        },
      },
      h("div", { class: "fields" }, inputs.map((pair) => h("div", {}, pair))),
      h("button", { type: "submit" }, t("save")),
      h("button", { type: "button", onclick: () => { render(r); tr.querySelector("button")?.focus(); } }, t("cancel_edit")),
    );
    editor?.remove();
    editor = h("tr", { class: "fix-row" }, h("td", { colspan: "4" }, form));
    tr.after(editor);
    form.querySelector("input")?.focus();
  };
  render(row);
  return tr;
}

function reportButton(job) {
  return h("button", {
    type: "button",
    id: "report-button",
    onclick: (e) => act(e.currentTarget, async () => {
      const resp = await api.raw(`/api/jobs/${job.id}/error-report.csv`);
      const blob = await resp.blob();
      const match = /filename\*=UTF-8''([^;]+)/.exec(resp.headers.get("Content-Disposition") || "");
      const a = h("a", { href: URL.createObjectURL(blob), download: match ? decodeURIComponent(match[1]) : "errors.csv" });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    }),
  }, t("report"));
}

// -- choosing and committing -------------------------------------------------------------------

function commitLabel(count) {
  if (!count) return t("commit_nothing");
  return count === 1 ? t("commit_button_one") : t("commit_button", { count: num(count) });
}

/** The rows the commit will try to import: the valid rows, less the in-file duplicates unless
 * duplicates are created anyway (in skip and update modes the first occurrence wins and the
 * later ones are skipped: lib/commit_slice.py). */
function commitCount(valid, duplicates, mode) {
  return mode === "create" ? valid : Math.max(0, valid - duplicates);
}

function relabelCommit(button) {
  const mode = button.form?.querySelector('input[name="duplicates"]:checked')?.value || "skip";
  const count = commitCount(Number(button.dataset.valid), Number(button.dataset.duplicates), mode);
  button.textContent = commitLabel(count);
  button.disabled = !count;
}

function commitForm(job, memberList, my) {
  const d = job.commit_defaults || {};
  const radio = (name, value, label, help, checked) => {
    const id = `${name}-${value}`;
    return h(
      "div",
      { class: "choice" },
      h("input", { type: "radio", id, name, value, checked, "aria-describedby": help ? `${id}-help` : null }),
      h("label", { for: id }, label),
      help ? h("span", { id: `${id}-help`, class: "help" }, " — ", help) : null,
    );
  };
  const duplicates = h(
    "fieldset",
    { onchange: () => relabelCommit(button) },
    h("legend", {}, t("duplicates_legend")),
    ["skip", "update", "create"].map((v) => radio("duplicates", v, t(`dup_${v}`), t(`dup_${v}_help`), (d.duplicates || "skip") === v)),
  );
  const match = h(
    "div",
    { class: "field" },
    h("label", { for: "match" }, t("match_label")),
    h("select", { id: "match", name: "match" }, ["email_then_phone", "email", "phone", "email_or_phone"].map((v) => h("option", { value: v, selected: (d.match || "email_then_phone") === v }, t(`match_${v}`)))),
  );
  const ownerIds = new Set(d.owners || []);
  // The member of the remembered settings is preselected; else the user chooses one.
  const ownerMember = memberList.find((m) => d.owner === m.email || (d.assignment === "user" && ownerIds.has(m.id)));
  const owner = h(
    "select",
    { id: "owner", name: "owner" },
    ownerMember ? null : h("option", { value: "", selected: true }, t("assign_member_choose")),
    memberList.map((m) => h("option", { value: m.email, selected: m === ownerMember }, m.email)),
  );
  const roundRobin = h(
    "fieldset",
    { class: "members" },
    h("legend", {}, t("assign_members")),
    memberList.map((m, i) =>
      h("div", {}, h("input", { type: "checkbox", id: `rr-${i}`, name: "owners", value: m.email, checked: d.assignment === "round_robin" && ownerIds.has(m.id) }), h("label", { for: `rr-${i}` }, m.email)),
    ),
  );
  // The column the mapping found holding owners (or the remembered one) is preselected; else
  // the user chooses one (no column is picked silently).
  const ownerColumn = d.owner_column || d.owner_column_found || "";
  const column = h(
    "select",
    { id: "owner-column", name: "owner_column" },
    ownerColumn ? null : h("option", { value: "", selected: true }, t("assign_column_choose")),
    (job.header || []).map((name) => h("option", { value: name, selected: ownerColumn === name }, name)),
  );
  const assignment = d.assignment || "none";
  const assign = h(
    "fieldset",
    {},
    h("legend", {}, t("assign_legend")),
    radio("assignment", "none", t("assign_none"), null, assignment === "none"),
    radio("assignment", "user", t("assign_user"), null, assignment === "user"),
    h("div", { class: "sub" }, h("label", { for: "owner" }, t("assign_member")), owner),
    radio("assignment", "round_robin", t("assign_round_robin"), null, assignment === "round_robin"),
    h("div", { class: "sub" }, roundRobin),
    radio("assignment", "column", t("assign_column"), null, assignment === "column"),
    h("div", { class: "sub" }, h("label", { for: "owner-column" }, t("assign_column_label")), column),
  );
  const button = h("button", { type: "submit", id: "commit-button", class: "primary", dataset: { valid: job.valid_rows, duplicates: job.duplicate_rows ?? 0 } });
  const form = h(
    "form",
    {
      id: "commit-form",
      "aria-labelledby": "choices-title",
      onsubmit: (e) => {
        e.preventDefault();
        act(button, async () => {
          const data = new FormData(form);
          const body = { duplicates: data.get("duplicates"), match: data.get("match"), assignment: data.get("assignment") };
          if (body.assignment === "user") {
            body.owner = data.get("owner");
            if (!body.owner) {
              owner.focus();
              throw new Error(t("choose_member"));
            }
          }
          if (body.assignment === "round_robin") {
            body.owners = data.getAll("owners");
            if (!body.owners.length) throw new Error(t("choose_members"));
          }
          if (body.assignment === "column") {
            body.owner_column = data.get("owner_column");
            if (!body.owner_column) {
              column.focus();
              throw new Error(t("choose_column"));
            }
          }
          const reply = await api.post(`/api/jobs/${job.id}/commit`, body);
          if (my === view) {
            focusOnScreen = true;
            await renderJob(reply.job, my);
          }
        });
      },
    },
    h("h3", { id: "choices-title" }, t("choices_title")),
    duplicates,
    match,
    assign,
    button,
  );
  relabelCommit(button);
  return form;
}

// -- after -------------------------------------------------------------------------------------------

function renderSummary(job, my) {
  const warnings = Object.values(job.warning_counts || {}).reduce((a, b) => a + b, 0);
  const took = job.commit_started_at && job.finished_at ? (new Date(job.finished_at) - new Date(job.commit_started_at)) / 1000 : null;
  const items = [
    ["inserted_rows", "sum_inserted", job.inserted_rows],
    ["updated_rows", "sum_updated", job.updated_rows],
    ["skipped_rows", "sum_skipped", job.skipped_rows],
    ["invalid_rows", "sum_invalid", job.invalid_rows],
    ["warnings", "sum_warnings", warnings],
  ];
  if (job.status === "reverted") items.push(["reverted_rows", "sum_reverted", job.reverted_rows]);
  const list = h(
    "dl",
    { class: "counts", id: "summary" },
    items.map(([k, label, v]) => h("div", {}, h("dt", {}, t(label)), h("dd", { dataset: { count: k } }, num(v)))),
    took !== null ? h("div", {}, h("dt", {}, t("sum_time")), h("dd", { dataset: { count: "time" } }, duration(took))) : null,
  );
  const actions = h("div", { class: "actions" });
  if (job.invalid_rows) actions.append(reportButton(job));
  if (job.status === "completed") {
    actions.append(
      h("button", {
        type: "button",
        id: "undo-button",
        onclick: (e) => act(e.currentTarget, async () => {
          if (!(await confirmUndo(job))) return;
          const reply = await api.post(`/api/jobs/${job.id}/revert`);
          if (my === view) {
            focusOnScreen = true;
            await renderJob(reply.job, my);
          }
        }),
      }, t("undo")),
    );
  }
  actions.append(h("button", { type: "button", onclick: () => go(null) }, t("new_import")));
  const heading = job.status === "reverted" ? t("summary_reverted_title") : t("summary_title");
  screen(`${heading} — ${job.file_name}`, list, actions, backLink());
}

function confirmUndo(job) {
  return new Promise((resolve) => {
    const keep = h("button", { type: "submit", value: "keep" }, t("undo_keep"));
    const dialog = h(
      "dialog",
      { "aria-labelledby": "undo-title", "aria-describedby": "undo-will undo-wont" },
      h("h2", { id: "undo-title" }, t("undo_title")),
      h("p", { id: "undo-will" }, t("undo_will", { count: num(job.inserted_rows) })),
      h("p", { id: "undo-wont" }, t("undo_wont")),
      h("form", { method: "dialog", class: "actions" }, keep, h("button", { type: "submit", value: "confirm", class: "danger" }, t("undo_confirm"))),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "confirm");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    keep.focus();
  });
}

// -- start -----------------------------------------------------------------------------------------

async function boot() {
  document.documentElement.lang = lang;
  document.getElementById("app-title").textContent = t("title");
  document.getElementById("skip").textContent = t("skip_to_content");
  signOutButton.textContent = t("sign_out");
  signOutButton.addEventListener("click", () => {
    signOut();
    history.pushState(null, "", window.location.pathname);
    route();
  });
  document.getElementById("home-link").addEventListener("click", (e) => {
    e.preventDefault();
    go(null);
  });
  const fragmentError = takeFragment();
  if (fragmentError) signInMessage = fragmentError;
  try {
    config = await loadConfig();
  } catch (err) {
    showError(err);
  }
  window.addEventListener("popstate", route);
  // A sign-in link opened in a tab already on the page changes only the fragment.
  window.addEventListener("hashchange", () => {
    if (!new URLSearchParams(window.location.hash.slice(1)).has("access_token") && !window.location.hash.includes("error")) return;
    signInMessage = takeFragment();
    route();
  });
  await route();
}

boot();
