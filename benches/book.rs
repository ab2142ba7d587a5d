//! Placeholder: the book benchmark is being written.
fn main() {}
