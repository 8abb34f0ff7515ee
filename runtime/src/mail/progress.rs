//! How far one `send-mail` call got, readable after the call was cut off.
//!
//! A job's deadline or cancel drops the sending future wherever it waits,
//! so the future can't say what became of the message. It notes its stage
//! here instead, and the host reads it after the cut: a message whose
//! final `.` was never written can't have been accepted (a server discards
//! a transaction whose connection closes mid-DATA), so its ledger claim is
//! given back and a rerun sends it; once the `.` is being written, the
//! server may have it, and it counts as sent.

use std::sync::atomic::{AtomicU8, Ordering};

/// Where a `send-mail` call stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Nothing claimed in the ledger yet: waiting on the rate, building.
    Unclaimed,
    /// Claimed in the ledger, the message not yet complete on the wire:
    /// connecting, greeting, AUTH, MAIL, RCPT, DATA, or the body.
    Claimed,
    /// The final `.` is written or being written: the server may have it.
    HandedOver,
}

/// A call's [`Stage`], shared between the sending future and its caller.
#[derive(Debug, Default)]
pub struct Progress(AtomicU8);

impl Progress {
    pub fn stage(&self) -> Stage {
        match self.0.load(Ordering::Acquire) {
            0 => Stage::Unclaimed,
            1 => Stage::Claimed,
            _ => Stage::HandedOver,
        }
    }

    pub fn set(&self, stage: Stage) {
        let value = match stage {
            Stage::Unclaimed => 0,
            Stage::Claimed => 1,
            Stage::HandedOver => 2,
        };
        self.0.store(value, Ordering::Release);
    }
}
