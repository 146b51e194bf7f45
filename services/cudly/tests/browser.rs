//! The approval page in a real browser (issue 21; docs/APPROVAL_PAGE.md): Debian's
//! headless Chromium, driven through WebDriver (chromedriver) with fantoccini, against
//! the whole stack and the AWS sandbox.
//!
//! The approver opens the link, reads the quote, clicks Approve and sees the outcome;
//! the execution is bought in the sandbox exactly as asked, and reloading the outcome
//! buys nothing more. Before that, a client that is not a browser fetches the link and
//! changes nothing. From a link without a token (a broadcast channel's), the approver
//! signs in with an API key, reads the quote and approves as that key. Screenshots of
//! the page before and after the decision and of the sign-in go to `target/` as
//! `approval-page.png`, `approval-page-done.png` and `approval-page-sign-in.png` (the
//! ones in docs/ come from there).
//!
//! Without `/usr/bin/chromedriver` and `/usr/bin/chromium` this test fails: it never
//! skips. `.ci/run` installs them (`chromium`, `chromium-driver`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, ensure};
use cudly_testkit::{TestStack, eventually, free_port};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[allow(dead_code)]
mod common;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A chromedriver process in its own process group, which the Chromium it starts
/// joins; the whole group is killed when this is dropped, so no browser outlives a
/// test that failed before closing its session.
struct ChromeDriver {
    process: tokio::process::Child,
    url: String,
}

impl ChromeDriver {
    /// Starts chromedriver on a free port and waits until it is ready.
    async fn start() -> anyhow::Result<Self> {
        for binary in [CHROMEDRIVER, CHROMIUM] {
            ensure!(
                Path::new(binary).exists(),
                "{binary} is missing: the browser test needs Debian's chromium and \
                 chromium-driver packages (`apt-get install chromium chromium-driver`; \
                 .ci/run installs them). It fails rather than skip."
            );
        }
        let port = free_port();
        let process = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {CHROMEDRIVER}"))?;
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        let http = reqwest::Client::new();
        eventually(
            "chromedriver to be ready",
            Duration::from_secs(30),
            || async {
                let reply: Value = http.get(&status).send().await.ok()?.json().await.ok()?;
                (reply["value"]["ready"] == true).then_some(())
            },
        )
        .await?;
        Ok(Self { process, url })
    }

    /// Opens a headless Chromium session.
    async fn session(&self) -> anyhow::Result<Client> {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=420,1100",
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            anyhow::bail!("capabilities are an object");
        };
        // chromedriver listens on loopback over plain HTTP: no TLS connector needed.
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        builder
            .connect(&self.url)
            .await
            .map_err(|error| anyhow::anyhow!("cannot open a Chromium session: {error}"))
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        if let Some(pid) = self.process.id() {
            // The group of the chromedriver this test started (`kill -- -<pgid>`).
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--"])
                .arg(format!("-{pid}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.process.start_kill();
    }
}

/// Turns a WebDriver error into an error saying what was being done.
trait WebDriverResult<T> {
    fn doing(self, what: &str) -> anyhow::Result<T>;
}

impl<T, E: std::fmt::Display> WebDriverResult<T> for Result<T, E> {
    fn doing(self, what: &str) -> anyhow::Result<T> {
        self.map_err(|error| anyhow::anyhow!("{what}: {error}"))
    }
}

/// Returns `amount` as the page and the CLI show it: `$1,234.50`.
fn usd(amount: f64) -> String {
    cudly_vocabulary::format_usd(amount)
}

/// Where screenshots go: the workspace's target directory.
fn screenshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target")
        .join(name)
}

/// The phone-sized width of the screenshots, in CSS pixels.
const SCREENSHOT_WIDTH: u32 = 420;

/// Saves a screenshot of the whole page, 420 px wide: a screenshot holds the viewport
/// only, so the window first grows to the page's height.
async fn save_screenshot(browser: &Client, name: &str) -> anyhow::Result<()> {
    browser
        .set_window_size(SCREENSHOT_WIDTH, 1100)
        .await
        .doing("narrowing the window")?;
    let measured = browser
        .execute(
            "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight];",
            Vec::new(),
        )
        .await
        .doing("measuring the page")?;
    let page = measured[0].as_u64().unwrap_or(1100);
    let frame = measured[1].as_u64().unwrap_or(0);
    browser
        .set_window_size(
            SCREENSHOT_WIDTH,
            u32::try_from(page + frame).unwrap_or(1100),
        )
        .await
        .doing("fitting the window to the page")?;
    let png = browser.screenshot().await.doing("taking a screenshot")?;
    let path = screenshot_path(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
    println!("screenshot: {}", path.display());
    Ok(())
}

/// Returns an execution through REST; an error, not a panic, so that the browser
/// session is still closed.
async fn execution(stack: &TestStack, id: &str) -> anyhow::Result<Value> {
    let (status, execution) = stack
        .admin_json(Method::GET, &format!("/api/executions/{id}"), None)
        .await?;
    ensure!(
        status == StatusCode::OK,
        "GET execution {id}: {status} {execution}"
    );
    Ok(execution)
}

/// Starts the stack on the sandbox and creates a pending execution of the approval
/// lines for a new account named `buyer`: the stack, the execution's id and its
/// creation reply (with the approval token).
async fn pending_purchase(buyer: &str) -> (TestStack, String, Value) {
    let stack = TestStack::start_with_sandbox_and(|config| {
        config.executor.runner.poll_interval = Duration::from_millis(200);
    })
    .await
    .expect("the stack starts");
    let pending = common::create_pending(&stack, buyer).await;
    let (id, created) = (pending.id, pending.execution);
    (stack, id, created)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_reads_the_quote_clicks_approve_and_the_sandbox_sells_it() {
    let driver = ChromeDriver::start().await.unwrap();
    let (stack, id, created) = pending_purchase("browser buyer").await;
    let token = created["approval_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let link = stack.url(&format!("/approve/{id}?token={token}"));

    // A mail scanner or a link preview: a GET by a client that is not a browser.
    for _ in 0..2 {
        let fetched = stack.http.get(&link).send().await.expect("link fetched");
        assert_eq!(fetched.status(), StatusCode::OK);
    }
    assert_eq!(execution(&stack, &id).await.unwrap()["status"], "pending");
    assert!(stack.sandbox().ledger().await.commitments.is_empty());

    // Sessions are closed whatever happens, so no Chromium outlives the test.
    let browser = driver.session().await.unwrap();
    let outcome = approve_in_browser(&browser, &stack, &link, &id, &created).await;
    let closed = browser.close().await;
    outcome.unwrap();
    closed.doing("closing the browser session").unwrap();
    stack.stop().await.unwrap();
}

/// The approver's part, in the browser.
async fn approve_in_browser(
    browser: &Client,
    stack: &TestStack,
    link: &str,
    id: &str,
    created: &Value,
) -> anyhow::Result<()> {
    browser
        .goto(link)
        .await
        .doing("opening the approval link")?;
    let shown_total = browser
        .find(Locator::Id("total-upfront"))
        .await
        .doing("finding the total")?
        .text()
        .await
        .doing("reading the total")?;
    let api_view = execution(stack, id).await?;
    let total = api_view["total_upfront_cost"]
        .as_f64()
        .context("a total upfront cost")?;
    ensure!(total > 0.0, "the RDS line has an upfront price: {api_view}");
    ensure!(
        total == created["total_upfront_cost"].as_f64().unwrap_or(f64::NAN),
        "the quote did not change since creation"
    );
    ensure!(
        shown_total == usd(total),
        "the page shows {shown_total:?}, the API says {}",
        usd(total)
    );
    let quotes = browser
        .find_all(Locator::Css(".item-quote"))
        .await
        .doing("finding the item quotes")?;
    ensure!(
        quotes.len() == 2,
        "one quote per item, saw {}",
        quotes.len()
    );
    save_screenshot(browser, "approval-page.png").await?;

    click(browser, "approve").await?;
    let outcome = wait_for(browser, "outcome").await?;
    let shown_status = outcome
        .attr("data-status")
        .await
        .doing("reading the outcome")?
        .unwrap_or_default();
    ensure!(
        matches!(shown_status.as_str(), "approved" | "running" | "completed"),
        "the outcome says {shown_status:?}"
    );
    let url = browser.current_url().await.doing("reading the url")?;
    ensure!(url.as_str().contains("done=1"), "redirected to {url}");

    let ended = eventually("the purchase to end", Duration::from_secs(90), || async {
        let current = execution(stack, id).await.ok()?;
        matches!(
            current["status"].as_str(),
            Some("completed" | "partially_completed" | "failed" | "canceled" | "expired")
        )
        .then_some(current)
    })
    .await?;
    ensure!(
        ended["status"] == "completed",
        "the purchase ended as {ended}"
    );
    let ledger = stack.sandbox().ledger().await;
    ensure!(
        ledger.commitments.len() == 2,
        "one commitment per item: {:?}",
        ledger.commitments
    );
    let units: i64 = ledger
        .commitments
        .iter()
        .map(|commitment| commitment.count)
        .sum();
    ensure!(
        units == 3,
        "two RDS instances and one EC2 instance, bought {units}"
    );

    // Reloading the outcome is another GET: it shows the end and buys nothing more.
    browser.refresh().await.doing("reloading the outcome")?;
    let reloaded = wait_for(browser, "outcome").await?;
    let final_status = reloaded
        .attr("data-status")
        .await
        .doing("reading the reloaded outcome")?;
    ensure!(
        final_status.as_deref() == Some("completed"),
        "after the purchase the page says {final_status:?}"
    );
    ensure!(
        browser.find(Locator::Id("approve")).await.is_err(),
        "no Approve button once decided"
    );
    save_screenshot(browser, "approval-page-done.png").await?;
    // Anything the reload might (wrongly) have started would show in the ledger by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    ensure!(
        stack.sandbox().ledger().await.commitments.len() == 2,
        "the reload bought nothing"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_from_a_broadcast_link_signs_in_with_a_key_and_approves() {
    let driver = ChromeDriver::start().await.unwrap();
    let (stack, id, created) = pending_purchase("broadcast buyer").await;
    // What Slack or Teams carries: the page without the token.
    let link = stack.url(&format!("/approve/{id}"));

    let browser = driver.session().await.unwrap();
    let outcome = sign_in_and_approve(&browser, &stack, &link, &id, &created).await;
    let closed = browser.close().await;
    outcome.unwrap();
    closed.doing("closing the browser session").unwrap();
    stack.stop().await.unwrap();
}

/// Clicks the element whose id is `id`.
async fn click(browser: &Client, id: &str) -> anyhow::Result<()> {
    browser
        .find(Locator::Id(id))
        .await
        .doing(&format!("finding #{id}"))?
        .click()
        .await
        .doing(&format!("clicking #{id}"))
}

/// Waits, 30 s at most, for the element whose id is `id` (the next page's).
async fn wait_for(browser: &Client, id: &str) -> anyhow::Result<fantoccini::elements::Element> {
    browser
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id(id))
        .await
        .doing(&format!("waiting for #{id}"))
}

/// Types `key` into the page's API key field `field_id`.
async fn type_key(browser: &Client, field_id: &str, key: &str) -> anyhow::Result<()> {
    browser
        .find(Locator::Id(field_id))
        .await
        .doing("finding the api key field")?
        .send_keys(key)
        .await
        .doing("typing the api key")
}

/// The approver's part of a broadcast link, in the browser: sign in, read, approve.
async fn sign_in_and_approve(
    browser: &Client,
    stack: &TestStack,
    link: &str,
    id: &str,
    created: &Value,
) -> anyhow::Result<()> {
    browser.goto(link).await.doing("opening the link")?;
    let total = usd(created["total_upfront_cost"].as_f64().context("a total")?);
    let before = browser.source().await.doing("reading the page")?;
    ensure!(
        before.contains("sign-in-form") && !before.contains(&total),
        "the page shows nothing of the purchase before signing in"
    );
    save_screenshot(browser, "approval-page-sign-in.png").await?;
    type_key(browser, "api-key", stack.admin_key()).await?;
    click(browser, "review").await?;
    let shown_total = wait_for(browser, "total-upfront")
        .await?
        .text()
        .await
        .doing("reading the total")?;
    ensure!(
        shown_total == total,
        "the page shows {shown_total:?}, the API {total}"
    );
    // The decision asks for the key again: the page keeps none.
    type_key(browser, "api-key", stack.admin_key()).await?;
    click(browser, "approve").await?;
    wait_for(browser, "outcome").await?;
    let ended = eventually("the purchase to end", Duration::from_secs(60), || async {
        let view = execution(stack, id).await.ok()?;
        matches!(
            view["status"].as_str(),
            Some("completed" | "failed" | "partially_completed")
        )
        .then_some(view)
    })
    .await?;
    ensure!(ended["status"] == "completed", "{ended}");
    ensure!(
        ended["approved_by"] == "key:bootstrap",
        "decided as the key: {ended}"
    );
    let bought = stack.sandbox().ledger().await.commitments.len();
    ensure!(bought == 2, "one commitment per item, saw {bought}");
    Ok(())
}
