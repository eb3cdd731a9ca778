//! The catalog's values in the document: the packs and plans the server accepts (any
//! other id is refused with 422, so the schema lists them), and the claims on offer as
//! examples (an unknown claim is 404, an ended one 410: the path stays a free string).

use domain::Timestamp;
use domain::catalog::Catalog;
use serde_json::Value;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{OpenApi, RefOr, Schema};

/// Writes the catalog's ids into `document`.
pub fn document(document: &mut OpenApi, catalog: &Catalog, now: Timestamp) {
    let packs: Vec<Value> = catalog.packs.iter().map(|p| p.id.clone().into()).collect();
    let plans: Vec<Value> = catalog.plans.iter().map(|p| p.id.clone().into()).collect();
    if let Some(components) = document.components.as_mut() {
        restrict(&mut components.schemas, "PurchaseRequest", "pack_id", packs);
        restrict(
            &mut components.schemas,
            "ChangePlanRequest",
            "plan_id",
            plans,
        );
    }
    let offered: Vec<Value> = catalog
        .claims
        .iter()
        .filter(|c| c.ends_at.is_none_or(|end| end > now))
        .map(|c| c.id.clone().into())
        .collect();
    if let Some(item) = document.paths.paths.get_mut("/me/claims/{claim_id}")
        && let Some(operation) = item.post.as_mut()
    {
        set_examples(operation, "claim_id", offered);
    }
}

/// Makes `property` of the component `schema` one of `values`.
fn restrict(
    schemas: &mut std::collections::BTreeMap<String, RefOr<Schema>>,
    schema: &str,
    property: &str,
    values: Vec<Value>,
) {
    let Some(RefOr::T(Schema::Object(object))) = schemas.get_mut(schema) else {
        return;
    };
    if let Some(RefOr::T(Schema::Object(field))) = object.properties.get_mut(property) {
        field.enum_values = Some(values);
    }
}

fn set_examples(operation: &mut Operation, parameter: &str, values: Vec<Value>) {
    for p in operation.parameters.iter_mut().flatten() {
        if p.name == parameter
            && let Some(RefOr::T(Schema::Object(schema))) = p.schema.as_mut()
        {
            schema.examples = values.clone();
        }
    }
}
