//! One `/cli.sqrl` request as the store runs it ([`super::Attempts::step`]):
//! one trip, in which the store takes the conversation, reads what the
//! decision needs, has the driver's [`Decide`] callback decide (the protocol
//! is `sqrl_core::server`'s), applies the plan and commits once.
//!
//! A step that writes is decided on records the store holds locked until its
//! commit (SQLite: its single writer runs one step at a time; PostgreSQL: row
//! locks, and a lock per identity key so that an identity not yet stored
//! cannot be created twice). A step whose plan writes nothing durable may be
//! decided and applied on a snapshot ([`StepRequest::likely_read_only`]):
//! with nothing to commit, it is ordered where it read. When the database still refuses the commit (a
//! serialization failure, a key another transaction took first, a write that
//! no longer applies), everything is rolled back and the step is decided
//! again on fresh records, at most [`MAX_STEP_TRIES`] times; then the store
//! gives up with [`StoreError::Busy`], nothing written and the nut unused.

use sqrl_core::msg::MessageError;
use sqrl_core::server::{Conversation, Issued, Lookups, Nut, Records};

use super::{Attempt, AttemptUpdate, BackendError, StoreError};

/// How many times a step is decided and tried before the store gives up.
/// With the locks a step takes, a second try is already rare.
pub const MAX_STEP_TRIES: usize = 4;

/// What the driver knows before the store trip.
#[derive(Debug, Clone)]
pub struct StepRequest {
    /// Now (seconds), for expiries and timestamps.
    pub now: u64,
    /// Where the request's conversation is.
    pub conversation: ConversationSource,
    /// The keys whose records the decision needs (`Incoming::lookups`);
    /// `None` for a malformed request.
    pub lookups: Option<Lookups>,
    /// The decision will likely change nothing the store keeps durably: a
    /// `query` or a malformed request never does
    /// (`Incoming::changes_nothing`), a returning identity's `ident` mostly
    /// does not. A store may first decide it on what it reads without its
    /// write path, and apply it there when the plan writes nothing durable.
    /// A plan that writes is never dropped: it is decided again on the write
    /// path (so such a step may be decided twice).
    pub likely_read_only: bool,
}

/// Where the conversation a request continues is kept.
#[derive(Debug, Clone)]
pub enum ConversationSource {
    /// In the store, under this nut: the step takes it (reads and deletes
    /// it, so it is used once).
    Stored(Nut),
    /// In the driver's memory, already taken from there (a conversation with
    /// no page behind it, see [`crate::retry`]).
    Taken(Box<Conversation>),
    /// Nowhere: the request named no nut.
    None,
}

/// What the store read for a step: the decision's inputs.
#[derive(Debug, Clone)]
pub struct StepInput {
    /// The conversation taken for the request's nut, if there was one.
    pub conversation: Option<Conversation>,
    /// The records for the request's keys, indexed-secret digests under the
    /// conversation's `sin` included.
    pub records: Records,
    /// The login attempt of the page waiting behind the conversation, if it
    /// still exists (the decision may describe its browser to the device).
    pub attempt: Option<Attempt>,
}

/// What a decision asks the store to commit.
#[derive(Debug, Clone)]
pub struct StepPlan {
    /// The finished decision: the reply, the next conversation (stored under
    /// its nut when a page waits behind it), the account change and the
    /// indexed secret to keep.
    pub issued: Issued,
    /// The waiting page's update (and the single-use link of a CPS login).
    pub attempt: AttemptUpdate,
    /// End every browser session of the account the mutation acts on: the
    /// identity that opened them was disabled or replaced.
    pub revoke_sessions: bool,
}

/// The decision, as the driver hands it to the store. Pure CPU (no I/O, no
/// waiting): it runs while the store holds its locks, on SQLite's writer
/// thread. `FnMut`: a step the database refused is decided again.
pub type Decide = Box<dyn FnMut(StepInput) -> Result<StepPlan, PlanError> + Send>;

/// A committed step.
#[derive(Debug)]
pub struct Stepped {
    /// The reply to send, built once.
    pub issued: Issued,
    /// Where the next conversation ([`Issued::conversation`]) is now.
    pub next: NextConversation,
    /// The attempt whose page was updated: its page must be told.
    pub changed_attempt: Option<String>,
    /// Whether the step's commit already told the other instances of that
    /// change ([`crate::notify::Notifier::notify_here`] is then enough).
    pub published: bool,
}

/// Where the next conversation of a committed step lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextConversation {
    /// Stored under its nut: a page waits behind it.
    Stored,
    /// Not stored, because no page waits behind it: the driver keeps it in
    /// memory (see [`crate::retry`]); it can sign no one in, so a database
    /// write would buy nothing.
    Unstored,
}

/// Why a step committed nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// The store failed, or gave up after [`MAX_STEP_TRIES`].
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The decision could not be turned into a plan.
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// A decision whose reply the server cannot build: a value of its own (its
/// configuration, a bug), never the client's request. Nothing is written.
#[derive(Debug, thiserror::Error)]
#[error("building the reply")]
pub struct PlanError(#[source] pub MessageError);

/// One try of a step, as a backend reports it to its retry loop.
pub(super) enum Tried {
    /// Applied; the backend commits.
    Applied(Box<Stepped>),
    /// The plan's writes did not apply to the state it was decided on:
    /// roll back and decide again.
    NotApplied,
    /// The decision could not be planned: roll back and stop.
    Unplanned(PlanError),
}

/// What the backend tells the retry loop after a try.
pub(super) fn stepped(plan: StepPlan, next: NextConversation) -> Tried {
    Tried::Applied(Box::new(applied(plan, next)))
}

/// The step a plan makes once it is applied.
pub(super) fn applied(plan: StepPlan, next: NextConversation) -> Stepped {
    let changed_attempt = plan.attempt.attempt().map(str::to_owned);
    Stepped {
        issued: plan.issued,
        next,
        changed_attempt,
        published: false,
    }
}

/// Where a plan's next conversation goes: the store only when a page waits
/// behind it.
pub(super) fn keeps(plan: &StepPlan) -> NextConversation {
    if plan.issued.conversation.browser.is_some() {
        NextConversation::Stored
    } else {
        NextConversation::Unstored
    }
}

/// The error a step gives up with after its last try: the database's last
/// refusal, or that the plan never applied.
pub(super) fn gave_up(last: Option<StoreError>) -> StoreError {
    match last {
        Some(StoreError::Busy(source) | StoreError::Database(source)) => StoreError::Busy(source),
        Some(other) => other,
        None => StoreError::Busy(Box::new(NeverApplied) as BackendError),
    }
}

/// The source of a step that gave up because its plan never applied.
#[derive(Debug, thiserror::Error)]
#[error("the step's writes did not apply in {MAX_STEP_TRIES} tries, each decided on fresh records")]
struct NeverApplied;
