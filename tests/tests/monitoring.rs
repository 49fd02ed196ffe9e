//! The Grafana dashboard and the Prometheus alert rules in
//! `pg_config/monitoring/` name only gateway metrics that a live gateway's
//! `/metrics` has. (Database metrics come from postgres_exporter and are
//! named in the README.)
// Test helpers expect freely: a failed expectation is a failed test.
#![allow(clippy::expect_used)]

use std::collections::BTreeSet;

use e2e::relay::{http_get, Gateway};
use e2e::TestDb;
use serde_json::Value;

const DASHBOARD: &str = include_str!("../../pg_config/monitoring/grafana-dashboard.json");
const ALERTS: &str = include_str!("../../pg_config/monitoring/alerts.yml");
const PREFIX: &str = "nostr_gateway_";

/// Every `nostr_gateway_…` name in `text`.
fn gateway_metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        let tail = rest.get(at..).unwrap_or_default();
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail.get(..end).unwrap_or_default().to_owned());
        rest = tail.get(end..).unwrap_or_default();
    }
    names
}

/// The series names of a Prometheus text exposition.
fn exposed(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Every PromQL expression of the dashboard's panels.
fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    exprs
}

#[tokio::test]
async fn dashboard_and_alerts_name_only_metrics_the_gateway_exposes() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() >= 20, "a panel per concern: {}", exprs.len());
    let alert_count = ALERTS
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count();
    let expr_count = ALERTS.lines().filter(|l| l.trim_start().starts_with("expr:")).count();
    assert!(
        alert_count >= 10 && alert_count == expr_count,
        "{alert_count} alerts, {expr_count} exprs"
    );

    let mut used = gateway_metric_names(&exprs.join("\n"));
    let from_dashboard = used.len();
    used.extend(gateway_metric_names(ALERTS));
    assert!(from_dashboard >= 15, "{used:?}");

    let db = TestDb::new("monitoring").await;
    let gw = Gateway::start(&db.url, &[]).await;
    let (head, body) = http_get(&gw, "/metrics", "text/plain").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let have = exposed(&body);
    let missing: Vec<&String> = used.iter().filter(|m| !have.contains(*m)).collect();
    assert!(missing.is_empty(), "not in /metrics: {missing:?}\n{body}");
    // What the issue asks the dashboard to show, by the metric that shows it.
    for concern in [
        "nostr_gateway_connections",
        "nostr_gateway_events_total",
        "nostr_gateway_event_ok_seconds_bucket",
        "nostr_gateway_fanout_lag_seconds_bucket",
        "nostr_gateway_query_seconds_bucket",
        "nostr_gateway_reqs_rate_limited_total",
        "nostr_gateway_pool_waiting",
    ] {
        assert!(used.contains(concern), "the dashboard or alerts should use {concern}");
    }
    for database in ["pg_replication_lag_seconds", "pg_stat_database_numbackends", "pg_up"] {
        assert!(
            exprs.iter().any(|e| e.contains(database)) && ALERTS.contains(database),
            "{database} in both"
        );
    }
}
