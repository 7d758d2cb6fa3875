//! `sqlx::migrate!` embeds `sql/` at compile time; without this, adding a
//! migration file does not rebuild the crate and the binary applies the old
//! set.

fn main() {
    println!("cargo:rerun-if-changed=sql");
}
