//! What `/openapi.json` says beyond what utoipa derives: the values of fields that take
//! one of a few names, and links spelled as OpenAPI spells them.
//!
//! The request types keep such fields as text, so that a wrong name gets the answer its
//! handler gives; the derived schemas therefore say only "string". Some of the lists
//! are the domain's (credit kinds, grant sources, tiers, entry types, roles), others
//! the configured catalog's (features, plans, packages), known only when the server
//! starts. So they are written into the document here, once, from the same constants
//! and catalog the handlers check against, and a client generated from the document
//! learns them.

use creditd_ledger::{Catalog, CreditKind, EntryType, GrantSource, Tier};
use serde_json::Value;
use utoipa::openapi::path::{Operation, Parameter};
use utoipa::openapi::schema::{Object, Schema, SchemaType, Type};
use utoipa::openapi::{OpenApi, RefOr};

use super::accounts::MEMBERSHIP_ACTIONS;
use crate::auth::Role;

/// Writes every list of accepted values into `openapi`.
pub fn list_accepted_values(openapi: &mut OpenApi, catalog: &Catalog) {
    let kinds = names(CreditKind::ALL.map(CreditKind::as_str));
    let tiers = names(Tier::ALL.map(Tier::as_str));
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
    let schemas = openapi.components.as_mut().map(|c| &mut c.schemas);
    if let Some(schemas) = schemas {
        for (schema, field, values) in fields {
            let property = schemas.get_mut(schema).and_then(|s| match s {
                RefOr::T(Schema::Object(object)) => object.properties.get_mut(field),
                _ => None,
            });
            if let Some(RefOr::T(Schema::Object(property))) = property {
                accept_only(property, values);
            }
        }
    }
    let ledger = openapi
        .paths
        .paths
        .get_mut("/v1/accounts/{id}/ledger")
        .and_then(|item| item.get.as_mut())
        .and_then(|get| get.parameters.as_mut());
    let entry_type = ledger
        .into_iter()
        .flatten()
        .find(|parameter: &&mut Parameter| parameter.name == "type");
    if let Some(RefOr::T(Schema::Object(schema))) =
        entry_type.and_then(|parameter| parameter.schema.as_mut())
    {
        accept_only(schema, names(EntryType::ALL.map(EntryType::as_str)));
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
