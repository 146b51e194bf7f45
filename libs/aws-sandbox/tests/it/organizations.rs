use crate::common::*;

#[tokio::test]
async fn list_accounts_pages_through_the_root_and_its_members() {
    let handle = start().await;
    let organizations = aws_sdk_organizations::Client::new(&root_config(&handle).await);
    let first = organizations
        .list_accounts()
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(first.accounts().len(), 2);
    let next = first.next_token().expect("a second page").to_string();
    let second = organizations
        .list_accounts()
        .max_results(2)
        .next_token(next)
        .send()
        .await
        .unwrap();
    assert_eq!(second.accounts().len(), 1);
    assert!(second.next_token().is_none());

    let pages: Vec<_> = organizations
        .list_accounts()
        .max_results(1)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(pages.len(), 3);
    let all: Vec<_> = pages
        .iter()
        .flat_map(|page| page.accounts().to_vec())
        .collect();
    let ids: Vec<&str> = all.iter().filter_map(|account| account.id()).collect();
    assert_eq!(ids, vec![ROOT, MEMBER_A, MEMBER_B]);
    assert_eq!(all[1].name(), Some("member a"));
    assert_eq!(
        all[1].status(),
        Some(&aws_sdk_organizations::types::AccountStatus::Active)
    );
}

#[tokio::test]
async fn a_member_account_cannot_list_accounts() {
    let handle = start().await;
    let organizations = aws_sdk_organizations::Client::new(&key_config(&handle, MEMBER_KEY).await);
    let error = organizations.list_accounts().send().await.unwrap_err();
    assert_eq!(code(&error), "AccessDeniedException");
}

#[tokio::test]
async fn an_account_outside_any_organization_gets_not_in_use() {
    let handle = start().await;
    let organizations = aws_sdk_organizations::Client::new(&key_config(&handle, SOLO_KEY).await);
    let error = organizations.list_accounts().send().await.unwrap_err();
    assert_eq!(code(&error), "AWSOrganizationsNotInUseException");
}

#[tokio::test]
async fn the_root_can_assume_the_organization_access_role_of_a_member() {
    let handle = start().await;
    let sts = aws_sdk_sts::Client::new(&root_config(&handle).await);
    for member in [MEMBER_A, MEMBER_B] {
        let assumed = sts
            .assume_role()
            .role_arn(format!(
                "arn:aws:iam::{member}:role/OrganizationAccountAccessRole"
            ))
            .role_session_name("cudly")
            .send()
            .await
            .unwrap();
        assert!(
            assumed
                .assumed_role_user()
                .unwrap()
                .arn()
                .starts_with(&format!("arn:aws:sts::{member}:assumed-role/"))
        );
    }
    let member_sts = aws_sdk_sts::Client::new(&key_config(&handle, MEMBER_KEY).await);
    let error = member_sts
        .assume_role()
        .role_arn(format!(
            "arn:aws:iam::{MEMBER_B}:role/OrganizationAccountAccessRole"
        ))
        .role_session_name("cudly")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "AccessDenied");
}
