//! What `/openapi.json` says beyond what utoipa derives: the values of fields that take
//! one of a few names, the ranges of numbers and texts, and links spelled as OpenAPI
//! spells them.
//!
//! The request types keep such fields as text, so that a wrong name gets the answer its
//! handler gives; the derived schemas therefore say only "string". Some of the lists
//! are the domain's (credit kinds, grant sources, tiers, entry types, roles), others
//! the configured catalog's (features, plans, packages), known only when the server
//! starts. So they are written into the document here, once, from the same constants
//! and catalog the handlers check against, and a client generated from the document
//! learns them. The ranges likewise come from the named limits (`limits.rs`, the token
//! lifetime, the key name) and the catalog's hold TTL policy, never from a literal.

use creditd_ledger::{
    Catalog, CreditKind, EntryType, EventType, GrantSource, HoldStatus, MAX_AMOUNT,
    MAX_ORDER_ID_LEN, MAX_PAGE, MAX_QUANTITY, MAX_TEXT_LEN, Tier,
};
use serde_json::Value;
use utoipa::openapi::path::{Operation, Parameter};
use utoipa::openapi::schema::{Object, Schema, SchemaType, Type};
use utoipa::openapi::{OpenApi, RefOr};

use super::accounts::MEMBERSHIP_ACTIONS;
use super::events::MAX_URL_LEN;
use crate::auth::{MAX_KEY_NAME_LEN, Role, TOKEN_TTL_MAX_SECONDS};

/// A field's range: numbers from `min` to `max`, or texts of `min` to `max` characters.
enum Range {
    Number(i64, i64),
    Length(usize, usize),
}

/// The range of every number or text field of the request bodies: (schema, field,
/// range), from the named limits and the catalog's policies.
fn field_ranges(catalog: &Catalog) -> Vec<(&'static str, &'static str, Range)> {
    let amount = i64::try_from(MAX_AMOUNT).unwrap_or(i64::MAX);
    let quantity = i64::from(MAX_QUANTITY);
    let policies = catalog.policies();
    let hold_ttl = Range::Number(
        i64::from(policies.hold_ttl_min_seconds),
        i64::from(policies.hold_ttl_max_seconds),
    );
    vec![
        ("GrantRequest", "amount", Range::Number(1, amount)),
        ("PurchaseRequest", "credits", Range::Number(1, amount)),
        (
            "PurchaseRequest",
            "order_id",
            Range::Length(1, MAX_ORDER_ID_LEN),
        ),
        (
            "AdjustmentRequest",
            "amount",
            Range::Number(amount.saturating_neg(), amount),
        ),
        (
            "AdjustmentRequest",
            "reason",
            Range::Length(1, MAX_TEXT_LEN),
        ),
        ("GrantRequest", "reason", Range::Length(0, MAX_TEXT_LEN)),
        ("PurchaseRequest", "reason", Range::Length(0, MAX_TEXT_LEN)),
        ("HoldRequest", "quantity", Range::Number(1, quantity)),
        ("HoldRequest", "ttl_seconds", hold_ttl),
        ("ChargeRequest", "quantity", Range::Number(1, quantity)),
        ("CaptureRequest", "quantity", Range::Number(0, quantity)),
        (
            "TokenRequest",
            "ttl_seconds",
            Range::Number(1, TOKEN_TTL_MAX_SECONDS),
        ),
        ("ApiKeyRequest", "name", Range::Length(1, MAX_KEY_NAME_LEN)),
        (
            "PutAccountRequest",
            "low_balance_threshold",
            Range::Number(1, amount),
        ),
        ("EndpointRequest", "url", Range::Length(1, MAX_URL_LEN)),
        (
            "EndpointRequest",
            "description",
            Range::Length(0, MAX_TEXT_LEN),
        ),
    ]
}

/// Writes every range of a number or text field into `openapi`.
pub fn state_ranges(openapi: &mut OpenApi, catalog: &Catalog) {
    let fields = field_ranges(catalog);
    for (schema, field, range) in fields {
        if let Some(property) = property(openapi, schema, field) {
            limit(property, &range);
        }
    }
    for path in [
        "/v1/accounts",
        "/v1/accounts/{id}/ledger",
        "/v1/events",
        "/v1/webhook-endpoints/{endpoint_id}/deliveries",
    ] {
        if let Some(schema) = query_parameter(openapi, path, "limit") {
            limit(schema, &Range::Number(1, i64::from(MAX_PAGE)));
        }
    }
}

/// The range of `field` of the request `schema` in words ("from 1 to 1000000000",
/// "of 1 to 100 characters"), for a refusal to state; `None` if it has none.
pub fn range_in_words(catalog: &Catalog, schema: &str, field: &str) -> Option<String> {
    field_ranges(catalog)
        .into_iter()
        .find(|(s, f, _)| *s == schema && *f == field)
        .map(|(_, _, range)| match range {
            Range::Number(min, max) => format!("from {min} to {max}"),
            Range::Length(min, max) => format!("of {min} to {max} characters"),
        })
}

fn limit(field: &mut Object, range: &Range) {
    match *range {
        Range::Number(min, max) => {
            field.minimum = Some(min.into());
            field.maximum = Some(max.into());
        }
        Range::Length(min, max) => {
            field.min_length = Some(min);
            field.max_length = Some(max);
        }
    }
}

/// The schema of a field of a component schema.
fn property<'a>(openapi: &'a mut OpenApi, schema: &str, field: &str) -> Option<&'a mut Object> {
    let schema = openapi.components.as_mut()?.schemas.get_mut(schema)?;
    match schema {
        RefOr::T(Schema::Object(object)) => match object.properties.get_mut(field)? {
            RefOr::T(Schema::Object(property)) => Some(property),
            _ => None,
        },
        _ => None,
    }
}

/// The schema of the items of an array field of a component schema.
fn array_items<'a>(openapi: &'a mut OpenApi, schema: &str, field: &str) -> Option<&'a mut Object> {
    let schema = openapi.components.as_mut()?.schemas.get_mut(schema)?;
    let RefOr::T(Schema::Object(object)) = schema else {
        return None;
    };
    match object.properties.get_mut(field)? {
        RefOr::T(Schema::Array(array)) => match &mut array.items {
            utoipa::openapi::schema::ArrayItems::RefOrSchema(items) => match items.as_mut() {
                RefOr::T(Schema::Object(items)) => Some(items),
                _ => None,
            },
            utoipa::openapi::schema::ArrayItems::False => None,
        },
        _ => None,
    }
}

/// The schema of a query parameter of a `GET`.
fn query_parameter<'a>(openapi: &'a mut OpenApi, path: &str, name: &str) -> Option<&'a mut Object> {
    let parameters = openapi
        .paths
        .paths
        .get_mut(path)?
        .get
        .as_mut()?
        .parameters
        .as_mut()?;
    let parameter = parameters
        .iter_mut()
        .find(|p: &&mut Parameter| p.name == name)?;
    match parameter.schema.as_mut()? {
        RefOr::T(Schema::Object(schema)) => Some(schema),
        _ => None,
    }
}

/// Writes every list of accepted values into `openapi`.
pub fn list_accepted_values(openapi: &mut OpenApi, catalog: &Catalog) {
    let kinds = names(CreditKind::ALL.iter().map(|k| k.as_str()));
    let tiers = names(Tier::ALL.iter().map(|t| t.as_str()));
    let features = names(catalog.features().map(|f| &*f.name));
    let fields = [
        ("MembershipRequest", "action", names(MEMBERSHIP_ACTIONS)),
        (
            "MembershipRequest",
            "plan",
            names(catalog.plans().map(|p| &*p.name)),
        ),
        ("GrantRequest", "kind", kinds.clone()),
        (
            "GrantRequest",
            "source",
            names(GrantSource::ALL.map(GrantSource::as_str)),
        ),
        (
            "PurchaseRequest",
            "package",
            names(catalog.packages().map(|p| &*p.name)),
        ),
        ("HoldRequest", "feature", features.clone()),
        ("HoldRequest", "tier", tiers.clone()),
        ("ChargeRequest", "feature", features),
        ("ChargeRequest", "tier", tiers),
        ("AdjustmentRequest", "kind", kinds),
        ("ApiKeyRequest", "role", names(Role::ALL.map(Role::as_str))),
    ];
    for (schema, field, values) in fields {
        if let Some(property) = property(openapi, schema, field) {
            accept_only(property, values);
        }
    }
    if let Some(schema) = query_parameter(openapi, "/v1/accounts/{id}/holds", "status") {
        accept_only(schema, names(HoldStatus::ALL.iter().map(|s| s.as_str())));
    }
    if let Some(schema) = query_parameter(openapi, "/v1/accounts/{id}/ledger", "type") {
        accept_only(schema, names(EntryType::ALL.iter().map(|t| t.as_str())));
    }
    let event_types = names(EventType::ALL.iter().map(|t| t.as_str()));
    if let Some(schema) = query_parameter(openapi, "/v1/events", "type") {
        accept_only(schema, event_types.clone());
    }
    if let Some(items) = array_items(openapi, "EndpointRequest", "event_types") {
        accept_only(items, event_types);
    }
}

fn names<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<Value> {
    names.into_iter().map(Value::from).collect()
}

/// Restricts a text field to `values` (and `null`, where the field may be left out as
/// `null`).
fn accept_only(field: &mut Object, mut values: Vec<Value>) {
    if let SchemaType::Array(types) = &field.schema_type
        && types.contains(&Type::Null)
    {
        values.push(Value::Null);
    }
    field.enum_values = Some(values);
}

/// Spells each response link's `operationId` as OpenAPI does. utoipa 5.5 declares links
/// beside their operations but writes the field as `operation_id`, which tools ignore;
/// the same value goes out here under its proper name, as one of the link's fields.
pub fn spell_link_operation_ids(openapi: &mut OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            respell(operation);
        }
    }
}

fn respell(operation: &mut Operation) {
    let links = operation
        .responses
        .responses
        .values_mut()
        .filter_map(|response| match response {
            RefOr::T(response) => Some(response.links.values_mut()),
            RefOr::Ref(_) => None,
        })
        .flatten();
    for link in links {
        if let RefOr::T(link) = link
            && !link.operation_id.is_empty()
        {
            let id = std::mem::take(&mut link.operation_id);
            link.extensions
                .get_or_insert_with(Default::default)
                .insert("operationId".to_owned(), Value::from(id));
        }
    }
}

/// The document as served: what utoipa derived and the passes above, then what holds for
/// every operation alike, written here once rather than beside each handler:
/// - the problems each operation can answer, by what it takes (a key, a path, a query,
///   a JSON body), each an `application/problem+json` [`crate::answer::Problem`];
/// - `Idempotency-Key` on the operations that take a JSON body, and
///   `Idempotent-Replayed` on their successful answers;
/// - a body with no required field may be left out (it counts as `{}`);
/// - `/healthz` needs no key;
/// - the patterns of ids and the ranges of every `limit`;
/// - the rules between fields (`oneOf`, `if`/`then`) where JSON Schema can say them.
pub fn finish(openapi: &OpenApi, catalog: &Catalog) -> Value {
    let mut document = serde_json::to_value(openapi).unwrap_or(Value::Null);
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return document;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            if let Some(operation) = operation.as_object_mut() {
                complete_operation(path, operation);
            }
        }
    }
    cross_field_rules(&mut document, catalog);
    document
}

/// Shape of an account id (`AccountId::parse`).
const ACCOUNT_ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$";
/// Shape of the start of an account id (`AccountIdPrefix::parse`).
const ACCOUNT_ID_PREFIX_PATTERN: &str = "^[A-Za-z0-9._:@-]{0,128}$";
/// Shape of a hold id: `h{n}_{account id}`.
const HOLD_ID_PATTERN: &str = "^h[1-9][0-9]{0,18}_[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$";
/// An order id: 1 to 128 printable ASCII characters without spaces (`OrderId::parse`).
const ORDER_ID_PATTERN: &str = "^[\\x21-\\x7e]{1,128}$";
/// An API key's name: not blank, no control characters (`auth::key_name`).
const KEY_NAME_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// An ISO 8601 duration of whole units (`P7D`, `PT2H`, `P1Y2M`).
const DURATION_PATTERN: &str = "^P(?=[0-9T])([0-9]+Y)?([0-9]+M)?([0-9]+W)?([0-9]+D)?(T(?=[0-9])([0-9]+H)?([0-9]+M)?([0-9]+S)?)?$";

fn complete_operation(path: &str, operation: &mut serde_json::Map<String, Value>) {
    if path == "/healthz" {
        operation.insert("security".to_owned(), serde_json::json!([]));
        return;
    }
    let parameters = operation
        .entry("parameters")
        .or_insert_with(|| Value::Array(Vec::new()));
    let (mut in_path, mut in_query) = (false, false);
    if let Some(parameters) = parameters.as_array_mut() {
        for parameter in parameters.iter_mut() {
            let name = parameter["name"].as_str().unwrap_or("").to_owned();
            let place = parameter["in"].as_str().unwrap_or("").to_owned();
            in_path |= place == "path";
            in_query |= place == "query";
            let schema = &mut parameter["schema"];
            match (place.as_str(), name.as_str()) {
                ("path", "id") | ("query", "account_id") => {
                    schema["pattern"] = Value::from(ACCOUNT_ID_PATTERN);
                }
                ("path", "hold_id") => schema["pattern"] = Value::from(HOLD_ID_PATTERN),
                ("path", "order_id") => schema["pattern"] = Value::from(ORDER_ID_PATTERN),
                ("query", "prefix") => schema["pattern"] = Value::from(ACCOUNT_ID_PREFIX_PATTERN),
                ("query", "limit") => {
                    schema["minimum"] = Value::from(1);
                    schema["maximum"] = Value::from(MAX_PAGE);
                }
                _ => {}
            }
        }
    }
    let json_body = operation
        .get("requestBody")
        .is_some_and(|body| body["content"].get("application/json").is_some());
    if json_body
        && let Some(parameters) = operation
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
    {
        parameters.push(serde_json::json!({
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": "Your id for this request: a retry with the same key and body replays the first answer (SPEC §6).",
            "schema": {"type": "string", "minLength": 1,
                       "maxLength": super::extract::MAX_IDEMPOTENCY_KEY_LEN,
                       "pattern": "^[\\x20-\\x7e]+$"}
        }));
    }
    if operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        operation.remove("parameters");
    }
    let mut problems: Vec<(u16, &str)> = vec![
        (401, "No valid key or token (`unauthorized`)"),
        (
            403,
            "The key's role, or the token's account, does not allow this (`forbidden`)",
        ),
        (414, "The path and query are over 8 KiB (`uri_too_long`)"),
        (
            503,
            "The database is unavailable, or the account is catching up a long jump of time (`unavailable`, `catching_up`): retry after `Retry-After` seconds",
        ),
    ];
    if in_path {
        problems.push((404, "No such resource (`not_found`)"));
    }
    if ["/holds", "/charges", "/adjustments"]
        .iter()
        .any(|end| path.ends_with(end))
        && path.starts_with("/v1/accounts/")
    {
        problems.push((402, "The eligible credits do not cover it (`insufficient_credits`, with `required` and `available`)"));
    }
    if path.starts_with("/v1/holds/") && (path.ends_with("/capture") || path.ends_with("/release"))
    {
        problems.push((409, "The hold is no longer pending (`hold_not_pending`)"));
    }
    if in_path || in_query {
        problems.push((422, "A parameter breaks a rule (`invalid_request`)"));
    }
    if json_body {
        problems.extend([
            (
                400,
                "The body is not JSON, or repeats a key (`invalid_request`)",
            ),
            (408, "The body did not arrive in time (`request_timeout`)"),
            (
                409,
                "The Idempotency-Key was used for another request (`idempotency_conflict`)",
            ),
            (413, "The body is over 64 KiB (`payload_too_large`)"),
            (415, "The body is not application/json"),
            (
                422,
                "A field breaks a rule (`invalid_request`, or the code the rule names)",
            ),
        ]);
        relax_empty_body(operation);
        announce_replays(operation);
    }
    let responses = operation
        .entry("responses")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if let Some(responses) = responses.as_object_mut() {
        for (status, description) in problems {
            responses
                .entry(status.to_string())
                .or_insert_with(|| problem_response(description));
        }
    }
}

fn problem_response(description: &str) -> Value {
    serde_json::json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

/// A JSON body whose schema requires no field may be left out: it counts as `{}`.
fn relax_empty_body(operation: &mut serde_json::Map<String, Value>) {
    let Some(body) = operation.get_mut("requestBody") else {
        return;
    };
    let schema = &body["content"]["application/json"]["schema"];
    let name = schema["$ref"]
        .as_str()
        .and_then(|reference| reference.rsplit('/').next())
        .unwrap_or("");
    if OPTIONAL_BODIES.contains(&name) {
        body["required"] = Value::Bool(false);
    }
}

/// Request schemas with no required field: their body may be left out.
const OPTIONAL_BODIES: [&str; 5] = [
    "PutAccountRequest",
    "TokenRequest",
    "NoFields",
    "RedeliverRequest",
    "CaptureRequest",
];

/// `Idempotent-Replayed: true` on the successful answers of an operation that takes an
/// `Idempotency-Key`.
fn announce_replays(operation: &mut serde_json::Map<String, Value>) {
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (status, response) in responses.iter_mut() {
        if status.starts_with('2')
            && let Some(response) = response.as_object_mut()
        {
            let headers = response
                .entry("headers")
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            headers["Idempotent-Replayed"] = serde_json::json!({
                "description": "`true` when this answer replays the first answer to the same Idempotency-Key",
                "schema": {"type": "string", "enum": ["true"]}
            });
        }
    }
}

/// Exactly one of two fields, `null` counting as absent (as the handlers read it).
fn one_of(first: &str, first_type: &str, second: &str, second_type: &str) -> Value {
    let absent = serde_json::json!({"type": "null"});
    serde_json::json!([
        {"required": [first], "properties": {first: {"type": first_type}, second: absent}},
        {"required": [second], "properties": {second: {"type": second_type}, first: absent}}
    ])
}

/// Rules between fields, and the shapes of texts, said in the schemas.
fn cross_field_rules(document: &mut Value, catalog: &Catalog) {
    let schemas = &mut document["components"]["schemas"];
    // A purchase names its package or its credits, not both.
    schemas["PurchaseRequest"]["oneOf"] = one_of("package", "string", "credits", "integer");
    // The test clock is set to an instant or moved by seconds, one of the two.
    schemas["ClockRequest"]["oneOf"] = one_of("now", "string", "advance_seconds", "integer");
    // A grant's end is an instant or a duration, not both.
    schemas["GrantRequest"]["not"] = serde_json::json!({
        "required": ["expires_at", "valid_for"],
        "properties": {"expires_at": {"type": "string"}, "valid_for": {"type": "string"}}
    });
    // An adjustment changes something.
    schemas["AdjustmentRequest"]["properties"]["amount"]["not"] = serde_json::json!({"const": 0});
    // A use names a tier its feature has a price in.
    let tiers: Vec<Value> = catalog
        .features()
        .filter_map(|feature| {
            let priced: Vec<Value> = Tier::ALL
                .iter()
                .filter(|tier| feature.price(**tier).is_ok())
                .map(|tier| Value::from(tier.as_str()))
                .chain([Value::Null])
                .collect();
            (priced.len() <= Tier::ALL.len()).then(|| {
                serde_json::json!({
                    "if": {"properties": {"feature": {"const": &*feature.name}}, "required": ["feature"]},
                    "then": {"properties": {"tier": {"enum": priced}}}
                })
            })
        })
        .collect();
    for request in ["HoldRequest", "ChargeRequest"] {
        schemas[request]["allOf"] = Value::Array(tiers.clone());
    }
    let zones: Vec<Value> = jiff::tz::db()
        .available()
        .map(|name| Value::from(name.to_string()))
        .collect();
    schemas["PutAccountRequest"]["properties"]["timezone"]["enum"] =
        Value::Array(zones.into_iter().chain([Value::Null]).collect());
    schemas["PurchaseRequest"]["properties"]["order_id"]["pattern"] = Value::from(ORDER_ID_PATTERN);
    schemas["EndpointRequest"]["properties"]["url"]["format"] = Value::from("uri");
    // Activating (or renewing) names the period's end.
    schemas["MembershipRequest"]["if"] = serde_json::json!({"properties": {"action": {"const": "activate"}}, "required": ["action"]});
    schemas["MembershipRequest"]["then"] = serde_json::json!({"required": ["period_end"]});
    schemas["ApiKeyRequest"]["properties"]["name"]["pattern"] = Value::from(KEY_NAME_PATTERN);
    schemas["GrantRequest"]["properties"]["valid_for"]["pattern"] = Value::from(DURATION_PATTERN);
    schemas["EndpointRequest"]["properties"]["event_types"]["minItems"] = Value::from(1);
    schemas["Problem"]["properties"]["request_id"] = serde_json::json!({
        "type": "string",
        "description": "The request's id (also in `x-request-id`): quote it to support. Absent when the request had an Idempotency-Key (its answer is replayed as stored)."
    });
}
