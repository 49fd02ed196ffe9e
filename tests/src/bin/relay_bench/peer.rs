//! `--peer NAME=ws://HOST:PORT[,PID...]`: a relay that is already running,
//! measured by URL beside the relays run.sh starts itself. The optional PIDs
//! (`,` or `:` between them) are the processes whose CPU time is the relay's.
//! run.sh hands each spec to `relay_bench peer-spec`, which checks it and
//! prints `name|url|pid:pid` for the relay list.

use crate::args::Args;
use crate::cpu;
use crate::error::BenchError;
use crate::ws::Target;

#[derive(Debug, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub url: String,
    pub pids: Vec<u32>,
}

impl Peer {
    /// The line run.sh reads: `name|url|pid:pid` (empty PID list allowed).
    pub fn line(&self) -> String {
        let pids: Vec<String> = self.pids.iter().map(u32::to_string).collect();
        format!("{}|{}|{}", self.name, self.url, pids.join(":"))
    }
}

/// Parses one spec without touching the network or /proc.
pub fn parse(spec: &str) -> Result<Peer, BenchError> {
    let usage = |why: &str| BenchError::Usage(format!("--peer {spec}: {why} (expected NAME=ws://HOST:PORT[,PID...])"));
    let (name, rest) = spec.split_once('=').ok_or_else(|| usage("no `=`"))?;
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(usage("the name must be letters, digits, `-`, `_` or `.`"));
    }
    // The URL holds `:` (host:port), so the PID list starts after the first `,`.
    let (url, pids) = match rest.split_once(',') {
        Some((url, pids)) => (url, cpu::parse_pids(pids).map_err(|e| usage(&e.to_string()))?),
        None => (rest, Vec::new()),
    };
    let hostport = url
        .strip_prefix("ws://")
        .ok_or_else(|| usage("the URL must start with ws://"))?;
    let authority = hostport.split('/').next().unwrap_or("");
    let port_ok = authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok {
        return Err(usage("the URL needs a host and a port"));
    }
    Ok(Peer {
        name: name.to_owned(),
        url: url.to_owned(),
        pids,
    })
}

/// `peer-spec --peer SPEC...`: one checked line per spec on stdout; fails on
/// a malformed spec, a repeated name, an unresolvable address or a PID that
/// is not running.
pub fn run(args: &Args) -> Result<(), BenchError> {
    let mut names = Vec::new();
    for spec in args.all("peer") {
        let peer = parse(&spec)?;
        if names.contains(&peer.name) {
            return Err(BenchError::Usage(format!(
                "--peer {spec}: the name {} is taken",
                peer.name
            )));
        }
        Target::parse(&peer.url)?;
        for pid in &peer.pids {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return Err(BenchError::Usage(format!(
                    "--peer {spec}: process {pid} is not running"
                )));
            }
        }
        println!("{}", peer.line());
        names.push(peer.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!(
            parse("strfry=ws://127.0.0.1:7780").unwrap(),
            Peer {
                name: "strfry".into(),
                url: "ws://127.0.0.1:7780".into(),
                pids: vec![]
            }
        );
        let p = parse("strfry=ws://127.0.0.1:7780,4242").unwrap();
        assert_eq!(
            (p.url.as_str(), p.pids.as_slice()),
            ("ws://127.0.0.1:7780", &[4242][..])
        );
        assert_eq!(p.line(), "strfry|ws://127.0.0.1:7780|4242");
        let p = parse("my.relay-2=ws://localhost:80/path,1,2:3").unwrap();
        assert_eq!(p.pids, vec![1, 2, 3]);
        assert_eq!(p.url, "ws://localhost:80/path");
        assert_eq!(p.line(), "my.relay-2|ws://localhost:80/path|1:2:3");
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in [
            "ws://127.0.0.1:7780",
            "=ws://127.0.0.1:7780",
            "a|b=ws://127.0.0.1:7780",
            "s=wss://127.0.0.1:7780",
            "s=ws://127.0.0.1",
            "s=ws://:7780",
            "s=ws://127.0.0.1:99999",
            "s=ws://127.0.0.1:7780,abc",
            "s=ws://127.0.0.1:7780,12:0",
        ] {
            assert!(matches!(parse(bad), Err(BenchError::Usage(_))), "{bad} was accepted");
        }
    }
}
