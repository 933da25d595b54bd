//! Rebuilds when a migration is added or changed: `embed_migrations!` (src/db/mod.rs) reads
//! `migrations/` at compile time, and cargo would not otherwise know to run it again (a new
//! migration directory went unnoticed until src/db/mod.rs changed).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
