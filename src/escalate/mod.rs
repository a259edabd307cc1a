//! Escalation (WIP).
pub mod mask;
