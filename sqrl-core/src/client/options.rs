//! What the user's situation asks of a transaction.

use crate::msg::ClientOptions;

/// Where the browser is, relative to this client (SPEC 6 step 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    /// The browser runs on this machine: `opt=cps`, IP test on. The server
    /// returns a session URL (`url=`) for the client to hand to the browser.
    SameDevice,
    /// The code was scanned from another device: `opt=noiptest`, no CPS
    /// (PITFALLS 26: cellular clients otherwise fail the IP test). With
    /// [`TransactionOptions::test_ip_first`], `noiptest` is only sent once the
    /// user has accepted an IP mismatch.
    CrossDevice,
}

/// The options of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionOptions {
    device: Device,
    sqrl_only: bool,
    hard_lock: bool,
    request_suk: bool,
    /// Whether requests carry `noiptest` (cross-device only).
    noiptest: bool,
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
            noiptest: device == Device::CrossDevice,
        }
    }

    /// Lets the site test the IP address first, also in cross-device mode: no
    /// `noiptest` until the site has answered. If the site then reports an IP
    /// mismatch (TIF exactly `0x40`), the query phase stops at
    /// [`QueryStep::IpMismatch`](super::QueryStep::IpMismatch) instead of
    /// failing, and the caller decides, with the user, whether to go on
    /// without the test. This is the defence against a relayed QR code
    /// (QRLJacking): an attacker's browser elsewhere shows the victim the
    /// site's code, and a client that always sent `noiptest` would log the
    /// attacker's browser in. Same-device transactions always test the IP.
    pub fn test_ip_first(mut self, on: bool) -> Self {
        if self.device == Device::CrossDevice {
            self.noiptest = !on;
        }
        self
    }

    /// Whether requests carry `noiptest` now.
    pub fn skips_ip_test(&self) -> bool {
        self.noiptest
    }

    /// From now on requests carry `noiptest` (the user accepted an IP mismatch).
    pub(super) fn waive_ip_test(&mut self) {
        if self.device == Device::CrossDevice {
            self.noiptest = true;
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
            Device::CrossDevice if self.noiptest => ClientOptions::NOIPTEST,
            Device::CrossDevice => ClientOptions::NONE,
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
