//! A Nostr event: parsed from NIP-01 JSON, checked against its id and
//! signature, serialized canonically, and packed into the compact binary form
//! the extension stores.

use secp256k1::{schnorr::Signature, Secp256k1, VerifyOnly, XOnlyPublicKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::canonical::{write_string, write_tags};
use crate::error::EventError;
use crate::hex;
use crate::kind::KindClass;
use crate::tags;

/// A structurally valid event. Whether its id and signature hold is a separate
/// question, answered by [`Verifier::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: [u8; 32],
    pub pubkey: [u8; 32],
    pub created_at: i64,
    pub kind: u16,
    pub tags: Vec<Vec<String>>,
    pub content: String,
    pub sig: [u8; 64],
}

impl Event {
    /// Parses event JSON, checking every field's shape; unknown fields are ignored
    /// (they are not part of the id, and they are not served back).
    pub fn parse(json: &str) -> Result<Event, EventError> {
        let value: Value = serde_json::from_str(json).map_err(|e| EventError::Json(e.to_string()))?;
        Event::from_value(&value)
    }

    /// Like [`Event::parse`], for JSON that has already been decoded.
    pub fn from_value(value: &Value) -> Result<Event, EventError> {
        let obj = value.as_object().ok_or(EventError::NotObject)?;
        let id = hex32(obj, "id")?;
        let pubkey = hex32(obj, "pubkey")?;
        let sig = match field(obj, "sig")?.as_str() {
            Some(s) => hex::decode_fixed::<64>(s).ok_or(EventError::BadSig)?,
            None => return Err(EventError::BadSig),
        };
        let created_at = field(obj, "created_at")?
            .as_i64()
            .filter(|t| *t >= 0)
            .ok_or(EventError::BadCreatedAt)?;
        let kind = field(obj, "kind")?
            .as_u64()
            .and_then(|k| u16::try_from(k).ok())
            .ok_or(EventError::BadKind)?;
        let tags = parse_tags(field(obj, "tags")?)?;
        let content = field(obj, "content")?
            .as_str()
            .ok_or(EventError::BadContent)?
            .to_owned();
        Ok(Event {
            id,
            pubkey,
            created_at,
            kind,
            tags,
            content,
            sig,
        })
    }

    /// Parses and verifies in one step: what every entry point should call.
    pub fn parse_verified(json: &str, verifier: &Verifier) -> Result<Event, EventError> {
        let event = Event::parse(json)?;
        verifier.verify(&event)?;
        Ok(event)
    }

    /// The NIP-01 preimage `[0,pubkey,created_at,kind,tags,content]`.
    pub fn preimage(&self) -> String {
        let mut out = String::with_capacity(self.content.len() + 160);
        out.push_str("[0,\"");
        hex::encode_into(&mut out, &self.pubkey);
        out.push_str("\",");
        out.push_str(&self.created_at.to_string());
        out.push(',');
        out.push_str(&self.kind.to_string());
        out.push(',');
        write_tags(&mut out, &self.tags);
        out.push(',');
        write_string(&mut out, &self.content);
        out.push(']');
        out
    }

    /// The id this event's fields hash to.
    pub fn computed_id(&self) -> [u8; 32] {
        Sha256::digest(self.preimage().as_bytes()).into()
    }

    /// The canonical event JSON, the only form ever served: fixed key order,
    /// no whitespace, canonical string escapes.
    pub fn canonical_json(&self) -> String {
        let mut out = String::with_capacity(self.content.len() + 320);
        out.push_str("{\"id\":\"");
        hex::encode_into(&mut out, &self.id);
        out.push_str("\",\"pubkey\":\"");
        hex::encode_into(&mut out, &self.pubkey);
        out.push_str("\",\"created_at\":");
        out.push_str(&self.created_at.to_string());
        out.push_str(",\"kind\":");
        out.push_str(&self.kind.to_string());
        out.push_str(",\"tags\":");
        write_tags(&mut out, &self.tags);
        out.push_str(",\"content\":");
        write_string(&mut out, &self.content);
        out.push_str(",\"sig\":\"");
        hex::encode_into(&mut out, &self.sig);
        out.push_str("\"}");
        out
    }

    pub fn class(&self) -> KindClass {
        KindClass::of(self.kind)
    }

    /// First values of every tag named `name` (tags with no value are skipped).
    pub fn tag_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.tags.iter().filter_map(move |t| match t.as_slice() {
            [n, v, ..] if n == name => Some(v.as_str()),
            _ => None,
        })
    }

    /// The `d` tag of an addressable event; a missing one counts as empty.
    pub fn d_tag(&self) -> &str {
        self.tag_values("d").next().unwrap_or("")
    }

    /// NIP-40: the first `expiration` tag, when it is a valid timestamp.
    pub fn expiration(&self) -> Option<i64> {
        self.tag_values("expiration").next()?.parse::<i64>().ok()
    }

    /// NIP-70: a `["-"]` tag marks an event only its author may publish.
    pub fn is_protected(&self) -> bool {
        self.tags.iter().any(|t| matches!(t.as_slice(), [n, ..] if n == "-"))
    }

    /// NIP-13: the number of leading zero bits of the id.
    pub fn pow_difficulty(&self) -> u32 {
        let mut bits = 0;
        for b in self.id {
            bits += b.leading_zeros();
            if b != 0 {
                break;
            }
        }
        bits
    }

    /// The distinct index keys of the single-letter tags (see [`crate::tags`]).
    pub fn index_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .tags
            .iter()
            .filter_map(|t| match t.as_slice() {
                [n, v, ..] if tags::is_indexable_name(n) => Some(tags::key(n, v)),
                _ => None,
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Packs the event into the stored binary form: fixed-size fields first, then
    /// the canonical tags and content JSON, so serving needs no re-escaping.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut tags_json = String::new();
        write_tags(&mut tags_json, &self.tags);
        let mut content_json = String::new();
        write_string(&mut content_json, &self.content);
        let mut out = Vec::with_capacity(HEADER + tags_json.len() + content_json.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.pubkey);
        out.extend_from_slice(&self.sig);
        out.extend_from_slice(&self.created_at.to_le_bytes());
        out.extend_from_slice(&self.kind.to_le_bytes());
        // A tag list longer than 4 GiB cannot reach here: Postgres caps values at 1 GiB.
        let tags_len = u32::try_from(tags_json.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&tags_len.to_le_bytes());
        out.extend_from_slice(tags_json.as_bytes());
        out.extend_from_slice(content_json.as_bytes());
        out
    }
}

/// A view of the stored binary form that serves canonical JSON without decoding
/// the tags or content.
#[derive(Debug, Clone, Copy)]
pub struct Packed<'a> {
    bytes: &'a [u8],
    tags_end: usize,
}

const FORMAT_V1: u8 = 1;
const HEADER: usize = 1 + 32 + 32 + 64 + 8 + 2 + 4;

impl<'a> Packed<'a> {
    /// Checks the layout; `None` if the bytes are not a packed event.
    pub fn new(bytes: &'a [u8]) -> Option<Packed<'a>> {
        if bytes.first() != Some(&FORMAT_V1) || bytes.len() < HEADER {
            return None;
        }
        let len = u32::from_le_bytes(bytes.get(HEADER - 4..HEADER)?.try_into().ok()?);
        let tags_end = HEADER.checked_add(usize::try_from(len).ok()?)?;
        if tags_end > bytes.len() {
            return None;
        }
        std::str::from_utf8(bytes.get(HEADER..)?).ok()?;
        Some(Packed { bytes, tags_end })
    }

    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.bytes.get(at..at + N) {
            out.copy_from_slice(src);
        }
        out
    }

    pub fn id(&self) -> [u8; 32] {
        self.array(1)
    }
    pub fn pubkey(&self) -> [u8; 32] {
        self.array(33)
    }
    pub fn sig(&self) -> [u8; 64] {
        self.array(65)
    }
    pub fn created_at(&self) -> i64 {
        i64::from_le_bytes(self.array(129))
    }
    pub fn kind(&self) -> u16 {
        u16::from_le_bytes(self.array(137))
    }
    /// The canonical JSON of the tag list.
    pub fn tags_json(&self) -> &'a str {
        self.text(HEADER, self.tags_end)
    }
    /// The canonical JSON string literal of the content, quotes included.
    pub fn content_json(&self) -> &'a str {
        self.text(self.tags_end, self.bytes.len())
    }

    fn text(&self, from: usize, to: usize) -> &'a str {
        // `new` checked that everything after the header is UTF-8 and that the
        // split falls inside; a split inside a character yields "" (never panics).
        self.bytes
            .get(from..to)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// The canonical event JSON (identical to [`Event::canonical_json`]).
    pub fn canonical_json(&self) -> String {
        let (tags, content) = (self.tags_json(), self.content_json());
        let mut out = String::with_capacity(tags.len() + content.len() + 320);
        out.push_str("{\"id\":\"");
        hex::encode_into(&mut out, &self.id());
        out.push_str("\",\"pubkey\":\"");
        hex::encode_into(&mut out, &self.pubkey());
        out.push_str("\",\"created_at\":");
        out.push_str(&self.created_at().to_string());
        out.push_str(",\"kind\":");
        out.push_str(&self.kind().to_string());
        out.push_str(",\"tags\":");
        out.push_str(tags);
        out.push_str(",\"content\":");
        out.push_str(content);
        out.push_str(",\"sig\":\"");
        hex::encode_into(&mut out, &self.sig());
        out.push_str("\"}");
        out
    }

    /// Decodes the full event (tags and content parsed back from their JSON).
    pub fn unpack(&self) -> Option<Event> {
        let tags_value: Value = serde_json::from_str(self.tags_json()).ok()?;
        let tags = parse_tags(&tags_value).ok()?;
        let content: String = serde_json::from_str(self.content_json()).ok()?;
        Some(Event {
            id: self.id(),
            pubkey: self.pubkey(),
            created_at: self.created_at(),
            kind: self.kind(),
            tags,
            content,
            sig: self.sig(),
        })
    }
}

/// Checks ids and BIP-340 signatures. Holds its secp256k1 context, so callers
/// create one and reuse it; there is no global context.
pub struct Verifier {
    secp: Secp256k1<VerifyOnly>,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new()
    }
}

impl Verifier {
    pub fn new() -> Verifier {
        Verifier {
            secp: Secp256k1::verification_only(),
        }
    }

    /// The id must be the hash of the canonical serialization, and the
    /// signature a valid BIP-340 signature of that id by the pubkey.
    pub fn verify(&self, event: &Event) -> Result<(), EventError> {
        let computed = event.computed_id();
        if computed != event.id {
            return Err(EventError::IdMismatch {
                expected: hex::encode(&computed),
            });
        }
        self.verify_signature(&event.pubkey, &event.id, &event.sig)
    }

    /// BIP-340 verification of `sig` over the 32-byte `msg` by x-only `pubkey`.
    pub fn verify_signature(&self, pubkey: &[u8; 32], msg: &[u8; 32], sig: &[u8; 64]) -> Result<(), EventError> {
        let key = XOnlyPublicKey::from_byte_array(*pubkey).map_err(|_| EventError::BadPubkey)?;
        let sig = Signature::from_byte_array(*sig);
        self.secp
            .verify_schnorr(&sig, msg, &key)
            .map_err(|_| EventError::BadSignature)
    }
}

fn field<'a>(obj: &'a Map<String, Value>, name: &'static str) -> Result<&'a Value, EventError> {
    obj.get(name).ok_or(EventError::Missing(name))
}

fn hex32(obj: &Map<String, Value>, name: &'static str) -> Result<[u8; 32], EventError> {
    field(obj, name)?
        .as_str()
        .and_then(hex::decode_fixed::<32>)
        .ok_or(EventError::BadHex32(name))
}

fn parse_tags(value: &Value) -> Result<Vec<Vec<String>>, EventError> {
    let outer = value.as_array().ok_or(EventError::BadTags)?;
    outer
        .iter()
        .map(|tag| {
            tag.as_array()
                .ok_or(EventError::BadTags)?
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or(EventError::BadTags))
                .collect()
        })
        .collect()
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
