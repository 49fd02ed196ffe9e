//! NIP-86 requests (`{"method": "...", "params": [...]}`) parsed into a
//! [`Call`] whose parameters are checked: pubkeys and ids are 64 hex
//! characters, kinds 0 to 65535, addresses IPv4 or IPv6 (or a network), the
//! relay's name, description and icon of a sane size. What reaches the
//! database is only ever one of these, as query parameters.

use std::net::IpAddr;

use serde_json::Value;
use thiserror::Error;

/// Longest `reason` kept with a ban, an allowance or a block.
pub const MAX_REASON: usize = 1000;
/// Longest relay name, description and icon URL.
pub const MAX_NAME: usize = 200;
pub const MAX_DESCRIPTION: usize = 10_000;
pub const MAX_ICON: usize = 2000;

/// Every method this relay answers, as `supportedmethods` lists them.
pub const METHODS: [&str; 24] = [
    "supportedmethods",
    "banpubkey",
    "unbanpubkey",
    "listbannedpubkeys",
    "allowpubkey",
    "unallowpubkey",
    "listallowedpubkeys",
    "listeventsneedingmoderation",
    "allowevent",
    "unallowevent",
    "banevent",
    "unbanevent",
    "listbannedevents",
    "listallowedevents",
    "changerelayname",
    "changerelaydescription",
    "changerelayicon",
    "allowkind",
    "disallowkind",
    "listallowedkinds",
    "listdisallowedkinds",
    "blockip",
    "unblockip",
    "listblockedips",
];

/// Which of the relay's descriptive fields a `changerelay*` call sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoField {
    Name,
    Description,
    Icon,
}

impl InfoField {
    /// The field's name as `nostr.set_relay_info` takes it.
    pub fn sql_name(self) -> &'static str {
        match self {
            InfoField::Name => "name",
            InfoField::Description => "description",
            InfoField::Icon => "icon",
        }
    }
}

/// One management call with checked parameters (hex in lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    SupportedMethods,
    BanPubkey {
        pubkey: String,
        reason: Option<String>,
    },
    UnbanPubkey {
        pubkey: String,
    },
    ListBannedPubkeys,
    AllowPubkey {
        pubkey: String,
        reason: Option<String>,
    },
    UnallowPubkey {
        pubkey: String,
    },
    ListAllowedPubkeys,
    ListEventsNeedingModeration,
    AllowEvent {
        id: String,
        reason: Option<String>,
    },
    UnallowEvent {
        id: String,
    },
    BanEvent {
        id: String,
        reason: Option<String>,
    },
    UnbanEvent {
        id: String,
    },
    ListBannedEvents,
    ListAllowedEvents,
    /// `None` clears the field: the configured value shows again.
    ChangeRelayInfo {
        field: InfoField,
        value: Option<String>,
    },
    AllowKind(i32),
    DisallowKind(i32),
    ListAllowedKinds,
    ListDisallowedKinds,
    /// An address or a network, in its canonical text form.
    BlockIp {
        ip: String,
        reason: Option<String>,
    },
    UnblockIp {
        ip: String,
    },
    ListBlockedIps,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RpcError {
    #[error("request body is not JSON: {0}")]
    Json(String),
    #[error("request must be a JSON object with `method` and `params`")]
    Shape,
    #[error("unknown method `{0}` (supportedmethods lists them)")]
    UnknownMethod(String),
    #[error("{method}: {why}")]
    Params { method: &'static str, why: String },
}

impl Call {
    /// Parses a request body.
    pub fn parse(body: &[u8]) -> Result<Call, RpcError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| RpcError::Json(e.to_string()))?;
        let obj = value.as_object().ok_or(RpcError::Shape)?;
        let method = obj.get("method").and_then(Value::as_str).ok_or(RpcError::Shape)?;
        let params: &[Value] = match obj.get("params") {
            None | Some(Value::Null) => &[],
            Some(Value::Array(list)) => list,
            Some(_) => return Err(RpcError::Shape),
        };
        let Some(name) = METHODS.iter().copied().find(|m| *m == method) else {
            return Err(RpcError::UnknownMethod(method.chars().take(64).collect()));
        };
        let p = Params { method: name, params };
        let call = match name {
            "supportedmethods" => p.none(Call::SupportedMethods)?,
            "banpubkey" => Call::BanPubkey {
                pubkey: p.hex32(0, "pubkey")?,
                reason: p.reason(1)?,
            },
            // NIP-86 allows a reason here too; nothing keeps it.
            "unbanpubkey" => {
                p.at_most(2)?;
                Call::UnbanPubkey {
                    pubkey: p.hex32(0, "pubkey")?,
                }
            }
            "listbannedpubkeys" => p.none(Call::ListBannedPubkeys)?,
            "allowpubkey" => Call::AllowPubkey {
                pubkey: p.hex32(0, "pubkey")?,
                reason: p.reason(1)?,
            },
            "unallowpubkey" => {
                p.at_most(2)?;
                Call::UnallowPubkey {
                    pubkey: p.hex32(0, "pubkey")?,
                }
            }
            "listallowedpubkeys" => p.none(Call::ListAllowedPubkeys)?,
            "listeventsneedingmoderation" => p.none(Call::ListEventsNeedingModeration)?,
            "allowevent" => Call::AllowEvent {
                id: p.hex32(0, "event id")?,
                reason: p.reason(1)?,
            },
            "banevent" => Call::BanEvent {
                id: p.hex32(0, "event id")?,
                reason: p.reason(1)?,
            },
            "unallowevent" => {
                p.at_most(2)?;
                Call::UnallowEvent {
                    id: p.hex32(0, "event id")?,
                }
            }
            "unbanevent" => {
                p.at_most(2)?;
                Call::UnbanEvent {
                    id: p.hex32(0, "event id")?,
                }
            }
            "listbannedevents" => p.none(Call::ListBannedEvents)?,
            "listallowedevents" => p.none(Call::ListAllowedEvents)?,
            "changerelayname" => p.info(InfoField::Name, MAX_NAME)?,
            "changerelaydescription" => p.info(InfoField::Description, MAX_DESCRIPTION)?,
            "changerelayicon" => p.info(InfoField::Icon, MAX_ICON)?,
            "allowkind" => Call::AllowKind(p.kind()?),
            "disallowkind" => Call::DisallowKind(p.kind()?),
            "listallowedkinds" => p.none(Call::ListAllowedKinds)?,
            "listdisallowedkinds" => p.none(Call::ListDisallowedKinds)?,
            "blockip" => Call::BlockIp {
                ip: p.ip()?,
                reason: p.reason(1)?,
            },
            // Some clients send a reason with unblockip as with blockip.
            "unblockip" => {
                p.at_most(2)?;
                Call::UnblockIp { ip: p.ip()? }
            }
            "listblockedips" => p.none(Call::ListBlockedIps)?,
            _ => return Err(RpcError::UnknownMethod(name.to_owned())),
        };
        Ok(call)
    }

    /// Whether the call changes the relay's name, description or icon.
    pub fn changes_info(&self) -> bool {
        matches!(self, Call::ChangeRelayInfo { .. })
    }
}

/// A method's parameters, read by position.
struct Params<'a> {
    method: &'static str,
    params: &'a [Value],
}

impl Params<'_> {
    fn error(&self, why: impl Into<String>) -> RpcError {
        RpcError::Params {
            method: self.method,
            why: why.into(),
        }
    }

    fn at_most(&self, n: usize) -> Result<(), RpcError> {
        if self.params.len() > n {
            return Err(self.error(format!("takes at most {n} parameters, got {}", self.params.len())));
        }
        Ok(())
    }

    fn none(&self, call: Call) -> Result<Call, RpcError> {
        if !self.params.is_empty() {
            return Err(self.error("takes no parameters"));
        }
        Ok(call)
    }

    fn string(&self, i: usize, what: &str) -> Result<&str, RpcError> {
        match self.params.get(i) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(self.error(format!("{what} must be a string"))),
            None => Err(self.error(format!("{what} is missing"))),
        }
    }

    /// 64 hex characters (either case; kept lowercase).
    fn hex32(&self, i: usize, what: &str) -> Result<String, RpcError> {
        let s = self.string(i, what)?;
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error(format!("{what} must be 64 hex characters")));
        }
        Ok(s.to_ascii_lowercase())
    }

    /// An optional reason, the last parameter: absent, null or a string
    /// (empty: none).
    fn reason(&self, i: usize) -> Result<Option<String>, RpcError> {
        self.at_most(i + 1)?;
        match self.params.get(i) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.chars().count() > MAX_REASON => {
                Err(self.error(format!("reason is longer than {MAX_REASON} characters")))
            }
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.error("reason must be a string")),
        }
    }

    fn kind(&self) -> Result<i32, RpcError> {
        self.at_most(1)?;
        let bad = || self.error("kind must be an integer from 0 to 65535");
        let kind = self.params.first().ok_or_else(|| self.error("kind is missing"))?;
        let kind = kind.as_u64().filter(|k| *k <= 65535).ok_or_else(bad)?;
        i32::try_from(kind).map_err(|_| bad())
    }

    /// An IPv4 or IPv6 address, or a network (`10.0.0.0/8`).
    fn ip(&self) -> Result<String, RpcError> {
        let s = self.string(0, "IP address")?.trim();
        canonical_ip(s).ok_or_else(|| {
            self.error(format!(
                "`{}` is not an IP address or network",
                s.chars().take(64).collect::<String>()
            ))
        })
    }

    /// A new name, description or icon; an empty one clears the field.
    fn info(&self, field: InfoField, max: usize) -> Result<Call, RpcError> {
        self.at_most(1)?;
        let s = self.string(0, field.sql_name())?.trim();
        if s.chars().count() > max {
            return Err(self.error(format!("{} is longer than {max} characters", field.sql_name())));
        }
        if field == InfoField::Icon && !(s.is_empty() || s.starts_with("https://") || s.starts_with("http://")) {
            return Err(self.error("icon must be an http(s) URL"));
        }
        if s.chars().any(char::is_control) && field != InfoField::Description {
            return Err(self.error(format!("{} must be one line", field.sql_name())));
        }
        let value = (!s.is_empty()).then(|| s.to_owned());
        Ok(Call::ChangeRelayInfo { field, value })
    }
}

/// `ip` as PostgreSQL's `inet` will read it, in one canonical form; `None`
/// if it is neither an address nor a network with a valid prefix length.
pub fn canonical_ip(ip: &str) -> Option<String> {
    let (addr, prefix) = match ip.split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
        None => (ip, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match prefix {
        Some(p) if p > max => None,
        Some(p) if p < max => Some(format!("{addr}/{p}")),
        _ => Some(addr.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Call, RpcError> {
        Call::parse(v.to_string().as_bytes())
    }

    const PK: &str = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

    #[test]
    fn every_method_parses() {
        assert_eq!(
            parse(json!({"method": "supportedmethods", "params": []})),
            Ok(Call::SupportedMethods)
        );
        assert_eq!(
            parse(json!({"method": "supportedmethods"})),
            Ok(Call::SupportedMethods),
            "params may be left out"
        );
        assert_eq!(
            parse(json!({"method": "banpubkey", "params": [PK.to_uppercase(), "spam"]})),
            Ok(Call::BanPubkey {
                pubkey: PK.into(),
                reason: Some("spam".into())
            })
        );
        assert_eq!(
            parse(json!({"method": "unbanpubkey", "params": [PK, "forgiven"]})),
            Ok(Call::UnbanPubkey { pubkey: PK.into() })
        );
        assert_eq!(
            parse(json!({"method": "allowevent", "params": [PK]})),
            Ok(Call::AllowEvent {
                id: PK.into(),
                reason: None
            })
        );
        assert_eq!(
            parse(json!({"method": "allowkind", "params": [30023]})),
            Ok(Call::AllowKind(30023))
        );
        assert_eq!(
            parse(json!({"method": "blockip", "params": ["2001:DB8::1", "abuse"]})),
            Ok(Call::BlockIp {
                ip: "2001:db8::1".into(),
                reason: Some("abuse".into())
            })
        );
        assert_eq!(
            parse(json!({"method": "unblockip", "params": ["10.0.0.0/8"]})),
            Ok(Call::UnblockIp {
                ip: "10.0.0.0/8".into()
            })
        );
        assert_eq!(
            parse(json!({"method": "changerelayname", "params": ["  Ours  "]})),
            Ok(Call::ChangeRelayInfo {
                field: InfoField::Name,
                value: Some("Ours".into())
            })
        );
        assert_eq!(
            parse(json!({"method": "changerelayicon", "params": [""]})),
            Ok(Call::ChangeRelayInfo {
                field: InfoField::Icon,
                value: None
            }),
            "empty clears"
        );
        for m in METHODS {
            let params = match m {
                "banpubkey" | "unbanpubkey" | "allowpubkey" | "unallowpubkey" | "allowevent" | "unallowevent"
                | "banevent" | "unbanevent" => {
                    json!([PK])
                }
                "allowkind" | "disallowkind" => json!([1]),
                "blockip" | "unblockip" => json!(["192.0.2.1"]),
                "changerelayname" | "changerelaydescription" | "changerelayicon" => json!(["https://x.example/i.png"]),
                _ => json!([]),
            };
            assert!(parse(json!({"method": m, "params": params})).is_ok(), "{m}");
        }
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        assert!(matches!(Call::parse(b"{"), Err(RpcError::Json(_))));
        assert_eq!(parse(json!([1])), Err(RpcError::Shape));
        assert_eq!(parse(json!({"params": []})), Err(RpcError::Shape));
        assert_eq!(parse(json!({"method": "x", "params": {}})), Err(RpcError::Shape));
        assert_eq!(
            parse(json!({"method": "createrole", "params": []})),
            Err(RpcError::UnknownMethod("createrole".into()))
        );
        assert_eq!(
            parse(json!({"method": "", "params": []})),
            Err(RpcError::UnknownMethod(String::new()))
        );
        let why = |v: Value| match parse(v) {
            Err(RpcError::Params { why, .. }) => why,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            why(json!({"method": "banpubkey", "params": ["abc"]})),
            "pubkey must be 64 hex characters"
        );
        assert_eq!(why(json!({"method": "banpubkey", "params": []})), "pubkey is missing");
        assert_eq!(
            why(json!({"method": "banevent", "params": [PK, 5]})),
            "reason must be a string"
        );
        assert!(why(json!({"method": "banevent", "params": [PK, "r", "x"]})).contains("at most 2"));
        assert_eq!(
            why(json!({"method": "allowkind", "params": [65536]})),
            "kind must be an integer from 0 to 65535"
        );
        assert_eq!(
            why(json!({"method": "allowkind", "params": [-1]})),
            "kind must be an integer from 0 to 65535"
        );
        assert_eq!(
            why(json!({"method": "allowkind", "params": ["1"]})),
            "kind must be an integer from 0 to 65535"
        );
        assert!(why(json!({"method": "blockip", "params": ["300.1.1.1"]})).contains("not an IP address"));
        assert!(why(json!({"method": "blockip", "params": ["10.0.0.0/33"]})).contains("not an IP address"));
        assert_eq!(
            why(json!({"method": "changerelayicon", "params": ["javascript:alert(1)"]})),
            "icon must be an http(s) URL"
        );
        assert_eq!(
            why(json!({"method": "listbannedpubkeys", "params": [1]})),
            "takes no parameters"
        );
        let long = "x".repeat(MAX_REASON + 1);
        assert!(why(json!({"method": "blockip", "params": ["192.0.2.1", long]})).contains("longer"));
    }

    #[test]
    fn addresses_are_canonical() {
        assert_eq!(canonical_ip("192.0.2.1/32").as_deref(), Some("192.0.2.1"));
        assert_eq!(canonical_ip("::ffff:192.0.2.1").as_deref(), Some("::ffff:192.0.2.1"));
        assert_eq!(canonical_ip("2001:db8:0::/48").as_deref(), Some("2001:db8::/48"));
        assert_eq!(canonical_ip("host.example"), None);
        assert_eq!(canonical_ip("1.2.3.4/x"), None);
    }
}
