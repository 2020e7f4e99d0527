//! `wasi:cli/exit`, `wasi:cli/terminal-*` and an empty `wasi:cli/environment`
//! for components composed into a `wasi:http/proxy` component. Rust std's WASI
//! adapter imports these; the proxy world does not offer them. The environment
//! is empty for every part of the composition: configuration comes from
//! `wasi:config/store`, so nothing reads the runtime's environment and a secret
//! a platform puts there reaches no one. `no_std`, so this component imports
//! nothing.

#![no_std]

extern crate alloc;

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;

wit_bindgen::generate!({
    // The repo's contract and WASI packages (wit/), then the edge worlds.
    path: ["../../../wit", "../wit"],
    world: "actionbox:edge/cli-stubs",
    generate_all,
});

use alloc::{string::String, vec::Vec};
use exports::wasi::cli::{
    environment, exit, terminal_input, terminal_output, terminal_stderr, terminal_stdin, terminal_stdout,
};

struct Stubs;

/// Never constructed: no stream is a terminal.
pub struct NoTerminal;

impl terminal_input::GuestTerminalInput for NoTerminal {}
impl terminal_output::GuestTerminalOutput for NoTerminal {}

impl terminal_input::Guest for Stubs {
    type TerminalInput = NoTerminal;
}
impl terminal_output::Guest for Stubs {
    type TerminalOutput = NoTerminal;
}
impl terminal_stdin::Guest for Stubs {
    fn get_terminal_stdin() -> Option<terminal_input::TerminalInput> {
        None
    }
}
impl terminal_stdout::Guest for Stubs {
    fn get_terminal_stdout() -> Option<terminal_output::TerminalOutput> {
        None
    }
}
impl terminal_stderr::Guest for Stubs {
    fn get_terminal_stderr() -> Option<terminal_output::TerminalOutput> {
        None
    }
}
/// The environment every part of the composition sees: nothing.
impl environment::Guest for Stubs {
    fn get_environment() -> Vec<(String, String)> {
        Vec::new()
    }
    fn get_arguments() -> Vec<String> {
        Vec::new()
    }
    fn initial_cwd() -> Option<String> {
        None
    }
}

impl exit::Guest for Stubs {
    fn exit(_status: Result<(), ()>) {
        // A request handler cannot end the process; ending the instance is
        // what a proxy host does with `exit` too.
        core::arch::wasm32::unreachable()
    }

    fn exit_with_code(_status_code: u8) {
        core::arch::wasm32::unreachable()
    }
}

export!(Stubs);

/// A bump allocator over a small static arena: this component allocates at
/// most a few bytes (canonical-ABI scratch), and never frees.
struct Bump {
    arena: UnsafeCell<[u8; 16 * 1024]>,
    next: UnsafeCell<usize>,
}

// Wasm components are single-threaded.
unsafe impl Sync for Bump {}

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let next = &mut *self.next.get();
        let base = self.arena.get() as *mut u8;
        let start = (base as usize + *next + layout.align() - 1) & !(layout.align() - 1);
        let offset = start - base as usize;
        if offset + layout.size() > 16 * 1024 {
            return core::ptr::null_mut();
        }
        *next = offset + layout.size();
        base.add(offset)
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOC: Bump = Bump {
    arena: UnsafeCell::new([0; 16 * 1024]),
    next: UnsafeCell::new(0),
};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
