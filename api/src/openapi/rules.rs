//! Rules across fields of a request body, which the field attributes cannot say.

use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Type};
use utoipa::openapi::{Components, RefOr, Schema};

/// Writes the rules into the component schemas.
pub fn document(components: &mut Components) {
    // `factor()` refuses a body with both (422).
    for body in [
        "LoginRequest",
        "ReauthenticateRequest",
        "ConfirmPasswordResetRequest",
    ] {
        at_most_one_of(components, body, "totp_code", "recovery_code");
    }
}

/// `schema` takes a value (not `null`) in at most one of `a` and `b`.
fn at_most_one_of(components: &mut Components, schema: &str, a: &str, b: &str) {
    let Some(RefOr::T(original)) = components.schemas.remove(schema) else {
        return;
    };
    let null_or_absent = |field: &str| {
        ObjectBuilder::new().property(field, ObjectBuilder::new().schema_type(Type::Null))
    };
    let either = AnyOfBuilder::new()
        .item(null_or_absent(a))
        .item(null_or_absent(b))
        .description(Some(format!("`{a}` and `{b}` are not both given")));
    let description = match &original {
        Schema::Object(object) => object.description.clone(),
        _ => None,
    };
    let combined: Schema = AllOfBuilder::new()
        .item(original)
        .item(either)
        .description(description)
        .into();
    components
        .schemas
        .insert(schema.to_owned(), combined.into());
}
