//! The cases `index_bench` times: each a prepared statement of
//! `tests/bench/index_queries.sql` with its arguments, built from what the
//! bench found in the data.

use std::time::{SystemTime, UNIX_EPOCH};

/// A parameter value, written as an SQL literal in `EXECUTE`.
#[derive(Clone)]
pub(crate) enum Lit {
    Text(String),
    TextArr(Vec<String>),
    Big(i64),
    IntArr(Vec<i32>),
    /// Hex, sent as bytea.
    Bytea(String),
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Lit {
    pub(crate) fn sql(&self) -> String {
        match self {
            Lit::Text(s) => quote(s),
            Lit::TextArr(v) => format!(
                "ARRAY[{}]::text[]",
                v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(",")
            ),
            Lit::Big(n) => n.to_string(),
            Lit::IntArr(v) => format!(
                "ARRAY[{}]::int[]",
                v.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
            ),
            Lit::Bytea(hex) => format!("decode({}, 'hex')", quote(hex)),
        }
    }
}

pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) statement: &'static str,
    pub(crate) args: Vec<Lit>,
    pub(crate) what: String,
}

/// What the bench found in the data.
pub(crate) struct Found {
    pub(crate) tags: Vec<(String, String, i64)>,
    pub(crate) author: (String, i64),
    /// An author with about 10 events.
    pub(crate) quiet_author: (String, i64),
    pub(crate) newest: i64,
    pub(crate) ids: Vec<String>,
}

impl Found {
    pub(crate) fn tag(&self, name: &str) -> Option<(String, i64)> {
        self.tags
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, t, c)| (t.clone(), *c))
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

const DAY: i64 = 86_400;

pub(crate) fn cases(f: &Found) -> Vec<Case> {
    let now = unix_now();
    let anchor = now + DAY;
    let limit = 100;
    let mut out = vec![Case {
        name: "baseline-select1".into(),
        statement: "baseline",
        args: Vec::new(),
        what: "SELECT 1".into(),
    }];
    let tag_names = [
        "t_popular",
        "t_medium",
        "t_rare",
        "p_popular",
        "p_medium",
        "p_rare",
        "e_popular",
        "e_medium",
        "e_rare",
    ];
    let kinds_cases: [(&str, &[i32]); 4] = [
        ("t_popular", &[1]),
        ("t_popular", &[30023]),
        ("t_popular", &[0]),
        ("t_medium", &[30023]),
    ];
    let since_cases = [("t_popular", 3600), ("t_popular", 30 * DAY), ("t_medium", 30 * DAY)];
    let until_cases = [("t_popular", 180 * DAY), ("t_medium", 180 * DAY)];

    for index in ["gin", "side", "rum"] {
        let key = |tag: &str| {
            if index == "side" {
                Lit::Text(tag.into())
            } else {
                Lit::TextArr(vec![tag.into()])
            }
        };
        let base = |tag: &str| {
            let mut a = vec![key(tag), Lit::Big(now), Lit::Big(limit)];
            if index == "rum" {
                a.push(Lit::Big(anchor));
            }
            a
        };
        for name in tag_names {
            let Some((tag, n)) = f.tag(name) else { continue };
            out.push(Case {
                name: format!("{index}_tag-{name}"),
                statement: leak(format!("{index}_tag")),
                args: base(&tag),
                what: format!("{tag} ({n} events)"),
            });
        }
        for (name, kinds) in kinds_cases {
            let Some((tag, n)) = f.tag(name) else { continue };
            let mut args = base(&tag);
            args.push(Lit::IntArr(kinds.to_vec()));
            let k = kinds.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
            out.push(Case {
                name: format!("{index}_tag_kinds-{name}-k{k}"),
                statement: leak(format!("{index}_tag_kinds")),
                args,
                what: format!("{tag} ({n} events), kinds [{k}]"),
            });
        }
        for (name, back) in since_cases {
            let Some((tag, n)) = f.tag(name) else { continue };
            let mut args = base(&tag);
            args.push(Lit::Big(f.newest - back));
            out.push(Case {
                name: format!("{index}_tag_since-{name}-{}", span(back)),
                statement: leak(format!("{index}_tag_since")),
                args,
                what: format!("{tag} ({n} events), since newest - {}", span(back)),
            });
        }
        for (name, back) in until_cases {
            let Some((tag, n)) = f.tag(name) else { continue };
            // For RUM the fourth argument, `until`, is also the ordering anchor.
            let args = vec![key(&tag), Lit::Big(now), Lit::Big(limit), Lit::Big(f.newest - back)];
            out.push(Case {
                name: format!("{index}_tag_until-{name}-{}", span(back)),
                statement: leak(format!("{index}_tag_until")),
                args,
                what: format!("{tag} ({n} events), until newest - {}", span(back)),
            });
        }
    }

    let value = |name: &str| f.tag(name).map(|(t, n)| (t.get(2..).unwrap_or("").to_owned(), n));
    let mut req = |name: &str, filter: serde_json::Value, what: String| {
        out.push(Case {
            name: format!("req-{name}"),
            statement: "req",
            args: vec![Lit::Text(format!("[{filter}]"))],
            what,
        });
    };
    for (letter, name) in [
        ("t", "t_popular"),
        ("t", "t_medium"),
        ("t", "t_rare"),
        ("p", "p_popular"),
        ("e", "e_popular"),
        ("e", "e_rare"),
    ] {
        if let Some((v, n)) = value(name) {
            req(
                name,
                serde_json::json!({ format!("#{letter}"): [v], "limit": limit }),
                format!("{n} events"),
            );
        }
    }
    if let (Some((t, _)), Some((m, _)), Some((r, _))) = (value("t_popular"), value("t_medium"), value("t_rare")) {
        req(
            "t_three_values",
            serde_json::json!({"#t": [t, m, r], "limit": limit}),
            "popular, medium, rare".into(),
        );
    }
    for kind in [30023, 0] {
        if let Some((t, n)) = value("t_popular") {
            req(
                &format!("t_popular-k{kind}"),
                serde_json::json!({"#t": [t], "kinds": [kind], "limit": limit}),
                format!("{n} events"),
            );
        }
    }
    if let Some((t, n)) = value("t_popular") {
        req(
            "t_popular-since1h",
            serde_json::json!({"#t": [t], "since": f.newest - 3600, "limit": limit}),
            format!("{n} events"),
        );
    }
    if let (Some((t, _)), Some((p, _))) = (value("t_popular"), value("p_popular")) {
        req(
            "t_popular+p_popular",
            serde_json::json!({"#t": [t], "#p": [p], "limit": limit}),
            "two tag conditions".into(),
        );
    }
    if let (Some((t, _)), Some((e, _))) = (value("t_popular"), value("e_popular")) {
        req(
            "t_popular+e_popular",
            serde_json::json!({"#t": [t], "#e": [e], "limit": limit}),
            "two tag conditions, disjoint".into(),
        );
    }
    let (author, n) = &f.author;
    req(
        "author-k1",
        serde_json::json!({"authors": [author], "kinds": [1], "limit": limit}),
        format!("author with {n} events"),
    );
    req(
        "author",
        serde_json::json!({"authors": [author], "limit": limit}),
        format!("author with {n} events"),
    );
    if let Some((t, tn)) = value("t_popular") {
        let (quiet, qn) = &f.quiet_author;
        req(
            "quiet_author+t_popular",
            serde_json::json!({"authors": [quiet], "#t": [t], "limit": limit}),
            format!("author with {qn} events, tag with {tn}"),
        );
    }
    req(
        "k1-since1d",
        serde_json::json!({"kinds": [1], "since": f.newest - DAY, "limit": limit}),
        "kind 1 of the last day".into(),
    );
    req(
        "k30023",
        serde_json::json!({"kinds": [30023], "limit": limit}),
        "latest articles".into(),
    );
    req("latest", serde_json::json!({"limit": limit}), "no condition".into());
    req(
        "ids20",
        serde_json::json!({"ids": f.ids}),
        format!("{} ids", f.ids.len()),
    );

    for (name, kind) in [
        ("t_popular", 0),
        ("t_popular", 30023),
        ("t_popular", 1),
        ("t_medium", 30023),
    ] {
        if let Some((tag, n)) = f.tag(name) {
            out.push(Case {
                name: format!("exp_tag_kind-{name}-k{kind}"),
                statement: "exp_tag_kind",
                args: vec![Lit::Text(tag.clone()), Lit::Big(now), Lit::Big(limit), Lit::Big(kind)],
                what: format!("{tag} ({n} events), kind {kind}, (tag, kind, created_at) index"),
            });
        }
    }
    for other in ["e_popular", "p_popular", "t_medium"] {
        if let (Some((t, _)), Some((o, n))) = (f.tag("t_popular"), f.tag(other)) {
            out.push(Case {
                name: format!("exp_gin_and-t_popular+{other}"),
                statement: "exp_gin_and",
                args: vec![Lit::TextArr(vec![t.clone(), o.clone()]), Lit::Big(now), Lit::Big(limit)],
                what: format!("{t} and {o} ({n} events), GIN intersection"),
            });
        }
    }
    for name in ["t_popular", "p_popular"] {
        if let Some((tag, n)) = f.tag(name) {
            out.push(Case {
                name: format!("exp_probe-{name}"),
                statement: "exp_probe",
                args: vec![Lit::Text(tag.clone())],
                what: format!("{tag} ({n} events), counted up to 1000"),
            });
        }
    }
    if let Some((tag, n)) = f.tag("t_popular") {
        let (quiet, qn) = &f.quiet_author;
        out.push(Case {
            name: "exp_author_tag-quiet_author+t_popular".into(),
            statement: "exp_author_tag",
            args: vec![
                Lit::Bytea(quiet.clone()),
                Lit::Big(now),
                Lit::Big(limit),
                Lit::TextArr(vec![tag.clone()]),
            ],
            what: format!("author with {qn} events, {tag} ({n} events), author-driven"),
        });
    }
    for name in ["t_popular", "t_medium"] {
        if let Some((tag, n)) = f.tag(name) {
            out.push(Case {
                name: format!("exp_count_side-{name}"),
                statement: "exp_count_side",
                args: vec![Lit::Text(tag.clone())],
                what: format!("{tag} ({n} events)"),
            });
        }
    }

    let mut count = |name: &str, filter: serde_json::Value, what: String| {
        out.push(Case {
            name: format!("count-{name}"),
            statement: "count",
            args: vec![Lit::Text(format!("[{filter}]"))],
            what,
        });
    };
    for name in ["t_popular", "t_medium"] {
        if let Some((v, n)) = value(name) {
            count(name, serde_json::json!({"#t": [v]}), format!("{n} events"));
        }
    }
    count(
        "author-k1",
        serde_json::json!({"authors": [author], "kinds": [1]}),
        format!("author with {n} events"),
    );
    out
}

fn span(secs: i64) -> String {
    if secs % DAY == 0 {
        format!("{}d", secs / DAY)
    } else {
        format!("{}h", secs / 3600)
    }
}

/// Statement names are built once per case; a handful of small strings.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}
