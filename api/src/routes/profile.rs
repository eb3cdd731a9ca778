//! Profile, avatar, and public creator profiles.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, CurrentSession, RequestContext};
use crate::openapi::{Binary, Routes, patterns};
use crate::routes::me::{MeResponse, me_view};
use crate::state::{AppState, Auth, Core};
use axum::Json;
use axum::body::Bytes;
use axum::extract::multipart::MultipartError;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use commands::accounts::ProfileChange;
use domain::AccountId;
use projections::{Follower, Visibility};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::ContentBuilder;
use utoipa::openapi::encoding::EncodingBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, SchemaFormat, Type,
};
use utoipa_axum::router::{UtoipaMethodRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;
use uuid::Uuid;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(update))
        .routes(
            with_form(routes!(my_avatar, upload, remove)).layer(DefaultBodyLimit::max(
                commands::avatar::MAX_BYTES + 64 * 1024,
            )),
        )
        .routes(routes!(public_profile))
        .routes(routes!(public_avatar))
}

/// Documents the multipart form `PUT /me/avatar` takes besides a bare image: a part's media
/// types are an `encoding`, which the path attribute cannot say.
fn with_form(mut avatar: UtoipaMethodRouter<AppState>) -> UtoipaMethodRouter<AppState> {
    let upload = avatar
        .1
        .paths
        .get_mut(AVATAR_PATH)
        .and_then(|item| item.put.as_mut())
        .and_then(|operation| operation.request_body.as_mut());
    if let Some(body) = upload {
        let file = ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .description(Some("The image, the form's only part"));
        let form = ObjectBuilder::new()
            .property("avatar", file)
            .required("avatar")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        let content = ContentBuilder::new()
            .schema(Some(form))
            .encoding(
                "avatar",
                EncodingBuilder::new().content_type(Some("image/png, image/jpeg, image/webp")),
            )
            .build();
        body.content.insert("multipart/form-data".into(), content);
    }
    avatar
}

/// `PATCH /me/profile`: only the fields sent change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProfileRequest {
    /// 1 to 64 characters.
    #[schema(schema_with = patterns::schemas::display_name_or_null)]
    pub display_name: Option<String>,
    /// Up to 160 characters; empty removes it.
    #[schema(schema_with = patterns::schemas::bio_or_null)]
    pub bio: Option<String>,
    /// Show the creator profile at `GET /profiles/{account_id}`.
    pub public_profile: Option<bool>,
}

/// Changes the profile.
#[utoipa::path(patch, path = "/me/profile", operation_id = "update_profile", tag = "account", security(("session" = [])),
    request_body = ProfileRequest,
    responses((status = 200, body = MeResponse), (status = 422, description = "`validation_failed`: a display name or bio out of bounds", body = ErrorBody)))]
pub async fn update(
    State(core): State<Core>,
    State(auth): State<Auth>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiJson(body): ApiJson<ProfileRequest>,
) -> Result<Json<MeResponse>, ApiError> {
    let change = ProfileChange {
        display_name: body.display_name,
        bio: body.bio,
        public_profile: body.public_profile,
    };
    let position = auth
        .accounts
        .update_profile(&ctx.command(session.actor()), session.account_id, change)
        .await?;
    core.visible(Visibility::ReadModel(Follower::Accounts), position)
        .await?;
    Ok(Json(me_view(&core, session.account_id).await?))
}

/// Where the avatar is served.
#[derive(Debug, Serialize, ToSchema)]
pub struct AvatarView {
    /// The caller's avatar.
    pub avatar_url: String,
}

/// Where the caller's avatar is uploaded.
pub(crate) const AVATAR_PATH: &str = "/me/avatar";

/// The answer to an upload over the avatar's limit, whichever layer reads it first.
pub(crate) fn avatar_too_large() -> ApiError {
    ApiError::TooLarge("avatar_too_large", "the image is larger than 5 MB".into())
}

/// Reads an upload: the image as the body, or the `avatar` part of a multipart form.
async fn image_bytes(request: Request) -> Result<Bytes, ApiError> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("multipart/form-data"));
    let too_large = avatar_too_large;
    if multipart {
        let mut form = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::BadRequest("invalid_multipart", e.body_text()))?;
        let unreadable = |e: MultipartError| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::BadRequest("invalid_multipart", e.body_text())
            }
        };
        // The form is exactly what the document says: one part, `avatar`. A part under any
        // other name (or a second image) is refused rather than silently ignored.
        let mut image = None;
        while let Some(field) = form.next_field().await.map_err(unreadable)? {
            if field.name() != Some("avatar") {
                return Err(ApiError::invalid(
                    "avatar",
                    "the form takes one part, named `avatar`",
                ));
            }
            if image.is_some() {
                return Err(ApiError::invalid(
                    "avatar",
                    "the form has more than one image",
                ));
            }
            image = Some(field.bytes().await.map_err(unreadable)?);
        }
        image.ok_or_else(|| ApiError::invalid("avatar", "the form has no file"))
    } else {
        Bytes::from_request(request, &())
            .await
            .map_err(|_| too_large())
    }
}

/// Sets the avatar: a JPEG, PNG or WebP up to 5 MB (judged by content), stored as a
/// square PNG of at most 512 px without metadata.
#[utoipa::path(put, path = "/me/avatar", tag = "account", security(("session" = [])),
    request_body(description = "The image as the body (its type is judged by its content, not \
        `Content-Type`), or a `multipart/form-data` form whose one part, `avatar`, is the image",
        content((Binary = "image/png"), (Binary = "image/jpeg"), (Binary = "image/webp"))),
    responses(
        (status = 200, body = AvatarView),
        (status = 400, description = "`invalid_multipart`: a form that does not parse", body = ErrorBody),
        (status = 413, description = "`avatar_too_large`: over 5 MB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not a JPEG, PNG or WebP", body = ErrorBody),
        (status = 422, description = "`invalid_image` (truncated or corrupt), `image_too_large` (too many pixels), \
            `validation_failed` (a form without an `avatar` part, or with any other part)", body = ErrorBody),
        (status = 503, description = "`busy`: every avatar decode slot stayed taken for two seconds; see `Retry-After`", body = ErrorBody),
    ))]
pub async fn upload(
    State(core): State<Core>,
    State(auth): State<Auth>,
    ctx: RequestContext,
    session: CurrentSession,
    request: Request,
) -> Result<Json<AvatarView>, ApiError> {
    let bytes = image_bytes(request).await?;
    let position = auth
        .accounts
        .set_avatar(
            &ctx.command(session.actor()),
            session.account_id,
            bytes.to_vec(),
        )
        .await?;
    core.visible(Visibility::ReadModel(Follower::Accounts), position)
        .await?;
    Ok(Json(AvatarView {
        avatar_url: "/me/avatar".into(),
    }))
}

fn image_response(bytes: Vec<u8>, content_type: &str) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn avatar_of(auth: &Auth, account_id: AccountId) -> Result<Response, ApiError> {
    let (bytes, content_type) = auth
        .accounts
        .avatar(account_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("avatar_not_found", "no avatar".into()))?;
    Ok(image_response(bytes, &content_type))
}

/// The caller's avatar.
#[utoipa::path(get, path = "/me/avatar", tag = "account", security(("session" = [])),
    responses((status = 200, description = "The avatar, a square PNG", content_type = "image/png", body = Binary),
        (status = 404, description = "`avatar_not_found`", body = ErrorBody)))]
pub async fn my_avatar(
    State(auth): State<Auth>,
    session: CurrentSession,
) -> Result<Response, ApiError> {
    avatar_of(&auth, session.account_id).await
}

/// Removes the avatar.
#[utoipa::path(delete, path = "/me/avatar", tag = "account", security(("session" = [])),
    responses((status = 204, description = "Removed (or there was none)")))]
pub async fn remove(
    State(core): State<Core>,
    State(auth): State<Auth>,
    ctx: RequestContext,
    session: CurrentSession,
) -> Result<StatusCode, ApiError> {
    let position = auth
        .accounts
        .remove_avatar(&ctx.command(session.actor()), session.account_id)
        .await?;
    core.visible(Visibility::ReadModel(Follower::Accounts), position)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A creator's public profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicProfile {
    /// The account.
    pub account_id: Uuid,
    /// Its display name.
    pub display_name: String,
    /// Its bio.
    pub bio: Option<String>,
    /// Its avatar, if any.
    pub avatar_url: Option<String>,
}

async fn public_row(
    core: &Core,
    account_id: &str,
) -> Result<projections::accounts::AccountRow, ApiError> {
    let not_found = || ApiError::NotFound("profile_not_found", "no such public profile".into());
    let id = Uuid::parse_str(account_id).map_err(|_| not_found())?;
    projections::accounts::find(&core.db, &core.sealer, AccountId(id))
        .await?
        .filter(|row| row.public_profile)
        .ok_or_else(not_found)
}

/// A creator profile, if the account made it public (404 otherwise).
#[utoipa::path(get, path = "/profiles/{account_id}", tag = "account",
    params(("account_id" = Uuid, Path, description = "The account's id")),
    responses((status = 200, body = PublicProfile),
        (status = 404, description = "`profile_not_found`: no such account, or its profile is not public", body = ErrorBody)))]
pub async fn public_profile(
    State(core): State<Core>,
    ApiPath(account_id): ApiPath<String>,
) -> Result<Json<PublicProfile>, ApiError> {
    let row = public_row(&core, &account_id).await?;
    Ok(Json(PublicProfile {
        account_id: row.account_id.0,
        avatar_url: row
            .has_avatar
            .then(|| format!("/profiles/{}/avatar", row.account_id)),
        display_name: row.display_name,
        bio: row.bio,
    }))
}

/// A public creator's avatar.
#[utoipa::path(get, path = "/profiles/{account_id}/avatar", tag = "account",
    params(("account_id" = Uuid, Path, description = "The account's id")),
    responses((status = 200, description = "The avatar, a square PNG", content_type = "image/png", body = Binary),
        (status = 404, description = "`profile_not_found` or `avatar_not_found`", body = ErrorBody)))]
pub async fn public_avatar(
    State(core): State<Core>,
    State(auth): State<Auth>,
    ApiPath(account_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let row = public_row(&core, &account_id).await?;
    avatar_of(&auth, row.account_id).await
}
