//! Workload `count`, NIP-45: COUNT of a tag that many events carry, in a
//! closed loop (one client by default: the latency of one COUNT). Measures
//! COUNTs/s, latency, the count itself (equal across relays with the same
//! data) and the relay's CPU per 1,000 COUNTs. A relay that answers the first COUNT with NOTICE or CLOSED, or not
//! at all, does not support it: the record says so instead of a zero.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::args::Args;
use crate::closed_loop::{self, Answer, Ask};
use crate::cpu;
use crate::error::BenchError;
use crate::record::Record;
use crate::ws::{self, Target};

/// How long the first COUNT may take before the relay counts as not
/// supporting it (a COUNT over a large tag is slow but not this slow).
const PROBE_WAIT: Duration = Duration::from_secs(20);

/// The count, or why the answer shows the relay does not support NIP-45.
fn supported(answer: Answer) -> Result<u64, String> {
    match answer {
        Answer::Count(Some(n)) => Ok(n),
        Answer::Count(None) => Err("a COUNT reply without a count".into()),
        Answer::Refused(why) => Err(why),
        Answer::Eose(_) => Err("EOSE instead of COUNT".into()),
    }
}

/// Asks one COUNT; `Err(why)` when the relay does not answer it as NIP-45
/// says (no answer in time and a dropped connection included).
async fn probe(target: &Target, filter: &serde_json::Value) -> Result<Result<u64, String>, BenchError> {
    let mut socket = ws::connect(target, None, false).await?;
    let answer = tokio::time::timeout(
        PROBE_WAIT,
        closed_loop::ask_once(&mut socket, Ask::Count, "probe", filter),
    )
    .await;
    Ok(match answer {
        Err(_) => Err(format!("no answer to COUNT in {PROBE_WAIT:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(a)) => supported(a),
    })
}

/// `count --url U --relay R [--clients 1] [--tag nostr] [--seconds 5]
/// [--pids P:P] [--round N] --out FILE`
pub async fn run(args: &Args) -> Result<(), BenchError> {
    let target = Target::parse(args.req("url")?)?;
    let relay = args.req("relay")?;
    let out = args.req("out")?;
    let round: u32 = args.num("round", 1)?;
    let clients: usize = args.num("clients", 1)?;
    let seconds: f64 = args.num("seconds", 5.0)?;
    let tag = args.opt("tag").unwrap_or("nostr");
    let pids = cpu::parse_pids(args.opt("pids").unwrap_or(""))?;
    let filter = json!({"#t": [tag]});
    let mut r = Record::new(relay, "count", &format!("t_{tag}"), round);

    match probe(&target, &filter).await? {
        Err(why) => {
            eprintln!("relay_bench: {relay} does not support COUNT: {why}");
            r.set("unsupported", 1.0);
        }
        Ok(first) => {
            let sockets = closed_loop::open(&target, clients).await?;
            let mut o = closed_loop::run(
                sockets,
                Ask::Count,
                Arc::new(vec![filter]),
                Duration::from_secs_f64(seconds),
                &pids,
            )
            .await?;
            let requests = o.requests();
            r.set("counts_per_s", requests as f64 / o.secs.max(1e-9))
                .set("requests", requests as f64)
                .set("count", o.count.unwrap_or(first) as f64)
                .set("errors", (o.errors + o.failed_clients) as f64)
                .set("clients", clients as f64)
                .set("seconds", o.secs)
                .latencies("", &mut o.latencies, false);
            if let Some(used) = o.cpu {
                used.record(&mut r, requests);
            }
        }
    }
    r.append(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_unsupported_from_zero() {
        assert_eq!(supported(Answer::Count(Some(0))), Ok(0));
        assert_eq!(supported(Answer::Count(Some(15_000))), Ok(15_000));
        assert!(supported(Answer::Count(None)).is_err());
        assert_eq!(
            supported(Answer::Refused("NOTICE could not parse command".into())),
            Err("NOTICE could not parse command".to_owned())
        );
        assert!(supported(Answer::Eose(0)).is_err());
    }
}
