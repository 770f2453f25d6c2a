//! Reading JavaScript values into Rust, with errors that name the field.
//!
//! Parsers return [`Bad`] instead of throwing, so the same code serves both a
//! synchronous API call (where the error is thrown as a `TypeError` or
//! `RangeError`) and a hook's return value (where it becomes a rejected hook,
//! a 500 and an `onError` report).

use crate::event::{Event, FieldError, Problem};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use napi::bindgen_prelude::*;
use napi::{Env, JsValue, ValueType};

/// A refused value.
#[derive(Debug)]
pub enum Bad {
    /// Wrong type: thrown as `TypeError`.
    Type(String),
    /// Right type, bad value: thrown as `RangeError`.
    Range(String),
    /// An N-API failure or a JavaScript exception, passed through.
    Napi(Error),
}

impl From<Error> for Bad {
    fn from(e: Error) -> Self {
        Bad::Napi(e)
    }
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bad::Type(msg) | Bad::Range(msg) => f.write_str(msg),
            Bad::Napi(e) => e.fmt(f),
        }
    }
}

/// A passed-through N-API failure is the source; a refusal of ours is the
/// whole story.
impl std::error::Error for Bad {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Bad::Type(_) | Bad::Range(_) => None,
            Bad::Napi(e) => Some(e),
        }
    }
}

/// What parsers return.
pub type Res<T> = std::result::Result<T, Bad>;

/// Throws `bad` into JavaScript now and returns the marker napi-rs expects
/// for "an exception is already pending". Codes follow Node's conventions.
pub fn throw(env: &Env, bad: Bad) -> Error {
    match bad {
        Bad::Type(msg) => {
            let _ = env.throw_type_error(&msg, Some("ERR_INVALID_ARG_TYPE"));
            Error::new(Status::PendingException, msg)
        }
        Bad::Range(msg) => {
            let _ = env.throw_range_error(&msg, Some("ERR_OUT_OF_RANGE"));
            Error::new(Status::PendingException, msg)
        }
        Bad::Napi(e) => e,
    }
}

/// `bad` as a plain error value (for hook results), not thrown.
pub fn as_error(bad: Bad) -> Error {
    match bad {
        Bad::Type(msg) | Bad::Range(msg) => Error::new(Status::InvalidArg, msg),
        Bad::Napi(e) => e,
    }
}

/// Throws an `Error` with a code (e.g. `ERR_SERVER_CLOSED`).
pub fn throw_code(env: &Env, code: &str, msg: &str) -> Error {
    let _ = env.throw_error(msg, Some(code));
    Error::new(Status::PendingException, msg.to_owned())
}

/// `undefined` or `null`.
pub fn is_nullish(v: &Unknown) -> Result<bool> {
    Ok(matches!(
        v.get_type()?,
        ValueType::Undefined | ValueType::Null
    ))
}

/// A short name of a value's type for messages.
pub fn type_name(v: &Unknown) -> &'static str {
    match v.get_type() {
        Ok(ValueType::Undefined) => "undefined",
        Ok(ValueType::Null) => "null",
        Ok(ValueType::Boolean) => "boolean",
        Ok(ValueType::Number) => "number",
        Ok(ValueType::String) => "string",
        Ok(ValueType::Symbol) => "symbol",
        Ok(ValueType::Object) => match v.is_array() {
            Ok(true) => "array",
            _ => "object",
        },
        Ok(ValueType::Function) => "function",
        Ok(ValueType::BigInt) => "bigint",
        _ => "value",
    }
}

/// A plain object (not an array, not null).
pub fn object<'a>(v: Unknown<'a>, what: &str) -> Res<Object<'a>> {
    if v.get_type()? != ValueType::Object || v.is_array()? {
        return Err(Bad::Type(format!(
            "{what} must be an object, got {}",
            type_name(&v)
        )));
    }
    Ok(Object::from_unknown(v)?)
}

/// Refuses a value that is not of type `ty` (named `noun` in the message).
fn expect(v: &Unknown, ty: ValueType, what: &str, noun: &str) -> Res<()> {
    if v.get_type()? != ty {
        return Err(Bad::Type(format!(
            "{what} must be {noun}, got {}",
            type_name(v)
        )));
    }
    Ok(())
}

/// A string.
pub fn string(v: Unknown, what: &str) -> Res<String> {
    expect(&v, ValueType::String, what, "a string")?;
    Ok(String::from_unknown(v)?)
}

/// A boolean.
pub fn boolean(v: Unknown, what: &str) -> Res<bool> {
    expect(&v, ValueType::Boolean, what, "a boolean")?;
    Ok(bool::from_unknown(v)?)
}

/// A number.
pub fn number(v: Unknown, what: &str) -> Res<f64> {
    expect(&v, ValueType::Number, what, "a number")?;
    Ok(f64::from_unknown(v)?)
}

/// A non-negative integer no larger than JavaScript's largest safe integer.
pub fn count(v: Unknown, what: &str, unit: &str) -> Res<u64> {
    let n = number(v, what)?;
    if !(n.is_finite() && n.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(&n)) {
        return Err(Bad::Range(format!(
            "{what} must be a non-negative integer ({unit}), got {n}"
        )));
    }
    Ok(n as u64)
}

/// The names of an object's own enumerable string keys.
pub fn keys_of(obj: &Object) -> Result<Vec<String>> {
    let names = obj.get_property_names()?;
    let len = names.get_array_length()?;
    (0..len).map(|i| names.get_element::<String>(i)).collect()
}

/// Refuses keys outside `allowed`: a typo must not be silently ignored.
pub fn check_keys(obj: &Object, allowed: &[&str], what: &str) -> Res<()> {
    for key in keys_of(obj)? {
        if !allowed.contains(&key.as_str()) {
            return Err(Bad::Type(format!(
                "{what}: unknown field '{key}' (expected one of {})",
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

/// A property that is present and not `undefined`.
pub fn field<'a>(obj: &Object<'a>, name: &str) -> Result<Option<Unknown<'a>>> {
    let v: Unknown = obj.get_named_property(name)?;
    Ok((v.get_type()? != ValueType::Undefined).then_some(v))
}

/// The UTF-8 text of a Buffer.
pub fn utf8_buffer(v: Unknown, what: &str) -> Res<String> {
    let buf = BufferSlice::from_unknown(v)?;
    match std::str::from_utf8(buf.as_ref()) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(Bad::Type(format!("{what} Buffer is not valid UTF-8"))),
    }
}

fn field_error(context: &str, e: &FieldError) -> Bad {
    let msg = format!("{context}: event.{} {}", e.field, e.reason);
    match e.problem {
        Problem::Type => Bad::Type(msg),
        Problem::Range => Bad::Range(msg),
    }
}

/// `JSON.stringify(value)`, refusing values that have no JSON form.
pub fn json(env: &Env, value: Unknown, what: &str) -> Res<String> {
    let json: Object = env.get_global()?.get_named_property("JSON")?;
    let stringify: Function<Unknown, Unknown> = json.get_named_property("stringify")?;
    let out = stringify
        .call(value)
        .map_err(|e| Bad::Type(format!("{what} could not be JSON-encoded: {}", e.reason)))?;
    if out.get_type()? != ValueType::String {
        return Err(Bad::Type(format!(
            "{what} could not be JSON-encoded ({} has no JSON form)",
            type_name(&value)
        )));
    }
    Ok(String::from_unknown(out)?)
}

/// The text of an event's `data`: a string as is, a Buffer as UTF-8, anything else as JSON.
fn data_text(env: &Env, data: Unknown, context: &str) -> Res<String> {
    match data.get_type()? {
        ValueType::String => Ok(String::from_unknown(data)?),
        ValueType::Object if data.is_buffer()? => {
            utf8_buffer(data, &format!("{context}: event.data"))
        }
        _ => json(env, data, &format!("{context}: event.data")),
    }
}

/// An event from a string, a Buffer or `{ data, event, id, retry }`.
pub fn event(env: &Env, value: Unknown, context: &str) -> Res<Event> {
    match value.get_type()? {
        ValueType::String => return Ok(Event::message(String::from_unknown(value)?)),
        ValueType::Object if value.is_buffer()? => {
            return Ok(Event::message(utf8_buffer(value, &format!("{context}: event"))?))
        }
        ValueType::Object if !value.is_array()? => {}
        _ => {
            return Err(Bad::Type(format!(
                "{context}: event must be a string, a Buffer or an object {{ data, event?, id?, retry? }}, got {}",
                type_name(&value)
            )))
        }
    }
    let obj = Object::from_unknown(value)?;
    check_keys(
        &obj,
        &["data", "event", "id", "retry"],
        &format!("{context}: event"),
    )?;
    let mut ev = Event::default();
    if let Some(data) = field(&obj, "data")? {
        ev = ev.data(data_text(env, data, context)?);
    }
    if let Some(name) = field(&obj, "event")? {
        let name = string(name, &format!("{context}: event.event"))?;
        ev = ev.event(name).map_err(|e| field_error(context, &e))?;
    }
    let mut has_id = false;
    if let Some(id) = field(&obj, "id")? {
        let id = match id.get_type()? {
            ValueType::String => String::from_unknown(id)?,
            ValueType::Number => {
                let n = f64::from_unknown(id)?;
                if !n.is_finite() {
                    return Err(Bad::Range(format!(
                        "{context}: event.id must be finite, got {n}"
                    )));
                }
                id.coerce_to_string()?.into_utf8()?.as_str()?.to_owned()
            }
            _ => {
                return Err(Bad::Type(format!(
                    "{context}: event.id must be a string or a number, got {}",
                    type_name(&id)
                )))
            }
        };
        ev = ev.id(id).map_err(|e| field_error(context, &e))?;
        has_id = true;
    }
    let mut has_retry = false;
    if let Some(retry) = field(&obj, "retry")? {
        ev = ev.retry(count(
            retry,
            &format!("{context}: event.retry"),
            "milliseconds",
        )?);
        has_retry = true;
    }
    if !ev.has_data() && (ev.has_event() || !(has_id || has_retry)) {
        return Err(Bad::Type(format!(
            "{context}: event.data is required (only an event with just id and/or retry may omit it)"
        )));
    }
    Ok(ev)
}

/// Non-empty strings, from a string or an array of them.
pub fn strings(v: Unknown, what: &str) -> Res<Vec<String>> {
    each(v, what, |v, what| {
        let text = string(v, what)?;
        if text.is_empty() {
            return Err(Bad::Type(format!("{what} must not be empty")));
        }
        Ok(text)
    })
}

/// `one` applied to a value, or to each element of an array (named `what[i]`).
fn each<T>(v: Unknown, what: &str, one: impl Fn(Unknown, &str) -> Res<T>) -> Res<Vec<T>> {
    if v.is_array()? {
        let arr = Object::from_unknown(v)?;
        let len = arr.get_array_length()?;
        (0..len)
            .map(|i| one(arr.get_element::<Unknown>(i)?, &format!("{what}[{i}]")))
            .collect()
    } else {
        Ok(vec![one(v, what)?])
    }
}

/// Channel names from a string or an array of strings, each held to the
/// engine's rule ([`crate::channel::check_name`]); a refusal names the field
/// and the channel.
pub fn channels(v: Unknown, what: &str) -> Res<Vec<String>> {
    each(v, what, |v, what| {
        let name = string(v, what)?;
        crate::channel::check_name(&name).map_err(|why| {
            Bad::Type(format!(
                "{what} {} is not a channel name: it {why}",
                shown(&name)
            ))
        })?;
        Ok(name)
    })
}

/// A user's string for an error message: quoted, control characters
/// escaped, and cut short when long.
fn shown(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// Headers from an object whose values are strings or arrays of strings (a
/// repeated header, e.g. two `Set-Cookie`); names in `reserved` are refused.
pub fn headers(v: Unknown, what: &str, reserved: &[&str]) -> Res<Vec<(HeaderName, HeaderValue)>> {
    let obj = object(v, what)?;
    let mut out = Vec::new();
    for key in keys_of(&obj)? {
        let entry = format!("{what}['{key}']");
        let name = HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| Bad::Type(format!("{entry}: not a valid header name")))?;
        if reserved.contains(&name.as_str()) {
            return Err(Bad::Type(format!(
                "{entry}: this header is set by the server and would break the response"
            )));
        }
        let value: Unknown = obj.get_named_property(&key)?;
        if value.is_array()? && Object::from_unknown(value)?.get_array_length()? == 0 {
            return Err(Bad::Type(format!(
                "{entry} must be a string or a non-empty array of strings"
            )));
        }
        for text in each(value, &entry, string)? {
            let value = HeaderValue::from_str(&text).map_err(|_| {
                Bad::Type(format!(
                    "{entry}: not a valid header value (no CR, LF or NUL)"
                ))
            })?;
            out.push((name.clone(), value));
        }
    }
    Ok(out)
}

/// A response body: a string (text), a Buffer (bytes), or any other value as JSON.
/// Returns the bytes and the content type to use when none was given.
pub fn body(env: &Env, v: Unknown, what: &str) -> Res<(Bytes, &'static str)> {
    match v.get_type()? {
        ValueType::String => Ok((
            Bytes::from(String::from_unknown(v)?),
            "text/plain; charset=utf-8",
        )),
        ValueType::Object if v.is_buffer()? => Ok((
            Bytes::copy_from_slice(BufferSlice::from_unknown(v)?.as_ref()),
            "application/octet-stream",
        )),
        _ => Ok((
            Bytes::from(json(env, v, what)?),
            "application/json; charset=utf-8",
        )),
    }
}
