//! Diagnostics over the contract's `log` import: the host records each line
//! with the invocation (and may drop lines past its per-call log budget).
//!
//! ```no_run
//! let id = "42";
//! actionbox_guest::info!("looking up item {id}");
//! actionbox_guest::warn!("upstream answered slowly");
//! ```
//!
//! Never log a secret or a whole upstream body: operators read these lines.
//! Compiled natively (unit tests), lines go to stderr.

/// Severity of a line (the contract's `log.level`).
pub use crate::bindings::actionbox::action::log::Level;

/// Record `message` at `level`; the macros ([`crate::info!`], …) format and call this.
pub fn write(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::actionbox::action::log::write(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{}] {message}", name(level));
}

/// The level's name in the contract, e.g. `warn`.
pub fn name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

/// Log a `format!`-style line at level `trace`.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Trace, &::std::format!($($arg)+)) };
}

/// Log a `format!`-style line at level `debug`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Debug, &::std::format!($($arg)+)) };
}

/// Log a `format!`-style line at level `info`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Info, &::std::format!($($arg)+)) };
}

/// Log a `format!`-style line at level `warn`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Warn, &::std::format!($($arg)+)) };
}

/// Log a `format!`-style line at level `error`.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Error, &::std::format!($($arg)+)) };
}

#[cfg(test)]
mod tests {
    #[test]
    fn macros_format_and_write_natively_without_the_host() {
        let n = 3;
        crate::trace!("{n} lines");
        crate::debug!("{n} lines");
        crate::info!("{n} lines");
        crate::warn!("{n} lines");
        crate::error!("{n} lines");
        assert_eq!(super::name(super::Level::Warn), "warn");
    }
}
