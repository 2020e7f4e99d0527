//! Link-time layout of the component's linear memory.

fn main() {
    // Rust's default shadow stack is 1 MiB and sits first in linear memory, so
    // every call would touch pages 1 MiB in. trackOrder needs a few KiB of
    // shadow stack (its data lives on the heap), and JSON nested deeper than
    // `actionbox_guest::json::MAX_DEPTH` is refused before parsing, so 32 KiB
    // is ample (a 126-level document, which the guard now refuses, needed
    // more than 32 KiB and less than 64 KiB). A small stack keeps everything
    // a call touches in the first ~100 KiB of memory, which makes a pooled
    // instance cheap to reset (host/runtime/src/engine.rs, POOL_MEMORY_KEEP_RESIDENT).
    // An overflow traps (the stack grows down past address 0); it never
    // corrupts the heap.
    println!("cargo:rustc-link-arg-cdylib=-zstack-size=32768");
}
