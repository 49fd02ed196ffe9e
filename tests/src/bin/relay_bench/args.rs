//! `--name value` flags. The harness is driven by run.sh, so a small parser
//! with clear errors is all it needs.

use std::collections::HashMap;
use std::str::FromStr;

use crate::error::BenchError;

pub struct Args {
    values: HashMap<String, Vec<String>>,
}

impl Args {
    /// Parses `--name value` pairs; a flag given twice keeps both values.
    pub fn parse(raw: &[String]) -> Result<Args, BenchError> {
        let mut values: HashMap<String, Vec<String>> = HashMap::new();
        let mut it = raw.iter();
        while let Some(flag) = it.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| BenchError::Usage(format!("expected a --flag, got `{flag}`")))?;
            let value = it
                .next()
                .ok_or_else(|| BenchError::Usage(format!("--{name} needs a value")))?;
            values.entry(name.to_owned()).or_default().push(value.clone());
        }
        Ok(Args { values })
    }

    pub fn opt(&self, name: &str) -> Option<&str> {
        self.values.get(name).and_then(|v| v.last()).map(String::as_str)
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    pub fn req(&self, name: &str) -> Result<&str, BenchError> {
        self.opt(name)
            .ok_or_else(|| BenchError::Usage(format!("--{name} is required")))
    }

    pub fn num<T: FromStr>(&self, name: &str, default: T) -> Result<T, BenchError> {
        match self.opt(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| BenchError::Usage(format!("--{name}: `{v}` is not a number"))),
        }
    }
}
