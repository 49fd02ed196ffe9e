//! NIP-01 filters: parsing with exact shapes, and matching.
//!
//! Within a filter every present condition must hold (AND); a list of filters
//! matches an event when any filter does (OR). `ids` and `authors` are exact
//! 64-hex values (no prefixes), tag conditions look at the first value of tags
//! with a single-letter name, `since`/`until` are inclusive, and an empty list
//! matches nothing. `limit` only shapes stored queries, never live matching.

use serde_json::{Map, Value};

use crate::error::FilterError;
use crate::event::Event;
use crate::hex;
use crate::tags;

/// One tag condition, `#x: [values]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCondition {
    /// The single-letter tag name.
    pub name: String,
    pub values: Vec<String>,
}

impl TagCondition {
    /// The index keys the values map to (see [`crate::tags::key`]).
    pub fn index_keys(&self) -> Vec<String> {
        self.values.iter().map(|v| tags::key(&self.name, v)).collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub ids: Option<Vec<[u8; 32]>>,
    pub authors: Option<Vec<[u8; 32]>>,
    pub kinds: Option<Vec<u16>>,
    pub tags: Vec<TagCondition>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub limit: Option<u64>,
    pub search: Option<String>,
}

/// A REQ's list of filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(pub Vec<Filter>);

impl Filters {
    /// Parses a JSON array of filter objects.
    pub fn parse(json: &str) -> Result<Filters, FilterError> {
        let value: Value = serde_json::from_str(json).map_err(|e| FilterError::Json(e.to_string()))?;
        let list = value.as_array().ok_or(FilterError::NotArray)?;
        list.iter()
            .map(Filter::from_value)
            .collect::<Result<_, _>>()
            .map(Filters)
    }

    pub fn matches(&self, event: &Event) -> bool {
        self.0.iter().any(|f| f.matches(event))
    }
}

impl Filter {
    /// Parses one filter object.
    pub fn parse(json: &str) -> Result<Filter, FilterError> {
        let value: Value = serde_json::from_str(json).map_err(|e| FilterError::Json(e.to_string()))?;
        Filter::from_value(&value)
    }

    pub fn from_value(value: &Value) -> Result<Filter, FilterError> {
        let obj: &Map<String, Value> = value.as_object().ok_or(FilterError::NotObject)?;
        let mut filter = Filter::default();
        for (key, v) in obj {
            match key.as_str() {
                "ids" => filter.ids = Some(hex_list(v, "ids")?),
                "authors" => filter.authors = Some(hex_list(v, "authors")?),
                "kinds" => filter.kinds = Some(kinds(v)?),
                "since" => filter.since = Some(timestamp(v, "since")?),
                "until" => filter.until = Some(timestamp(v, "until")?),
                "limit" => filter.limit = Some(v.as_u64().ok_or(FilterError::BadInteger("limit"))?),
                "search" => filter.search = Some(v.as_str().ok_or(FilterError::BadSearch)?.to_owned()),
                other => match other.strip_prefix('#') {
                    Some(name) if tags::is_indexable_name(name) => {
                        filter.tags.push(TagCondition {
                            name: name.to_owned(),
                            values: string_list(v, other)?,
                        });
                    }
                    _ => return Err(FilterError::UnknownField(other.to_owned())),
                },
            }
        }
        // serde_json's map is ordered by key; keep tag conditions in a stable order.
        filter.tags.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(filter)
    }

    /// Whether `event` satisfies every condition of this filter. `search` is
    /// matched as case-insensitive containment of every word, never for the
    /// kinds in [`crate::kind::UNSEARCHED`]; the database uses full-text
    /// search, which this approximates for live events.
    pub fn matches(&self, event: &Event) -> bool {
        if let Some(ids) = &self.ids {
            if !ids.contains(&event.id) {
                return false;
            }
        }
        if let Some(authors) = &self.authors {
            if !authors.contains(&event.pubkey) {
                return false;
            }
        }
        if let Some(kinds) = &self.kinds {
            if !kinds.contains(&event.kind) {
                return false;
            }
        }
        if self.since.is_some_and(|s| event.created_at < s) {
            return false;
        }
        if self.until.is_some_and(|u| event.created_at > u) {
            return false;
        }
        let tags_ok = self.tags.iter().all(|cond| {
            event
                .tag_values(&cond.name)
                .any(|v| cond.values.iter().any(|want| want == v))
        });
        if !tags_ok {
            return false;
        }
        match &self.search {
            Some(_) if crate::kind::UNSEARCHED.contains(&event.kind) => false,
            Some(q) => search_matches(q, &event.content),
            None => true,
        }
    }

    /// True when the stored part of a REQ is empty (no event can match, or
    /// `limit` is 0), so callers can skip the query. Not for live matching
    /// or COUNT, which ignore `limit`: see [`Filter::never_matches`].
    pub fn is_empty_set(&self) -> bool {
        self.never_matches() || self.limit == Some(0)
    }

    /// True when no event can ever match: an empty list, or `since` after
    /// `until`. `{"limit": 0}` is not such a filter: it asks for live
    /// events only.
    pub fn never_matches(&self) -> bool {
        self.ids.as_ref().is_some_and(Vec::is_empty)
            || self.authors.as_ref().is_some_and(Vec::is_empty)
            || self.kinds.as_ref().is_some_and(Vec::is_empty)
            || self.tags.iter().any(|t| t.values.is_empty())
            || matches!((self.since, self.until), (Some(s), Some(u)) if s > u)
    }
}

fn search_matches(query: &str, content: &str) -> bool {
    let content = content.to_lowercase();
    query
        .split_whitespace()
        .filter(|w| !w.contains(':')) // NIP-50 extensions like `lang:en` are not words
        .all(|w| content.contains(&w.to_lowercase()))
}

fn hex_list(v: &Value, name: &'static str) -> Result<Vec<[u8; 32]>, FilterError> {
    v.as_array()
        .ok_or(FilterError::BadHexList(name))?
        .iter()
        .map(|x| {
            x.as_str()
                .and_then(hex::decode_fixed::<32>)
                .ok_or(FilterError::BadHexList(name))
        })
        .collect()
}

fn kinds(v: &Value) -> Result<Vec<u16>, FilterError> {
    v.as_array()
        .ok_or(FilterError::BadKinds)?
        .iter()
        .map(|k| {
            k.as_u64()
                .and_then(|k| u16::try_from(k).ok())
                .ok_or(FilterError::BadKinds)
        })
        .collect()
}

fn timestamp(v: &Value, name: &'static str) -> Result<i64, FilterError> {
    v.as_i64().filter(|t| *t >= 0).ok_or(FilterError::BadInteger(name))
}

fn string_list(v: &Value, name: &str) -> Result<Vec<String>, FilterError> {
    let bad = || FilterError::BadTagList(name.to_owned());
    v.as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|x| x.as_str().map(str::to_owned).ok_or_else(bad))
        .collect()
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
