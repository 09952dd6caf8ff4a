//! The JSON body extractor of every route. It is `web::Json` with one rule
//! more: the body must be a JSON object. Serde would otherwise fill a
//! struct from an array by position (`[null, null]` as `{a: null, b:
//! null}`), accepting bodies no client means and the schema does not allow.

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// A JSON object body deserialized as `T`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// `T`, read only from a JSON object.
struct Object<T>(T);

impl<'de, T: DeserializeOwned> de::Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Only<T>(PhantomData<T>);
        impl<'de, T: DeserializeOwned> Visitor<'de> for Only<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Only(PhantomData)).map(Object)
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let fut = web::Json::<Object<T>>::from_request(req, payload);
        Box::pin(async move { fut.await.map(|j| Json(j.into_inner().0)) })
    }
}

/// Reads `bytes` as a JSON object body, with the errors of [`Json`]
/// (400 `malformed_json`, 422 `validation_failed`): for routes whose body is optional.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, crate::http::error::ApiError> {
    let mut d = serde_json::Deserializer::from_slice(bytes);
    let parsed = <Object<T> as de::Deserialize>::deserialize(&mut d).and_then(|o| d.end().map(|()| o.0));
    parsed.map_err(|e| crate::http::routes::json_error(actix_web::error::JsonPayloadError::Deserialize(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        a: Option<u8>,
        b: Option<u8>,
    }

    #[test]
    fn only_an_object_is_a_body() {
        let ok: Object<Body> = serde_json::from_str(r#"{"a": 1}"#).expect("an object");
        assert_eq!(ok.0, Body { a: Some(1), b: None });
        for bad in ["[null, null]", "[1, 2]", "null", "3", "\"x\""] {
            assert!(serde_json::from_str::<Object<Body>>(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Object<Body>>(r#"{"c": 1}"#).is_err(), "unknown fields still refused");
    }
}
