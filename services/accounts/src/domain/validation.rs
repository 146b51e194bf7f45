//! Field rules of an account (docs/design/DOMAIN.md, Cloud accounts). The rules that need the
//! database (uniqueness, bastion) live with the service. Every error names its field
//! and never repeats the value.

use uuid::Uuid;

use super::account::{AccountDraft, AccountInput, AwsAuthMode, Provider};
use crate::error::{AccountsError, AccountsResult};

const MAX_NAME: usize = 255;
const MAX_DESCRIPTION: usize = 2_000;
const MAX_EMAIL: usize = 254;
const MAX_PATH: usize = 4_096;
/// AWS accepts external ids of 2 to 1224 characters of `[\w+=,.@:/-]`.
const MAX_AWS_EXTERNAL_ID: usize = 1_224;

/// Validates and normalises `draft`: trims text, treats empty optional text as absent,
/// applies the defaults (enabled true, aws_auth_mode access_keys for AWS accounts,
/// aws_is_org_root false) and checks every field rule that needs no database.
pub fn validate_account(draft: AccountDraft) -> AccountsResult<AccountInput> {
    let name = draft.name.trim().to_owned();
    if name.is_empty() {
        return Err(AccountsError::field("name", "is required"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(AccountsError::field(
            "name",
            format!("must be at most {MAX_NAME} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(AccountsError::field(
            "name",
            "must not contain control characters",
        ));
    }
    let description = optional(draft.description);
    if description
        .as_deref()
        .is_some_and(|text| text.chars().count() > MAX_DESCRIPTION)
    {
        return Err(AccountsError::field(
            "description",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    // Free text may hold newlines and tabs, but Postgres text cannot hold NUL.
    if description
        .as_deref()
        .is_some_and(|text| text.contains('\0'))
    {
        return Err(AccountsError::field(
            "description",
            "must not contain NUL characters",
        ));
    }
    let contact_email = optional(draft.contact_email);
    if let Some(email) = &contact_email {
        check_email("contact_email", email)?;
    }
    let provider_text = draft.provider.trim();
    if provider_text.is_empty() {
        return Err(AccountsError::field("provider", "is required"));
    }
    let provider = Provider::parse(provider_text).ok_or_else(|| {
        AccountsError::field("provider", "unknown provider, expected aws, azure or gcp")
    })?;
    let external_id = normalise_external_id(provider, draft.external_id.trim())?;

    let aws_auth_mode_text = optional(draft.aws_auth_mode);
    let aws_role_arn = optional(draft.aws_role_arn);
    let aws_external_id = optional(draft.aws_external_id);
    let aws_bastion_id_text = optional(draft.aws_bastion_id);
    let aws_is_org_root = draft.aws_is_org_root.unwrap_or(false);
    let aws_web_identity_token_file = optional(draft.aws_web_identity_token_file);
    let azure_subscription_id = optional(draft.azure_subscription_id);
    let azure_tenant_id = optional(draft.azure_tenant_id);
    let azure_client_id = optional(draft.azure_client_id);
    let gcp_project_id = optional(draft.gcp_project_id);
    let gcp_client_email = optional(draft.gcp_client_email);

    if provider != Provider::Aws {
        let aws_fields = [
            ("aws_auth_mode", aws_auth_mode_text.is_some()),
            ("aws_role_arn", aws_role_arn.is_some()),
            ("aws_external_id", aws_external_id.is_some()),
            ("aws_bastion_id", aws_bastion_id_text.is_some()),
            ("aws_is_org_root", aws_is_org_root),
            (
                "aws_web_identity_token_file",
                aws_web_identity_token_file.is_some(),
            ),
        ];
        reject_foreign_fields(&aws_fields, "aws")?;
    }
    if provider != Provider::Azure {
        let azure_fields = [
            ("azure_subscription_id", azure_subscription_id.is_some()),
            ("azure_tenant_id", azure_tenant_id.is_some()),
            ("azure_client_id", azure_client_id.is_some()),
        ];
        reject_foreign_fields(&azure_fields, "azure")?;
    }
    if provider != Provider::Gcp {
        let gcp_fields = [
            ("gcp_project_id", gcp_project_id.is_some()),
            ("gcp_client_email", gcp_client_email.is_some()),
        ];
        reject_foreign_fields(&gcp_fields, "gcp")?;
    }

    let mut input = AccountInput {
        name,
        description,
        contact_email,
        enabled: draft.enabled.unwrap_or(true),
        provider,
        external_id,
        aws_auth_mode: None,
        aws_role_arn: None,
        aws_external_id: None,
        aws_bastion_id: None,
        aws_is_org_root,
        aws_web_identity_token_file: None,
        azure_subscription_id: None,
        azure_tenant_id: None,
        azure_client_id: None,
        gcp_project_id: None,
        gcp_client_email: None,
    };
    match provider {
        Provider::Aws => {
            let mode = match aws_auth_mode_text.as_deref() {
                None => AwsAuthMode::AccessKeys,
                Some(text) => AwsAuthMode::parse(text).ok_or_else(|| {
                    AccountsError::field(
                        "aws_auth_mode",
                        "unknown mode, expected access_keys, role_arn, bastion or workload_identity_federation",
                    )
                })?,
            };
            input.aws_auth_mode = Some(mode);
            input.aws_role_arn = validate_role_arn(mode, aws_role_arn, &input.external_id)?;
            input.aws_external_id = validate_aws_external_id(mode, aws_external_id)?;
            input.aws_bastion_id = validate_bastion_id(mode, aws_bastion_id_text)?;
            input.aws_web_identity_token_file =
                validate_token_file(mode, aws_web_identity_token_file)?;
        }
        Provider::Azure => {
            if let Some(subscription) = azure_subscription_id {
                let subscription = canonical_uuid("azure_subscription_id", &subscription)?;
                if subscription != input.external_id {
                    return Err(AccountsError::field(
                        "azure_subscription_id",
                        "must equal external_id (the subscription id)",
                    ));
                }
                input.azure_subscription_id = Some(subscription);
            }
            input.azure_tenant_id = azure_tenant_id
                .map(|tenant| canonical_uuid("azure_tenant_id", &tenant))
                .transpose()?;
            input.azure_client_id = azure_client_id
                .map(|client| canonical_uuid("azure_client_id", &client))
                .transpose()?;
        }
        Provider::Gcp => {
            if let Some(project) = gcp_project_id {
                if project != input.external_id {
                    return Err(AccountsError::field(
                        "gcp_project_id",
                        "must equal external_id (the project id)",
                    ));
                }
                input.gcp_project_id = Some(project);
            }
            if let Some(email) = gcp_client_email {
                check_email("gcp_client_email", &email)?;
                input.gcp_client_email = Some(email);
            }
        }
    }
    Ok(input)
}

/// Returns `text` trimmed, or `None` when absent or blank.
fn optional(text: Option<String>) -> Option<String> {
    text.map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

fn reject_foreign_fields(fields: &[(&str, bool)], provider: &str) -> AccountsResult<()> {
    match fields.iter().find(|(_, present)| *present) {
        Some((field, _)) => Err(AccountsError::field(
            *field,
            format!("only applies to {provider} accounts"),
        )),
        None => Ok(()),
    }
}

/// Checks the external id's format per provider and returns its canonical form
/// (lowercase uuid for Azure, so the unique (provider, external_id) cannot be evaded
/// by case).
fn normalise_external_id(provider: Provider, external_id: &str) -> AccountsResult<String> {
    if external_id.is_empty() {
        return Err(AccountsError::field("external_id", "is required"));
    }
    match provider {
        Provider::Aws => {
            if is_aws_account_id(external_id) {
                Ok(external_id.to_owned())
            } else {
                Err(AccountsError::field(
                    "external_id",
                    "must be a 12-digit aws account id",
                ))
            }
        }
        Provider::Azure => canonical_uuid("external_id", external_id).map_err(|_| {
            AccountsError::field("external_id", "must be an azure subscription id (uuid)")
        }),
        Provider::Gcp => {
            if is_gcp_project_id(external_id) {
                Ok(external_id.to_owned())
            } else {
                Err(AccountsError::field(
                    "external_id",
                    "must be a gcp project id (6 to 30 lowercase letters, digits or hyphens, starting with a letter)",
                ))
            }
        }
    }
}

/// Returns true for exactly 12 ASCII digits.
pub fn is_aws_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|byte| byte.is_ascii_digit())
}

fn is_gcp_project_id(text: &str) -> bool {
    let bytes = text.as_bytes();
    (6..=30).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && !text.ends_with('-')
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'-')
}

fn canonical_uuid(field: &str, text: &str) -> AccountsResult<String> {
    Uuid::parse_str(text)
        .map(|uuid| uuid.hyphenated().to_string())
        .map_err(|_| AccountsError::field(field, "must be a uuid"))
}

/// A deliberately plain address check: one `@`, a non-empty local part, a dotted
/// domain, no whitespace or control characters.
fn check_email(field: &str, email: &str) -> AccountsResult<()> {
    let invalid = || AccountsError::field(field, "must be a valid email address");
    if email.chars().count() > MAX_EMAIL
        || email.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let domain_ok = !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty() || !domain_ok {
        return Err(invalid());
    }
    Ok(())
}

/// The account id and role path of a role ARN
/// `arn:(aws|aws-cn|aws-us-gov):iam::<12 digits>:role/<path>`, if `arn` is one.
pub fn parse_role_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    if !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") {
        return None;
    }
    let rest = rest.strip_prefix("iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let path = resource.strip_prefix("role/")?;
    let name = path.rsplit('/').next()?;
    let path_ok = !path.is_empty()
        && path.len() <= 512
        && !path.starts_with('/')
        && !path.ends_with('/')
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c));
    (is_aws_account_id(account) && path_ok && !name.is_empty() && name.len() <= 64)
        .then_some((account, path))
}

/// Returns the partition of a valid role ARN (`aws`, `aws-cn`, `aws-us-gov`).
pub fn role_arn_partition(arn: &str) -> Option<&str> {
    parse_role_arn(arn)?;
    arn.split(':').nth(1)
}

/// Returns true for an IAM role name: 1 to 64 characters of `[A-Za-z0-9+=,.@_-]`.
pub fn is_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

fn validate_role_arn(
    mode: AwsAuthMode,
    arn: Option<String>,
    external_id: &str,
) -> AccountsResult<Option<String>> {
    let Some(arn) = arn else {
        if mode.needs_role_arn() {
            return Err(AccountsError::field(
                "aws_role_arn",
                format!("is required in {} mode", mode.as_str()),
            ));
        }
        return Ok(None);
    };
    if !mode.needs_role_arn() {
        return Err(AccountsError::field(
            "aws_role_arn",
            "only applies to role_arn, bastion and workload_identity_federation modes",
        ));
    }
    let (account, _) = parse_role_arn(&arn).ok_or_else(|| {
        AccountsError::field(
            "aws_role_arn",
            "must look like arn:aws:iam::<12 digits>:role/<name> (partition aws, aws-cn or aws-us-gov)",
        )
    })?;
    if account != external_id {
        return Err(AccountsError::field(
            "aws_role_arn",
            "the role's account must equal external_id",
        ));
    }
    Ok(Some(arn))
}

/// Gives a role_arn or bastion account without an external id one: `kept` (the one it
/// had, on update) or a new random one. The operator puts it in the role's trust policy
/// (`sts:ExternalId`), so that only CUDly-rs, asking with it, can assume the role
/// (the confused-deputy defence).
pub fn ensure_aws_external_id(input: &mut AccountInput, kept: Option<&str>) {
    let uses_one = matches!(
        input.aws_auth_mode,
        Some(AwsAuthMode::RoleArn | AwsAuthMode::Bastion)
    );
    if !uses_one || input.aws_external_id.is_some() {
        return;
    }
    input.aws_external_id = Some(match kept {
        Some(kept) => kept.to_owned(),
        None => format!("cudly-{}", Uuid::new_v4().simple()),
    });
}

fn validate_aws_external_id(
    mode: AwsAuthMode,
    value: Option<String>,
) -> AccountsResult<Option<String>> {
    let Some(value) = value else {
        return Ok(None);
    };
    if !matches!(mode, AwsAuthMode::RoleArn | AwsAuthMode::Bastion) {
        return Err(AccountsError::field(
            "aws_external_id",
            "only applies to role_arn and bastion modes",
        ));
    }
    let well_formed = (2..=MAX_AWS_EXTERNAL_ID).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
    if !well_formed {
        return Err(AccountsError::field(
            "aws_external_id",
            "must be 2 to 1224 characters of letters, digits and _+=,.@:/-",
        ));
    }
    Ok(Some(value))
}

fn validate_bastion_id(mode: AwsAuthMode, value: Option<String>) -> AccountsResult<Option<Uuid>> {
    match (mode, value) {
        (AwsAuthMode::Bastion, None) => Err(AccountsError::field(
            "aws_bastion_id",
            "is required in bastion mode",
        )),
        (AwsAuthMode::Bastion, Some(text)) => Uuid::parse_str(&text)
            .map(Some)
            .map_err(|_| AccountsError::field("aws_bastion_id", "must be an account id (uuid)")),
        (_, Some(_)) => Err(AccountsError::field(
            "aws_bastion_id",
            "only applies to bastion mode",
        )),
        (_, None) => Ok(None),
    }
}

fn validate_token_file(mode: AwsAuthMode, value: Option<String>) -> AccountsResult<Option<String>> {
    match (mode, value) {
        (AwsAuthMode::WorkloadIdentityFederation, None) => Err(AccountsError::field(
            "aws_web_identity_token_file",
            "is required in workload_identity_federation mode",
        )),
        (AwsAuthMode::WorkloadIdentityFederation, Some(path)) => {
            if !path.starts_with('/') || path.len() > MAX_PATH || path.chars().any(char::is_control)
            {
                return Err(AccountsError::field(
                    "aws_web_identity_token_file",
                    "must be an absolute file path",
                ));
            }
            Ok(Some(path))
        }
        (_, Some(_)) => Err(AccountsError::field(
            "aws_web_identity_token_file",
            "only applies to workload_identity_federation mode",
        )),
        (_, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(mode: &str) -> AccountDraft {
        AccountDraft {
            name: "Prod".into(),
            provider: "aws".into(),
            external_id: "123456789012".into(),
            aws_auth_mode: Some(mode.into()),
            ..AccountDraft::default()
        }
    }

    fn field_of(result: AccountsResult<AccountInput>) -> String {
        match result.unwrap_err() {
            AccountsError::InvalidField { field, .. } => field,
            other => panic!("expected a field error, got {other}"),
        }
    }

    #[test]
    fn role_accounts_without_an_external_id_get_a_random_one_and_keep_it() {
        let draft_in_mode = |mode: &str| {
            let mut draft = aws(mode);
            if mode == "role_arn" {
                draft.aws_role_arn = Some("arn:aws:iam::123456789012:role/CUDly".into());
            }
            draft
        };
        let mut input = validate_account(draft_in_mode("role_arn")).unwrap();
        ensure_aws_external_id(&mut input, None);
        let generated = input.aws_external_id.clone().unwrap();
        assert!(
            generated.starts_with("cudly-") && generated.len() == 38,
            "{generated}"
        );
        let mut again = validate_account(draft_in_mode("role_arn")).unwrap();
        ensure_aws_external_id(&mut again, None);
        assert_ne!(
            again.aws_external_id,
            Some(generated.clone()),
            "random each time"
        );
        let mut updated = validate_account(draft_in_mode("role_arn")).unwrap();
        ensure_aws_external_id(&mut updated, Some(&generated));
        assert_eq!(
            updated.aws_external_id,
            Some(generated),
            "an update keeps it"
        );
        let mut keys = validate_account(draft_in_mode("access_keys")).unwrap();
        ensure_aws_external_id(&mut keys, None);
        assert_eq!(keys.aws_external_id, None, "access keys assume no role");
    }

    #[test]
    fn defaults_are_applied() {
        let input = validate_account(AccountDraft {
            name: "  Prod  ".into(),
            provider: "aws".into(),
            external_id: "123456789012".into(),
            description: Some("".into()),
            ..AccountDraft::default()
        })
        .unwrap();
        assert_eq!(input.name, "Prod");
        assert!(input.enabled);
        assert_eq!(input.aws_auth_mode, Some(AwsAuthMode::AccessKeys));
        assert_eq!(input.description, None);
        assert!(!input.aws_is_org_root);
    }

    #[test]
    fn required_fields_are_named() {
        assert_eq!(field_of(validate_account(AccountDraft::default())), "name");
        let mut draft = aws("access_keys");
        draft.provider = String::new();
        assert_eq!(field_of(validate_account(draft)), "provider");
        let mut draft = aws("access_keys");
        draft.external_id = "12345".into();
        assert_eq!(field_of(validate_account(draft)), "external_id");
        let mut draft = aws("access_keys");
        draft.name = "x".repeat(256);
        assert_eq!(field_of(validate_account(draft)), "name");
    }

    #[test]
    fn role_arns_must_be_well_formed_and_match_the_account() {
        let mut draft = aws("role_arn");
        assert_eq!(field_of(validate_account(draft.clone())), "aws_role_arn");
        for bad in [
            "arn:aws:iam::123456789012:user/CUDly",
            "arn:aws:iam::12345678901:role/CUDly",
            "arn:other:iam::123456789012:role/CUDly",
            "arn:aws:iam::123456789012:role/",
            "not an arn",
        ] {
            draft.aws_role_arn = Some(bad.into());
            assert_eq!(
                field_of(validate_account(draft.clone())),
                "aws_role_arn",
                "{bad}"
            );
        }
        draft.aws_role_arn = Some("arn:aws:iam::210987654321:role/CUDly".into());
        assert_eq!(field_of(validate_account(draft.clone())), "aws_role_arn");
        for good in [
            "arn:aws:iam::123456789012:role/CUDly",
            "arn:aws-us-gov:iam::123456789012:role/path/to/CUDly",
            "arn:aws-cn:iam::123456789012:role/a+b=c,d.e@f_g-h",
        ] {
            draft.aws_role_arn = Some(good.into());
            assert!(validate_account(draft.clone()).is_ok(), "{good}");
        }
    }

    #[test]
    fn mode_specific_fields_are_required_and_exclusive() {
        let mut draft = aws("bastion");
        draft.aws_role_arn = Some("arn:aws:iam::123456789012:role/CUDly".into());
        assert_eq!(field_of(validate_account(draft.clone())), "aws_bastion_id");
        draft.aws_bastion_id = Some("not-a-uuid".into());
        assert_eq!(field_of(validate_account(draft.clone())), "aws_bastion_id");
        draft.aws_bastion_id = Some(Uuid::new_v4().to_string());
        assert!(validate_account(draft).is_ok());

        let mut draft = aws("access_keys");
        draft.aws_bastion_id = Some(Uuid::new_v4().to_string());
        assert_eq!(field_of(validate_account(draft)), "aws_bastion_id");

        let mut draft = aws("workload_identity_federation");
        draft.aws_role_arn = Some("arn:aws:iam::123456789012:role/CUDly".into());
        assert_eq!(
            field_of(validate_account(draft.clone())),
            "aws_web_identity_token_file"
        );
        draft.aws_web_identity_token_file = Some("relative/token".into());
        assert_eq!(
            field_of(validate_account(draft.clone())),
            "aws_web_identity_token_file"
        );
        draft.aws_web_identity_token_file = Some("/var/run/token".into());
        assert!(validate_account(draft).is_ok());

        let mut draft = aws("sideways");
        draft.aws_role_arn = None;
        assert_eq!(field_of(validate_account(draft)), "aws_auth_mode");
    }

    #[test]
    fn fields_of_other_providers_are_refused() {
        let draft = AccountDraft {
            name: "Sub".into(),
            provider: "azure".into(),
            external_id: "6F1C2A3B-1111-4222-8333-944455556666".into(),
            aws_role_arn: Some("arn:aws:iam::123456789012:role/CUDly".into()),
            ..AccountDraft::default()
        };
        assert_eq!(field_of(validate_account(draft.clone())), "aws_role_arn");
        let input = validate_account(AccountDraft {
            aws_role_arn: None,
            ..draft
        })
        .unwrap();
        assert_eq!(input.external_id, "6f1c2a3b-1111-4222-8333-944455556666");
        assert_eq!(input.aws_auth_mode, None);
    }

    #[test]
    fn gcp_and_azure_ids_are_checked() {
        let gcp = AccountDraft {
            name: "Proj".into(),
            provider: "gcp".into(),
            external_id: "my-project-1".into(),
            gcp_client_email: Some("sa@my-project-1.iam.gserviceaccount.com".into()),
            ..AccountDraft::default()
        };
        assert!(validate_account(gcp.clone()).is_ok());
        let mut bad = gcp.clone();
        bad.external_id = "My_Project".into();
        assert_eq!(field_of(validate_account(bad)), "external_id");
        let mut bad = gcp;
        bad.gcp_client_email = Some("not an email".into());
        assert_eq!(field_of(validate_account(bad)), "gcp_client_email");
    }

    #[test]
    fn emails_are_checked_plainly() {
        assert!(check_email("contact_email", "ops@example.com").is_ok());
        for bad in [
            "ops",
            "@example.com",
            "ops@example",
            "ops@@example.com",
            "o ps@example.com",
            "ops@.com",
        ] {
            assert!(check_email("contact_email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn role_names_and_partitions() {
        assert!(is_role_name("OrganizationAccountAccessRole"));
        assert!(!is_role_name("bad/name"));
        assert!(!is_role_name(""));
        assert_eq!(
            role_arn_partition("arn:aws-cn:iam::123456789012:role/X"),
            Some("aws-cn")
        );
    }
}
