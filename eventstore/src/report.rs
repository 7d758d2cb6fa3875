//! An error as a log line shows it: its message and every cause below it
//! (`a: b: c`), so a log leads to the root of a failure, not only to its
//! last wrapper.

use std::error::Error;
use std::fmt;

/// Displays an error with its chain of sources: `warn!(error = %Chain(&err))`.
pub struct Chain<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut last = self.0.to_string();
        let mut source = self.0.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // Wrappers often repeat their source's message: said once.
            if !last.contains(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the campaign")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("the log did not answer")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn every_cause_is_shown_once_in_order() {
        let err = Outer(Middle(std::io::Error::other("connection refused")));
        assert_eq!(
            Chain(&err).to_string(),
            "cannot read the campaign: the log did not answer: connection refused"
        );
        #[derive(Debug, thiserror::Error)]
        #[error("wrapped: {0}")]
        struct Repeats(#[source] std::io::Error);
        let err = Repeats(std::io::Error::other("timed out"));
        assert_eq!(Chain(&err).to_string(), "wrapped: timed out");
    }
}
