//! What every command writes: standard output that stops quietly on a closed pipe, colour
//! only for a terminal without `NO_COLOR`, and the exit statuses shared by all commands.
//!
//! Exit statuses (the same for every command; `docs/cli.md`):
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success; for a decision: allowed (every verdict of a batch is an allow) |
//! | 1 | error: unreadable or invalid input, a refused bundle or token, I/O |
//! | 2 | command-line usage error |
//! | 3 | decided: escalate (the most severe verdict of a batch) |
//! | 4 | decided: deny (the most severe verdict of a batch) |
//! | 5 | `sbd check` found an invalid file, or an `sbd test` expectation failed |

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use sbd_policy::Verdict;

/// Success; an allowed decision.
pub const EXIT_OK: u8 = 0;
/// An error (bad input, I/O, a refused bundle or token).
pub const EXIT_ERROR: u8 = 1;
/// A command-line usage error (clap's own status).
pub const EXIT_USAGE: u8 = 2;
/// The decision (the most severe of a batch) is an escalation.
pub const EXIT_ESCALATE: u8 = 3;
/// The decision (the most severe of a batch) is a denial.
pub const EXIT_DENY: u8 = 4;
/// `sbd check` found an invalid file or an `sbd test` expectation failed.
pub const EXIT_FAILED: u8 = 5;

/// The status of a decision: deny over escalate over allow across all `verdicts`.
pub fn verdict_status<'a>(verdicts: impl IntoIterator<Item = &'a Verdict>) -> u8 {
    verdicts.into_iter().fold(EXIT_OK, |worst, v| {
        let status = match v {
            Verdict::Allow(_) => EXIT_OK,
            Verdict::Escalate(_) => EXIT_ESCALATE,
            Verdict::Deny(_) => EXIT_DENY,
        };
        worst.max(status)
    })
}

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `text` to standard output. When the reader has gone (`sbd reasons | head -1`), the
/// write fails with a broken pipe: from then on output is dropped and the command finishes
/// normally with its own exit status, instead of panicking as `println!` does.
pub fn print(text: &str) -> std::io::Result<()> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => other,
    }
}

/// `println!` for commands: through [`print`], returning its `io::Result`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::print(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// Whether to colour a stream: only a terminal, and never with `NO_COLOR` set to anything
/// non-empty (<https://no-color.org>).
pub fn color(stream_is_terminal: bool) -> bool {
    stream_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// An error message as one line: the causes joined by `: `, each cause whose text the line
/// already holds left out (an I/O error wrapped with its own text would otherwise appear twice,
/// as a taken port did).
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let text: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let text = text.join(" ");
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use sbd_policy::Reason;

    #[test]
    fn the_most_severe_verdict_sets_the_status() {
        let deny = Verdict::deny(Reason::DelegationCycle, "c");
        let escalate =
            Verdict::escalate(sbd_policy::EscalationTarget::Human("h".into()), Reason::TrustEscalation, "t");
        assert_eq!(verdict_status(&[]), EXIT_OK);
        assert_eq!(verdict_status(&[escalate.clone()]), EXIT_ESCALATE);
        assert_eq!(verdict_status(&[escalate.clone(), deny.clone()]), EXIT_DENY);
        assert_eq!(verdict_status(&[deny, escalate]), EXIT_DENY);
    }

    #[test]
    fn a_repeated_cause_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use (os error 98)");
        let error = anyhow::Error::new(io).context("cannot serve on 127.0.0.1:7878: Address already in use (os error 98)");
        assert_eq!(one_line(&error), "cannot serve on 127.0.0.1:7878: Address already in use (os error 98)");
        let nested = anyhow::anyhow!("inner\ndetail").context("outer");
        assert_eq!(one_line(&nested), "outer: inner detail");
    }
}
