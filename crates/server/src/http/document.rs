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
    Catalog, CreditKind, EntryType, EventType, GrantSource, MAX_AMOUNT, MAX_ORDER_ID_LEN, MAX_PAGE,
    MAX_QUANTITY, MAX_TEXT_LEN, Tier,
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

/// Writes every range of a number or text field into `openapi`.
pub fn state_ranges(openapi: &mut OpenApi, catalog: &Catalog) {
    let amount = i64::try_from(MAX_AMOUNT).unwrap_or(i64::MAX);
    let quantity = i64::from(MAX_QUANTITY);
    let policies = catalog.policies();
    let hold_ttl = Range::Number(
        i64::from(policies.hold_ttl_min_seconds),
        i64::from(policies.hold_ttl_max_seconds),
    );
    let fields = [
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
    ];
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
