//! The work budget of parsing one file: a wall-clock deadline that every parser checks
//! cooperatively, plus a counter of work units for the paths whose cost can multiply beyond
//! the file's size (a PDF's content operations re-run through nested Form XObjects).
//!
//! Size limits alone do not bound parsing time: a 3 KB PDF whose forms each draw the next
//! one ten times is `10^depth` operations, and deeply nested HTML costs html5ever the square
//! of its depth. Each parser therefore gets a [`Budget`] from [`crate::parse_bytes`], and a
//! file over it fails with [`Error::TimedOut`] or [`Error::OverBudget`] — one file's error,
//! recorded by the caller while the queue moves on.

use crate::{Error, Result};
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Calls to [`Budget::tick`] between two readings of the clock: reading it costs ~20 ns,
/// a tick's caller does at least that much work, so this keeps the check under 1%.
const TICKS_PER_CLOCK_READ: u32 = 256;

/// The deadline and work allowance of one file's parse. Not `Sync`: one parse, one thread.
#[derive(Debug)]
pub struct Budget {
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    ticks: Cell<u32>,
    /// Work units left; see [`Budget::spend`].
    units_left: Cell<u64>,
    max_units: u64,
}

impl Budget {
    /// A budget starting now: `timeout` of wall-clock time (`None`: no deadline) and
    /// `max_units` units of counted work.
    pub fn new(timeout: Option<Duration>, max_units: u64) -> Budget {
        Budget {
            timeout,
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
            ticks: Cell::new(0),
            units_left: Cell::new(max_units),
            max_units,
        }
    }

    /// No deadline and no work limit (trusted input, tools, tests of parsing logic).
    pub fn unlimited() -> Budget {
        Budget::new(None, u64::MAX)
    }

    /// Whether the deadline has passed. Reads the clock every time: for calls between
    /// coarse steps (a chunk of HTML, a page, a part of a package).
    pub fn check(&self) -> Result<()> {
        match (self.deadline, self.timeout) {
            (Some(deadline), Some(limit)) if Instant::now() >= deadline => {
                Err(Error::TimedOut { limit })
            }
            _ => Ok(()),
        }
    }

    /// [`Budget::check`] for hot loops: reads the clock only every few hundred calls.
    pub fn tick(&self) -> Result<()> {
        let n = self.ticks.get().wrapping_add(1);
        self.ticks.set(n);
        if n.is_multiple_of(TICKS_PER_CLOCK_READ) {
            self.check()
        } else {
            Ok(())
        }
    }

    /// Takes `units` of counted work (what counts is the caller's: a PDF content operation,
    /// a glyph shown, a form invoked), failing with [`Error::OverBudget`] naming `what` once
    /// the allowance is spent. Also ticks the deadline.
    pub fn spend(&self, units: u64, what: &str) -> Result<()> {
        let left = self.units_left.get();
        if units > left {
            self.units_left.set(0);
            return Err(Error::OverBudget(format!(
                "more than {} units of {what}",
                self.max_units
            )));
        }
        self.units_left.set(left - units);
        self.tick()
    }

    /// Work units spent so far.
    pub fn spent(&self) -> u64 {
        self.max_units - self.units_left.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passed_deadline_is_a_timeout_naming_the_limit() {
        let budget = Budget::new(Some(Duration::ZERO), u64::MAX);
        match budget.check() {
            Err(Error::TimedOut { limit }) => assert_eq!(limit, Duration::ZERO),
            other => panic!("expected a timeout, got {other:?}"),
        }
        // tick reads the clock only now and then, but it does read it.
        let hits = (0..2 * TICKS_PER_CLOCK_READ)
            .filter(|_| budget.tick().is_err())
            .count();
        assert_eq!(hits, 2);
        assert!(Budget::unlimited().check().is_ok());
    }

    #[test]
    fn work_units_run_out() {
        let budget = Budget::new(None, 10);
        assert!(budget.spend(4, "operations").is_ok());
        assert!(budget.spend(6, "operations").is_ok());
        assert_eq!(budget.spent(), 10);
        let err = budget.spend(1, "operations").expect_err("over");
        assert!(matches!(err, Error::OverBudget(_)));
        assert_eq!(
            err.to_string(),
            "document exceeds the parsing work budget: more than 10 units of operations"
        );
    }
}
