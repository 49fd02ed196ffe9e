use pgrx::prelude::*;

#[pg_test]
fn smoke() -> Result<(), pgrx::spi::Error> {
    Ok(())
}
