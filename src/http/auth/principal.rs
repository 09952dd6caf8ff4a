//! Who is calling: the extractor that checks the bearer token.

use super::AuthService;
use crate::http::error::ApiError;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use std::future::{ready, Ready};
use utalk_actors::Identity;
use utalk_storage::model::Role;
use uuid::Uuid;

/// An authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// A staff user.
    Staff {
        /// User id.
        user_id: Uuid,
        /// Role.
        role: Role,
    },
    /// A web chat customer, limited to one conversation.
    Widget {
        /// The conversation.
        conversation_id: Uuid,
    },
}

impl Principal {
    /// The staff role, if the caller is staff and holds one of `allowed`.
    pub fn require(&self, allowed: &[Role]) -> Result<(Uuid, Role), ApiError> {
        match *self {
            Principal::Staff { user_id, role } if allowed.contains(&role) => Ok((user_id, role)),
            Principal::Staff { role, .. } => Err(ApiError::forbidden(format!("role {} may not do this", role.as_str()))),
            Principal::Widget { .. } => Err(ApiError::forbidden("widget tokens may not do this")),
        }
    }

    /// Checks that the caller may see `conversation`: any staff role, or its
    /// own widget. An integration key is refused here; the routes it may use
    /// check the channel with [`crate::http::routes::may_reach`].
    pub fn may_read(&self, conversation: Uuid) -> Result<(), ApiError> {
        match *self {
            Principal::Staff { role: Role::Integration, .. } => Err(ApiError::forbidden("integration keys reach only api conversations")),
            Principal::Staff { .. } => Ok(()),
            Principal::Widget { conversation_id } if conversation_id == conversation => Ok(()),
            Principal::Widget { .. } => Err(ApiError::forbidden("widget tokens reach only their own conversation")),
        }
    }
}

/// Roles that may change conversations.
pub const WRITERS: &[Role] = &[Role::Admin, Role::Operator, Role::Agent];
/// An integrator's key.
pub const INTEGRATION: &[Role] = &[Role::Integration];
/// Every staff role.
pub const READERS: &[Role] = &[Role::Admin, Role::Operator, Role::Agent, Role::Readonly];

/// Checks a bearer token with the service.
pub fn authenticate(auth: &AuthService, header: Option<&str>) -> Result<Principal, ApiError> {
    let header = header.ok_or_else(|| ApiError::unauthorized("missing_token", "send Authorization: Bearer <token or API key>"))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| ApiError::unauthorized("missing_token", "Authorization must be `Bearer <token>`"))?;
    auth.identity(Some(token)).map(Principal::from).map_err(|code| {
        let message = match code {
            "token_expired" => "token has expired; refresh or log in again",
            "token_revoked" => "the user was disabled or signed out everywhere; log in again",
            "missing_token" => "Authorization must be `Bearer <token>`",
            _ => "token is not valid",
        };
        ApiError::unauthorized(code, message)
    })
}

impl From<Identity> for Principal {
    fn from(i: Identity) -> Self {
        match i {
            Identity::Staff { user_id, role } => Principal::Staff { user_id, role },
            Identity::Widget { conversation_id } => Principal::Widget { conversation_id },
        }
    }
}

impl From<Principal> for Identity {
    fn from(p: Principal) -> Self {
        match p {
            Principal::Staff { user_id, role } => Identity::Staff { user_id, role },
            Principal::Widget { conversation_id } => Identity::Widget { conversation_id },
        }
    }
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(auth) = req.app_data::<web::Data<AuthService>>() else {
            return ready(Err(ApiError::internal("auth service missing from app data")));
        };
        let header = req.headers().get(actix_web::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let who = authenticate(auth, header).and_then(|p| crate::http::rate_limit::charge(req, &p).map(|()| p));
        // The request's log line says who it was (the request span is current here).
        match &who {
            Ok(Principal::Staff { user_id, .. }) => {
                tracing::Span::current().record("user_id", tracing::field::display(user_id));
            }
            Ok(Principal::Widget { conversation_id }) => {
                tracing::Span::current().record("user_id", tracing::field::display(format_args!("widget:{conversation_id}")));
            }
            Err(_) => {}
        }
        ready(who)
    }
}
