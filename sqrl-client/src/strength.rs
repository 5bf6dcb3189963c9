//! The strength check of a new password (`identity create`, `identity
//! password`, a rescue identity's import), with Dropbox's zxcvbn estimator.
//!
//! The bar is zxcvbn's score 3, "safely unguessable: moderate protection from
//! an offline slow-hash scenario", which is exactly SQRL's case: whoever copies
//! an identity file can try passwords offline, each costing one EnScrypt run.

use zxcvbn::Score;

use crate::error::Error;

/// The lowest acceptable zxcvbn score.
const MIN_SCORE: Score = Score::Three;

/// Checks a new password; `Err(Error::WeakPassword)` says why it is weak and
/// what would do better.
pub fn check(password: &str) -> Result<(), Error> {
    let estimate = zxcvbn::zxcvbn(password, &["sqrl"]);
    if estimate.score() >= MIN_SCORE {
        return Ok(());
    }
    let mut reasons = Vec::new();
    if let Some(feedback) = estimate.feedback() {
        if let Some(warning) = feedback.warning() {
            reasons.push(trim_period(&warning.to_string()));
        }
        reasons.extend(
            feedback
                .suggestions()
                .iter()
                .map(|suggestion| trim_period(&suggestion.to_string())),
        );
    }
    // What a guesser would need, in words a person can weigh.
    reasons.push(format!(
        "it would fall to about 10^{:.0} guesses",
        estimate.guesses_log10()
    ));
    Err(Error::WeakPassword {
        reason: format!(": {}", reasons.join("; ")),
    })
}

fn trim_period(text: &str) -> String {
    text.trim().trim_end_matches('.').to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn short_and_common_passwords_are_refused_with_a_reason() {
        for weak in ["a", "password", "Password1", "qwerty123", "sqrl"] {
            match check(weak) {
                Err(Error::WeakPassword { reason }) => {
                    assert!(reason.contains("guesses"), "{weak}: {reason}");
                }
                other => panic!("{weak:?} accepted: {other:?}"),
            }
        }
    }

    #[test]
    fn long_unrelated_words_pass() {
        for strong in [
            "correct horse battery staple",
            "violet tractor umbrella 1987 lagoon",
        ] {
            check(strong).unwrap();
        }
    }
}
