//! The account model and its rules (docs/design/DOMAIN.md, Cloud accounts). No proto and no SQL
//! types here.

mod account;
pub mod credentials;
pub mod validation;

pub use account::{
    Account, AccountDraft, AccountFilter, AccountInput, AwsAuthMode, CredentialType, Provider,
    session_name,
};
pub use credentials::{CredentialDraft, ValidCredentials};
