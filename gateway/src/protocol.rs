//! Client frames in, relay frames out.
//!
//! [`parse_frame`] turns one text frame into a [`ClientMessage`] or a
//! [`Refusal`] that says both what was wrong and how to answer it (`NOTICE`,
//! `OK false` when an event id could be read, `CLOSED` when a subscription id
//! could be read). Event and filter contents are left to `nostr_pg_core`; this
//! module only knows the envelope. Relay frames are built by string
//! concatenation around canonical JSON, so stored events are served byte for
//! byte as the database returns them.

use nostr_pg_core::canonical::write_string;
use nostr_pg_core::{Event, EventError, Filter, Filters};
use serde_json::value::RawValue;
use serde_json::Value;
use thiserror::Error;

use crate::config::Limits;
use crate::reply::Prefix;

/// A well-formed client message. Raw JSON slices borrow from the frame text.
#[derive(Debug)]
pub enum ClientMessage<'a> {
    /// `["EVENT", <event>]`: the event JSON exactly as received.
    Event { raw: &'a str },
    /// `["REQ", <sub id>, <filter>...]`
    Req { sub_id: String, filters: Vec<&'a RawValue> },
    /// `["COUNT", <sub id>, <filter>...]` (NIP-45)
    Count { sub_id: String, filters: Vec<&'a RawValue> },
    /// `["CLOSE", <sub id>]`
    Close { sub_id: String },
    /// `["AUTH", <signed kind 22242 event>]` (NIP-42)
    Auth { raw: &'a str },
    /// `["NEG-OPEN", <sub id>, <filter>, <hex message>]` (NIP-77)
    NegOpen {
        sub_id: String,
        filter: &'a RawValue,
        message: String,
    },
    /// `["NEG-MSG", <sub id>, <hex message>]`
    NegMsg { sub_id: String, message: String },
    /// `["NEG-CLOSE", <sub id>]`
    NegClose { sub_id: String },
}

/// What is wrong with a frame.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("a message must be a JSON array starting with a verb string")]
    NotArray,
    #[error("unknown message type `{0}`")]
    UnknownVerb(String),
    #[error("{verb} must be [\"{verb}\", {shape}]")]
    Shape { verb: &'static str, shape: &'static str },
    #[error("subscription id must be a string of 1 to {max} characters")]
    SubId { max: usize },
    #[error("{verb} needs at least one filter")]
    NoFilters { verb: &'static str },
    #[error("too many filters: {got} (at most {max})")]
    TooManyFilters { got: usize, max: usize },
    #[error("{0}")]
    Filter(#[from] nostr_pg_core::FilterError),
    #[error("{0}")]
    Event(#[from] EventError),
    #[error("event is {got} bytes, more than the {max} allowed")]
    EventTooLarge { got: usize, max: usize },
    #[error("event has {got} tags, more than the {max} allowed")]
    TooManyTags { got: usize, max: usize },
    #[error("content is {got} characters, more than the {max} allowed")]
    ContentTooLong { got: usize, max: usize },
    #[error("binary frames are not supported; send JSON text frames")]
    Binary,
    #[error("a negentropy message must be a string of hex")]
    NegMessage,
}

/// How a refused frame is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Notice,
    /// `["OK", <event id>, false, "invalid: ..."]`
    Ok(String),
    /// `["CLOSED", <sub id>, "invalid: ..."]`
    Closed(String),
    /// `["NEG-ERR", <sub id>, "invalid: ..."]`
    NegErr(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: FrameError,
    pub target: Target,
}

impl Refusal {
    fn notice(error: FrameError) -> Refusal {
        Refusal {
            error,
            target: Target::Notice,
        }
    }

    /// The frame that answers this refusal.
    pub fn reply(&self) -> String {
        let text = Prefix::Invalid.with(&self.error);
        match &self.target {
            Target::Notice => notice(&text),
            Target::Ok(id) => ok(id, false, &text),
            Target::Closed(sub) => closed(sub, &text),
            Target::NegErr(sub) => neg_err(sub, &text),
        }
    }
}

/// The id of an `["EVENT", {...}]` frame that is not valid JSON (say, raw
/// control characters in its content), read without a JSON parser: the first
/// `"id"` key followed by a complete 64-hex string. Only used to address the
/// `OK false` answer; nothing else is trusted from such a frame.
fn malformed_event_id(text: &str) -> Option<String> {
    let rest = text
        .trim_start()
        .strip_prefix('[')?
        .trim_start()
        .strip_prefix("\"EVENT\"")?;
    let mut from = 0;
    while let Some(at) = rest.get(from..)?.find("\"id\"") {
        let after = rest.get(from + at + 4..)?.trim_start();
        if let Some(value) = after
            .strip_prefix(':')
            .map(str::trim_start)
            .and_then(|v| v.strip_prefix('"'))
        {
            let id = value.get(..64)?;
            let closed = value.get(64..65) == Some("\"");
            if closed && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Some(id.to_owned());
            }
        }
        from += at + 4;
    }
    None
}

/// Parses one text frame. Never panics, whatever the input.
pub fn parse_frame<'a>(text: &'a str, limits: &Limits) -> Result<ClientMessage<'a>, Refusal> {
    let items: Vec<&'a RawValue> = match serde_json::from_str(text) {
        Ok(items) => items,
        Err(e) if e.is_syntax() || e.is_eof() => {
            // A client waits for the OK of the event it sent: answer it by id
            // when one can still be read from the broken frame.
            let target = malformed_event_id(text).map_or(Target::Notice, Target::Ok);
            return Err(Refusal {
                error: FrameError::Json(e.to_string()),
                target,
            });
        }
        Err(_) => return Err(Refusal::notice(FrameError::NotArray)),
    };
    let (verb, rest) = match items.split_first() {
        Some((first, rest)) => match serde_json::from_str::<&str>(first.get()) {
            Ok(v) => (v, rest),
            // A verb with escapes cannot borrow; no real verb has any.
            Err(_) => return Err(Refusal::notice(FrameError::NotArray)),
        },
        None => return Err(Refusal::notice(FrameError::NotArray)),
    };
    match verb {
        "EVENT" => match rest {
            [event] => Ok(ClientMessage::Event { raw: event.get() }),
            _ => Err(Refusal {
                error: FrameError::Shape {
                    verb: "EVENT",
                    shape: "<event object>",
                },
                target: rest
                    .first()
                    .and_then(|e| event_id_of(e.get()))
                    .map_or(Target::Notice, Target::Ok),
            }),
        },
        "AUTH" => match rest {
            [event] => Ok(ClientMessage::Auth { raw: event.get() }),
            _ => Err(Refusal::notice(FrameError::Shape {
                verb: "AUTH",
                shape: "<event object>",
            })),
        },
        "REQ" | "COUNT" => {
            let verb: &'static str = if verb == "REQ" { "REQ" } else { "COUNT" };
            let (sub, filters) = match rest.split_first() {
                Some(split) => split,
                None => {
                    return Err(Refusal::notice(FrameError::Shape {
                        verb,
                        shape: "<sub id>, <filter>...",
                    }))
                }
            };
            let sub_id = sub_id(sub, limits)?;
            if filters.is_empty() {
                return Err(Refusal {
                    error: FrameError::NoFilters { verb },
                    target: Target::Closed(sub_id),
                });
            }
            if filters.len() > limits.max_filters {
                return Err(Refusal {
                    error: FrameError::TooManyFilters {
                        got: filters.len(),
                        max: limits.max_filters,
                    },
                    target: Target::Closed(sub_id),
                });
            }
            let filters = filters.to_vec();
            Ok(if verb == "REQ" {
                ClientMessage::Req { sub_id, filters }
            } else {
                ClientMessage::Count { sub_id, filters }
            })
        }
        "CLOSE" => match rest {
            [sub] => Ok(ClientMessage::Close {
                sub_id: sub_id(sub, limits)?,
            }),
            _ => Err(Refusal::notice(FrameError::Shape {
                verb: "CLOSE",
                shape: "<sub id>",
            })),
        },
        "NEG-OPEN" => match rest {
            [sub, filter, message] => {
                let sub_id = sub_id(sub, limits)?;
                let message = neg_message(message, &sub_id)?;
                Ok(ClientMessage::NegOpen {
                    sub_id,
                    filter,
                    message,
                })
            }
            _ => Err(Refusal::notice(FrameError::Shape {
                verb: "NEG-OPEN",
                shape: "<sub id>, <filter>, <hex message>",
            })),
        },
        "NEG-MSG" => match rest {
            [sub, message] => {
                let sub_id = sub_id(sub, limits)?;
                let message = neg_message(message, &sub_id)?;
                Ok(ClientMessage::NegMsg { sub_id, message })
            }
            _ => Err(Refusal::notice(FrameError::Shape {
                verb: "NEG-MSG",
                shape: "<sub id>, <hex message>",
            })),
        },
        "NEG-CLOSE" => match rest {
            [sub] => Ok(ClientMessage::NegClose {
                sub_id: sub_id(sub, limits)?,
            }),
            _ => Err(Refusal::notice(FrameError::Shape {
                verb: "NEG-CLOSE",
                shape: "<sub id>",
            })),
        },
        other => {
            let mut shown: String = other.chars().take(32).collect();
            if shown.len() < other.len() {
                shown.push('…');
            }
            Err(Refusal::notice(FrameError::UnknownVerb(shown)))
        }
    }
}

/// A subscription id: a non-empty string of at most `max_subid_length`
/// characters. A string that is merely too long is still echoed in `CLOSED`
/// (the client can match it); anything else gets a `NOTICE`.
fn sub_id(raw: &RawValue, limits: &Limits) -> Result<String, Refusal> {
    let max = limits.max_subid_length;
    match serde_json::from_str::<String>(raw.get()) {
        Ok(s) if !s.is_empty() && s.chars().count() <= max => Ok(s),
        Ok(s) if !s.is_empty() && s.len() <= 1024 => Err(Refusal {
            error: FrameError::SubId { max },
            target: Target::Closed(s),
        }),
        _ => Err(Refusal::notice(FrameError::SubId { max })),
    }
}

/// A NIP-77 message: a JSON string (its hex is checked when it is decoded).
fn neg_message(raw: &RawValue, sub_id: &str) -> Result<String, Refusal> {
    serde_json::from_str::<String>(raw.get()).map_err(|_| Refusal {
        error: FrameError::NegMessage,
        target: Target::NegErr(sub_id.to_owned()),
    })
}

/// The `id` string of an event object, when there is one to answer to.
pub fn event_id_of(raw: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: String,
    }
    serde_json::from_str::<IdOnly>(raw)
        .ok()
        .map(|x| x.id)
        .filter(|id| id.len() <= 128)
}

/// Shape checks on an EVENT before it joins a batch: size, structure (through
/// the core parser, which also yields the pubkey for rate limiting), tag count
/// and content length. The signature is left to the database, which checks it
/// anyway; doing it here too would double the cost.
pub fn check_event(raw: &str, limits: &Limits) -> Result<Event, Refusal> {
    let target = || event_id_of(raw).map_or(Target::Notice, Target::Ok);
    let refuse = |error: FrameError| Refusal {
        error,
        target: target(),
    };
    if raw.len() > limits.max_event_size {
        return Err(refuse(FrameError::EventTooLarge {
            got: raw.len(),
            max: limits.max_event_size,
        }));
    }
    let event = Event::parse(raw).map_err(|e| refuse(FrameError::Event(e)))?;
    if event.tags.len() > limits.max_event_tags {
        return Err(refuse(FrameError::TooManyTags {
            got: event.tags.len(),
            max: limits.max_event_tags,
        }));
    }
    let chars = event.content.chars().count();
    if chars > limits.max_content_length {
        return Err(refuse(FrameError::ContentTooLong {
            got: chars,
            max: limits.max_content_length,
        }));
    }
    Ok(event)
}

/// Parses a REQ/COUNT's filters with the core (for validation and live
/// matching) and joins their JSON into the array the extension takes.
///
/// A filter whose `limit` is missing or above `max_limit` (the cap NIP-11
/// advertises) is re-serialized with `limit: max_limit`; otherwise the
/// extension would apply its own, larger, `nostr.max_limit`. Other filters
/// pass through verbatim.
pub fn parse_filters(raw: &[&RawValue], sub_id: &str, max_limit: u64) -> Result<(Filters, String), Refusal> {
    let mut parsed = Vec::with_capacity(raw.len());
    let mut json = String::from("[");
    for (i, f) in raw.iter().enumerate() {
        let refuse = |error: FrameError| Refusal {
            error,
            target: Target::Closed(sub_id.to_owned()),
        };
        let mut value: Value = serde_json::from_str(f.get()).map_err(|e| refuse(FrameError::Json(e.to_string())))?;
        let mut filter = Filter::from_value(&value).map_err(|e| refuse(FrameError::Filter(e)))?;
        if i > 0 {
            json.push(',');
        }
        match (filter.limit, value.as_object_mut()) {
            (Some(limit), _) if limit <= max_limit => json.push_str(f.get()),
            (_, Some(obj)) => {
                obj.insert("limit".to_owned(), Value::from(max_limit));
                filter.limit = Some(max_limit);
                json.push_str(&value.to_string());
            }
            // `from_value` accepted it, so it is an object; keep it as sent.
            (_, None) => json.push_str(f.get()),
        }
        parsed.push(filter);
    }
    json.push(']');
    Ok((Filters(parsed), json))
}

fn quoted(out: &mut String, s: &str) {
    write_string(out, s);
}

/// `["EVENT", <sub id>, <event json>]`, the event JSON inserted verbatim.
pub fn event(sub_id: &str, event_json: &str) -> String {
    let mut out = String::with_capacity(event_json.len() + sub_id.len() + 16);
    out.push_str("[\"EVENT\",");
    quoted(&mut out, sub_id);
    out.push(',');
    out.push_str(event_json);
    out.push(']');
    out
}

pub fn ok(event_id: &str, accepted: bool, message: &str) -> String {
    let mut out = String::with_capacity(event_id.len() + message.len() + 24);
    out.push_str("[\"OK\",");
    quoted(&mut out, event_id);
    out.push_str(if accepted { ",true," } else { ",false," });
    quoted(&mut out, message);
    out.push(']');
    out
}

pub fn eose(sub_id: &str) -> String {
    let mut out = String::from("[\"EOSE\",");
    quoted(&mut out, sub_id);
    out.push(']');
    out
}

pub fn closed(sub_id: &str, message: &str) -> String {
    let mut out = String::from("[\"CLOSED\",");
    quoted(&mut out, sub_id);
    out.push(',');
    quoted(&mut out, message);
    out.push(']');
    out
}

pub fn notice(message: &str) -> String {
    let mut out = String::from("[\"NOTICE\",");
    quoted(&mut out, message);
    out.push(']');
    out
}

pub fn auth(challenge: &str) -> String {
    let mut out = String::from("[\"AUTH\",");
    quoted(&mut out, challenge);
    out.push(']');
    out
}

/// `["NEG-MSG", <sub id>, <hex message>]` (NIP-77).
pub fn neg_msg(sub_id: &str, message_hex: &str) -> String {
    let mut out = String::with_capacity(message_hex.len() + sub_id.len() + 16);
    out.push_str("[\"NEG-MSG\",");
    quoted(&mut out, sub_id);
    out.push_str(",\"");
    // Hex needs no escaping.
    out.push_str(message_hex);
    out.push_str("\"]");
    out
}

/// `["NEG-ERR", <sub id>, <reason>]` (NIP-77).
pub fn neg_err(sub_id: &str, reason: &str) -> String {
    let mut out = String::from("[\"NEG-ERR\",");
    quoted(&mut out, sub_id);
    out.push(',');
    quoted(&mut out, reason);
    out.push(']');
    out
}

pub fn count(sub_id: &str, count: i64) -> String {
    let mut out = String::from("[\"COUNT\",");
    quoted(&mut out, sub_id);
    out.push_str(",{\"count\":");
    out.push_str(&count.to_string());
    out.push_str("}]");
    out
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
