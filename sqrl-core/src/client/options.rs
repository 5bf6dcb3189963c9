//! What the user's situation asks of a transaction.

use crate::msg::ClientOptions;

/// Where the browser is, relative to this client (SPEC 6 step 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    /// The browser runs on this machine: `opt=cps`, IP test on. The server
    /// returns a session URL (`url=`) for the client to hand to the browser.
    SameDevice,
    /// The code was scanned from another device: `opt=noiptest`, no CPS
    /// (PITFALLS 26: cellular clients otherwise fail the IP test).
    CrossDevice,
}

/// The options of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionOptions {
    device: Device,
    sqrl_only: bool,
    hard_lock: bool,
    request_suk: bool,
}

impl TransactionOptions {
    /// Options for `device`: no `sqrlonly`/`hardlock`, and queries ask for
    /// the SUK (`opt=suk`) so `enable`/`remove` can follow without another query.
    pub fn new(device: Device) -> Self {
        Self {
            device,
            sqrl_only: false,
            hard_lock: false,
            request_suk: true,
        }
    }

    /// Sets `sqrlonly` (from the identity's S4 option flag 0x0004). Sent on every
    /// request; the server acts on it only for non-query commands (PITFALLS 28).
    pub fn sqrl_only(mut self, on: bool) -> Self {
        self.sqrl_only = on;
        self
    }

    /// Sets `hardlock` (from the identity's S4 option flag 0x0008).
    pub fn hard_lock(mut self, on: bool) -> Self {
        self.hard_lock = on;
        self
    }

    /// Whether queries carry `opt=suk` (default on).
    pub fn request_suk(mut self, on: bool) -> Self {
        self.request_suk = on;
        self
    }

    /// The device mode.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The `opt=` flags of a non-query request (queries add `suk` when asked).
    pub fn client_options(&self) -> ClientOptions {
        let device = match self.device {
            Device::SameDevice => ClientOptions::CPS,
            Device::CrossDevice => ClientOptions::NOIPTEST,
        };
        device
            .with(ClientOptions::SQRLONLY, self.sqrl_only)
            .with(ClientOptions::HARDLOCK, self.hard_lock)
    }

    pub(super) fn query_options(&self) -> ClientOptions {
        self.client_options()
            .with(ClientOptions::SUK, self.request_suk)
    }
}
