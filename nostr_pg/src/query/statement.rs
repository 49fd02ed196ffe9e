//! Statements built from fixed SQL fragments; every value is a parameter.

use pgrx::datum::DatumWithOid;
use pgrx::spi::{SpiClient, SpiResult};
use pgrx::PgOid;

use crate::event_type::NostrEvent;
pub use crate::spi_cache::Planning;
use crate::spi_cache::{oid, read};

/// A bound parameter of a generated statement.
pub enum Param {
    Bytes(Vec<u8>),
    BytesList(Vec<Vec<u8>>),
    Int(i32),
    IntList(Vec<i32>),
    Big(i64),
    Text(String),
    TextList(Vec<String>),
}

impl Param {
    pub fn oid(&self) -> PgOid {
        match self {
            Param::Bytes(_) => oid::<Vec<u8>>(),
            Param::BytesList(_) => oid::<Vec<Vec<u8>>>(),
            Param::Int(_) => oid::<i32>(),
            Param::IntList(_) => oid::<Vec<i32>>(),
            Param::Big(_) => oid::<i64>(),
            Param::Text(_) => oid::<String>(),
            Param::TextList(_) => oid::<Vec<String>>(),
        }
    }

    pub fn datum(&self) -> DatumWithOid<'static> {
        match self {
            Param::Bytes(v) => v.clone().into(),
            Param::BytesList(v) => v.clone().into(),
            Param::Int(v) => (*v).into(),
            Param::IntList(v) => v.clone().into(),
            Param::Big(v) => (*v).into(),
            Param::Text(v) => v.clone().into(),
            Param::TextList(v) => v.clone().into(),
        }
    }
}

/// A statement under construction: WHERE conditions and their parameters.
#[derive(Default)]
pub struct Statement {
    pub conditions: Vec<String>,
    pub params: Vec<Param>,
}

impl Statement {
    pub fn add(&mut self, condition: &str, param: Param) {
        self.params.push(param);
        let n = self.params.len();
        self.conditions.push(condition.replace("$?", &format!("${n}")));
    }

    pub fn placeholder(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }

    pub fn run_rows(&self, client: &SpiClient<'_>, sql: &str, planning: Planning) -> SpiResult<Vec<Row>> {
        let types: Vec<PgOid> = self.params.iter().map(Param::oid).collect();
        let args: Vec<DatumWithOid<'_>> = self.params.iter().map(Param::datum).collect();
        let mut rows = Vec::new();
        for r in read(client, sql, &types, &args, planning)? {
            let created_at: i64 = r.get(1)?.unwrap_or(0);
            let id: Vec<u8> = r.get(2)?.unwrap_or_default();
            if let Some(event) = r.get::<NostrEvent>(3)? {
                rows.push(Row { created_at, id, event });
            }
        }
        Ok(rows)
    }
}

pub struct Row {
    pub created_at: i64,
    pub id: Vec<u8>,
    pub event: NostrEvent,
}

pub fn where_clause(st: &Statement) -> String {
    if st.conditions.is_empty() {
        "true".into()
    } else {
        st.conditions.join(" AND ")
    }
}

impl Statement {
    /// Runs a statement returning one bigint (a probe's capped count).
    pub fn run_count(&self, client: &SpiClient<'_>, sql: &str, planning: Planning) -> SpiResult<i64> {
        let types: Vec<PgOid> = self.params.iter().map(Param::oid).collect();
        let args: Vec<DatumWithOid<'_>> = self.params.iter().map(Param::datum).collect();
        Ok(read(client, sql, &types, &args, planning)?
            .first()
            .get_one::<i64>()?
            .unwrap_or(0))
    }
}
