//! `/api/v1/packages/…` (the table is in `jumpgate_api_types::packages`)
//! and the gateway's signed download route `/packages/{id}/{file}` (no
//! login: the signature is the credential).

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use jumpgate_api_types::ErrorCode;
use jumpgate_api_types::packages as api;
use jumpgate_epm::package::version::{Constraint, DebVersion};
use jumpgate_proto::packages::TaskAction;
use serde::Deserialize;

use super::notify::{self, File};
use super::{PackageError, store};
use crate::api::{ApiError, ApiJson, PeerAddr};
use crate::ids::{AgentId, rfc3339};
use crate::rbac::{Action, Caller};
use crate::state::{Api, AppState};

pub(crate) fn routes(api: Api) -> Api {
    use crate::api::Access::{Public, Site};
    api.post("/api/v1/packages", Site(Action::WritePackages), upload)
        .get("/api/v1/packages", Site(Action::ReadPackages), list)
        .get(
            "/api/v1/packages/publishers",
            Site(Action::ReadPackages),
            publishers,
        )
        .post(
            "/api/v1/packages/publishers",
            Site(Action::WritePackages),
            add_publisher,
        )
        .delete(
            "/api/v1/packages/publishers/{name}",
            Site(Action::WritePackages),
            remove_publisher,
        )
        .get(
            "/api/v1/packages/settings",
            Site(Action::ReadPackages),
            get_settings,
        )
        .put(
            "/api/v1/packages/settings",
            Site(Action::WritePackages),
            put_settings,
        )
        .get(
            "/api/v1/packages/assignments",
            Site(Action::ReadPackages),
            assignments,
        )
        .put(
            "/api/v1/packages/assignments",
            Site(Action::WritePackages),
            assign,
        )
        .delete(
            "/api/v1/packages/assignments/{group}/{package}",
            Site(Action::WritePackages),
            unassign,
        )
        .get(
            "/api/v1/packages/status",
            Site(Action::ReadPackages),
            status,
        )
        .get(
            "/api/v1/packages/inventory",
            Site(Action::ReadInventory),
            inventory,
        )
        .get("/api/v1/packages/{id}", Site(Action::ReadPackages), show)
        .delete("/api/v1/packages/{id}", Site(Action::WritePackages), delete)
        .get("/packages/{id}/{file}", Public, download)
}

impl From<PackageError> for ApiError {
    fn from(e: PackageError) -> Self {
        use PackageError as E;
        match e {
            E::Deb(_) | E::Publisher(_) | E::SignatureRequired => Self::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidPackage,
                e.to_string(),
            ),
            E::TooLarge(_) => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::TooLarge,
                e.to_string(),
            ),
            E::Duplicate { .. } | E::PublisherExists(_) | E::Pinned { .. } => {
                Self::conflict(e.to_string())
            }
            E::UnknownPackage(_) | E::NoSuchVersion { .. } => {
                Self::not_found(ErrorCode::UnknownPackage, e.to_string())
            }
            E::UnknownGroup(_) | E::UnknownPublisher(_) | E::UnknownAssignment { .. } => {
                Self::not_found(ErrorCode::NotFound, e.to_string())
            }
            E::BadRequest(_) => Self::bad_request(e.to_string()),
            E::Signing(_) | E::Blobs(_) | E::Io(_) | E::Db(_) => Self::internal(e),
        }
    }
}

/// A query's package name must be one (Debian policy §5.6.1).
fn check_package_name(name: &str) -> Result<(), ApiError> {
    if jumpgate_epm::package::deb::valid_package_name(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{} is not a Debian package name (lowercase letters, digits, +, - and .)",
            crate::ids::echo(name)
        )))
    }
}

const MEDIA_TYPES: [&str; 3] = [
    "application/vnd.debian.binary-package",
    "application/x-debian-package",
    "application/octet-stream",
];

async fn upload(
    State(st): State<AppState>,
    Caller(who): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<api::PackageInfo>), ApiError> {
    let media = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    if !media.as_deref().is_some_and(|m| MEDIA_TYPES.contains(&m)) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "send the .deb itself as application/vnd.debian.binary-package",
        ));
    }
    let signature = match headers.get(api::SIGNATURE_HEADER) {
        None => None,
        Some(v) => {
            let text = v
                .to_str()
                .ok()
                .and_then(|v| {
                    base64::engine::general_purpose::STANDARD
                        .decode(v.trim())
                        .ok()
                })
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::InvalidPackage,
                        format!(
                            "{} must be the signature file (.minisig) in base64",
                            api::SIGNATURE_HEADER
                        ),
                    )
                })?;
            Some(text)
        }
    };
    let (row, created) = super::upload(&st, body.into_data_stream(), signature, &who.name).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(super::package_dto(&row))))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    name: Option<String>,
}

async fn list(
    State(st): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<api::PackageInfo>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if let Some(n) = &q.name {
        check_package_name(n)?;
    }
    let mut c = st.db.conn().await?;
    let mut rows = store::packages(&mut c, q.name.as_deref()).await?;
    // By name, then newest version first (Debian order).
    rows.sort_by(|a, b| {
        a.name.cmp(&b.name).then_with(|| {
            match (DebVersion::parse(&b.version), DebVersion::parse(&a.version)) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                _ => b.version.cmp(&a.version),
            }
            .then_with(|| a.architecture.cmp(&b.architecture))
        })
    });
    Ok(Json(rows.iter().map(super::package_dto).collect()))
}

async fn show(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<api::PackageInfo>, ApiError> {
    let mut c = st.db.conn().await?;
    let row = store::package_by_id(&mut c, &id)
        .await?
        .ok_or_else(|| PackageError::UnknownPackage(crate::ids::echo(&id)))?;
    Ok(Json(super::package_dto(&row)))
}

async fn delete(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    super::delete(&st, &id, &who.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn publisher_dto(r: store::PublisherRow) -> api::PublisherKeyInfo {
    api::PublisherKeyInfo {
        name: r.0,
        key_id: r.1,
        public_key: r.2,
        added_by: r.3,
        added_at: rfc3339(r.4),
    }
}

async fn publishers(
    State(st): State<AppState>,
) -> Result<Json<Vec<api::PublisherKeyInfo>>, ApiError> {
    let mut c = st.db.conn().await?;
    Ok(Json(
        store::publishers(&mut c)
            .await?
            .into_iter()
            .map(publisher_dto)
            .collect(),
    ))
}

async fn add_publisher(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::AddPublisher>,
) -> Result<(StatusCode, Json<api::PublisherKeyInfo>), ApiError> {
    let row = super::add_publisher(&st, &req.name, &req.public_key, &who.name).await?;
    Ok((StatusCode::CREATED, Json(publisher_dto(row))))
}

async fn remove_publisher(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    super::remove_publisher(&st, &name, &who.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_settings(State(st): State<AppState>) -> Result<Json<api::PackageSettings>, ApiError> {
    let mut c = st.db.conn().await?;
    Ok(Json(super::settings(&mut c).await?))
}

async fn put_settings(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(s): ApiJson<api::PackageSettings>,
) -> Result<Json<api::PackageSettings>, ApiError> {
    super::save_settings(&st, &s, &who.name).await?;
    Ok(Json(s))
}

fn assignment_dto(r: store::AssignmentRow) -> api::Assignment {
    api::Assignment {
        group: r.0,
        package: r.1,
        action: r.2,
        version: r.3,
        updated_by: r.4,
        updated_at: rfc3339(r.5),
    }
}

async fn assignments(State(st): State<AppState>) -> Result<Json<Vec<api::Assignment>>, ApiError> {
    let mut c = st.db.conn().await?;
    Ok(Json(
        store::assignments(&mut c, None)
            .await?
            .into_iter()
            .map(assignment_dto)
            .collect(),
    ))
}

async fn assign(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::AssignRequest>,
) -> Result<Json<api::AssignAnswer>, ApiError> {
    let action = match req.action.as_str() {
        "install" | "upgrade" => TaskAction::Install,
        "remove" => TaskAction::Remove,
        other => {
            return Err(ApiError::bad_request(format!(
                "action must be install or remove, not {}",
                crate::ids::echo(other)
            )));
        }
    };
    let (row, resolved) = super::assign(
        &st,
        &req.group,
        &req.package,
        action,
        req.version.clone(),
        &who.name,
    )
    .await?;
    let notified = notify::connected_in(&st, &req.group).await?;
    let bg = st.clone();
    let group = req.group.clone();
    st.tasks.spawn(async move {
        match notify::notify_group(&bg, Some(&group)).await {
            Ok(n) => tracing::info!(group = %group, answered = n, "endpoints told of package assignments"),
            Err(e) => tracing::warn!(group = %group, error = %e, "cannot tell endpoints of package assignments"),
        }
    });
    Ok(Json(api::AssignAnswer {
        assignment: assignment_dto(row),
        resolved_version: resolved,
        notified: notified as u64,
    }))
}

async fn unassign(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path((group, package)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    super::unassign(&st, &group, &package, &who.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct StatusQuery {
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    package: Option<String>,
}

async fn status(
    State(st): State<AppState>,
    q: Result<Query<StatusQuery>, QueryRejection>,
) -> Result<Json<Vec<api::EndpointPackageStatus>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if let Some(n) = &q.package {
        check_package_name(n)?;
    }
    if let Some(e) = &q.endpoint {
        crate::ids::validate_name("endpoint", e).map_err(ApiError::bad_request)?;
    }
    let rows = store::results(&st.db).await?;
    Ok(Json(
        rows.into_iter()
            .filter(|r| q.endpoint.as_ref().is_none_or(|e| *e == r.0))
            .filter(|r| q.package.as_ref().is_none_or(|p| *p == r.3))
            .map(|r| api::EndpointPackageStatus {
                online: st.agents.locate(&AgentId(r.2.clone())).is_online(),
                endpoint: r.0,
                group: r.1,
                package: r.3,
                action: r.4,
                version: r.5,
                outcome: r.6,
                message: r.7,
                output: r.8,
                attempts: u32::try_from(r.9).unwrap_or(0),
                updated_at: rfc3339(r.10),
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
struct InventoryQuery {
    #[serde(default)]
    package: Option<String>,
    /// A constraint, e.g. `< 3.0.11`.
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
}

/// Rows answered at most.
const INVENTORY_LIMIT: i64 = 20_000;

async fn inventory(
    State(st): State<AppState>,
    Caller(who): Caller,
    q: Result<Query<InventoryQuery>, QueryRejection>,
) -> Result<Json<Vec<api::InventoryRow>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if q.package.is_none() && q.endpoint.is_none() {
        return Err(ApiError::bad_request(
            "name a package (package=) or an endpoint (endpoint=)",
        ));
    }
    if let Some(n) = &q.package {
        check_package_name(n)?;
    }
    let constraint = match &q.version {
        Some(_) if q.package.is_none() => {
            return Err(ApiError::bad_request(
                "a version constraint needs a package (package=)",
            ));
        }
        Some(v) => Some(Constraint::parse(v).map_err(|e| ApiError::bad_request(e.to_string()))?),
        None => None,
    };
    let rows = store::inventory(
        &st.db,
        q.package.as_deref(),
        q.endpoint.as_deref(),
        INVENTORY_LIMIT,
    )
    .await?;
    Ok(Json(
        rows.into_iter()
            .filter(|r| who.can_view(&r.1))
            .filter(|r| q.group.as_ref().is_none_or(|g| *g == r.1))
            .filter(|r| {
                constraint
                    .as_ref()
                    .is_none_or(|c| DebVersion::parse(&r.3).is_ok_and(|v| c.matches(&v)))
            })
            .map(|r| api::InventoryRow {
                endpoint: r.0,
                group: r.1,
                package: r.2,
                version: r.3,
                architecture: r.4,
                reported_at: rfc3339(r.5),
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
struct Signed {
    expires: u64,
    sig: String,
}

/// `GET /packages/{id}/{manifest|deb}?expires=&sig=`: one file of an
/// upload, for a URL the gateway signed (local blob store). Wrong or
/// expired signatures are refused alike, and limited per address (with
/// EPM's bundle route: one limit for the gateway's signed links).
async fn download(
    State(st): State<AppState>,
    PeerAddr(peer): PeerAddr,
    Path((id, file)): Path<(String, String)>,
    q: Result<Query<Signed>, QueryRejection>,
) -> Result<Response, ApiError> {
    let refused = || ApiError::forbidden("the link is not valid or has expired");
    let ok = match (File::parse(&file), q) {
        (Some(f), Ok(Query(q))) => {
            let mut c = st.db.conn().await?;
            let key = crate::epm::keys::site_key(&mut c, &st.keys, notify::URL_KEY)
                .await
                .map_err(ApiError::internal)?;
            notify::route_ok(&key, &id, f, q.expires, &q.sig, notify::unix_now()).then_some(f)
        }
        _ => None,
    };
    let Some(file) = ok else {
        if st
            .epm
            .bad_signatures
            .check(peer.ip(), tokio::time::Instant::now())
            .is_err()
        {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                "too many invalid links; wait a little",
            ));
        }
        return Err(refused());
    };
    let mut c = st.db.conn().await?;
    let Some(row) = store::package_by_id(&mut c, &id).await? else {
        return Err(ApiError::not_found(
            ErrorCode::UnknownPackage,
            "no such package",
        ));
    };
    drop(c);
    let key = match file {
        File::Manifest => &row.manifest_key,
        File::Deb => &row.blob_key,
    };
    let key = crate::blobs::BlobKey::new(key.clone()).map_err(ApiError::internal)?;
    let Some(reader) = st.blobs.get(&key).await.map_err(ApiError::internal)? else {
        return Err(ApiError::internal(format!(
            "package {id} is missing from the blob store"
        )));
    };
    let mut r = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(reader)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if file == File::Deb
        && let Ok(v) = HeaderValue::from_str(&row.size.to_string())
    {
        r.headers_mut().insert(CONTENT_LENGTH, v);
    }
    Ok(r)
}

impl IntoResponse for PackageError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
