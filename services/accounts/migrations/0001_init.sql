-- Schema accounts, owned by the accounts service (DOMAIN.md, Cloud accounts). The service
-- sets search_path to it on every connection. Constraint names are part of the code: the
-- service maps unique and foreign-key violations to API errors by these names.

CREATE TABLE cloud_accounts (
    id uuid PRIMARY KEY,
    name text NOT NULL CONSTRAINT cloud_accounts_name_length CHECK (char_length(name) BETWEEN 1 AND 255),
    description text,
    contact_email text,
    enabled boolean NOT NULL DEFAULT true,
    provider text NOT NULL CONSTRAINT cloud_accounts_provider_known CHECK (provider IN ('aws', 'azure', 'gcp')),
    external_id text NOT NULL,
    aws_auth_mode text CONSTRAINT cloud_accounts_aws_auth_mode_known
        CHECK (aws_auth_mode IN ('access_keys', 'role_arn', 'bastion', 'workload_identity_federation')),
    aws_role_arn text,
    aws_external_id text,
    aws_bastion_id uuid,
    aws_is_org_root boolean NOT NULL DEFAULT false,
    aws_web_identity_token_file text,
    azure_subscription_id text,
    azure_tenant_id text,
    azure_client_id text,
    gcp_project_id text,
    gcp_client_email text,
    -- Bumped by every write to the account or its credentials; cached session
    -- credentials are only used for the revision (and bastion revision) they came from.
    revision bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT cloud_accounts_provider_external_id_key UNIQUE (provider, external_id),
    -- A bastion that is deleted while accounts use it is refused (409, naming them).
    CONSTRAINT cloud_accounts_aws_bastion_id_fkey FOREIGN KEY (aws_bastion_id)
        REFERENCES cloud_accounts (id) ON DELETE RESTRICT,
    CONSTRAINT cloud_accounts_aws_mode_fields CHECK (
        (provider = 'aws') = (aws_auth_mode IS NOT NULL)
        AND ((aws_auth_mode = 'bastion') = (aws_bastion_id IS NOT NULL))
        AND (aws_bastion_id IS NULL OR aws_bastion_id <> id)
    )
);

CREATE INDEX cloud_accounts_aws_bastion_id_idx ON cloud_accounts (aws_bastion_id)
    WHERE aws_bastion_id IS NOT NULL;
CREATE INDEX cloud_accounts_name_idx ON cloud_accounts (name, id);

-- One encrypted blob per account and credential type:
-- base64url(nonce).base64url(ciphertext+tag), AES-256-GCM with the associated data
-- "<account uuid>:<credential type>". Deleting an account deletes its credentials.
CREATE TABLE account_credentials (
    account_id uuid NOT NULL
        CONSTRAINT account_credentials_account_id_fkey REFERENCES cloud_accounts (id) ON DELETE CASCADE,
    credential_type text NOT NULL CONSTRAINT account_credentials_type_known
        CHECK (credential_type IN ('aws_access_keys', 'azure_client_secret', 'gcp_service_account')),
    encrypted_blob text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT account_credentials_pkey PRIMARY KEY (account_id, credential_type)
);
