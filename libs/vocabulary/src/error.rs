//! The one error of the vocabulary: a field and what is wrong with it.

/// A rule of the vocabulary that an input breaks. The message names the field
/// (`recommendations[2].term`) and never repeats the value, which may be anything a
/// client sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}
