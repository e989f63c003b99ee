//! The web console as a person uses it: headless Chromium, driven over WebDriver by
//! chromedriver, goes from the sessions list to the order waiting at `review`, sees the graph
//! with `review` marked, approves it through the decision form and sees it completed; then
//! saves screenshots under the target directory (and, with `UPDATE_SCREENSHOT=1`, the README's
//! `docs/console.png`).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); `CHROME` and
//! `CHROMEDRIVER` name other binaries. Without them it fails, saying what to install.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

#[path = "support/console.rs"]
mod support;
use support::WAITING;

/// How long the whole walk may take before the test fails rather than hangs.
const WALK_LIMIT: Duration = Duration::from_secs(120);

/// `var`'s value if set, else the first of `names` found on `PATH` or as a path.
fn find_binary(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        let name = Path::new(name);
        if name.is_absolute() {
            return name.is_file().then(|| name.to_owned());
        }
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// chromedriver, killed (with the browser it started) when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start(binary: &Path) -> Driver {
        // A port the system says is free; chromedriver binds it a moment later.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Driver { child, port }
    }

    /// A WebDriver session of headless Chromium, once chromedriver listens.
    async fn connect(&mut self, chromium: &Path) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,1000",
                    "--force-device-scale-factor=1",
                    "--hide-scrollbars",
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{}", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => return client,
                Err(error) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!("chromedriver exited ({status}) before a session started");
                    }
                    if Instant::now() > deadline {
                        panic!("no WebDriver session from chromedriver at {url}: {error}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Where the screenshots go: the target directory's scratch space.
fn save_screenshot(name: &str, png: &[u8]) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, png).expect("write the screenshot");
    println!("screenshot: {}", path.display());
    path
}

/// The walk a person takes, from the list to the completed order.
async fn walk(client: Client, address: SocketAddr) -> Result<(), fantoccini::error::CmdError> {
    let wait = || client.wait().at_most(Duration::from_secs(20));

    // The sessions list; the waiting order is one of its rows.
    client
        .goto(&format!("http://{address}/ops/sessions"))
        .await?;
    wait().for_element(Locator::Css("table#sessions")).await?;
    let row_status = client
        .find(Locator::Css(&format!(
            r#"tr[data-session="{WAITING}"] .status"#
        )))
        .await?
        .text()
        .await?;
    assert_eq!(row_status, "waiting");
    client
        .find(Locator::Css(&format!(
            r#"a.session-link[data-session="{WAITING}"]"#
        )))
        .await?
        .click()
        .await?;

    // Its page: waiting, the graph with `review` marked as the current node.
    let status = wait().for_element(Locator::Css("#status")).await?;
    assert_eq!(status.text().await?, "waiting");
    assert_eq!(
        client.current_url().await?.path(),
        format!("/ops/sessions/{WAITING}")
    );
    let current = client
        .find_all(Locator::Css("#graph g.node.current"))
        .await?;
    assert_eq!(current.len(), 1, "one current node");
    assert_eq!(
        current[0].attr("data-node").await?.as_deref(),
        Some("review")
    );
    let charge = client
        .find(Locator::Css(r#"#graph g.node[data-node="charge"]"#))
        .await?;
    assert!(
        !charge
            .attr("class")
            .await?
            .unwrap_or_default()
            .contains("current")
    );
    // Marked so a person sees it: the current node is filled, others are white.
    let fill = client
        .find(Locator::Css("#graph g.node.current polygon"))
        .await?
        .css_value("fill")
        .await?;
    assert_ne!(fill, "rgb(255, 255, 255)", "the current node is coloured");

    // The decision form: the node's input as JSON, who and why.
    client
        .find(Locator::Id("decide-review-input"))
        .await?
        .send_keys("\"Approve\"")
        .await?;
    client
        .find(Locator::Id("decide-review-actor"))
        .await?
        .send_keys("alice")
        .await?;
    client
        .find(Locator::Id("decide-review-note"))
        .await?
        .send_keys("known customer")
        .await?;
    let waiting_png = save_screenshot("console-waiting.png", &client.screenshot().await?);
    client
        .find(Locator::Css("form#decide-review button[type=submit]"))
        .await?
        .click()
        .await?;

    // Back on its page: completed, the decision in its history, `END` marked.
    let status = wait()
        .for_element(Locator::Css("#status.completed"))
        .await?;
    assert_eq!(status.text().await?, "completed");
    let notice = client
        .find(Locator::Css(".notice.done"))
        .await?
        .text()
        .await?;
    assert!(notice.contains("Decision recorded"), "{notice}");
    let history = client.find(Locator::Id("history")).await?.text().await?;
    assert!(history.contains("decision review"), "{history}");
    assert!(history.contains("alice"), "{history}");
    assert!(history.contains("known customer"), "{history}");
    let current = client
        .find(Locator::Css("#graph g.node.current"))
        .await?
        .attr("data-node")
        .await?;
    assert_eq!(current.as_deref(), Some("END"));
    let state = client.find(Locator::Id("state")).await?.text().await?;
    assert!(state.contains(r#""shipped": true"#), "{state}");
    save_screenshot("console-completed.png", &client.screenshot().await?);

    if std::env::var_os("UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console.png");
        std::fs::copy(&waiting_png, &docs).expect("copy the screenshot to docs/");
        println!("updated {}", docs.display());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_approves_a_waiting_order_in_chromium() {
    let started = Instant::now();
    let chromium = find_binary(
        "CHROME",
        &["chromium", "chromium-browser", "/usr/bin/chromium"],
    );
    let chromedriver = find_binary("CHROMEDRIVER", &["chromedriver", "/usr/bin/chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        panic!(
            "the console's browser test needs Chromium and chromedriver: on Debian, \
             `apt-get install chromium chromium-driver` (.ci/run does); or set CHROME and \
             CHROMEDRIVER to their paths"
        );
    };

    let dir = tempfile::tempdir().expect("a temporary directory");
    let inspector = support::fixture(&dir.path().join("console.db")).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let address = listener.local_addr().expect("its address");
    let server = tokio::spawn(async move { axum::serve(listener, support::app(inspector)).await });

    let mut driver = Driver::start(&chromedriver);
    let client = driver.connect(&chromium).await;
    // The walk runs on its own task so that a failed assertion still ends the browser.
    let walked = tokio::spawn(tokio::time::timeout(
        WALK_LIMIT,
        walk(client.clone(), address),
    ));
    let outcome = walked.await;
    let _ = client.close().await;
    drop(driver);
    server.abort();
    match outcome {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => panic!("WebDriver: {error}"),
        Ok(Err(_)) => panic!("the walk took longer than {WALK_LIMIT:?}"),
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => panic!("the walk did not finish: {join}"),
    }
    println!("the browser walk took {:.1?}", started.elapsed());
}
