//! The OpenAPI document against the contract, `docs/contract/API.md` (the
//! copy of the shared API.md that CI keeps equal to it): for every operation
//! the contract names, each status the contract states for it is documented,
//! and each documented status is one the contract gives it, in the
//! operation's own text or by a rule for all operations of its kind. v1.1
//! operations are checked as soon as the document has them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

const CONTRACT: &str = include_str!("../docs/contract/API.md");

/// The statuses a number in the contract's text can stand for.
const STATUSES: &[u16] = &[
    200, 201, 202, 204, 400, 401, 403, 404, 405, 409, 410, 413, 415, 422, 429, 500, 502, 503, 504,
];

/// Which operations a group section's statuses apply to.
#[derive(Debug, Clone, Copy)]
enum Covers {
    /// Those it names: by operationId, `METHOD /path` or a `/path/*` prefix.
    Named,
    /// Those inside it.
    Inside,
}

/// Sections that state statuses for a group of operations rather than in
/// each operation's own text (all v1.1), by heading.
const GROUP_SECTIONS: &[(&str, Covers)] = &[
    // "`changePassword`, …, every `/v1/me/mfa/*` operation, … Failure: `401
    // invalid_token` …; Redis down: `503`."
    ("Which endpoints check the session", Covers::Named),
    // "Every check of a code (`signinMfa`, `changePassword`, …) … answers `429`"
    ("Second-factor attempts", Covers::Named),
    // "`POST /v1/auth/signin` with the right password … answers **`202`**"
    ("Sign-in with a second factor", Covers::Named),
    // "`404` for every path when `ADMIN__ENABLED=false`", refused tokens'
    // `401`, a malformed id's `400`, pagination's `400` and `422`.
    ("Admin API", Covers::Inside),
];

/// Statuses the server documents beyond what the contract gives the
/// operation, each a rule the contract leaves to us: (operationId, status, why).
const BEYOND_THE_CONTRACT: &[(&str, u16, &str)] = &[
    (
        "refresh",
        429,
        "refreshes are limited per session (rate_limit.refreshes_per_session); the contract lists 429 among the errors but not for refresh",
    ),
    (
        "startTotpEnrollment",
        429,
        "the password is checked like a sign-in's and counted against the same failure limit, which answers 429",
    ),
    (
        "disableTotp",
        409,
        "TOTP is not on: there is no factor to check the code against or to turn off",
    ),
    (
        "regenerateRecoveryCodes",
        409,
        "TOTP is not on: recovery codes exist only while it is",
    ),
    (
        "listMyEvents",
        200,
        "its paragraph gives the shape and pagination of adminListEvents, whose 200 the admin table states",
    ),
    (
        "listMyEvents",
        400,
        "\"same pagination\": a `limit` that is not an integer, or an `after` that is not a cursor, is a malformed request",
    ),
    (
        "listMyEvents",
        422,
        "\"same pagination\": a `limit` out of 1-200 is 422 with `errors[].code = \"out_of_range\"`",
    ),
    (
        "revokeSession",
        400,
        "a session id in the path that is not a UUID is a malformed request, as v1.1 says for the admin paths",
    ),
];

/// An operation the contract names, with its own text: its `###` section,
/// its paragraph (`` `METHOD /path` — operationId `x` `` … up to the next
/// heading) or its table row.
#[derive(Debug, Default)]
struct Operation {
    id: String,
    method: String,
    path: String,
    /// In the v1 part (before `# v1.1`).
    v1: bool,
    text: String,
    /// Marked `, bearer` after its operationId.
    bearer: bool,
    /// A non-empty `body` column in its table row.
    body_column: bool,
    /// The sections (indices into `Contract::sections`) it sits in.
    inside: Vec<usize>,
}

impl Operation {
    /// The statuses its own text states.
    fn stated(&self) -> BTreeSet<u16> {
        statuses(&self.text)
    }

    /// Takes a JSON body: a `body` column or the text's ``Body `{…}` ``.
    fn json_body(&self) -> bool {
        self.body_column || self.text.to_lowercase().contains("body `{")
    }

    /// Statuses that `## Errors`, `## Behaviour under faults` and `### Bearer
    /// authentication` give every operation of its kind.
    fn of_its_kind(&self) -> BTreeSet<u16> {
        let mut general = BTreeSet::new();
        // Malformed JSON (400), body over 16 KiB (413), wrong content type (415).
        if self.json_body() {
            general.extend([400, 413, 415]);
        }
        // Every /v1 operation reads users (database) or sessions and counters
        // (Redis): a dependency outage is 503.
        if self.path.starts_with("/v1/") {
            general.insert(503);
        }
        // A missing or refused access token is 401.
        if self.bearer {
            general.insert(401);
        }
        general
    }
}

/// A heading's section, with its text outside the operations in it.
#[derive(Debug)]
struct Section {
    title: String,
    text: String,
}

#[derive(Debug, Default)]
struct Contract {
    operations: Vec<Operation>,
    sections: Vec<Section>,
}

impl Contract {
    fn parse(markdown: &str) -> Contract {
        let mut contract = Contract::default();
        let mut v1 = true;
        // The open headings: level and section (`None`: an operation's own).
        let mut headings: Vec<(usize, Option<usize>)> = Vec::new();
        // The operation whose text the next lines continue.
        let mut open: Option<usize> = None;
        let mut table_header: Option<Vec<String>> = None;
        for line in markdown.lines() {
            let level = line.chars().take_while(|&c| c == '#').count();
            if level > 0 && line[level..].starts_with(' ') {
                let title = line[level..].trim();
                if level == 1 && title.starts_with("v1.1") {
                    v1 = false;
                }
                headings.retain(|&(open_level, _)| open_level < level);
                table_header = None;
                open = None;
                if let Some(operation) = operation_start(title, v1, sections(&headings)) {
                    open = Some(contract.add(operation));
                    headings.push((level, None));
                } else {
                    contract.sections.push(Section {
                        title: title.to_owned(),
                        text: String::new(),
                    });
                    headings.push((level, Some(contract.sections.len() - 1)));
                }
                continue;
            }
            let inside = sections(&headings);
            if line.trim_start().starts_with('|') {
                let cells: Vec<String> = line
                    .trim()
                    .trim_matches('|')
                    .split('|')
                    .map(|cell| cell.trim().to_owned())
                    .collect();
                let Some(header) = &table_header else {
                    table_header = Some(cells);
                    continue;
                };
                if let Some(mut operation) = table_row(&cells, v1, inside.clone()) {
                    operation.body_column = header
                        .iter()
                        .position(|name| name.eq_ignore_ascii_case("body"))
                        .and_then(|column| cells.get(column))
                        .is_some_and(|body| !body.is_empty());
                    operation.text = format!("{line}\n");
                    contract.add(operation);
                    open = None;
                    continue;
                }
            } else {
                table_header = None;
                if let Some(operation) = operation_start(line, v1, inside.clone()) {
                    open = Some(contract.add(operation));
                    continue;
                }
            }
            let text = match (open, inside.last()) {
                (Some(operation), _) => &mut contract.operations[operation].text,
                (None, Some(&section)) => &mut contract.sections[section].text,
                (None, None) => continue,
            };
            text.push_str(line);
            text.push('\n');
        }
        contract
    }

    /// Adds an operation, or merges it into an earlier mention of the same one.
    fn add(&mut self, operation: Operation) -> usize {
        match self.operations.iter().position(|o| o.id == operation.id) {
            Some(index) => {
                let earlier = &mut self.operations[index];
                earlier.text.push_str(&operation.text);
                earlier.bearer |= operation.bearer;
                earlier.body_column |= operation.body_column;
                earlier.inside.extend(operation.inside);
                index
            }
            None => {
                self.operations.push(operation);
                self.operations.len() - 1
            }
        }
    }

    /// What the document's `responses` may list for `operation` beyond what
    /// its own text states; a group section missing from the contract is an error.
    fn general(
        &self,
        operation: &Operation,
        groups: &[(&str, Covers)],
    ) -> Result<BTreeSet<u16>, String> {
        let mut general = operation.of_its_kind();
        for &(title, covers) in groups {
            let mut found = false;
            for (index, section) in self.sections.iter().enumerate() {
                if section.title != title {
                    continue;
                }
                found = true;
                let applies = match covers {
                    Covers::Named => names(&section.text, operation),
                    Covers::Inside => operation.inside.contains(&index),
                };
                if applies {
                    general.extend(statuses(&section.text));
                }
            }
            if !found {
                return Err(format!(
                    "the contract has no section `{title}` (GROUP_SECTIONS names it)"
                ));
            }
        }
        Ok(general)
    }
}

/// The sections of the open headings, outermost first.
fn sections(headings: &[(usize, Option<usize>)]) -> Vec<usize> {
    headings
        .iter()
        .filter_map(|&(_, section)| section)
        .collect()
}

/// `` `METHOD /path` — operationId `x` `` at the start of `line`.
fn operation_start(line: &str, v1: bool, inside: Vec<usize>) -> Option<Operation> {
    let (code, rest) = line.strip_prefix('`')?.split_once('`')?;
    let (method, path) = endpoint(code)?;
    let rest = rest.trim_start().strip_prefix("— operationId `")?;
    let (id, rest) = rest.split_once('`')?;
    Some(Operation {
        id: id.to_owned(),
        method,
        path,
        v1,
        text: format!("{line}\n"),
        bearer: rest.trim_start().starts_with(", bearer"),
        body_column: false,
        inside,
    })
}

/// A table row `` | `METHOD /path` | `operationId` | … | ``.
fn table_row(cells: &[String], v1: bool, inside: Vec<usize>) -> Option<Operation> {
    let (method, path) = endpoint(code(cells.first()?)?)?;
    let id = code(cells.get(1)?)?;
    id.chars()
        .all(|c| c.is_ascii_alphanumeric())
        .then(|| Operation {
            id: id.to_owned(),
            method,
            path,
            v1,
            inside,
            ..Operation::default()
        })
}

/// A cell that is exactly one code span: its content.
fn code(cell: &str) -> Option<&str> {
    let content = cell.strip_prefix('`')?.strip_suffix('`')?;
    (!content.contains('`')).then_some(content)
}

/// `METHOD /path?query` as the method and the path without its query.
fn endpoint(code: &str) -> Option<(String, String)> {
    let (method, path) = code.split_once(' ')?;
    let path = path.split('?').next()?;
    (!method.is_empty() && method.chars().all(|c| c.is_ascii_uppercase()) && path.starts_with('/'))
        .then(|| (method.to_owned(), path.to_owned()))
}

/// Whether `text` names `operation` in a code span: its operationId, its
/// `METHOD /path`, or a `/prefix/*` its path is under.
fn names(text: &str, operation: &Operation) -> bool {
    let endpoint = format!("{} {}", operation.method, operation.path);
    text.split('`').skip(1).step_by(2).any(|code| {
        code == operation.id
            || code.split('?').next() == Some(endpoint.as_str())
            || code
                .strip_suffix('*')
                .is_some_and(|prefix| prefix.starts_with('/') && operation.path.starts_with(prefix))
    })
}

/// The statuses `text` mentions: whole numbers that are HTTP statuses.
fn statuses(text: &str) -> BTreeSet<u16> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter_map(|word| word.parse().ok())
        .filter(|status| STATUSES.contains(status))
        .collect()
}

/// Each operation's documented statuses, by operationId.
fn documented(document: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut operations = BTreeMap::new();
    for item in document["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().expect("path item").values() {
            let Some(id) = operation.get("operationId").and_then(Value::as_str) else {
                continue;
            };
            let responses = operation["responses"]
                .as_object()
                .map(|responses| responses.keys().cloned().collect())
                .unwrap_or_default();
            operations.insert(id.to_owned(), responses);
        }
    }
    operations
}

/// Every disagreement between `contract` and `document`, and the v1.1
/// operations skipped because the document does not have them yet.
fn disagreements(
    contract: &Contract,
    groups: &[(&str, Covers)],
    beyond: &[(&str, u16, &str)],
    document: &Value,
) -> (Vec<String>, Vec<String>) {
    let documented = documented(document);
    let mut mismatches = Vec::new();
    let mut skipped = Vec::new();
    for operation in &contract.operations {
        let name = format!("{} ({} {})", operation.id, operation.method, operation.path);
        let Some(responses) = documented.get(&operation.id) else {
            if operation.v1 {
                mismatches.push(format!("{name}: in the contract (v1), not in the document"));
            } else {
                skipped.push(name);
            }
            continue;
        };
        let stated = operation.stated();
        let general = match contract.general(operation, groups) {
            Ok(mut general) => {
                general.extend(
                    beyond
                        .iter()
                        .filter(|(id, _, _)| *id == operation.id)
                        .map(|(_, status, _)| *status),
                );
                general
            }
            Err(error) => {
                mismatches.push(error);
                continue;
            }
        };
        for status in &stated {
            if !responses.contains(&status.to_string()) {
                mismatches.push(format!(
                    "{name}: the contract states {status}, the document does not list it"
                ));
            }
        }
        for status in responses {
            let given = status
                .parse()
                .is_ok_and(|status| stated.contains(&status) || general.contains(&status));
            if !given {
                mismatches.push(format!(
                    "{name}: the document lists {status}, the contract does not give it \
                     (stated: {stated:?}; general for its kind: {general:?})"
                ));
            }
        }
    }
    (mismatches, skipped)
}

#[test]
fn the_openapi_document_lists_the_statuses_the_contract_states() {
    let contract = Contract::parse(CONTRACT);
    let (v1, v1_1): (Vec<&Operation>, Vec<&Operation>) = contract
        .operations
        .iter()
        .partition(|operation| operation.v1);
    assert!(!v1.is_empty() && !v1_1.is_empty(), "{contract:#?}");
    for operation in &v1 {
        assert!(
            !operation.stated().is_empty(),
            "no status found: {operation:#?}"
        );
    }
    let document: Value =
        serde_json::from_str(&tessera::app::openapi_document()).expect("the OpenAPI document");
    let (mismatches, skipped) =
        disagreements(&contract, GROUP_SECTIONS, BEYOND_THE_CONTRACT, &document);
    if !skipped.is_empty() {
        eprintln!(
            "not in the document yet (v1.1), skipped: {}",
            skipped.join(", ")
        );
    }
    assert!(
        mismatches.is_empty(),
        "docs/contract/API.md and the OpenAPI document disagree ({}):\n  {}",
        mismatches.len(),
        mismatches.join("\n  ")
    );
}

/// The parser and the check on a small contract of every shape: they catch
/// each kind of disagreement, in both directions.
#[test]
fn the_check_reports_every_disagreement() {
    let contract = Contract::parse(
        "# Demo (v1)\n\
         ## Endpoints\n\
         ### `POST /v1/things` — operationId `createThing`\n\
         Body `{\"name\": str}` (at most 128 characters).\n\
         - `201` created; `409` taken, see RFC 9457.\n\
         ### `GET /v1/things/{id}` — operationId `getThing`, bearer\n\
         `200`; answers 404 when unknown.\n\
         ### `GET /v1/gone` — operationId `gone`\n\
         `200`.\n\
         # v1.1 — more\n\
         ## Limits\n\
         Every operation named here (`getThing`, `/v1/extra/*`) may answer `429`.\n\
         ## Extras\n\
         | method and path | operationId | body | answers |\n\
         |---|---|---|---|\n\
         | `POST /v1/extra/x` | `extraX` | `{\"a\"}` | `200 {\"b\"}`; `422 validation` |\n\
         | `GET /v1/extra/y` | `extraY` | | `200` |\n\
         `DELETE /v1/extra/z?force=` — operationId `extraZ`, bearer:\n\
         - `204`.\n",
    );
    let ids: Vec<(&str, bool, bool, bool)> = contract
        .operations
        .iter()
        .map(|o| (o.id.as_str(), o.v1, o.json_body(), o.bearer))
        .collect();
    assert_eq!(
        ids,
        [
            ("createThing", true, true, false),
            ("getThing", true, false, true),
            ("gone", true, false, false),
            ("extraX", false, true, false),
            ("extraY", false, false, false),
            ("extraZ", false, false, true),
        ]
    );
    let document = json!({"paths": {
        "/v1/things": {"post": {"operationId": "createThing",
            "responses": {"201": {}, "400": {}, "413": {}, "415": {}, "418": {}, "503": {}}}},
        "/v1/things/{id}": {"get": {"operationId": "getThing",
            "responses": {"200": {}, "401": {}, "404": {}, "429": {}, "503": {}}}},
        "/v1/extra/y": {"get": {"operationId": "extraY", "responses": {"200": {}, "429": {}}}},
        "/v1/extra/z": {"delete": {"operationId": "extraZ", "responses": {"204": {}, "400": {}}}},
        "/health/live": {"get": {"operationId": "live", "responses": {"200": {}}}},
    }});
    let groups = [("Limits", Covers::Named)];
    let (mismatches, skipped) = disagreements(&contract, &groups, &[], &document);
    let heads: Vec<&str> = mismatches
        .iter()
        .map(|m| m.split(" (stated").next().unwrap())
        .collect();
    assert_eq!(
        heads,
        [
            "createThing (POST /v1/things): the contract states 409, the document does not list it",
            "createThing (POST /v1/things): the document lists 418, the contract does not give it",
            "gone (GET /v1/gone): in the contract (v1), not in the document",
            "extraZ (DELETE /v1/extra/z): the document lists 400, the contract does not give it",
        ]
    );
    assert_eq!(skipped, ["extraX (POST /v1/extra/x)"]);
    let (mismatches, _) = disagreements(&contract, &[("Nowhere", Covers::Inside)], &[], &document);
    assert!(
        mismatches
            .iter()
            .any(|m| m.contains("no section `Nowhere`")),
        "{mismatches:?}"
    );
}
