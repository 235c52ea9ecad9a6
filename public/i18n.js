// The page's words, in French (the default) and English (when the browser prefers it).
// t("key", {name: value}) fills {name} placeholders; a missing key shows itself.

const FR = {
  title: "Import de contacts",
  skip_to_content: "Aller au contenu",
  sign_out: "Se déconnecter",
  signin_title: "Connexion",
  signin_intro: "Connectez-vous pour importer vos contacts.",
  signin_email: "Adresse e-mail",
  signin_send: "Recevoir un lien de connexion",
  signin_sent: "Un lien de connexion a été envoyé à {email}. Ouvrez-le dans ce navigateur.",
  signin_local:
    "Sur la pile locale : lancez « python -m lib serve » et ouvrez l’un des liens de connexion qu’elle affiche, ou collez ici un jeton de « python -m lib token EMAIL ».",
  signin_token: "Jeton d’accès",
  signin_use_token: "Se connecter avec ce jeton",
  signin_expired: "Votre session a expiré : connectez-vous à nouveau.",
  signin_required: "Connectez-vous pour continuer.",
  upload_title: "Nouvel import",
  upload_file: "Fichier de contacts (CSV ou classeur Excel, OpenDocument, jusqu’à {mb} Mo)",
  upload_button: "Envoyer et analyser",
  upload_progress: "Envoi du fichier",
  upload_sent: "{done} sur {total} envoyés",
  file_required: "Choisissez d’abord un fichier.",
  file_type: "Le fichier « {name} » n’est ni un fichier CSV (.csv, .txt, .tsv) ni un classeur (.xlsx, .xlsm, .ods, .xls). Enregistrez-le dans l’un de ces formats depuis votre tableur, puis importez-le.",
  progress_workbook: "Lecture du classeur…",
  sheet_label: "Feuille lue",
  sheet_option: "{name} ({rows} lignes)",
  sheet_read: "Lire cette feuille",
  sheet_changed: "Feuille changée : nouvelle analyse du fichier.",
  file_too_large: "Le fichier fait {size} Mo ; un import accepte au plus {mb} Mo. Découpez-le en plusieurs fichiers et importez-les un par un.",
  file_empty: "Le fichier est vide. Choisissez le fichier qui contient vos contacts.",
  history_title: "Historique des imports",
  history_empty: "Aucun import pour l’instant.",
  col_file: "Fichier",
  col_who: "Par",
  col_when: "Quand",
  col_status: "Statut",
  col_counts: "Lignes",
  col_actions: "Actions",
  history_counts: "{total} lignes, {inserted} créées, {updated} mises à jour",
  history_status: "{file} : {status}",
  open: "Ouvrir",
  retry: "Réessayer",
  cancel: "Arrêter",
  undo: "Annuler cet import",
  back_home: "Retour aux imports",
  new_import: "Nouvel import",
  status_pending: "en attente du fichier",
  status_validating: "vérification",
  status_parsing: "analyse",
  status_ready: "à valider",
  status_committing: "import en cours",
  status_completed: "terminé",
  status_failed: "échec",
  status_cancelled: "arrêté",
  status_reverting: "annulation en cours",
  status_reverted: "annulé",
  job_title: "Import de « {file} »",
  not_found: "Import introuvable : il n’existe pas, ou il appartient à une autre organisation.",
  pending_text: "Le fichier n’a pas encore été analysé. S’il a été envoyé, lancez l’analyse.",
  start: "Lancer l’analyse",
  progress_label: "Progression : {phase}",
  progress_text: "{done} sur {expected} lignes",
  progress_rate: "{rate} lignes/s",
  progress_left: "environ {time} restantes",
  progress_waiting: "En attente…",
  failed_text: "L’import a échoué : {message}",
  cancelled_text: "L’import a été arrêté. Vous pouvez le reprendre là où il s’est arrêté.",
  facts_title: "Le fichier",
  fact_encoding: "Encodage",
  fact_delimiter: "Séparateur",
  fact_type: "Classeur",
  fact_rows: "Lignes",
  fact_size: "Taille",
  same_file: "Ce fichier a déjà été importé.",
  same_file_link: "Voir l’import précédent",
  mapping_title: "Colonnes",
  mapping_source_automatic: "Correspondance automatique",
  mapping_source_remembered: "Correspondance mémorisée d’un import précédent",
  mapping_source_edited: "Correspondance modifiée",
  mapping_automatic: "Revenir à la correspondance automatique",
  col_column: "Colonne du fichier",
  col_samples: "Exemples",
  col_field: "Champ du contact",
  field_for: "Champ pour la colonne « {header} »",
  field_custom: "— champ personnalisé —",
  mapping_changed: "Correspondance modifiée : nouvelle analyse du fichier.",
  counts_title: "Résultat de l’analyse",
  count_total: "Lignes",
  count_valid: "Valides",
  count_invalid: "Invalides",
  count_duplicates: "Doublons dans le fichier",
  count_fixed: "Corrigées",
  count_excluded: "Exclues",
  errors_title: "Erreurs",
  warnings_title: "Avertissements",
  code_rows: "{count} lignes — par exemple {rows}",
  // The review's codes (lib/review.py): an error's text, a warning's, and a reason's with
  // the facts the API gives beside it (_value: the bad value; _counts: cells and columns).
  review_error_no_contact: "Ni e-mail valide ni numéro de téléphone valide : la ligne ne peut pas être importée.",
  review_error_malformed_row: "La ligne a plus de cellules que l’en-tête n’a de colonnes (un séparateur ou un guillemet en trop ?).",
  review_error_malformed_row_counts: "La ligne a {cells} cellules mais l’en-tête a {columns} colonnes (un séparateur ou un guillemet en trop ?).",
  review_error_invalid_email: "L’adresse e-mail n’est pas valide.",
  review_error_invalid_email_value: "L’adresse e-mail « {value} » n’est pas valide.",
  review_error_invalid_phone: "Le numéro de téléphone n’est pas valide.",
  review_error_invalid_phone_value: "Le numéro de téléphone « {value} » n’est pas valide.",
  review_error_excluded: "Exclue de l’import lors de la vérification.",
  review_warning_invalid_email: "L’adresse e-mail n’est pas valide : le contact est importé avec l’adresse telle quelle, et rapproché par son téléphone seulement.",
  review_warning_invalid_phone: "Le numéro de téléphone n’est pas valide : le contact est importé avec le numéro tel quel, et rapproché par son e-mail seulement.",
  review_warning_undecodable_bytes: "Certains caractères n’ont pas pu être lus dans l’encodage du fichier (affichés ainsi : �).",
  invalid_title: "Lignes invalides",
  invalid_none: "Aucune ligne invalide.",
  col_row: "Ligne",
  col_cells: "Valeurs lues",
  col_reasons: "Raisons",
  fix: "Corriger",
  fix_row: "Corriger la ligne {row}",
  save: "Enregistrer",
  cancel_edit: "Annuler",
  exclude: "Exclure",
  include: "Réintégrer",
  excluded: "exclue",
  row_now_valid: "Ligne {row} : valide.",
  row_still_invalid: "Ligne {row} : toujours invalide.",
  row_excluded: "Ligne {row} exclue de l’import.",
  row_included: "Ligne {row} réintégrée.",
  cell_label: "{header} (ligne {row})",
  prev_page: "Page précédente",
  page_n: "Page {n}",
  invalid_no_more: "Plus aucune ligne invalide sur cette page.",
  next_page: "Page suivante",
  report: "Télécharger le rapport d’erreurs",
  choices_title: "Options d’import",
  duplicates_legend: "Contacts déjà présents",
  dup_skip: "Ignorer",
  dup_skip_help: "un contact déjà présent est laissé tel quel.",
  dup_update: "Mettre à jour",
  dup_update_help: "un contact déjà présent reçoit les valeurs non vides du fichier.",
  dup_create: "Créer quand même",
  dup_create_help: "chaque ligne crée un nouveau contact, même en double.",
  match_label: "Reconnaître un contact déjà présent par",
  match_email_then_phone: "l’e-mail, sinon le téléphone",
  match_email: "l’e-mail seulement",
  match_phone: "le téléphone seulement",
  match_email_or_phone: "l’e-mail ou le téléphone",
  assign_legend: "Attribution des nouveaux contacts",
  assign_none: "Personne",
  assign_user: "Un membre",
  assign_round_robin: "À tour de rôle entre plusieurs membres",
  assign_column: "Selon une colonne du fichier (e-mail du membre)",
  assign_member: "Membre",
  assign_members: "Membres",
  assign_column_label: "Colonne",
  commit_button: "Importer {count} contacts",
  commit_button_one: "Importer 1 contact",
  commit_nothing: "Aucune ligne valide à importer",
  choose_members: "Choisissez au moins un membre.",
  choose_column: "Choisissez la colonne qui contient l’e-mail du propriétaire.",
  choose_member: "Choisissez le membre à qui attribuer les contacts.",
  assign_member_choose: "— choisissez un membre —",
  assign_column_choose: "— choisissez une colonne —",
  summary_title: "Import terminé",
  summary_reverted_title: "Import annulé",
  sum_inserted: "Créés",
  sum_updated: "Mis à jour",
  sum_skipped: "Ignorés",
  sum_invalid: "Invalides",
  sum_warnings: "Avertissements",
  sum_time: "Durée",
  sum_reverted: "Supprimés par l’annulation",
  undo_title: "Annuler cet import ?",
  undo_will: "L’annulation supprime les {count} contacts créés par cet import.",
  undo_wont:
    "Elle ne supprime pas les contacts modifiés depuis l’import et ne rétablit pas les contacts existants que l’import a mis à jour.",
  undo_confirm: "Supprimer les contacts créés",
  undo_keep: "Garder l’import",
  seconds: "{n} s",
  minutes: "{m} min {s} s",
  network: "Le serveur ne répond pas. Vérifiez votre connexion et réessayez.",
  http_error: "Erreur du serveur ({status}).",
  loading: "Chargement…",
  done_label: "Terminé",
};

const EN = {
  title: "Lead import",
  skip_to_content: "Skip to content",
  sign_out: "Sign out",
  signin_title: "Sign in",
  signin_intro: "Sign in to import your leads.",
  signin_email: "Email address",
  signin_send: "Email me a sign-in link",
  signin_sent: "A sign-in link was sent to {email}. Open it in this browser.",
  signin_local:
    "On the local stack: run “python -m lib serve” and open one of the sign-in links it prints, or paste a token from “python -m lib token EMAIL” here.",
  signin_token: "Access token",
  signin_use_token: "Sign in with this token",
  signin_expired: "Your session expired: sign in again.",
  signin_required: "Sign in to continue.",
  upload_title: "New import",
  upload_file: "Lead file (CSV or Excel, OpenDocument workbook, up to {mb} MB)",
  upload_button: "Upload and check",
  upload_progress: "Uploading the file",
  upload_sent: "{done} of {total} sent",
  file_required: "Choose a file first.",
  file_type: "“{name}” is neither a CSV file (.csv, .txt, .tsv) nor a workbook (.xlsx, .xlsm, .ods, .xls). Save it in one of these formats from your spreadsheet, then import it.",
  progress_workbook: "Reading the workbook…",
  sheet_label: "Sheet read",
  sheet_option: "{name} ({rows} rows)",
  sheet_read: "Read this sheet",
  sheet_changed: "Sheet changed: the file is read again.",
  file_too_large: "The file is {size} MB; an import takes at most {mb} MB. Split it into smaller files and import each one.",
  file_empty: "The file is empty. Choose the file that holds your leads.",
  history_title: "Import history",
  history_empty: "No import yet.",
  col_file: "File",
  col_who: "By",
  col_when: "When",
  col_status: "Status",
  col_counts: "Rows",
  col_actions: "Actions",
  history_counts: "{total} rows, {inserted} created, {updated} updated",
  history_status: "{file}: {status}",
  open: "Open",
  retry: "Retry",
  cancel: "Stop",
  undo: "Undo this import",
  back_home: "Back to imports",
  new_import: "New import",
  status_pending: "waiting for the file",
  status_validating: "checking",
  status_parsing: "reading",
  status_ready: "to review",
  status_committing: "importing",
  status_completed: "completed",
  status_failed: "failed",
  status_cancelled: "stopped",
  status_reverting: "undoing",
  status_reverted: "undone",
  job_title: "Import of “{file}”",
  not_found: "Import not found: it does not exist, or it belongs to another organization.",
  pending_text: "The file has not been read yet. If it was uploaded, start reading it.",
  start: "Start reading",
  progress_label: "Progress: {phase}",
  progress_text: "{done} of {expected} rows",
  progress_rate: "{rate} rows/s",
  progress_left: "about {time} left",
  progress_waiting: "Waiting…",
  failed_text: "The import failed: {message}",
  cancelled_text: "The import was stopped. You can resume it where it stopped.",
  facts_title: "The file",
  fact_encoding: "Encoding",
  fact_delimiter: "Delimiter",
  fact_type: "Workbook",
  fact_rows: "Rows",
  fact_size: "Size",
  same_file: "This file was imported before.",
  same_file_link: "See the earlier import",
  mapping_title: "Columns",
  mapping_source_automatic: "Automatic mapping",
  mapping_source_remembered: "Mapping remembered from an earlier import",
  mapping_source_edited: "Edited mapping",
  mapping_automatic: "Back to the automatic mapping",
  col_column: "Column of the file",
  col_samples: "Examples",
  col_field: "Lead field",
  field_for: "Field for the column “{header}”",
  field_custom: "— custom field —",
  mapping_changed: "Mapping changed: the file is read again.",
  counts_title: "What the file holds",
  count_total: "Rows",
  count_valid: "Valid",
  count_invalid: "Invalid",
  count_duplicates: "Duplicates in the file",
  count_fixed: "Fixed",
  count_excluded: "Excluded",
  errors_title: "Errors",
  warnings_title: "Warnings",
  code_rows: "{count} rows — for example {rows}",
  review_error_no_contact: "No valid email and no valid phone number: the row cannot be imported.",
  review_error_malformed_row: "The row has more cells than the header has columns (a stray delimiter or quote?).",
  review_error_malformed_row_counts: "The row has {cells} cells but the header has {columns} columns (a stray delimiter or quote?).",
  review_error_invalid_email: "The email address is not valid.",
  review_error_invalid_email_value: "The email address “{value}” is not valid.",
  review_error_invalid_phone: "The phone number is not valid.",
  review_error_invalid_phone_value: "The phone number “{value}” is not valid.",
  review_error_excluded: "Excluded from the import during review.",
  review_warning_invalid_email: "The email address is not valid: the lead is imported with it as written, and matched by its phone only.",
  review_warning_invalid_phone: "The phone number is not valid: the lead is imported with it as written, and matched by its email only.",
  review_warning_undecodable_bytes: "Some characters could not be read in the file’s encoding (shown as �).",
  invalid_title: "Invalid rows",
  invalid_none: "No invalid row.",
  col_row: "Row",
  col_cells: "Values read",
  col_reasons: "Reasons",
  fix: "Fix",
  fix_row: "Fix row {row}",
  save: "Save",
  cancel_edit: "Cancel",
  exclude: "Exclude",
  include: "Include again",
  excluded: "excluded",
  row_now_valid: "Row {row}: valid.",
  row_still_invalid: "Row {row}: still invalid.",
  row_excluded: "Row {row} excluded from the import.",
  row_included: "Row {row} included again.",
  cell_label: "{header} (row {row})",
  prev_page: "Previous page",
  page_n: "Page {n}",
  invalid_no_more: "No invalid row left on this page.",
  next_page: "Next page",
  report: "Download the error report",
  choices_title: "Import options",
  duplicates_legend: "Leads already there",
  dup_skip: "Skip",
  dup_skip_help: "a lead already there is left as it is.",
  dup_update: "Update",
  dup_update_help: "a lead already there gets the file's non-empty values.",
  dup_create: "Create anyway",
  dup_create_help: "every row creates a new lead, even a duplicate.",
  match_label: "Recognize a lead already there by",
  match_email_then_phone: "email, else phone",
  match_email: "email only",
  match_phone: "phone only",
  match_email_or_phone: "email or phone",
  assign_legend: "Owner of the new leads",
  assign_none: "Nobody",
  assign_user: "One member",
  assign_round_robin: "In turn among several members",
  assign_column: "From a column of the file (the member’s email)",
  assign_member: "Member",
  assign_members: "Members",
  assign_column_label: "Column",
  commit_button: "Import {count} leads",
  commit_button_one: "Import 1 lead",
  commit_nothing: "No valid row to import",
  choose_members: "Choose at least one member.",
  choose_column: "Choose the column that holds the owner’s email.",
  choose_member: "Choose the member the leads go to.",
  assign_member_choose: "— choose a member —",
  assign_column_choose: "— choose a column —",
  summary_title: "Import completed",
  summary_reverted_title: "Import undone",
  sum_inserted: "Created",
  sum_updated: "Updated",
  sum_skipped: "Skipped",
  sum_invalid: "Invalid",
  sum_warnings: "Warnings",
  sum_time: "Time taken",
  sum_reverted: "Removed by the undo",
  undo_title: "Undo this import?",
  undo_will: "Undo deletes the {count} leads this import created.",
  undo_wont: "It keeps the leads changed since the import, and does not restore the existing leads the import updated.",
  undo_confirm: "Delete the created leads",
  undo_keep: "Keep the import",
  seconds: "{n} s",
  minutes: "{m} min {s} s",
  network: "The server does not answer. Check your connection and try again.",
  http_error: "Server error ({status}).",
  loading: "Loading…",
  done_label: "Done",
};

function pick() {
  const langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "fr"];
  for (const l of langs) {
    const base = String(l).toLowerCase().split("-")[0];
    if (base === "fr") return "fr";
    if (base === "en") return "en";
  }
  return "fr";
}

// The API's errors ({"error": code, "message": English text}) a user can meet, in French,
// by code; Supabase Auth's by its error_code. A code without an entry shows the API's own
// message, and so does the English page.
const API_ERRORS_FR = {
  database_unavailable: "La base de données ne répond pas. Réessayez dans un instant.",
  QueueUnavailable: "L’opération n’a pas pu être lancée (la file d’attente ne répond pas) ; rien n’a changé. Réessayez dans un instant.",
  StorageError: "Le stockage des fichiers ne répond pas. Réessayez dans un instant.",
  AuthUnavailable: "Votre session ne peut pas être vérifiée pour l’instant. Réessayez dans un instant.",
  internal_error: "Une erreur s’est produite de notre côté. Donnez au support la référence {request_id}.",
  JobNotFound: "Import introuvable : il n’existe pas, ou il appartient à une autre organisation.",
  OrganizationNotFound: "Organisation introuvable parmi les vôtres.",
  ObjectMissing: "Le fichier n’est plus dans le stockage : recommencez l’import avec votre fichier.",
  Forbidden: "Vous n’avez pas le droit de faire cela dans cette organisation.",
  IllegalTransition: "Cette action n’est pas possible dans l’état actuel de l’import : rechargez la page pour voir où il en est. (Détail : {message})",
  file_not_uploaded: "Le fichier n’a pas encore été envoyé : recommencez l’import en le choisissant à nouveau.",
  commit_in_progress: "Cet import est déjà en cours, avec d’autres options : attendez qu’il se termine.",
  already_committed: "Cet import a déjà été fait, avec d’autres options.",
  file_too_large: "Le fichier dépasse la taille maximale d’un import. Découpez-le en plusieurs fichiers et importez-les un par un.",
  FileTooLarge: "Le fichier dépasse la taille maximale d’un import. Découpez-le en plusieurs fichiers et importez-les un par un.",
  UploadRefused: "L’adresse d’envoi du fichier n’est plus valable : recommencez l’import.",
  no_contact_column: "Associez au moins une colonne à l’e-mail ou au téléphone : un contact en a besoin pour être importé.",
  field_used_twice: "Un même champ est associé à plusieurs colonnes : associez-le à une seule colonne.",
  unknown_column: "Le fichier n’a pas de colonne de ce nom : rechargez la page.",
  ambiguous_column: "Le fichier a plusieurs colonnes de ce nom : corrigez cette ligne dans le fichier.",
  TokenExpired: "Votre session a expiré : connectez-vous à nouveau.",
  TokenInvalid: "Votre session n’est pas valide : connectez-vous à nouveau.",
  TokenMissing: "Connectez-vous pour continuer.",
  Unauthorized: "Connectez-vous pour continuer.",
  // Supabase Auth (the sign-in form)
  otp_disabled: "Aucun compte n’existe pour cette adresse : vérifiez-la, ou demandez à un administrateur de votre organisation de vous inviter.",
  email_address_invalid: "Cette adresse e-mail n’est pas valide.",
  over_email_send_rate_limit: "Trop de liens demandés : attendez quelques minutes avant d’en demander un autre.",
  over_request_rate_limit: "Trop de demandes : attendez quelques minutes avant de réessayer.",
};

// A failed job's error_code, in French, for the codes whose English message (error_message)
// names nothing of the file: a code without an entry, or whose message quotes the file
// (its columns, sizes, a byte offset), shows the English message, and so does the English page.
const JOB_ERRORS_FR = {
  // Stopped by the service: the English message's numbers follow as the detail.
  stalled:
    "L’import n’avançait plus et a été arrêté. Réessayez-le pour qu’il reprenne là où il s’est arrêté ; s’il s’arrête encore, contactez le support en donnant l’identifiant de cet import. (Détail : {message})",
  delivery_failed:
    "Une étape de l’import a échoué malgré plusieurs tentatives. Réessayez l’import pour qu’il reprenne là où il s’est arrêté ; s’il s’arrête encore au même endroit, contactez le support en donnant l’identifiant de cet import. (Détail : {message})",
  file_missing: "Le fichier envoyé n’est plus dans le stockage. Envoyez-le à nouveau et lancez un nouvel import.",
  empty_file: "Le fichier est vide (ou ne contient que des lignes vides). Importez le fichier CSV qui contient vos contacts.",
  utf16_file:
    "Ce fichier est enregistré en UTF-16 (« Texte Unicode »), qui n’est pas pris en charge. Enregistrez-le à nouveau en CSV UTF-8 : dans Excel, Fichier > Enregistrer sous > « CSV UTF-8 (délimité par des virgules) », puis importez ce fichier.",
  not_a_workbook:
    "Ce fichier n’est ni un classeur ni un fichier CSV (un document Word ou PowerPoint, une archive ZIP ?). S’il contient vos contacts, ouvrez-les dans votre tableur et enregistrez-les en CSV UTF-8, puis importez ce fichier.",
  unsupported_workbook:
    "Ce classeur est au format binaire Excel (.xlsb), qui n’est pas lu ici. Enregistrez-le dans Excel en « Classeur Excel (.xlsx) » ou en CSV UTF-8, et importez ce fichier.",
  workbook_encrypted:
    "Ce classeur est protégé par un mot de passe : il ne peut pas être lu. Ouvrez-le dans Excel, retirez le mot de passe (Fichier > Informations > Protéger le classeur > Chiffrer avec mot de passe, puis effacez-le) et importez-le à nouveau, ou enregistrez la feuille en CSV UTF-8 et importez ce fichier.",
};

export const lang = pick();
const words = lang === "en" ? EN : FR;
const numbers = new Intl.NumberFormat(lang === "en" ? "en-GB" : "fr-FR");
const dates = new Intl.DateTimeFormat(lang === "en" ? "en-GB" : "fr-FR", { dateStyle: "short", timeStyle: "short" });

export function t(key, params = {}) {
  const text = words[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

export function num(n) {
  return numbers.format(n ?? 0);
}

export function when(iso) {
  return iso ? dates.format(new Date(iso)) : "";
}

export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? t("seconds", { n: s }) : t("minutes", { m: Math.floor(s / 60), s: s % 60 });
}

/** The text of a review code, an error's or (with `warning`) a warning's, in the page's
 * language: `item` is a code count or a row's reason, whose facts (a reason's bad `value`, a
 * malformed row's `cells` and `columns`) fill the text. A code without a text shows the
 * API's own message. */
export function reviewText(item, { warning = false } = {}) {
  const base = `review_${warning ? "warning" : "error"}_${item.code}`;
  let key = base;
  if (item.value != null && Object.hasOwn(words, `${base}_value`)) key = `${base}_value`;
  else if (item.cells != null && item.columns != null && Object.hasOwn(words, `${base}_counts`)) key = `${base}_counts`;
  if (!Object.hasOwn(words, key)) return item.message;
  return t(key, { value: item.value, cells: num(item.cells), columns: num(item.columns) });
}

/** A failed job's message: the French text of its error_code on the French page, else the
 * API's (English) error_message. */
export function jobError(job) {
  const text = lang === "fr" && Object.hasOwn(JOB_ERRORS_FR, job.error_code ?? "") ? JOB_ERRORS_FR[job.error_code] : undefined;
  return text ? text.replace("{message}", job.error_message || "") : job.error_message || "";
}

/** What to show of an API error: the French text of its code on the French page, else the
 * API's own message. `params` fills the text ({message} is the API's message). */
export function apiMessage(code, message, params = {}) {
  const text = lang === "fr" ? API_ERRORS_FR[code] : undefined;
  if (!text) return message;
  return text.replace(/\{(\w+)\}/g, (m, name) => {
    const all = { message, ...params };
    return name in all && all[name] != null ? String(all[name]) : m;
  });
}
